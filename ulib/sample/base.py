"""The sampler protocol: what every sampling method of `ulib.sample` shares.

A sampler draws token grids from a prior one step at a time (like diffusers' `scheduler.step`), so that
notebooks and widgets can show every step:

    ctx = SamplingContext(net, num_timesteps=T, mask_id=K, length=L, temperature=0.8, generator=g)
    sampler = ConfidenceSampler(ctx, steps=16, options=ConfidenceSampler.Options(schedule="linear"))
    x = sampler.sample(sampler.initial_state(batch=4, device="cpu"), callback=show)

- `SamplingContext`: all a method sees of the prior: the network as a callable, tokens (B, L) -> logits
  (B, L, K) (`ulib.sample.network`), T, the mask id, the token count of one window (and its grid), the
  temperature that divides the logits and the generator every random draw comes from.
- `Options`: each method's own settings, a frozen dataclass checked when it is made (`Sampler.Options`).
- `start(x)`: what one run needs from its start state x (a pre-drawn plan, a schedule), computed once;
  returns the number of steps n. `step(x, k)` does step k < n and returns a `SampleStep`. `sample(x)` runs
  `start` and then every step (`run_steps`). The start state holds the mask id wherever tokens are to be
  generated (`initial_state`: all of them); every other token is kept.
- `SampleStep`: x after the step, the positions it wrote, whether the network ran, and `extras`: what the
  method can show of the step beyond that (each sampler's docstring names its keys).
- `draw(probs, generator)`: the one token draw, exact to float64 resolution (`categorical` with float64
  `uniforms` where a sampler needs a fixed function of its uniforms).

`ulib.sample.registry` lists the methods by name; `ulib.sample.api.sample_tokens` builds one and samples.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from ulib.device import exact_float
from ulib.sample.network import logits_at


@dataclass
class SampleStep:
    """What one step of any sampler did: the one type every `callback(k, step)` receives."""

    x: torch.Tensor  # tokens after the step: (B, L), (B, a, b) on a canvas, (B, i+1) for the AR baseline
    unmasked: torch.Tensor  # bool, shaped as x: the positions this step wrote (revealed, re-drawn, appended)
    ran_network: bool = True  # False when the step had nothing to do, so the forward pass was skipped
    extras: dict[str, Any] = field(default_factory=dict)  # per method, named in its sampler's docstring


@dataclass(frozen=True)
class SamplingContext:
    """The prior as every sampler sees it."""

    net: Callable[[torch.Tensor], torch.Tensor]  # tokens (B, L) -> logits (B, L, K)
    num_timesteps: int  # T of the absorbing process
    mask_id: int | None  # the absorbing state's id (= K); None for the AR baseline
    length: int  # L, tokens of one window of the network
    grid: tuple[int, int] | None = None  # (h, w) of that window, when it is a grid
    temperature: float = 1.0  # divides the logits
    generator: torch.Generator | None = None  # every random draw of the sampler

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"temperature={self.temperature}; must be > 0")


@dataclass(frozen=True)
class NoOptions:
    """A method without settings of its own."""


class Sampler:
    """The base of every method: the context, the forward-pass count, the loop. Subclasses define `start` and
    `step`, and `Options` where they take settings."""

    Options = NoOptions

    def __init__(self, ctx: SamplingContext, steps: int | None = None, options=None):
        options = self.Options() if options is None else options
        if not isinstance(options, self.Options):
            raise TypeError(f"{type(self).__name__} takes {self.Options.__name__}, not {type(options).__name__}")
        self.ctx, self.options = ctx, options
        self.model, self.T, self.mask_id = ctx.net, ctx.num_timesteps, ctx.mask_id
        self.temperature, self.generator = ctx.temperature, ctx.generator
        self.forward_passes = 0

    @classmethod
    def of(cls, net, *, num_timesteps: int = 0, mask_id: int | None = None, length: int | None = None,
           grid: tuple[int, int] | None = None, steps: int | None = None, temperature: float = 1.0,
           generator: torch.Generator | None = None, **options) -> "Sampler":
        """The sampler over a context made of these values (length defaults to the grid's), with its options by
        name: a shorthand for `cls(SamplingContext(...), steps, cls.Options(**options))`."""
        if length is None:
            if grid is None:
                raise ValueError("give length= (tokens of one window) or grid=(h, w)")
            length = grid[0] * grid[1]
        ctx = SamplingContext(net, num_timesteps, mask_id, length, grid, temperature, generator)
        return cls(ctx, steps, cls.Options(**options))

    def initial_state(self, batch: int, device) -> torch.Tensor:
        """The all-masked start, (B, L)."""
        return torch.full((batch, self.ctx.length), self.mask_id, dtype=torch.long, device=device)

    def logits_at(self, x: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) at the N positions where `where` (B, L) is True; counts one forward pass."""
        self.forward_passes += 1
        return logits_at(self.model, x, where)

    def start(self, x: torch.Tensor) -> int:
        raise NotImplementedError

    def step(self, x: torch.Tensor, k: int) -> SampleStep:
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, x: torch.Tensor, callback=None, progress: bool = False) -> torch.Tensor:
        """Every step from the start state x, whose mask tokens get filled; callback(k, SampleStep) after each."""
        return run_steps(self.step, x, self.start(x), callback, progress, type(self).__name__)


def step_count(steps, num_timesteps: int) -> int:
    """A sampler's S: `steps`, or T when it is None (or 0); an integer >= 1, else a ValueError naming steps."""
    steps = num_timesteps if steps in (None, 0) else steps
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}; must be an integer >= 1")
    return steps


def run_steps(step, x: torch.Tensor, n_steps: int, callback=None, progress: bool = False,
              desc: str = "sampling", until=None) -> torch.Tensor:
    """x <- step(x, k).x for k = 0..n_steps-1, calling callback(k, result) after each (every sampler's loop).
    until(x) -> bool, if given, ends the loop early once it holds (a method whose step count is a result returns
    a bound from `start` and stops when it is done)."""
    ks = tqdm(range(n_steps), desc=desc, leave=False) if progress else range(n_steps)
    for k in ks:
        if until is not None and until(x):
            break
        res = step(x, k)
        x = res.x
        if callback is not None:
            callback(k, res)
    return x


# ---- the token draw -------------------------------------------------------------------------------
# Zheng et al. (ICLR 2025, "Masked diffusion models are secretly time-agnostic masked models and exploit
# inaccurate categorical sampling", section 5) show that a categorical draw made with float32 noise is truncated:
# float32 uniforms lie on a grid of 2**-24, so a category whose share is below about 2**-24 of the largest one is
# never (or too rarely) drawn, which lowers the effective temperature. Every token draw of ulib.sample therefore
# goes through `draw` (or `categorical` with `uniforms`), exact to float64 resolution (MPS has no float64: float32
# there); tests/sample/test_base.py.


def uniforms(size, generator: torch.Generator | None, device) -> torch.Tensor:
    """Uniforms in [0, 1) of shape `size` (an int or a tuple) with 53 random bits (float64; float32 on MPS, which
    has no float64).

    torch.rand's float32 uniforms are multiples of 2**-24: an inverse-CDF draw with them never reaches a
    category whose interval falls between two of those values (a share below 2**-24)."""
    return torch.rand(size, dtype=exact_float(device), device=device, generator=generator)


def categorical(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Draw j from each row of probs (N, K) by inverse CDF with the uniforms u (N,) in [0, 1): (N,) long.

    j is the index with cdf_{j-1} <= u * cdf_K < cdf_j: the law of torch.multinomial(probs, 1), but a fixed
    function of u, so a position's token does not depend on which other positions are drawn with it. The CDF
    is summed in float64 (float32 on MPS), so no category loses mass to rounding; give u from `uniforms`
    (float64), not torch.rand's float32 grid.
    """
    dtype = exact_float(probs.device)
    cdf = probs.to(dtype).cumsum(-1)  # (N, K)
    v = (u.to(dtype) * cdf[:, -1]).unsqueeze(1)  # (N, 1)
    return torch.searchsorted(cdf, v, right=True).squeeze(1).clamp_(max=probs.shape[1] - 1)


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One token from each row of probs (N, K), exactly (to float64 resolution): (N,) long.

    On the CPU this is torch.multinomial(probs, 1): argmax_j probs_j / E_j with E_j ~ Exp(1), and the CPU draws
    E_j from a float64 uniform before rounding it to float32, so a tiny E_j (which is what picks a rare
    category) keeps its full relative precision. On CUDA, ATen draws E_j = -log(u) from a float32 uniform and
    clamps it at 2**-24 (ATen/core/TransformationHelper.h), so a category below about 2**-24 of the largest is
    cut off. There (and on any other device) the draw is `categorical` with float64 `uniforms` instead. Keeping
    torch.multinomial on the CPU keeps the tokens every seed gave before (tests/sample/test_sampled_tokens_fixed.py).
    """
    if probs.device.type == "cpu":
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return categorical(probs, uniforms(probs.shape[0], generator, probs.device))
