"""The sampling methods, by name: one table that `sample_tokens`, the CLI, the widgets, bench and gpu-check read.

A method is a `Sampler` subclass (`ulib.sample.base`) with a name and what it declares about itself: the prior it
samples, which inputs it takes beyond a count of images ('x_start': a start state with given tokens, i.e.
inpainting; 'canvas': a grid larger than the window; 'top_k'), and whether it is a `--method` choice (a canvas
and the AR baseline are reached through their inputs: `canvas=` and an autoregressive prior).

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
from ulib.sample.maskgit import ConfidenceSampler
from ulib.sample.remask import RemaskSampler


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

    @property
    def options(self) -> dict[str, object]:
        """The method's settings with their defaults ({} for none); required ones map to MISSING."""
        return {f.name: f.default for f in dataclasses.fields(self.sampler.Options)}


BUILT_IN = (
    Method("random", AbsorbingSampler, "the paper's random-order reverse process", supports=frozenset({"x_start"}),
           on_canvas="canvas"),
    Method("confidence", ConfidenceSampler, "MaskGIT-style confidence", supports=frozenset({"x_start"})),
    Method("remask", RemaskSampler, "the official code's re-masking ('mlm') sampler", supports=frozenset({"x_start"})),
    Method("canvas", CanvasSampler, "the random-order process on a canvas larger than the training window (Eq. 8)",
           supports=frozenset({"x_start", "canvas"}), selectable=False),
    Method("autoregressive", ARSampler, "the AR baseline, token by token in raster order", prior="autoregressive",
           supports=frozenset({"top_k"}), selectable=False),
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
    """The --method help: every choice's summary, the default marked."""
    said = [METHODS[n].summary + (" (default)" if n == default else "") for n in choices()]
    listed = said[0] if len(said) == 1 else ", ".join(said[:-1]) + ", or " + said[-1]
    return f"decoding method: {listed}"


def build(name: str, ctx: SamplingContext, steps: int | None = None, **options) -> Sampler:
    """The method's sampler over `ctx`, with its options given by name (an unknown one is a ValueError
    listing those it has)."""
    method = get(name)
    allowed = tuple(method.options)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"option(s) {unknown} not known to method={name!r}; allowed: {allowed or 'none'}")
    return method.sampler(ctx, steps, method.sampler.Options(**options))
