"""First-hitting sampling: one token per network call, at an analytically drawn time
(`sample_tokens(..., method='first_hitting')`).

Zheng et al., "Masked Diffusion Models are Secretly Time-Agnostic Masked Models and Exploit Inaccurate Categorical
Sampling" (ICLR 2025, arXiv 2409.02908), section 4 (the first-hitting sampler, Proposition 4.1). In the
continuous-time reverse process a position masked at time t is revealed at a time tau with
P(tau <= s | tau <= t) = (1 - alpha_s) / (1 - alpha_t) = s / t for the kit's alpha_t = 1 - t/T, independently of
the other positions. With m positions masked at t the next reveal is the largest of m such times, so
P(next <= s) = (s / t)^m and the next time is t * u^(1/m), u ~ Uniform(0, 1); the position it reveals is any of
the m with equal probability, and its token is drawn from softmax(logits / temperature) of the state at t. Then
the same from the new time with m - 1 masked, until none is left: exactly one position per call, m calls.

The network takes no time (`ulib.prior.transformer.Transformer.forward(idx)` sees the tokens only), so the times
decide nothing about the tokens: they are drawn only to show them (extras 't'). What the sampler does is reveal
the masked positions one at a time in a uniformly random order, each drawn given all the earlier ones.

Beside 'random' at steps = T (the kit's T-step process with its exact skip of empty steps,
`ulib.sample.absorbing`): there, too, the order in which positions are revealed is uniformly random (each
position's step is uniform and independent), and an empty step costs nothing. What remains different is ties:
positions that share a step are revealed in one call, drawn independently from the same state, where here each
is drawn after the others. So 'random' makes about T (1 - (1 - 1/T)^L) ~ 0.63 L calls at T = L and here L calls,
and the laws differ whenever the network's prediction at one position depends on the tokens revealed at another
(tests/sample/test_first_hitting.py shows both on a stand-in network). 'random' tends to this sampler's law as
T grows (ties vanish); this one is the continuous-time (T -> infinity) limit of the kit's process.

A start state with given tokens (x_start) reveals only its m_b masked positions (m_b calls for image b, a batch
max_b m_b); its time starts at round(T m_b / L) (`ulib.sample.absorbing.start_time`, as 'random'). `steps` is not
used: the number of calls is the number of masked positions. Every step is a separate call
(`FirstHittingSampler.step`, the protocol of `ulib.sample.base`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ulib.sample.absorbing import start_time
from ulib.sample.base import Sampler, SampleStep, SamplingContext, draw, uniforms


@dataclass
class RevealPlan:
    """The pre-drawn order and times of one run of B images."""

    order: torch.Tensor  # (B, L) long: order[b, j] = the position image b reveals at call j (j < m_b)
    masked: torch.Tensor  # (B,) long: m_b, the positions image b reveals (its calls)
    times: torch.Tensor  # (B, P + 1) float: t_0 = round(T m_b / L) then each call's reveal time; -1 once done

    @property
    def num_calls(self) -> int:
        """P = max_b m_b: the network calls of the run."""
        return self.times.shape[1] - 1


class FirstHittingSampler(Sampler):
    """Zheng et al.'s first-hitting sampler (method 'first_hitting', module docstring): one uniformly chosen masked
    position per image and call. steps: not used (the calls are the masked count). extras of each `SampleStep`:
    't' ((B,) the time of this call's reveal, -1 for an image already done) and 'position' ((B,) long: the
    position revealed, -1 when done)."""

    def __init__(self, ctx: SamplingContext, steps: int | None = None, options=None):
        super().__init__(ctx, steps, options)
        self._plan = None

    def plan(self, x: torch.Tensor) -> RevealPlan:
        """Draw, for the start state x (B, L), the order of the masked positions and the first-hitting times."""
        if x.dim() != 2:
            raise ValueError(f"x of shape {tuple(x.shape)}; expected (B, L)")
        masked = x == self.mask_id
        m = masked.sum(1)  # (B,)
        keys = uniforms(x.shape, self.generator, x.device).masked_fill_(~masked, 2.0)  # given tokens sort last
        order = keys.argsort(1)  # (B, L): masked positions first, in a uniformly random order
        P = int(m.max()) if x.shape[0] > 0 else 0
        u = uniforms((x.shape[0], P), self.generator, x.device)  # (B, P)
        left = m[:, None] - torch.arange(P, device=x.device)  # (B, P): masked before call j
        live = left > 0
        # t_{j+1} = t_j * u_j^(1 / left_j), in logs: log t_0 + cumsum(log u_j / left_j) over the live calls
        log_step = torch.where(live, u.log() / left.clamp(min=1), torch.zeros_like(u))
        t0 = start_time(m, x.shape[1], self.T).to(u.dtype)  # (B,)
        t = t0[:, None] * torch.cat([torch.zeros_like(t0)[:, None], log_step.cumsum(1)], 1).exp()  # (B, P+1)
        t[:, 1:] = torch.where(live, t[:, 1:], torch.full_like(u, -1.0))
        return RevealPlan(order, m, t)

    def start(self, x: torch.Tensor) -> int:
        self._plan = self.plan(x)
        return self._plan.num_calls

    @torch.no_grad()
    def step(self, x: torch.Tensor, j: int) -> SampleStep:
        """Call j: every image with a masked position left reveals the next one of its order."""
        plan = self._plan
        active = plan.masked > j  # (B,)
        position = torch.where(active, plan.order[:, j], torch.full_like(plan.masked, -1))
        reveal = torch.zeros_like(x, dtype=torch.bool)
        rows = active.nonzero(as_tuple=True)[0]
        reveal[rows, position[rows]] = True
        extras = {"t": plan.times[:, j + 1], "position": position}
        if not reveal.any():
            return SampleStep(x, reveal, ran_network=False, extras=extras)
        # rows of the inactive images hold no True, so row-major order over x[active] matches reveal's
        logits = self.logits_at(x[active], reveal[active]).float() / self.temperature  # (N, K), one per image
        x = x.clone()
        x[reveal] = draw(torch.softmax(logits, dim=-1), self.generator)
        return SampleStep(x, reveal, extras=extras)
