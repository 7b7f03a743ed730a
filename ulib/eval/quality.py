"""Sample quality as a measurement: one reference set, many image sets, each with n, ± and the noise floor.

The paper's Tables 1-3 and Fig. 6 compare sets of samples (different step counts, temperatures, priors)
against the same real data. `QualityMeter` computes the reference's features once and then scores any set:

- every figure the scoring core (`ulib.eval.scoring`) registers with a value in the meter's feature space
  (a `ulib.eval.extractors.FeatureSpace`: 'openmoji' offline for the built-in dataset, 'inception' for the
  paper's data); built in:
  - FID, KID, precision, recall, density, coverage (k = 5);
  - bias (Fig. 6): the category histogram of the set (argmax of the openmoji category head) against the
    reference's, as KL(set || reference) and entropy, both in bits; a set that over-produces the commonest
    categories has a lower entropy and a larger KL, and its share of the reference's commonest category
    (`top_category_share`, beside `reference_top_category_share`) grows. (Inception's head has 1008 ImageNet
    classes; the same numbers are computed on it, less meaningfully for emoji.)
- every figure's bootstrap standard deviation '<figure>_std' and 95 % interval '<figure>_lo', '<figure>_hi'
  (estimate -/+ 1.96 std: a resample repeats images, which lifts FID and KID above the set's own value, so the
  draws' quantiles need not hold the estimate): the figure recomputed on `draws` resamples (with replacement)
  of both the set and the reference,
  `ulib.eval.intervals.DEFAULT_DRAWS` = 200 by default (PRDC of a resample from distances computed once,
  `ulib.eval.resampling`, and FID from the drawn items' counts, `ulib.eval.metrics.fid_resampled`, so a draw
  costs about one KID: 0.14 CPU-second for 300 images against 2,000 reference images, 0.45 with `M.fid`);
- `difference`: a minus b on shared reference resamples, each with its std, 95 % percentile interval and
  two-sided bootstrap p
  '<figure>_p' (`ulib.eval.intervals.bootstrap_p`), the input of `ulib.eval.stats.verdict`;
- `figures=`: which figures the draws resample (all of the meter's `figures` by default; every figure's value
  is computed either way). KID is most of a draw's time (200 draws against 2,000 reference images on one CPU
  core: 27 s with every figure at n = 300, 6 s without KID; 106 s against 8 s at n = 800), so a notebook that
  quotes no KID ± leaves it out;
- the noise floor at the same n: `floor(n)` scores n held-out real images (real images not in the
  reference) exactly as a set of samples would be scored. FID and KID depend on n, so a figure is read
  against the floor at its own n, never against another n's.

`paired_difference` is the one error convention for comparing two models on the same items (Table 4):
the mean of the per-item differences, its standard error, and its t interval and p on n - 1 df.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ulib.eval import extractors as X
from ulib.eval import scoring as S
from ulib.eval.intervals import DEFAULT_DRAWS, bootstrap_p, bootstrap_summary, t_interval
from ulib.eval.scoring import Draw, Pair, class_histogram

# The built-in figures by group, for choosing what the draws resample (`figures=`); the meter reads the registry.
FIGURES = S.names(S.families())
PRDC = S.PRDC.names
CATEGORY_FIGURES = S.CATEGORIES.names  # cheap: histograms


def _counts(index: torch.Tensor, n: int) -> np.ndarray:
    """(n,) how often each item appears in a resample given by its drawn indices."""
    return np.bincount(index.numpy(), minlength=n)


def _summarise(row: dict, samples: dict, *, p: bool = False) -> None:
    """row['<figure>_std'], '_lo', '_hi' from each figure's draws: a difference's (p=True, also '_p') 95 %
    percentile interval, a single set's estimate -/+ 1.96 std (`ulib.eval.intervals.bootstrap_summary`: a single
    set's resamples repeat images, which biases FID and KID upwards)."""
    for name, values in samples.items():
        b = bootstrap_summary(values, row[name], method="percentile" if p else "normal")
        row[f"{name}_std"], row[f"{name}_lo"], row[f"{name}_hi"] = b.std, b.lo, b.hi
        if p:
            row[f"{name}_p"] = bootstrap_p(values)


def extract(space, images: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(pool features (N, D), head logits (N, C)) of uint8 or [-1, 1] images (N, 3, H, W) in `space`."""
    if len(images) == 0:
        raise ValueError("extract: no images")
    out = X.extract_features(space, (images[i: i + batch_size] for i in range(0, len(images), batch_size)))
    return out[space.pool], out[space.logits]


class QualityMeter:
    """Scores image sets against one reference (module docstring).

    space: a `ulib.eval.extractors.FeatureSpace`; reference: real images (N, 3, H, W), uint8 or [-1, 1];
    holdout: other real images of the same distribution, for `floor` (none: no floor).
    """

    def __init__(self, space, reference: torch.Tensor, holdout: torch.Tensor | None = None, *, k: int = 5,
                 kid_subsets: int = 20, batch_size: int = 256):
        self.space, self.k, self.kid_subsets, self.batch_size = space, k, kid_subsets, batch_size
        self.ref_features, self.ref_logits = extract(space, reference, batch_size)
        self.ref_histogram = class_histogram(self.ref_logits)
        self.top_category = int(np.argmax(self.ref_histogram))  # the reference's commonest category
        self.holdout = holdout
        self._floors: dict[tuple, dict] = {}
        self._cache: dict = {}  # what families compute once per reference (PRDC's neighbours), on first use

    @property
    def features(self) -> str:
        return self.space.features

    @property
    def n_reference(self) -> int:
        return len(self.ref_features)

    @property
    def families(self) -> list[S.Family]:
        """The registered figure families with a value in this meter's feature space (`ulib.eval.scoring`)."""
        return S.families(self.features)

    @property
    def figures(self) -> tuple[str, ...]:
        """The names of every figure a row holds, in order."""
        return S.names(self.families)

    def _resampled(self, figures=None) -> tuple[str, ...]:
        """The figures a bootstrap draws (None: all), in the meter's order; ValueError on a name it does not
        compute."""
        known = self.figures
        if figures is None:
            return known
        if isinstance(figures, str) or any(f not in known for f in figures):
            raise ValueError(f"figures={figures!r}; allowed: a collection of {', '.join(known)}")
        return tuple(f for f in known if f in figures)

    def _pair(self, ref: torch.Tensor, ref_hist: np.ndarray, feats: torch.Tensor, logits: torch.Tensor) -> Pair:
        return Pair(ref, feats, logits, ref_hist, self.top_category, self.k, self.kid_subsets)

    def _figures(self, ref: torch.Tensor, ref_hist: np.ndarray, feats: torch.Tensor, logits: torch.Tensor) -> dict:
        return S.values(self._pair(ref, ref_hist, feats, logits), self.families)

    def _resampler(self, feats: torch.Tensor, figures=None) -> dict:
        """{family: what its `prepare` makes once per set} for the families drawn (PRDC: the set's distances)."""
        return {f.name: f.prepare(self._cache, self.ref_features, feats, self.k) for f in self.families
                if f.prepare is not None and (figures is None or set(f.names) & set(figures))}

    def _draw(self, ri: torch.Tensor, fi: torch.Tensor, feats: torch.Tensor, logits: torch.Tensor,
              prepared: dict, figures=None) -> dict:
        """The figures of one resample: reference items ri, set items fi (drawn indices, with repeats); the same
        values as `_figures` on the resampled features, from each family's fast path (`ulib.eval.scoring`:
        FID from the counts, PRDC from the distances `prepared` computed once). Only the families with a figure
        in `figures` (None: all)."""
        pair = self._pair(self.ref_features, self.ref_histogram, feats, logits)
        cr, cf = _counts(ri, self.n_reference), _counts(fi, len(feats))
        out = {}
        for f in self.families:
            if figures is None or set(f.names) & set(figures):
                out.update(S.drawn(Draw(ri, fi, cr, cf, pair, self.ref_logits, prepared.get(f.name)), f))
        return out

    def score_features(self, feats: torch.Tensor, logits: torch.Tensor, *, draws: int = DEFAULT_DRAWS,
                       seed: int = 0, figures=None) -> dict:
        """The figures of a set given its features, with '<figure>_std' and '_lo', '_hi' (estimate -/+ 1.96
        std) over `draws` bootstrap resamples of the set and the reference (none when draws < 2), for the
        `figures` named (all by default)."""
        figures = self._resampled(figures)
        if len(feats) <= self.k:
            raise ValueError(f"a set of {len(feats)} images is too small for PRDC with k = {self.k}; need > {self.k}")
        pair = self._pair(self.ref_features, self.ref_histogram, feats, logits)
        row = {"n": len(feats), "n_reference": self.n_reference, "features": self.features,
               **S.values(pair, self.families)}
        for f in self.families:
            if f.reference is not None:
                row.update(f.reference(pair))
        if draws >= 2:
            g = torch.Generator().manual_seed(seed)
            prepared = self._resampler(feats, figures)
            samples = {name: [] for name in figures}
            for _ in range(draws):
                ri = torch.randint(self.n_reference, (self.n_reference,), generator=g)
                fi = torch.randint(len(feats), (len(feats),), generator=g)
                vals = self._draw(ri, fi, feats, logits, prepared, figures)
                for name in figures:
                    samples[name].append(vals[name])
            _summarise(row, samples)
        row["bootstrap_draws"] = draws if draws >= 2 else 0
        return row

    def score(self, images: torch.Tensor, *, draws: int = DEFAULT_DRAWS, seed: int = 0,
              figures=None) -> dict:
        """The figures of a set of images (uint8 or [-1, 1]) against the reference (module docstring)."""
        feats, logits = extract(self.space, images, self.batch_size)
        return self.score_features(feats, logits, draws=draws, seed=seed, figures=figures)

    def difference(self, a: torch.Tensor, b: torch.Tensor, *, draws: int = DEFAULT_DRAWS, seed: int = 0,
                   paired: bool = False, figures=None) -> dict:
        """Figures of image set a minus those of set b, both against the reference, with '<figure>_std', '_lo',
        '_hi' (95 % percentile interval) and '_p' (two-sided bootstrap p of 'no difference') over `draws`
        bootstrap draws in which a and b share each resample of the reference (the reference's own
        noise cancels in the difference). The sets are resampled independently, as independent samples; with
        paired=True (a[i] and b[i] made from the same item, e.g. two VQGANs' reconstructions of one image)
        both take the same resample of items, so the items' own spread cancels too. figures: those the draws
        resample (module docstring; None: all)."""
        figures = self._resampled(figures)
        fa, la = extract(self.space, a, self.batch_size)
        fb, lb = extract(self.space, b, self.batch_size)
        if paired and len(fa) != len(fb):
            raise ValueError(f"paired difference of sets of {len(fa)} and {len(fb)} items; paired sets must "
                             "have one item each per source item")
        ha, hb = self.score_features(fa, la, draws=0), self.score_features(fb, lb, draws=0)
        row = {"n_a": len(fa), "n_b": len(fb), "features": self.features,
               **{name: ha[name] - hb[name] for name in self.figures}}
        if draws >= 2:
            g = torch.Generator().manual_seed(seed)
            prep_a, prep_b = self._resampler(fa, figures), self._resampler(fb, figures)
            samples = {name: [] for name in figures}
            for _ in range(draws):
                ri = torch.randint(self.n_reference, (self.n_reference,), generator=g)
                ia = torch.randint(len(fa), (len(fa),), generator=g)
                ib = ia if paired else torch.randint(len(fb), (len(fb),), generator=g)
                va, vb = self._draw(ri, ia, fa, la, prep_a, figures), self._draw(ri, ib, fb, lb, prep_b, figures)
                for name in figures:
                    samples[name].append(va[name] - vb[name])
            _summarise(row, samples, p=True)
        row["bootstrap_draws"] = draws if draws >= 2 else 0
        row["paired"] = paired
        return row

    def floor(self, n: int, *, draws: int = DEFAULT_DRAWS, seed: int = 0, figures=None) -> dict:
        """The noise floor at n: n held-out real images scored as a set of samples would be (cached per n)."""
        if self.holdout is None:
            raise ValueError("QualityMeter has no holdout images, so no noise floor; pass holdout=")
        if n > len(self.holdout):
            raise ValueError(f"noise floor at n = {n} needs {n} held-out real images; "
                             f"the meter has {len(self.holdout)}")
        key = (n, draws, seed, self._resampled(figures))
        if key not in self._floors:
            self._floors[key] = self.score(self.holdout[:n], draws=draws, seed=seed, figures=figures)
        return self._floors[key]


def with_floor(row: dict, floor: dict,
               figures_shown=("fid", "kid", "precision", "recall", "density", "coverage")) -> dict:
    """row plus 'floor_<figure>' for each figure (the noise floor's value at the row's n)."""
    if floor["n"] != row["n"]:
        raise ValueError(f"noise floor at n = {floor['n']} beside a set of n = {row['n']}; "
                         "score the floor at the same n")
    return {**row, **{f"floor_{name}": floor[name] for name in figures_shown}}


def within_noise(row: dict, base: dict, key: str = "fid", z: float = 2.0) -> bool:
    """True when row[key] is no worse than base[key] by more than z combined bootstrap stds:
    worse = row - base (base - row where higher is better, as the figure's registry entry says) and
    worse <= z * sqrt(std_row^2 + std_base^2)."""
    spread = math.hypot(row.get(f"{key}_std", 0.0), base.get(f"{key}_std", 0.0))
    worse = row[key] - base[key]
    return (worse if S.figure(key).lower_is_better else -worse) <= z * spread


def paired_difference(a, b, confidence: float = 0.95) -> dict:
    """Mean and standard error of the per-item differences a_i - b_i (the same items scored by two models).

    se = std(a - b, ddof=1) / sqrt(n): the error convention of the kit's model comparisons (Table 4); beside it
    the t interval 'lo', 'hi' of the mean difference on 'df' = n - 1 degrees of freedom, 't' = mean / se and its
    two-sided 'p' (`ulib.eval.intervals.t_interval`)."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: {a.size} items against {b.size}; the same items are needed")
    if a.size < 2:
        raise ValueError("paired_difference: need at least 2 items")
    d = a - b
    t = t_interval(d, confidence)
    return {"n": int(d.size), "mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_difference": float(d.mean()),
            "se": float(d.std(ddof=1) / math.sqrt(d.size)), "lo": t.lo, "hi": t.hi, "df": t.df, "t": t.t, "p": t.p,
            "confidence": t.confidence}
