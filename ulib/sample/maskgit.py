"""MaskGIT-style confidence decoding with the absorbing prior (`sample_tokens(..., method='confidence')`).

'confidence' (MaskGIT, Chang et al. 2022): at step j = 0..S-1 every masked position gets a candidate
c_i ~ p_i = softmax(logits_i / temperature) and a confidence log p_i(c_i) + tau_j * g_i, g_i ~ Gumbel(0, 1),
tau_j = choice_temperature * (1 - (j + 1) / S) (annealed linearly to 0). The most confident candidates
are kept so that r_{j+1} = floor(m * gamma((j + 1) / S)) positions stay masked, gamma(r) = cos(pi r / 2)
('cosine', MaskGIT's default) or 1 - r ('linear'); at least one is revealed per step while any remain
(MaskGIT's clamp) and the last step reveals the rest; m is each image's masked count at the start. The
rest are masked again (their candidates dropped); revealed tokens never change. MaskGIT samples at
temperature 1; here `temperature` tempers both the candidates and their confidences (1.0 = MaskGIT).

Every step is a separate call (`ConfidenceSampler.step`, the protocol of `ulib.sample.base`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ulib.device import exact_float
from ulib.sample.base import Sampler, SampleStep, SamplingContext, draw, step_count

MASK_SCHEDULES = ("cosine", "linear")


def confidence_schedule(masked: torch.Tensor, steps: int, schedule: str = "cosine") -> torch.Tensor:
    """(B, S+1) long r_j: positions of each image still masked after j steps, r_0 = m_b, r_S = 0.

    r_j = floor(m * gamma(j / S)), then r_j <= r_{j-1} - 1 while r_{j-1} > 0 (at least one per step).

    >>> confidence_schedule(torch.tensor([16]), 4, "linear").tolist()
    [[16, 12, 8, 4, 0]]
    """
    if schedule not in MASK_SCHEDULES:
        raise ValueError(f"schedule={schedule!r}; allowed: {MASK_SCHEDULES}")
    dtype = exact_float(masked.device)  # float64, float32 on MPS
    frac = torch.arange(steps + 1, dtype=dtype, device=masked.device) / steps  # j / S
    gamma = torch.cos(math.pi / 2 * frac) if schedule == "cosine" else 1 - frac
    r = torch.floor(masked.to(dtype)[:, None] * gamma).long()  # (B, S+1)
    r[:, 0], r[:, -1] = masked, 0
    for j in range(1, steps):
        r[:, j] = torch.minimum(r[:, j], (r[:, j - 1] - 1).clamp(min=0))
    return r


@dataclass(frozen=True)
class ConfidenceOptions:
    """MaskGIT's two settings."""

    schedule: str = "cosine"  # gamma, the mask schedule: 'cosine' (MaskGIT's default) or 'linear'
    choice_temperature: float = 4.5  # scale of the Gumbel noise on the confidences at the first step, >= 0

    def __post_init__(self):
        if self.schedule not in MASK_SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r}; allowed: {MASK_SCHEDULES}")
        if not self.choice_temperature >= 0:
            raise ValueError(f"choice_temperature={self.choice_temperature}; must be >= 0")


class ConfidenceSampler(Sampler):
    """MaskGIT's decoding: reveal the most confident candidates, as many as the mask schedule says (method
    'confidence'). steps: S >= 1. extras of each `SampleStep`: 'candidates' ((B, L) the candidate at each scored
    position, else the mask id) and 'confidence' ((B, L) log p(candidate) + Gumbel noise; -inf unscored)."""

    Options = ConfidenceOptions

    def __init__(self, ctx: SamplingContext, steps: int | None = None, options: ConfidenceOptions | None = None):
        super().__init__(ctx, steps, options)
        self.steps = step_count(steps, ctx.num_timesteps)
        self.schedule, self.choice_temperature = self.options.schedule, self.options.choice_temperature
        self._remaining = None

    def remaining(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S+1) positions left masked after each step, for the start state x (B, L)."""
        return confidence_schedule((x == self.mask_id).sum(1), self.steps, self.schedule)

    def start(self, x: torch.Tensor) -> int:
        self._remaining = self.remaining(x)
        return self.steps

    @torch.no_grad()
    def step(self, x: torch.Tensor, j: int) -> SampleStep:
        """Step j (0-based): reveal (masked now - remaining[:, j+1]) positions of each image."""
        B, L = x.shape
        masked = x == self.mask_id
        n_reveal = (masked.sum(1) - self._remaining[:, j + 1]).clamp(min=0)  # (B,)
        scored = masked & (n_reveal > 0)[:, None]  # only images with something to reveal run
        cand = torch.full_like(x, self.mask_id)
        conf = torch.full((B, L), -math.inf, device=x.device)
        if not scored.any():
            return SampleStep(x, torch.zeros_like(masked), ran_network=False,
                              extras={"candidates": cand, "confidence": conf})
        logits = self.logits_at(x, scored).float() / self.temperature  # (N, K)
        probs = torch.softmax(logits, dim=-1)
        c = draw(probs, self.generator)[:, None]  # (N, 1)
        tau = self.choice_temperature * (1 - (j + 1) / self.steps)  # annealed linearly to 0
        # ranking noise on the confidences, not a token draw: float32 uniforms bound it to about [-2.8, 16.6],
        # cutting Gumbel tails of probability ~6e-8 each, which can change which position is kept only there
        u = torch.rand(c.shape[0], device=x.device, generator=self.generator).clamp_(min=1e-20)
        gumbel = -torch.log(-torch.log(u))  # (N,)
        cand[scored] = c.squeeze(1)
        conf[scored] = torch.log(probs.gather(1, c).squeeze(1)) + tau * gumbel
        # rank of each position by confidence within its image; keep the n_reveal best
        order = conf.argsort(1, descending=True)
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(L, device=x.device).expand(B, L))
        reveal = scored & (rank < n_reveal[:, None])
        return SampleStep(torch.where(reveal, cand, x), reveal, extras={"candidates": cand, "confidence": conf})
