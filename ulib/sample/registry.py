"""The sampling methods, by name: one table that `sample_tokens`, the CLI, the widgets, bench and gpu-check read.

A method is a `Sampler` subclass (`ulib.sample.base`) with a name and what it declares about itself: the prior it
samples, which inputs it takes beyond a count of images ('x_start': a start state with given tokens, i.e.
inpainting; 'canvas': a grid larger than the window; 'top_k'), what the number `steps` means to it (below), and
whether it is a `--method` choice (a canvas and the AR baseline are reached through their inputs: `canvas=` and an
autoregressive prior). Its settings are its sampler's `Options` dataclass (`Method.options`: names and defaults),
given by name to `sample_tokens` / `sample_images` and as `--option KEY=VALUE` on the command line.

What `steps` means to a method (`Method.steps`; `resolve_steps` applies it for `sample_tokens`, `sample_images`
and the CLI's --steps):
- 'schedule' (the default): S reverse steps in 1..T, T the absorbing process's steps; default T (the CLI and
  `sample_images`: the run's sample.steps). The sampler gets S.
- 'total': S network calls (steps of the method's loop), any integer >= 1, so it may exceed T (a method that
  spends extra steps, e.g. at a fixed noise level); defaults as 'schedule'.
- 'cap': the method decides how many calls it needs (their number is a result, not a setting); a given S >= 1
  caps them at S per image, None (the default, also for the CLI: a run's sample.steps is a schedule length, not
  a cap) leaves them uncapped. The sampler gets S or None.
- 'unused': the method sets its own number of calls and never reads steps. A given steps is ignored, not
  rejected (callers that loop over the methods pass one steps to all: the playground, bench, gpu-check); the
  sampler gets None, and the CLI prints that --steps was not used.

A new method is one file (its `Sampler` and `Options`) plus one line in `BUILT_IN`, plus its test; code that is
not the kit's (a notebook, a plug-in, a test) adds one at run time with `register(Method(...))`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ulib.sample.absorbing import AbsorbingSampler
from ulib.sample.autoregressive import ARSampler
from ulib.sample.base import Sampler, SamplingContext
from ulib.sample.canvas import CanvasSampler
from ulib.sample.entropy_bounded import EntropyBoundedSampler
from ulib.sample.first_hitting import FirstHittingSampler
from ulib.sample.halton import HaltonSampler
from ulib.sample.maskgit import ConfidenceSampler
from ulib.sample.remask import RemaskSampler
from ulib.sample.remdm import ReMDMSampler
from ulib.sample.speculative import SpeculativeSampler

STEPS = ("schedule", "total", "cap", "unused")  # what `steps` may mean to a method (module docstring)
STEPS_HELP = {"total": "--steps may exceed T", "cap": "--steps caps its calls",  # --help's word on each but
              "unused": "sets its own calls, --steps unused"}  # 'schedule'


@dataclass(frozen=True)
class Method:
    """A sampling method as the registry knows it."""

    name: str  # what --method, sample_tokens(method=...) and the widgets call it
    sampler: type[Sampler]  # built as sampler(ctx, steps, sampler.Options(**options))
    summary: str  # a phrase for --help and the widgets: what it is
    prior: str = "absorbing"  # the kind of prior it samples: 'absorbing' or 'autoregressive'
    supports: frozenset[str] = frozenset()  # inputs it takes: 'x_start', 'canvas', 'top_k'
    selectable: bool = True  # a --method choice; False: reached through its inputs (a canvas, an AR prior)
    on_canvas: str | None = None  # the method that runs this one on a canvas larger than the window
    steps: str = "schedule"  # what `steps` means to it: one of STEPS (module docstring)
    from_caller: tuple[str, ...] = ()  # options its caller fills from its inputs, never set by --option

    def __post_init__(self):
        if self.steps not in STEPS:
            raise ValueError(f"method {self.name!r}: steps={self.steps!r}; allowed: {STEPS}")

    @property
    def options(self) -> dict[str, object]:
        """The method's settings with their defaults ({} for none); required ones map to MISSING."""
        return {f.name: f.default for f in dataclasses.fields(self.sampler.Options)}


BUILT_IN = (
    Method("random", AbsorbingSampler, "the paper's random-order reverse process", supports=frozenset({"x_start"}),
           on_canvas="canvas"),
    Method("confidence", ConfidenceSampler, "MaskGIT-style confidence", supports=frozenset({"x_start"})),
    Method("remask", RemaskSampler, "the official code's re-masking ('mlm') sampler", supports=frozenset({"x_start"})),
    Method("halton", HaltonSampler, "positions revealed in a 2-D Halton order (Besnier et al.)",
           supports=frozenset({"x_start"})),
    Method("eb", EntropyBoundedSampler, "entropy-bounded adaptive steps (EB-sampler, Ben-Hamu et al.)",
           supports=frozenset({"x_start"}), steps="cap"),
    Method("remdm", ReMDMSampler, "ReMDM (revealed tokens masked again with probability sigma_t, optionally in a "
           "loop at a fixed noise level)", supports=frozenset({"x_start"})),
    Method("first_hitting", FirstHittingSampler, "first-hitting sampling (one uniformly chosen position per "
           "network call)", supports=frozenset({"x_start"}), steps="unused"),
    Method("canvas", CanvasSampler, "the random-order process on a canvas larger than the training window (Eq. 8)",
           supports=frozenset({"x_start", "canvas"}), selectable=False),
    Method("autoregressive", ARSampler, "the AR baseline, token by token in raster order", prior="autoregressive",
           supports=frozenset({"top_k"}), selectable=False),
    Method("speculative", SpeculativeSampler, "exact speculative sampling of the AR model, an absorbing prior drafting",
           prior="autoregressive", supports=frozenset({"top_k"}), steps="unused", from_caller=("draft", "top_k")),
)
METHODS: dict[str, Method] = {m.name: m for m in BUILT_IN}


def register(method: Method) -> Method:
    """Add a method (a plug-in's, a test's); a name already taken by another method is a ValueError."""
    if not (isinstance(method.sampler, type) and issubclass(method.sampler, Sampler)):
        raise TypeError(f"method {method.name!r}: its sampler must be a ulib.sample.base.Sampler subclass")
    if method.name in METHODS and METHODS[method.name] != method:
        raise ValueError(f"a sampling method named {method.name!r} exists already ({METHODS[method.name].sampler})")
    METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method added by `register` (the built-in ones stay)."""
    if any(m.name == name for m in BUILT_IN):
        raise ValueError(f"{name!r} is a built-in sampling method; it cannot be removed")
    METHODS.pop(name, None)


def get(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"method={name!r}; allowed: {choices()}")
    return METHODS[name]


def choices(prior: str = "absorbing") -> tuple[str, ...]:
    """The names a user picks from (--method, the widgets), for a prior of this kind, in registration order."""
    return tuple(m.name for m in METHODS.values() if m.selectable and m.prior == prior)


def method_help(default: str = "random") -> str:
    """The --method help: every choice by name with its summary, its options (--option KEY=VALUE) and their
    defaults, and what --steps means to it where that is not the schedule's 1..T; the default marked. The
    absorbing prior's methods first, then the AR prior's (its default, 'random', is raster order)."""
    def said(names):
        out = []
        for name in names:
            m = METHODS[name]
            notes = [", ".join(f"{k} (required)" if v is dataclasses.MISSING else f"{k}={v!r}"
                               for k, v in m.options.items() if k not in m.from_caller) or "no options"]
            notes += [STEPS_HELP[m.steps]] if m.steps in STEPS_HELP else []
            out.append(f"{name}: {m.summary}{' (default)' if name == default else ''} [{'; '.join(notes)}]")
        return "; ".join(out)

    text = "decoding method, each with its --option settings and their defaults: " + said(choices())
    ar = choices("autoregressive")
    if ar:
        text += (". For an autoregressive prior: random (raster order, the default) or " + said(ar)
                 + "; --method speculative samples the AR prior of --run (prior_ar.pt), its prior.pt drafting")
    return text


def resolve_steps(method: str, steps, num_timesteps: int, default=None, name: str = "steps",
                  t_name: str = "num_timesteps"):
    """The steps the method's sampler gets from a caller's `steps` (None: not given), by what the method declares
    (`Method.steps`, module docstring); a bad value is a ValueError naming `name`, the value and what is allowed.
    default: what 'schedule' and 'total' take when steps is None (default: T)."""
    kind = get(method).steps
    if kind == "unused":
        return None
    if steps is None and kind in ("schedule", "total"):
        steps = num_timesteps if default is None else default
    if steps is None:  # 'cap', none given
        return None
    if kind == "schedule":
        if not isinstance(steps, int) or not 1 <= steps <= num_timesteps:
            raise ValueError(f"{name}={steps!r}; allowed: 1..{t_name}={num_timesteps}")
    elif not isinstance(steps, int) or steps < 1:
        what = "a cap on the network calls per image, or none" if kind == "cap" else "the method's network calls"
        raise ValueError(f"{name}={steps!r}; allowed for method={method!r}: an integer >= 1 ({what})")
    return steps


def build(name: str, ctx: SamplingContext, steps: int | None = None, **options) -> Sampler:
    """The method's sampler over `ctx`, with its options given by name (an unknown one is a ValueError
    listing those it has)."""
    method = get(name)
    allowed = tuple(method.options)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"option(s) {unknown} not known to method={name!r}; allowed: {allowed or 'none'}")
    return method.sampler(ctx, steps, method.sampler.Options(**options))
