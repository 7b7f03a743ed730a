"""Re-masking decoding, the official code's `sample_mlm` (`sample_tokens(..., method='remask')`).

'remask' (the official code's `sample_mlm`): keep a full estimate x0 of the grid (mask id where nothing
was predicted yet). At each time t of a descending grid, draw x_t ~ q(x_t | x0) by re-masking each
generated position of x0 independently with probability t / T (given tokens are never re-masked), run the
network on x_t and replace x0 at every masked position of x_t with a draw from softmax(logits / temperature).
The official grid is floor(linspace(1, T, S)), descending from T to 1; every generated position still
holds the mask id at the first step, so the first step predicts all of them. Unlike 'random', a token
once predicted can be predicted again later; the output is the last x0. Costs S forward passes.

Every step is a separate call (`RemaskSampler.step`, the protocol of `ulib.sample.base`).
"""
from __future__ import annotations

import torch

from ulib.sample.base import Sampler, SampleStep, SamplingContext, draw


def remask_times(num_timesteps: int, steps: int) -> list[int]:
    """The official grid floor(linspace(1, T, S)) in descending order, computed in integers.

    >>> remask_times(8, 4)
    [8, 5, 3, 1]
    """
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps={steps}; allowed: 1..T={num_timesteps}")
    if steps == 1:
        return [1]  # linspace(1, T, 1) = [1]
    return [1 + (j * (num_timesteps - 1)) // (steps - 1) for j in range(steps)][::-1]


class RemaskSampler(Sampler):
    """The official `sample_mlm`: re-mask the running estimate x0 with q(x_t | x0), then re-predict it (method
    'remask'). steps: S, 1..T. extras of each `SampleStep`: 't' (the time of q(x_t | x0)) and 'x_t' ((B, L) the
    re-masked grid the network saw)."""

    def __init__(self, ctx: SamplingContext, steps: int | None = None, options=None):
        super().__init__(ctx, steps, options)
        self.times = remask_times(self.T, self.T if steps in (None, 0) else steps)
        self._free = None

    @property
    def steps(self) -> int:
        return len(self.times)

    def start(self, x: torch.Tensor) -> int:
        self._free = x == self.mask_id  # the positions being generated; given tokens are never re-masked
        return self.steps

    @torch.no_grad()
    def step(self, x0: torch.Tensor, j: int) -> SampleStep:
        """Step j: x_t ~ q(x_t | x0) over the positions being generated, then re-draw every masked position of
        x_t; positions of x0 still holding the mask id count as masked."""
        t = self.times[j]
        u = torch.rand(x0.shape, device=x0.device, generator=self.generator)
        remask = (x0 == self.mask_id) | (self._free & (u < t / self.T))  # (B, L); t = T masks every free one
        x_t = torch.where(remask, torch.full_like(x0, self.mask_id), x0)
        if not remask.any():
            return SampleStep(x0, remask, ran_network=False, extras={"t": t, "x_t": x_t})
        logits = self.logits_at(x_t, remask).float() / self.temperature  # (N, K)
        draws = draw(torch.softmax(logits, dim=-1), self.generator)  # (N,)
        x0 = x0.clone()
        x0[remask] = draws
        return SampleStep(x0, remask, extras={"t": t, "x_t": x_t})
