"""The scoring core: every figure a set of images gets against a reference, registered once in `FAMILIES`.

A `Family` is figures computed together (PRDC's four come from one neighbour search). Each family says how its
figures are computed and who reads them; every consumer iterates the registry and takes the families it can use:
- `value`: the figures of a set against a reference (`ulib.eval.compare`, `ulib.eval.quality.QualityMeter`);
- `drawn`: the same on one bootstrap resample, fast (QualityMeter; without it the draw recomputes `value`);
- `record`, `columns`, `summary`: the paper's recipe (`ulib.eval.evaluate`) and how a run's records show it
  (`ulib.eval.records`: evaluation.md's sample table, the one-line summary).
A family reads the pool features of both sets, or with `head` the set's class logits (a feature space's head:
OpenMoji's 11 CLDR categories, Inception's 1008 ImageNet classes) against the reference's class histogram.
`spaces` limits a family to the feature spaces it is meant for (`ulib.eval.extractors.SPACES`); None: every space.
`paper`: the paper's Tables 1-2 report it, so records show it first and the paper's own row fills it.

A new figure: one Family (with its test) and one line in FAMILIES; compare, QualityMeter, evaluate and the
records pick it up by reading the registry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ulib.eval import metrics as M
from ulib.eval.categories import histogram_entropy, histogram_kl
from ulib.eval.metrics import FeatureMoments
from ulib.eval.resampling import Neighbours, ResampledPRDC


@dataclass(frozen=True)
class Figure:
    """One figure: its key in compare's and QualityMeter's rows, its direction, its format in compare's report."""

    name: str
    lower_is_better: bool
    fmt: str = ".3f"


@dataclass(frozen=True)
class Pair:
    """A set against the reference, as a family's `value` reads them."""

    ref: torch.Tensor  # (M, D) reference pool features
    fake: torch.Tensor  # (N, D) the set's pool features
    logits: torch.Tensor | None = None  # (N, C) the set's class logits (head families)
    ref_hist: np.ndarray | None = None  # (C,) the reference's class histogram (head families)
    top: int = 0  # the whole reference's commonest class (kept fixed in bootstrap draws)
    k: int = 5  # PRDC's neighbourhood size
    kid_subsets: int = 20  # KID's random subsets


@dataclass(frozen=True)
class Draw:
    """One bootstrap resample: reference items `ri` and set items `fi` (drawn indices, with repeats) of the whole
    sets below, `cr`, `cf` how often each item was drawn, and what the family's `prepare` made once per set."""

    ri: torch.Tensor
    fi: torch.Tensor
    cr: np.ndarray
    cf: np.ndarray
    pair: Pair  # the whole sets (ref, fake, logits) and the settings
    ref_logits: torch.Tensor | None  # (M, C) the reference's class logits
    prepared: object = None


@dataclass(frozen=True)
class Recipe:
    """What `ulib.eval.evaluate` scores samples from (the paper's recipe)."""

    real: torch.Tensor  # (M, D) reference features (a fixed subset when the split was streamed)
    real_moments: FeatureMoments | None  # moments of the whole streamed split, else None
    real_prdc: torch.Tensor  # (N, D) the first N of a fixed shuffle of the reference: PRDC on equal-sized sets
    fake: torch.Tensor  # (N, D) the samples' pool features
    logits: torch.Tensor  # (N, C) the samples' class logits
    k: int  # PRDC's neighbourhood size


@dataclass(frozen=True)
class Column:
    """A column of evaluation.md's sample table: record[key] * scale in `fmt` (None: str(value))."""

    title: str
    key: str
    fmt: str | None = ".2f"
    scale: float = 1.0


@dataclass(frozen=True)
class Family:
    """Figures computed together (module docstring); every hook but `name` and `figures` is optional."""

    name: str
    figures: tuple[Figure, ...]
    value: Callable[[Pair], dict] | None = None  # the figures of a set against a reference
    head: bool = False  # reads class logits, not only pool features
    reference: Callable[[Pair], dict] | None = None  # QualityMeter's entries about the reference alone
    prepare: Callable[[dict, torch.Tensor, torch.Tensor, int], object] | None = None  # (cache, ref, fake, k)
    drawn: Callable[[Draw], dict] | None = None  # the figures of one resample
    record: Callable[[Recipe], dict] | None = None  # evaluate's record entries
    columns: tuple[Column, ...] = ()
    summary: Callable[[dict], str] | None = None  # records.summary's words, from a record
    spaces: tuple[str, ...] | None = None  # the feature spaces it belongs to; None: every space
    paper: bool = False  # reported by the paper's Tables 1-2

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.figures)


# ---- the built-in families ------------------------------------------------------------------------------
def class_histogram(logits: torch.Tensor) -> np.ndarray:
    """(C,) share of items per class, the argmax of (N, C) logits."""
    counts = torch.bincount(logits.argmax(1), minlength=logits.shape[1]).double()
    return (counts / counts.sum().clamp(min=1)).numpy()


def _categories(p: Pair) -> dict:
    """Fig. 6's bias: the set's class histogram against the reference's, KL(set || reference) and entropy in bits,
    and the set's share of the reference's commonest class."""
    hist = class_histogram(p.logits)
    return {"category_kl_bits": histogram_kl(hist, p.ref_hist), "category_entropy_bits": histogram_entropy(hist),
            "top_category_share": float(hist[p.top])}


def _categories_drawn(d: Draw) -> dict:
    p = d.pair
    return _categories(Pair(p.ref, p.fake, p.logits[d.fi], class_histogram(d.ref_logits[d.ri]), p.top))


def _prdc_prepare(cache: dict, ref: torch.Tensor, fake: torch.Tensor, k: int) -> ResampledPRDC:
    if "neighbours" not in cache:  # the reference's neighbours: once per reference, shared by every set
        cache["neighbours"] = Neighbours(ref)
    return ResampledPRDC(cache["neighbours"], fake, k)


def _prdc_record(r: Recipe) -> dict:
    return {**M.prdc(r.real_prdc, r.fake, k=r.k), "prdc_k": r.k, "prdc_n_real": len(r.real_prdc),
            "prdc_n_fake": len(r.fake)}


def _fid_record(r: Recipe) -> dict:
    method = "streamed moments" if r.real_moments else M.fid_method(len(r.real), len(r.fake), r.real.shape[1])
    return {"fid": M.fid_against(r.real, r.real_moments, r.fake), "fid_method": method}


FID = Family(
    "fid", (Figure("fid", True, ".4g"),), paper=True,
    value=lambda p: {"fid": M.fid(p.ref, p.fake)},
    drawn=lambda d: {"fid": M.fid_resampled(d.pair.ref, d.pair.fake, d.cr, d.cf)},  # ~10x faster than M.fid
    record=_fid_record, columns=(Column("FID", "fid"),), summary=lambda r: f"FID {r['fid']:.2f}")
KID = Family(
    "kid", (Figure("kid", True, ".5f"),),
    value=lambda p: {"kid": M.kid(p.ref, p.fake, subsets=p.kid_subsets)["kid_mean"]},
    drawn=lambda d: {"kid": M.kid(d.pair.ref[d.ri], d.pair.fake[d.fi], subsets=d.pair.kid_subsets)["kid_mean"]},
    record=lambda r: M.kid(r.real, r.fake), columns=(Column("KID ×10³", "kid_mean", scale=1e3),),
    summary=lambda r: f"KID {r['kid_mean']:.4f}")
PRDC = Family(
    "prdc", tuple(Figure(name, False) for name in ("precision", "recall", "density", "coverage")), paper=True,
    value=lambda p: M.prdc(p.ref, p.fake, k=p.k), prepare=_prdc_prepare,
    drawn=lambda d: d.prepared.figures(d.cr, d.cf), record=_prdc_record,
    columns=(*(Column(name.capitalize(), name) for name in ("precision", "recall", "density", "coverage")),
             Column("k", "prdc_k", fmt=None)),
    summary=lambda r: (f"precision {r['precision']:.3f}, recall {r['recall']:.3f}, density {r['density']:.3f}, "
                       f"coverage {r['coverage']:.3f} (k={r['prdc_k']})"))
# The categories are what OpenMoji's head was trained for (its CLDR groups, `ulib.eval.categories.CATEGORIES`); on
# Inception's head (1008 ImageNet classes) the same numbers are computed, less meaningfully for emoji.
CATEGORIES = Family(
    "categories", (Figure("category_kl_bits", True), Figure("category_entropy_bits", False),
                   Figure("top_category_share", True)), head=True, value=_categories, drawn=_categories_drawn,
    reference=lambda p: {"reference_entropy_bits": histogram_entropy(p.ref_hist),
                         "reference_top_category_share": float(p.ref_hist[p.top])})
INCEPTION_SCORE = Family(
    "is", (Figure("is", False),), head=True, record=lambda r: M.inception_score(r.logits),
    columns=(Column("IS", "is_mean"),), summary=lambda r: f"IS {r['is_mean']:.2f}")

FAMILIES: dict[str, Family] = {f.name: f for f in (FID, KID, PRDC, CATEGORIES, INCEPTION_SCORE)}


# ---- reading the registry -------------------------------------------------------------------------------
def families(space: str | None = None, *, head: bool = True, hook: str = "value") -> list[Family]:
    """The registered families that have `hook` ('value', 'record') and belong to `space` (None: only those
    of every space), in registry order; head=False leaves out those that read class logits."""
    return [f for f in FAMILIES.values() if getattr(f, hook) is not None and (head or not f.head)
            and (f.spaces is None or space in f.spaces)]


def names(fams: list[Family]) -> tuple[str, ...]:
    """The figure names of `fams`, in order."""
    return tuple(name for f in fams for name in f.names)


def figure(name: str) -> Figure:
    """The registered figure called `name`; KeyError naming the registered ones otherwise."""
    for f in FAMILIES.values():
        for fig in f.figures:
            if fig.name == name:
                return fig
    raise KeyError(f"figure {name!r}; registered: {', '.join(names(list(FAMILIES.values())))}")


def values(pair: Pair, fams: list[Family]) -> dict[str, float]:
    """Every figure of `fams` for one set against the reference."""
    out: dict[str, float] = {}
    for f in fams:
        out.update(f.value(pair))
    return out


def drawn(d: Draw, fam: Family) -> dict[str, float]:
    """`fam`'s figures on one resample: its fast path, else its value on the resampled sets."""
    if fam.drawn is not None:
        return fam.drawn(d)
    p = d.pair
    ref_hist = None if d.ref_logits is None else class_histogram(d.ref_logits[d.ri])
    logits = None if p.logits is None else p.logits[d.fi]
    return fam.value(Pair(p.ref[d.ri], p.fake[d.fi], logits, ref_hist, p.top, p.k, p.kid_subsets))


def recorded(space: str | None) -> list[Family]:
    """The families evaluate records in `space`: the paper's first (its tables' columns), then the others, each
    in registry order."""
    return sorted(families(space, hook="record"), key=lambda f: not f.paper)


def record_figures(recipe: Recipe, space: str | None) -> dict:
    """evaluate's figure entries of a record: those of every family `recorded(space)`, in that order."""
    out: dict = {}
    for f in recorded(space):
        out.update(f.record(recipe))
    return out
