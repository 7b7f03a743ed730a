"""ReMDM: reverse steps that may mask a revealed token again (`sample_tokens(..., method='remdm')`).

Wang, Schiff, Sahoo & Kuleshov, "Remasking Discrete Diffusion Models with Inference-Time Scaling" (NeurIPS 2025,
arXiv 2503.00307); equation numbers are the paper's. The absorbing process keeps a token unmasked at time t with
probability alpha_t = 1 - t/T (Eq. 1 with the kit's schedule, `ulib.prior.absorbing`). One reverse step from t to
s < t follows the posterior of Eq. 6 with the network's prediction x_theta(z_t) = softmax(logits / temperature)
in place of x (Algorithm 1), independently at every generated position:
- a revealed token (z_t != m) is masked again with probability sigma_t and kept otherwise (Eq. 4);
- a masked position is revealed with probability (alpha_s - (1 - sigma_t) alpha_t) / (1 - alpha_t)
  = (T - s - (1 - sigma_t)(T - t)) / t, its token drawn from x_theta, and stays masked otherwise.
sigma_t = 0 is MDLM's posterior (Eq. 2): reveal with probability (t - s)/t, the kit's random-order process
('random', `ulib.sample.absorbing`). Eq. 6 is a distribution only for 0 <= sigma_t <= sigma_t^max =
min(1, (1 - alpha_s)/alpha_t) (Eq. 7); for every such sigma_t the marginals q(z_t | x) stay those of Eq. 1
(Theorem 3.1), so the trained network serves unchanged. The schedules of sigma_t (section 4.1):
- 'cap' (ReMDM-cap): sigma_t = min(eta, (1 - alpha_s)/alpha_t), here min(eta, s / (T - t));
- 'rescale' (ReMDM-rescale): sigma_t = eta * sigma_t^max.

The loop (ReMDM-loop, section 4.2, Eq. 10 and Algorithm 3), with `loop_steps` > 0: remasking is off (sigma = 0)
except in a window where alpha is held at alpha(t_on). Here the S steps of the kit's evenly spaced schedule
(`time_schedule`, as 'random' spaces its steps) run as MDLM; after the step that reaches t_on (the schedule time
nearest to loop_time * T, strictly between T and 0) come `loop_steps` steps with alpha_s = alpha_t = alpha(t_on):
Eq. 6 then re-masks a revealed token with probability sigma and reveals a masked one with probability
sigma alpha / (1 - alpha) (Eq. 54, appendix A.8: a masked fraction 1 - alpha stays so on average), sigma from
the schedule with alpha_s = alpha_t; then the schedule goes on to 0. Algorithm 3 gives phases 1 and 3 their own
step counts, each evenly spaced; here both lie on one schedule, so phase 1 (T down to t_on) takes about
(1 - loop_time) of the S steps. The paper's text setting is alpha(t_on) = 0.9, i.e. loop_time = 0.1.

At the last step s = 0, alpha_s = 1: sigma_t = 0 and every masked position is revealed, so no mask is left.
Given tokens (x_start: the positions not holding the mask id at the start) are never re-masked; the generated
positions run the process from t = T (all masked) to 0. A step calls the network only when it reveals something
(the logits depend on z_t only, and re-masking needs none), so a run makes at most S + loop_steps calls
(`forward_passes`); `steps` = S stays in 1..T and the loop's calls come on top of it.

Every step is a separate call (`ReMDMSampler.step`, the protocol of `ulib.sample.base`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ulib.sample.absorbing import time_schedule
from ulib.sample.base import Sampler, SampleStep, SamplingContext, draw, uniforms

SIGMA_SCHEDULES = ("cap", "rescale")


@dataclass(frozen=True)
class ReMDMOptions:
    """ReMDM's settings (section 4)."""

    schedule: str = "cap"  # sigma_t: 'cap' = min(eta, (1 - alpha_s)/alpha_t), 'rescale' = eta * sigma_t^max (Eq. 7)
    eta: float = 0.05  # in [0, 1]: eta_cap or eta_rescale; 0 = the random-order process (MDLM)
    loop_steps: int = 0  # >= 0; > 0: the loop strategy, this many extra steps at alpha(t_on), remasking only there
    loop_time: float = 0.1  # in (0, 1): t_on / T, where the loop holds the noise (the paper's alpha(t_on) = 0.9)

    def __post_init__(self):
        if self.schedule not in SIGMA_SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r}; allowed: {SIGMA_SCHEDULES}")
        if not 0 <= self.eta <= 1:
            raise ValueError(f"eta={self.eta!r}; must be in [0, 1]")
        if not isinstance(self.loop_steps, int) or isinstance(self.loop_steps, bool) or self.loop_steps < 0:
            raise ValueError(f"loop_steps={self.loop_steps!r}; must be an integer >= 0")
        if not 0 < self.loop_time < 1:
            raise ValueError(f"loop_time={self.loop_time!r}; must be in (0, 1) (a mask fraction t/T)")


def sigma(schedule: str, eta: float, alpha_t: float, alpha_s: float) -> float:
    """sigma_t of the schedule for a step from alpha_t to alpha_s >= alpha_t (section 4.1, bounded by Eq. 7).

    >>> sigma("cap", 0.05, 0.4, 0.6), sigma("rescale", 0.5, 0.5, 0.6)
    (0.05, 0.4)
    """
    ratio = (1 - alpha_s) / alpha_t if alpha_t > 0 else float("inf")  # nothing is revealed at alpha_t = 0
    return min(eta, ratio) if schedule == "cap" else eta * min(1.0, ratio)


@dataclass(frozen=True)
class PlannedStep:
    """One step of a run: from time t to s (t = s inside the loop), with its remasking probability."""

    t: float
    s: float
    sigma: float
    loop: bool  # a step of the loop, at a fixed noise level


class ReMDMSampler(Sampler):
    """ReMDM (method 'remdm', module docstring). steps: S, 1..T schedule steps (default T); `loop_steps` more in
    the loop. extras of each `SampleStep`: 't' and 's' (the step's times; equal in the loop), 'sigma' (the
    remasking probability), 'loop' (a loop step) and 'remasked' ((B, L) bool: the revealed tokens this step
    masked again); `unmasked` holds the positions it revealed."""

    Options = ReMDMOptions

    def __init__(self, ctx: SamplingContext, steps: int | None = None, options: ReMDMOptions | None = None):
        super().__init__(ctx, steps, options)
        self.times = time_schedule(self.T, self.T if steps in (None, 0) else steps)
        self.plan = self.step_plan()
        self._free = None

    def step_plan(self) -> list[PlannedStep]:
        """The run's steps: the schedule with sigma_t, or with the loop inserted at t_on (module docstring)."""
        o, T = self.options, self.T
        pairs = list(zip(self.times, self.times[1:]))
        if o.loop_steps == 0:
            return [PlannedStep(t, s, sigma(o.schedule, o.eta, 1 - t / T, 1 - s / T), False) for t, s in pairs]
        inner = self.times[1:-1]  # t_on must lie strictly between T and 0
        if not inner:
            raise ValueError(f"loop_steps={o.loop_steps} needs a schedule time strictly between T and 0: "
                             f"steps >= 2 (got steps={len(self.times) - 1})")
        t_on = min(inner, key=lambda t: abs(t - o.loop_time * T))
        a = 1 - t_on / T
        loop = [PlannedStep(t_on, t_on, sigma(o.schedule, o.eta, a, a), True)] * o.loop_steps
        k = self.times.index(t_on)  # the loop follows the k-th step, which ends at t_on
        plain = [PlannedStep(t, s, 0.0, False) for t, s in pairs]
        return plain[:k] + loop + plain[k:]

    def start(self, x: torch.Tensor) -> int:
        if x.dim() != 2:
            raise ValueError(f"x of shape {tuple(x.shape)}; expected (B, L)")
        self._free = x == self.mask_id  # the generated positions; given tokens are never re-masked
        return len(self.plan)

    @torch.no_grad()
    def step(self, x: torch.Tensor, k: int) -> SampleStep:
        """Step k of the plan: Eq. 6 at every generated position, drawn from x_theta(z_t) with z_t = x."""
        st, T = self.plan[k], self.T
        masked = x == self.mask_id
        revealed = self._free & ~masked
        # P(reveal | masked) = (alpha_s - (1 - sigma) alpha_t) / (1 - alpha_t), in times (= (t - s)/t at sigma 0)
        p_reveal = 1.0 if st.s == 0 else (T - st.s - (1 - st.sigma) * (T - st.t)) / st.t
        u = uniforms(x.shape, self.generator, x.device)  # (B, L): one uniform decides either event
        reveal = masked & (u < p_reveal)
        remask = revealed & (u < st.sigma)
        extras = {"t": st.t, "s": st.s, "sigma": st.sigma, "loop": st.loop, "remasked": remask}
        ran = bool(reveal.any())
        out = x.clone()
        if ran:  # x_theta(z_t): the logits of the state before this step
            logits = self.logits_at(x, reveal).float() / self.temperature  # (N, K)
            out[reveal] = draw(torch.softmax(logits, dim=-1), self.generator)
        out[remask] = self.mask_id
        return SampleStep(out, reveal, ran_network=ran, extras=extras)
