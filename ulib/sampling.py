"""The reverse absorbing process, one step at a time (paper section 3.2 and Table 3's step skipping).

Sampling starts from the all-masked grid x_T and walks down an evenly spaced time schedule
T = t_0 > t_1 > ... > t_S = 0 (S = `steps` <= T; S = T is the plain reverse process). Going from time t
to s < t, each still-masked token is unmasked independently with probability (t - s) / t — under the
forward process a token masked at t is still masked at s with probability s/t — and its value is drawn
from p(x_0 | x_t) with temperature: softmax(logits / temperature). At s = 0 the probability is 1, so every
position is unmasked exactly once and no mask token survives.

The network ignores t: its logits depend on x_t only. So a step that unmasks nothing needs no forward pass
(we draw the positions first and skip the network when none unmask), and only the unmasked positions need
the output head and a categorical draw.

Steps are separate calls (like diffusers' `scheduler.step`) so notebooks and widgets can show each one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def time_schedule(num_timesteps: int, steps: int) -> list[int]:
    """Evenly spaced integer times [t_0 = T, ..., t_S = 0], strictly decreasing, S + 1 entries.

    >>> time_schedule(8, 4)
    [8, 6, 4, 2, 0]
    """
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"sample steps={steps}; allowed: 1..T={num_timesteps}")
    # round(T * (1 - k/S)); consecutive values differ by T/S >= 1, so rounding keeps them distinct
    return [int(round(num_timesteps * (steps - k) / steps)) for k in range(steps + 1)]


@dataclass
class StepResult:
    x: torch.Tensor  # (B, L) tokens after the step
    unmasked: torch.Tensor  # (B, L) bool, positions revealed by this step
    t: int  # time before the step
    s: int  # time after the step
    ran_network: bool  # False when no position unmasked, so the forward pass was skipped


class AbsorbingSampler:
    """Reverse process of the absorbing diffusion with step skipping and temperature.

    model: tokens (B, L) -> logits (B, L, K). When it has `features` and `head` (as
    `ulib.transformer.Transformer` does) the head runs only at the positions being unmasked.
    """

    def __init__(self, model, num_timesteps: int, mask_id: int, steps: int | None = None,
                 temperature: float = 1.0, generator: torch.Generator | None = None):
        steps = num_timesteps if steps in (None, 0) else steps
        if temperature <= 0:
            raise ValueError(f"temperature={temperature}; must be > 0")
        self.model = model
        self.T = num_timesteps
        self.mask_id = mask_id
        self.times = time_schedule(num_timesteps, steps)
        self.temperature = temperature
        self.generator = generator
        self.forward_passes = 0

    @property
    def steps(self) -> int:
        return len(self.times) - 1

    def initial_state(self, batch: int, length: int, device) -> torch.Tensor:
        """x_T: the all-masked grid, (B, L)."""
        return torch.full((batch, length), self.mask_id, dtype=torch.long, device=device)

    def _logits_at(self, x: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) at the N positions where `where` (B, L) is True."""
        self.forward_passes += 1
        if hasattr(self.model, "features") and hasattr(self.model, "head"):
            h = self.model.features(x)  # (B, L, C)
            return self.model.head(h[where])
        return self.model(x)[where]

    @torch.no_grad()
    def step(self, x: torch.Tensor, k: int) -> StepResult:
        """Step k (0-based) of the schedule: from t_k to t_{k+1}."""
        t, s = self.times[k], self.times[k + 1]
        masked = x == self.mask_id
        u = torch.rand(x.shape, device=x.device, generator=self.generator)
        unmask = masked & (u < (t - s) / t)  # (B, L); at s = 0 every masked position
        if not unmask.any():
            return StepResult(x, unmask, t, s, ran_network=False)
        logits = self._logits_at(x, unmask).float() / self.temperature  # (N, K)
        probs = torch.softmax(logits, dim=-1)
        draws = torch.multinomial(probs, 1, generator=self.generator).squeeze(1)  # (N,)
        x = x.clone()
        x[unmask] = draws
        return StepResult(x, unmask, t, s, ran_network=True)

    @torch.no_grad()
    def sample(self, batch: int, length: int, device, x: torch.Tensor | None = None,
               callback=None, progress: bool = False) -> torch.Tensor:
        """Run every step from x_T (or from `x`, whose mask tokens get filled); returns (B, L) tokens.

        callback(k, StepResult) is called after each step (for pictures of the process).
        """
        x = self.initial_state(batch, length, device) if x is None else x
        steps = range(self.steps)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="sampling", leave=False)
        for k in steps:
            res = self.step(x, k)
            x = res.x
            if callback is not None:
                callback(k, res)
        return x
