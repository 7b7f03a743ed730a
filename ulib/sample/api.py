"""Three ways to decode a token grid with the absorbing prior, behind one function: `decode_tokens`.

All three start from a grid holding the mask id where tokens are to be generated (all of it by default;
inpainting keeps the other tokens, which never change) and end with no mask token left.

- 'random' (the paper's reverse process, section 3.2, with evenly spaced step skipping): each masked position
  is revealed at a random step of the time schedule and drawn from softmax(logits / temperature). Runs as
  `AbsorbingSampler.sample_passes`: the whole per-image schedule is drawn first and each image's empty
  steps are dropped, so a batch costs max over images of their non-empty steps in forward passes (see
  `ulib.sample.absorbing`). With `x_start` it starts at t = round(T * m / L) for m masked positions, the time whose
  expected mask fraction t/T matches.
- 'confidence' (MaskGIT, Chang et al. 2022): at step j = 0..S-1 every masked position gets a candidate
  c_i ~ p_i = softmax(logits_i / temperature) and a confidence log p_i(c_i) + tau_j * g_i, g_i ~ Gumbel(0, 1),
  tau_j = choice_temperature * (1 - (j + 1) / S) (annealed linearly to 0). The most confident candidates
  are kept so that r_{j+1} = floor(m * gamma((j + 1) / S)) positions stay masked, gamma(r) = cos(pi r / 2)
  ('cosine', MaskGIT's default) or 1 - r ('linear'); at least one is revealed per step while any remain
  (MaskGIT's clamp) and the last step reveals the rest; m is each image's masked count at the start. The
  rest are masked again (their candidates dropped); revealed tokens never change. MaskGIT samples at
  temperature 1; here `temperature` tempers both the candidates and their confidences (1.0 = MaskGIT).
- 'remask' (the official code's `sample_mlm`): keep a full estimate x0 of the grid (mask id where nothing
  was predicted yet). At each time t of a descending grid, draw x_t ~ q(x_t | x0) by re-masking each
  generated position of x0 independently with probability t / T (given tokens are never re-masked), run the
  network on x_t and replace x0 at every masked position of x_t with a draw from softmax(logits / temperature).
  The official grid is floor(linspace(1, T, S)), descending from T to 1; every generated position still
  holds the mask id at the first step, so the first step predicts all of them. Unlike 'random', a token
  once predicted can be predicted again later; the output is the last x0. Costs S forward passes.

Every step is a separate call, like diffusers' `scheduler.step`, for notebooks and widgets:
`AbsorbingSampler.plan` / `step_pass`, `ConfidenceSampler.step`, `RemaskSampler.step`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ulib.device import exact_float
from ulib.sample.absorbing import AbsorbingSampler, logits_at, run_steps

DECODING_METHODS = ("random", "confidence", "remask")
MASK_SCHEDULES = ("cosine", "linear")
METHOD_OPTIONS = {"random": (), "confidence": ("schedule", "choice_temperature"), "remask": ()}


# ---- 'confidence' (MaskGIT) ------------------------------------------------------------------------
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


@dataclass
class ConfidenceStep:
    x: torch.Tensor  # (B, L) tokens after the step
    unmasked: torch.Tensor  # (B, L) bool, positions revealed by this step
    candidates: torch.Tensor  # (B, L) long: the candidate at each scored position, mask id elsewhere
    confidence: torch.Tensor  # (B, L) float: log p(candidate) + Gumbel noise; -inf where not scored
    ran_network: bool  # False when the step had nothing to reveal


class ConfidenceSampler:
    """MaskGIT's decoding: reveal the most confident candidates, as many as the mask schedule says."""

    def __init__(self, model, mask_id: int, steps: int, temperature: float = 1.0, schedule: str = "cosine",
                 choice_temperature: float = 4.5, generator: torch.Generator | None = None):
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps={steps!r}; must be an integer >= 1")
        if not temperature > 0:
            raise ValueError(f"temperature={temperature}; must be > 0")
        if schedule not in MASK_SCHEDULES:
            raise ValueError(f"schedule={schedule!r}; allowed: {MASK_SCHEDULES}")
        if not choice_temperature >= 0:
            raise ValueError(f"choice_temperature={choice_temperature}; must be >= 0")
        self.model, self.mask_id, self.steps = model, mask_id, steps
        self.temperature, self.schedule = temperature, schedule
        self.choice_temperature, self.generator = choice_temperature, generator
        self.forward_passes = 0

    def remaining(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S+1) positions left masked after each step, for the start state x (B, L)."""
        return confidence_schedule((x == self.mask_id).sum(1), self.steps, self.schedule)

    @torch.no_grad()
    def step(self, x: torch.Tensor, j: int, remaining: torch.Tensor) -> ConfidenceStep:
        """Step j (0-based): reveal (masked now - remaining[:, j+1]) positions of each image."""
        B, L = x.shape
        masked = x == self.mask_id
        n_reveal = (masked.sum(1) - remaining[:, j + 1]).clamp(min=0)  # (B,)
        scored = masked & (n_reveal > 0)[:, None]  # only images with something to reveal run
        cand = torch.full_like(x, self.mask_id)
        conf = torch.full((B, L), -math.inf, device=x.device)
        if not scored.any():
            return ConfidenceStep(x, torch.zeros_like(masked), cand, conf, ran_network=False)
        self.forward_passes += 1
        logits = logits_at(self.model, x, scored).float() / self.temperature  # (N, K)
        probs = torch.softmax(logits, dim=-1)
        c = torch.multinomial(probs, 1, generator=self.generator)  # (N, 1)
        tau = self.choice_temperature * (1 - (j + 1) / self.steps)  # annealed linearly to 0
        u = torch.rand(c.shape[0], device=x.device, generator=self.generator).clamp_(min=1e-20)
        gumbel = -torch.log(-torch.log(u))  # (N,)
        cand[scored] = c.squeeze(1)
        conf[scored] = torch.log(probs.gather(1, c).squeeze(1)) + tau * gumbel
        # rank of each position by confidence within its image; keep the n_reveal best
        order = conf.argsort(1, descending=True)
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(L, device=x.device).expand(B, L))
        reveal = scored & (rank < n_reveal[:, None])
        return ConfidenceStep(torch.where(reveal, cand, x), reveal, cand, conf, ran_network=True)

    @torch.no_grad()
    def sample(self, x: torch.Tensor, callback=None) -> torch.Tensor:
        """All S steps from the start state x (B, L); callback(j, ConfidenceStep) after each."""
        remaining = self.remaining(x)
        return run_steps(lambda x, j: self.step(x, j, remaining), x, self.steps, callback)


# ---- 'remask' (the official sample_mlm) ----------------------------------------------------------
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


@dataclass
class RemaskStep:
    x: torch.Tensor  # (B, L) the estimate x0 after the step
    x_t: torch.Tensor  # (B, L) the re-masked grid the network saw
    remasked: torch.Tensor  # (B, L) bool: positions masked in x_t, all of them re-drawn
    t: int  # the time of q(x_t | x0)
    ran_network: bool  # False when nothing was masked (never at the first step)


class RemaskSampler:
    """The official `sample_mlm`: re-mask the running estimate x0 with q(x_t | x0), then re-predict it."""

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
    def step(self, x0: torch.Tensor, j: int, free: torch.Tensor) -> RemaskStep:
        """Step j: x_t ~ q(x_t | x0) over the `free` (B, L) positions (those being generated), then re-draw
        every masked position of x_t; positions of x0 still holding the mask id count as masked."""
        t = self.times[j]
        u = torch.rand(x0.shape, device=x0.device, generator=self.generator)
        remask = (x0 == self.mask_id) | (free & (u < t / self.T))  # (B, L); t = T masks every free one
        x_t = torch.where(remask, torch.full_like(x0, self.mask_id), x0)
        if not remask.any():
            return RemaskStep(x0, x_t, remask, t, ran_network=False)
        self.forward_passes += 1
        logits = logits_at(self.model, x_t, remask).float() / self.temperature  # (N, K)
        draws = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=self.generator).squeeze(1)
        x0 = x0.clone()
        x0[remask] = draws
        return RemaskStep(x0, x_t, remask, t, ran_network=True)

    @torch.no_grad()
    def sample(self, x: torch.Tensor, callback=None) -> torch.Tensor:
        """All S steps from the start state x (B, L); callback(j, RemaskStep) after each."""
        free = x == self.mask_id
        return run_steps(lambda x, j: self.step(x, j, free), x, self.steps, callback)


# ---- the entry point -------------------------------------------------------------------------------
def decode_tokens(model, *, method: str = "random", batch: int | None = None, length: int | None = None,
                  num_timesteps: int, mask_id: int, steps: int | None = None, temperature: float = 1.0,
                  generator: torch.Generator | None = None, x_start: torch.Tensor | None = None,
                  device=None, callback=None, **method_options) -> torch.Tensor:
    """Decode B grids of L tokens with the prior `model` (tokens (B, L) -> logits (B, L, K)): LongTensor (B, L).

    method: 'random' (default), 'confidence' or 'remask' (module docstring).
    steps: 1..T (default T = num_timesteps). temperature > 0 divides the logits.
    x_start (B, L): tokens to keep, mask_id where to generate; batch and length may then be left out.
    device: defaults to x_start's, else to the model's parameters'.
    callback(k, result) after each step (pass, for 'random'): PassResult, ConfidenceStep or RemaskStep.
    method_options: 'confidence' takes schedule='cosine'|'linear' and choice_temperature=4.5 (>= 0).
    """
    if method not in DECODING_METHODS:
        raise ValueError(f"method={method!r}; allowed: {DECODING_METHODS}")
    allowed = METHOD_OPTIONS[method]
    unknown = sorted(set(method_options) - set(allowed))
    if unknown:
        raise ValueError(f"option(s) {unknown} not known to method={method!r}; allowed: {allowed or 'none'}")
    if not isinstance(num_timesteps, int) or num_timesteps < 1:
        raise ValueError(f"num_timesteps={num_timesteps!r}; must be an integer >= 1")
    T = num_timesteps
    steps = T if steps is None else steps
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps={steps!r}; allowed: 1..num_timesteps={T}")
    if not temperature > 0:
        raise ValueError(f"temperature={temperature}; must be > 0")
    x = _start_state(model, batch, length, mask_id, x_start, device)

    if method == "random":
        sampler = AbsorbingSampler(model, T, mask_id, steps=steps, temperature=temperature, generator=generator)
        return sampler.sample_passes(*x.shape, x.device, x=x, callback=callback)
    if method == "confidence":
        sampler = ConfidenceSampler(model, mask_id, steps, temperature, generator=generator, **method_options)
        return sampler.sample(x, callback)
    return RemaskSampler(model, T, mask_id, steps, temperature, generator).sample(x, callback)


def _start_state(model, batch, length, mask_id, x_start, device) -> torch.Tensor:
    """The (B, L) long start grid: x_start checked against batch/length, or all masked."""
    if x_start is None:
        for name, v in (("batch", batch), ("length", length)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r}; must be an integer >= 1 (or give x_start)")
        if device is None:
            device = next(iter(model.parameters()), torch.empty(0)).device if hasattr(model, "parameters") \
                else "cpu"
        return torch.full((batch, length), mask_id, dtype=torch.long, device=device)
    if not isinstance(x_start, torch.Tensor) or x_start.dim() != 2:
        raise ValueError(f"x_start must be a (B, L) tensor; got {getattr(x_start, 'shape', type(x_start))}")
    want = (batch if batch is not None else x_start.shape[0], length if length is not None else x_start.shape[1])
    if tuple(x_start.shape) != want:
        raise ValueError(f"x_start of shape {tuple(x_start.shape)}; expected (batch, length) = {want}")
    if x_start.dtype.is_floating_point or x_start.dtype == torch.bool or x_start.dtype.is_complex:
        raise ValueError(f"x_start of dtype {x_start.dtype}; expected integer token ids")
    if x_start.numel() and int(x_start.min()) < 0:
        raise ValueError(f"x_start holds negative token id {int(x_start.min())}")
    if device is not None and torch.device(device).type != x_start.device.type:
        raise ValueError(f"x_start is on {x_start.device} but device={device}")
    return x_start.long()
