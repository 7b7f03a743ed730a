"""Exponential moving average (EMA) of a model's weights, used for sampling (the official code
samples from EMA weights, decay 0.995).

The EMA ("shadow") model is a frozen copy that trails the trained model:

    shadow_t = decay * shadow_{t-1} + (1 - decay) * param_t

so it averages roughly the last 1 / (1 - decay) steps (200 steps for decay 0.995), smoothing out the
noise of the last few optimiser updates. Buffers (e.g. BatchNorm running statistics, or a VQ codebook
kept as a buffer) are not averaged but copied as they are.
"""
from __future__ import annotations

import copy

import torch

from ulib.io.checkpoint import unwrap

__all__ = ["EMA"]


class EMA:
    """`EMA(model, decay)`; call `update(model)` after each optimiser step and sample with `ema.model`."""

    def __init__(self, model: torch.nn.Module, decay: float):
        decay = float(decay)
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay={decay}; allowed: 0 <= decay <= 1 (typical: 0.99 to 0.9999)")
        self.decay = decay
        self.model = copy.deepcopy(unwrap(model)).eval().requires_grad_(False)  # on the model's device
        for p in self.model.parameters():
            p.grad = None  # deepcopy also copies gradients; the shadow never needs them
        self._param_names = [name for name, _ in self.model.named_parameters()]
        self._buffer_names = [name for name, _ in self.model.named_buffers()]

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """shadow <- decay * shadow + (1 - decay) * param for every parameter; buffers copied."""
        model = unwrap(model)  # a DDP / compiled wrapper holds the same parameters under other names
        named_params = list(model.named_parameters())
        named_buffers = list(model.named_buffers())
        if [n for n, _ in named_params] != self._param_names or [n for n, _ in named_buffers] != self._buffer_names:
            raise ValueError(
                f"EMA.update: the model given ({type(model).__name__}, {len(named_params)} parameters, "
                f"{len(named_buffers)} buffers) is not the one the EMA was built from "
                f"({type(self.model).__name__}, {len(self._param_names)} parameters, "
                f"{len(self._buffer_names)} buffers)"
            )
        shadow = list(self.model.parameters())
        params = [p.detach() for _, p in named_params]
        if shadow:
            # Eq. above, in place on all tensors at once: shadow *= decay; shadow += (1 - decay) * param
            torch._foreach_mul_(shadow, self.decay)
            torch._foreach_add_(shadow, params, alpha=1.0 - self.decay)
        for b_shadow, (_, b) in zip(self.model.buffers(), named_buffers):
            b_shadow.copy_(b)

    def state_dict(self) -> dict:
        """The shadow model's state dict (what a checkpoint stores as its EMA weights)."""
        return self.model.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        """Load shadow weights saved by `state_dict()` (strict: keys and shapes must match)."""
        self.model.load_state_dict(state_dict)
