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

Two ways to walk the schedule (same distribution of samples), chosen by `Options(skip_empty_steps=...)`:

- skip_empty_steps=False (`schedule_step`): one schedule step for the whole batch at a time, the Markov
  chain on x_t as the paper writes it. The network runs whenever *any* image unmasks something, so an image
  with an empty step is evaluated again on a state already seen. The start state is taken as x_T: its mask
  tokens are revealed over the whole schedule.
- skip_empty_steps=True (the default, `plan` / `step_pass`): the positions are drawn up front. A position
  masked at the start time t_b survives to s <= t_b with probability s / t_b, so with v ~ Uniform(0, t_b) it
  is still masked at s iff v < s and it is revealed at the step k with t_{k+1} <= v < t_k: the whole
  per-image schedule in one draw, with the same law as the step-by-step draws. Dropping each image's empty
  steps, pass p runs the network once on every image's p-th non-empty step. This is exact because image b's
  logits depend on its own x_t only. A batch then needs max_b (non-empty steps of b) passes instead of about
  S: with T = S = L an image has about L (1 - (1 - 1/L)^L) ~ 0.63 L non-empty steps. Token draws use one
  pre-drawn uniform per position (inverse CDF), so the tokens do not depend on which order the passes run:
  given one plan, `schedule_step(x, k, plan)` step by step and `step_pass` pass by pass give the same tokens.
  A start state with m_b of L positions masked (inpainting) starts at t_b = round(T m_b / L), the time whose
  expected mask fraction matches; steps of the schedule above t_b reveal nothing for that image and cost
  nothing.

fixed_shape=True (with skip_empty_steps, `step_pass_fixed`) runs the same plan with the network on every image
and the head at every position each pass, writing the revealed tokens with torch.where: the same tokens, no
boolean indexing and no host sync in the loop, one shape throughout (for CUDA graphs and torch.compile; on a
CPU the default, which skips the finished images and unrevealed positions, does less work).

The step-by-step form keeps its random draws as they were (`ulib.sample.canvas` reproduces its tokens bit for
bit); `ulib.sample.api.sample_tokens(method='random')` runs the default, pass by pass.

Steps are separate calls (the protocol of `ulib.sample.base`) so notebooks and widgets can show each one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ulib.device import exact_float
from ulib.sample.base import Sampler, SampleStep, SamplingContext, categorical, draw


def time_schedule(num_timesteps: int, steps: int) -> list[int]:
    """Evenly spaced integer times [t_0 = T, ..., t_S = 0], strictly decreasing, S + 1 entries.

    >>> time_schedule(8, 4)
    [8, 6, 4, 2, 0]
    """
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"sample steps={steps}; allowed: 1..T={num_timesteps}")
    # round(T * (1 - k/S)); consecutive values differ by T/S >= 1, so rounding keeps them distinct
    return [int(round(num_timesteps * (steps - k) / steps)) for k in range(steps + 1)]


def start_time(num_masked, length: int, num_timesteps: int):
    """t_0 = round(T * m / L), at least 1: the time whose expected mask fraction t/T matches m masked tokens out
    of L (T for an all-masked grid; inpainting starts lower). m: an int or a (B,) long tensor.

    >>> start_time(16, 64, 100)
    25
    """
    t0 = (2 * num_timesteps * num_masked + length) // (2 * length)  # round half up, in integers
    return t0.clamp(min=1) if isinstance(t0, torch.Tensor) else max(1, t0)


@dataclass
class UnmaskPlan:
    """The pre-drawn randomness of one reverse run of B images of L tokens over an S-step schedule."""

    step_of: torch.Tensor  # (B, L) long: schedule step k in 0..S-1 that reveals the position; -1 = given token
    noise: torch.Tensor  # (B, L) float64 (MPS: float32) in [0, 1): uniform picking the position's token (inverse CDF)
    start_time: torch.Tensor  # (B,) long: t_b, the time image b starts from (T when it is all masked)
    order: torch.Tensor  # (B, P) long: image b's non-empty steps, increasing, then -1; P = max_b n_b

    @property
    def num_passes(self) -> int:
        """P: forward passes `sample` makes by passes (the most non-empty steps of any image)."""
        return self.order.shape[1]

    @property
    def nonempty_steps(self) -> torch.Tensor:
        """(B,) long: n_b, the steps that reveal at least one of image b's positions."""
        return (self.order >= 0).sum(1)


@dataclass(frozen=True)
class RandomOrderOptions:
    """The random-order sampler's settings."""

    skip_empty_steps: bool = True  # draw each image's schedule first and run only its non-empty steps (module
    #   docstring); False: the Markov chain, one schedule step for the whole batch at a time
    fixed_shape: bool = False  # each pass runs the network on every image and position (`step_pass_fixed`): no
    #   host syncs, one shape (for CUDA graphs / torch.compile); needs skip_empty_steps

    def __post_init__(self):
        for name in ("skip_empty_steps", "fixed_shape"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: True or False")
        if self.fixed_shape and not self.skip_empty_steps:
            raise ValueError("fixed_shape=True runs the pre-drawn plan pass by pass; it needs skip_empty_steps=True")


class AbsorbingSampler(Sampler):
    """Reverse process of the absorbing diffusion with step skipping and temperature (method 'random').

    steps: S, 1..T evenly spaced steps (default T). The network is any callable tokens (B, L) -> logits (B, L, K)
    (`ulib.sample.network`); when it has `features` and `head` (as `ulib.prior.transformer.Transformer` does)
    the head runs only at the positions being unmasked. extras of each `SampleStep`: 't' and 's' (the times
    before and after a schedule step), or by passes 'step' ((B,) long: each image's schedule step, -1 done).
    """

    Options = RandomOrderOptions

    def __init__(self, ctx: SamplingContext, steps: int | None = None, options: RandomOrderOptions | None = None):
        super().__init__(ctx, steps, options)
        self.times = time_schedule(self.T, self.T if steps in (None, 0) else steps)
        self._plan = None

    @property
    def steps(self) -> int:
        return len(self.times) - 1

    # ---- the protocol -------------------------------------------------------------------------------
    def start(self, x: torch.Tensor) -> int:
        """Draw the run's plan (skip_empty_steps) and return the passes it needs, else the S schedule steps."""
        if x.dim() != 2:
            raise ValueError(f"x of shape {tuple(x.shape)}; expected (B, L)")
        self._plan = self.plan(x) if self.options.skip_empty_steps else None
        return self._plan.num_passes if self._plan is not None else self.steps

    def step(self, x: torch.Tensor, k: int) -> SampleStep:
        """Pass k of the plan, or schedule step k (module docstring)."""
        if self._plan is None:
            return self.schedule_step(x, k)
        return (self.step_pass_fixed if self.options.fixed_shape else self.step_pass)(x, self._plan, k)

    # ---- the pre-drawn schedule -------------------------------------------------------------------
    def start_time(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) long t_b = round(T * m_b / L), at least 1: the time whose expected mask fraction t/T matches
        image b's m_b masked positions (T for an all-masked image; inpainting starts lower)."""
        return start_time((x == self.mask_id).sum(1), x.shape[1], self.T)

    def plan(self, x: torch.Tensor) -> UnmaskPlan:
        """Draw, for the start state x (B, L), the step that reveals each masked position and its uniform."""
        if x.dim() != 2:
            raise ValueError(f"x of shape {tuple(x.shape)}; expected (B, L)")
        B, S = x.shape[0], self.steps
        masked = x == self.mask_id
        t0 = self.start_time(x)
        dtype = exact_float(x.device)
        u = torch.rand(x.shape, dtype=dtype, device=x.device, generator=self.generator)
        v = u * t0[:, None]  # (B, L) ~ Uniform(0, t_b): still masked at s iff v < s
        ascending = torch.tensor(self.times[::-1], dtype=dtype, device=x.device)  # [0, ..., T]
        # t_{k+1} <= v < t_k  <=>  #{j : t_j <= v} = S - k   (times[j] = t_j decreasing)
        k = (S - torch.searchsorted(ascending, v, right=True)).clamp_(min=0)  # v rounded up to t_b = T: k = 0
        step_of = torch.where(masked, k, torch.full_like(k, -1))  # (B, L)
        noise = torch.rand(x.shape, dtype=dtype, device=x.device, generator=self.generator)
        hit = torch.zeros(B, S, dtype=torch.bool, device=x.device)  # (B, S): step k reveals some of image b
        rows, cols = masked.nonzero(as_tuple=True)
        hit[rows, step_of[rows, cols]] = True
        ks = torch.arange(S, device=x.device).expand(B, S)
        order = torch.where(hit, ks, ks + S).sort(1).values  # non-empty steps first, in time order
        P = int(hit.sum(1).max()) if B > 0 else 0
        order = torch.where(order[:, :P] < S, order[:, :P], torch.full_like(order[:, :P], -1))
        return UnmaskPlan(step_of, noise, t0, order)

    # ---- one schedule step for the whole batch ------------------------------------------------------
    @torch.no_grad()
    def schedule_step(self, x: torch.Tensor, k: int, plan: UnmaskPlan | None = None) -> SampleStep:
        """Step k (0-based) of the schedule: from t_k to t_{k+1}.

        Without a plan the positions and tokens are drawn now (the Markov chain on x_t); with one, step k
        reveals the positions the plan assigns to it, each with its pre-drawn uniform.
        """
        t, s = self.times[k], self.times[k + 1]
        masked = x == self.mask_id
        if plan is None:
            u = torch.rand(x.shape, device=x.device, generator=self.generator)
            unmask = masked & (u < (t - s) / t)  # (B, L); at s = 0 every masked position
        else:
            unmask = masked & (plan.step_of == k)
        if not unmask.any():
            return SampleStep(x, unmask, ran_network=False, extras={"t": t, "s": s})
        logits = self.logits_at(x, unmask).float() / self.temperature  # (N, K)
        probs = torch.softmax(logits, dim=-1)
        if plan is None:
            draws = draw(probs, self.generator)  # (N,)
        else:
            draws = categorical(probs, plan.noise[unmask])
        x = x.clone()
        x[unmask] = draws
        return SampleStep(x, unmask, extras={"t": t, "s": s})

    # ---- one network pass per image's non-empty step -------------------------------------------------
    @torch.no_grad()
    def step_pass(self, x: torch.Tensor, plan: UnmaskPlan, p: int) -> SampleStep:
        """Pass p (0-based): every image not yet done takes its p-th non-empty step of `plan`.

        Only those images go through the network, and the head runs only at the positions they reveal.
        """
        if not 0 <= p < plan.num_passes:
            raise ValueError(f"pass p={p}; this plan has passes 0..{plan.num_passes - 1}")
        k = plan.order[:, p]  # (B,) step of each image, -1 when done
        active = k >= 0
        unmask = active[:, None] & (plan.step_of == k[:, None])  # (B, L)
        if not unmask.any():
            return SampleStep(x, unmask, ran_network=False, extras={"step": k})
        # rows of the inactive images hold no True, so row-major order over x[active] matches unmask's
        logits = self.logits_at(x[active], unmask[active]).float() / self.temperature  # (N, K)
        draws = categorical(torch.softmax(logits, dim=-1), plan.noise[unmask])  # (N,)
        x = x.clone()
        x[unmask] = draws
        return SampleStep(x, unmask, extras={"step": k})

    @torch.no_grad()
    def step_pass_fixed(self, x: torch.Tensor, plan: UnmaskPlan, p: int) -> SampleStep:
        """Pass p of `plan` at one fixed shape (option fixed_shape): the network runs on all B images and the head
        at all L positions, every position's token is drawn from its pre-drawn uniform and written with
        torch.where where the plan reveals it at this pass. The same tokens as `step_pass` (the draws are fixed
        functions of the plan's uniforms, and each image's logits depend on its own x_t only), to float rounding
        of the logits; no boolean indexing and no host sync, so a whole run can be captured in a CUDA graph or
        compiled once. The head at every position costs about K / (12 n_layers n_emb) of the pass (under 1 %
        at the paper's sizes); the finished images ride along.
        """
        k = plan.order[:, p]  # (B,) step of each image, -1 when done
        unmask = (plan.step_of == k[:, None]) & (k >= 0)[:, None]  # (B, L); given tokens (-1) never match a step
        self.forward_passes += 1
        logits = self.model(x).float() / self.temperature  # (B, L, K)
        B, L, K = logits.shape
        draws = categorical(torch.softmax(logits, dim=-1).view(B * L, K), plan.noise.view(B * L)).view(B, L)
        return SampleStep(torch.where(unmask, draws, x), unmask, extras={"step": k})
