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

Two ways to walk the schedule (same distribution of samples):

- `step` / `sample`: one schedule step for the whole batch at a time. The network runs whenever *any*
  image unmasks something, so an image with an empty step is evaluated again on a state already seen.
- `plan` / `step_pass` / `sample_passes`: the positions are drawn up front. A position masked at the start
  time t_b survives to s <= t_b with probability s / t_b, so with v ~ Uniform(0, t_b) it is still masked at
  s iff v < s and it is revealed at the step k with t_{k+1} <= v < t_k: the whole per-image schedule in
  one draw, with the same law as the step-by-step draws. Dropping each image's empty steps, pass p runs the
  network once on every image's p-th non-empty step. This is exact because image b's logits depend on its
  own x_t only. A batch then needs max_b (non-empty steps of b) passes instead of about S: with T = S = L
  an image has about L (1 - (1 - 1/L)^L) ~ 0.63 L non-empty steps. Token draws use one pre-drawn uniform
  per position (inverse CDF), so the tokens do not depend on which order the passes run: given one plan,
  `step(x, k, plan)` step by step and `step_pass` pass by pass give the same tokens. A start state with
  m_b of L positions masked (inpainting) starts at t_b = round(T m_b / L), the time whose expected mask
  fraction matches; steps of the schedule above t_b reveal nothing for that image and cost nothing.

`sample` keeps the step-by-step loop and its random draws as they were (`ulib.sample.canvas` reproduces its
tokens bit for bit); `ulib.sample.api.sample_tokens(method='random')` runs `sample_passes`.

Steps are separate calls (like diffusers' `scheduler.step`) so notebooks and widgets can show each one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ulib.device import exact_float
from ulib.sample.network import logits_at


def time_schedule(num_timesteps: int, steps: int) -> list[int]:
    """Evenly spaced integer times [t_0 = T, ..., t_S = 0], strictly decreasing, S + 1 entries.

    >>> time_schedule(8, 4)
    [8, 6, 4, 2, 0]
    """
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"sample steps={steps}; allowed: 1..T={num_timesteps}")
    # round(T * (1 - k/S)); consecutive values differ by T/S >= 1, so rounding keeps them distinct
    return [int(round(num_timesteps * (steps - k) / steps)) for k in range(steps + 1)]


_exact_float = exact_float  # float64 for the pre-drawn uniforms and CDFs, except on MPS (float32)


def categorical(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Draw j from each row of probs (N, K) by inverse CDF with the uniforms u (N,) in [0, 1): (N,) long.

    j is the index with cdf_{j-1} <= u * cdf_K < cdf_j: the law of torch.multinomial(probs, 1), but a fixed
    function of u, so a position's token does not depend on which other positions are drawn with it.
    """
    dtype = _exact_float(probs.device)
    cdf = probs.to(dtype).cumsum(-1)  # (N, K)
    v = (u.to(dtype) * cdf[:, -1]).unsqueeze(1)  # (N, 1)
    return torch.searchsorted(cdf, v, right=True).squeeze(1).clamp_(max=probs.shape[1] - 1)


def run_steps(step, x: torch.Tensor, n_steps: int, callback=None, progress: bool = False,
              desc: str = "sampling") -> torch.Tensor:
    """x <- step(x, k).x for k = 0..n_steps-1, calling callback(k, result) after each (every sampler's loop)."""
    ks = range(n_steps)
    if progress:

        ks = tqdm(ks, desc=desc, leave=False)
    for k in ks:
        res = step(x, k)
        x = res.x
        if callback is not None:
            callback(k, res)
    return x



def start_time(num_masked, length: int, num_timesteps: int):
    """t_0 = round(T * m / L), at least 1: the time whose expected mask fraction t/T matches m masked tokens out
    of L (T for an all-masked grid; inpainting starts lower). m: an int or a (B,) long tensor.

    >>> start_time(16, 64, 100)
    25
    """
    t0 = (2 * num_timesteps * num_masked + length) // (2 * length)  # round half up, in integers
    return t0.clamp(min=1) if isinstance(t0, torch.Tensor) else max(1, t0)


@dataclass
class SampleStep:
    """What one step of any sampler did: the one step-result type every `callback(k, step)` receives.

    The common part: x after the step and the positions it wrote (revealed, or for 'remask' re-drawn, or the
    AR baseline's new position). The rest is filled by the samplers it concerns and None elsewhere.
    """

    x: torch.Tensor  # (B, L) tokens after the step ((B, a, b) on a canvas, (B, i+1) for the AR baseline)
    unmasked: torch.Tensor  # bool, shaped as x: the positions this step wrote
    ran_network: bool = True  # False when the step had nothing to do, so the forward pass was skipped
    t: int | None = None  # time before the step (random order, canvas; remask: the time of q(x_t | x0))
    s: int | None = None  # time after the step
    step: torch.Tensor | None = None  # (B,) long, random order by passes: each image's schedule step, -1 done
    candidates: torch.Tensor | None = None  # confidence: (B, L) candidate at each scored position, else mask id
    confidence: torch.Tensor | None = None  # confidence: (B, L) log p(candidate) + Gumbel noise; -inf unscored
    x_t: torch.Tensor | None = None  # remask: (B, L) the re-masked grid the network saw
    windows: torch.Tensor | None = None  # canvas: (Nw, 2) offsets of the windows run at this step
    token: torch.Tensor | None = None  # AR: (B,) the token drawn at position i
    logits: torch.Tensor | None = None  # AR: (B, K) raw logits of p(x_i | x_<i), before temperature and top_k
    i: int | None = None  # AR: the position drawn


@dataclass
class UnmaskPlan:
    """The pre-drawn randomness of one reverse run of B images of L tokens over an S-step schedule."""

    step_of: torch.Tensor  # (B, L) long: schedule step k in 0..S-1 that reveals the position; -1 = given token
    noise: torch.Tensor  # (B, L) float64 (MPS: float32) in [0, 1): uniform picking the position's token (inverse CDF)
    start_time: torch.Tensor  # (B,) long: t_b, the time image b starts from (T when it is all masked)
    order: torch.Tensor  # (B, P) long: image b's non-empty steps, increasing, then -1; P = max_b n_b

    @property
    def num_passes(self) -> int:
        """P: forward passes `sample_passes` makes (the most non-empty steps of any image)."""
        return self.order.shape[1]

    @property
    def nonempty_steps(self) -> torch.Tensor:
        """(B,) long: n_b, the steps that reveal at least one of image b's positions."""
        return (self.order >= 0).sum(1)


class AbsorbingSampler:
    """Reverse process of the absorbing diffusion with step skipping and temperature.

    model: any callable tokens (B, L) -> logits (B, L, K) (`ulib.sample.network`); when it has `features`
    and `head` (as `ulib.prior.transformer.Transformer` does) the head runs only at the positions being unmasked.
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
        """Logits (N, K) at the N positions where `where` (B, L) is True; counts one forward pass."""
        self.forward_passes += 1
        return logits_at(self.model, x, where)

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
        dtype = _exact_float(x.device)
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
    def step(self, x: torch.Tensor, k: int, plan: UnmaskPlan | None = None) -> SampleStep:
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
            return SampleStep(x, unmask, ran_network=False, t=t, s=s)
        logits = self._logits_at(x, unmask).float() / self.temperature  # (N, K)
        probs = torch.softmax(logits, dim=-1)
        if plan is None:
            draws = torch.multinomial(probs, 1, generator=self.generator).squeeze(1)  # (N,)
        else:
            draws = categorical(probs, plan.noise[unmask])
        x = x.clone()
        x[unmask] = draws
        return SampleStep(x, unmask, t=t, s=s)

    @torch.no_grad()
    def sample(self, x: torch.Tensor, callback=None, progress: bool = False) -> torch.Tensor:
        """Run every step from the start state x (B, L), whose mask tokens get filled (`initial_state` for
        x_T); returns (B, L) tokens. x is treated as x_T: its masks are revealed over the whole schedule.

        callback(k, SampleStep) is called after each step (for pictures of the process). One forward pass
        per step in which any image unmasks something; `sample_passes` needs fewer for the same law.
        """
        return run_steps(self.step, x, self.steps, callback, progress, "sampling")

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
            return SampleStep(x, unmask, ran_network=False, step=k)
        # rows of the inactive images hold no True, so row-major order over x[active] matches unmask's
        logits = self._logits_at(x[active], unmask[active]).float() / self.temperature  # (N, K)
        draws = categorical(torch.softmax(logits, dim=-1), plan.noise[unmask])  # (N,)
        x = x.clone()
        x[unmask] = draws
        return SampleStep(x, unmask, step=k)

    @torch.no_grad()
    def sample_passes(self, x: torch.Tensor, callback=None, progress: bool = False) -> torch.Tensor:
        """Same law as `sample`, in `plan(x).num_passes` forward passes; returns (B, L) tokens.

        x: the start state (B, L), its mask tokens filled from the start time `start_time(x)` (all masked:
        T). callback(p, SampleStep) is called after each pass.
        """
        plan = self.plan(x)
        passes = range(plan.num_passes)
        if progress:

            passes = tqdm(passes, desc="sampling", leave=False)
        for p in passes:
            res = self.step_pass(x, plan, p)
            x = res.x
            if callback is not None:
                callback(p, res)
        return x
