"""Re-masking decoding, the official code's `sample_mlm` (`sample_tokens(..., method='remask')`).

'remask' (the official code's `sample_mlm`): keep a full estimate x0 of the grid (mask id where nothing
was predicted yet). At each time t of a descending grid, draw x_t ~ q(x_t | x0) by re-masking each
generated position of x0 independently with probability t / T (given tokens are never re-masked), run the
network on x_t and replace x0 at every masked position of x_t with a draw from softmax(logits / temperature).
The official grid is floor(linspace(1, T, S)), descending from T to 1; every generated position still
holds the mask id at the first step, so the first step predicts all of them. Unlike 'random', a token
once predicted can be predicted again later; the output is the last x0. Costs S forward passes.

Every step is a separate call (`RemaskSampler.step`), like diffusers' `scheduler.step`.
"""
from __future__ import annotations

import torch

from ulib.sample.absorbing import SampleStep, run_steps
from ulib.sample.network import logits_at


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


class RemaskSampler:
    """The official `sample_mlm`: re-mask the running estimate x0 with q(x_t | x0), then re-predict it.

    model: any callable tokens (B, L) -> logits (B, L, K) (`ulib.sample.network`)."""

    def __init__(self, model, num_timesteps: int, mask_id: int, steps: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None):
        if not temperature > 0:
            raise ValueError(f"temperature={temperature}; must be > 0")
        self.model, self.T, self.mask_id = model, num_timesteps, mask_id
        self.times = remask_times(num_timesteps, steps)
        self.temperature, self.generator = temperature, generator
        self.forward_passes = 0

    @property
    def steps(self) -> int:
        return len(self.times)

    @torch.no_grad()
    def step(self, x0: torch.Tensor, j: int, free: torch.Tensor) -> SampleStep:
        """Step j: x_t ~ q(x_t | x0) over the `free` (B, L) positions (those being generated), then re-draw
        every masked position of x_t; positions of x0 still holding the mask id count as masked."""
        t = self.times[j]
        u = torch.rand(x0.shape, device=x0.device, generator=self.generator)
        remask = (x0 == self.mask_id) | (free & (u < t / self.T))  # (B, L); t = T masks every free one
        x_t = torch.where(remask, torch.full_like(x0, self.mask_id), x0)
        if not remask.any():
            return SampleStep(x0, remask, ran_network=False, t=t, x_t=x_t)
        self.forward_passes += 1
        logits = logits_at(self.model, x_t, remask).float() / self.temperature  # (N, K)
        draws = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=self.generator).squeeze(1)
        x0 = x0.clone()
        x0[remask] = draws
        return SampleStep(x0, remask, t=t, x_t=x_t)

    @torch.no_grad()
    def sample(self, x: torch.Tensor, callback=None, progress: bool = False) -> torch.Tensor:
        """All S steps from the start state x (B, L); callback(j, SampleStep) after each."""
        free = x == self.mask_id
        return run_steps(lambda x, j: self.step(x, j, free), x, self.steps, callback, progress, "remask")
