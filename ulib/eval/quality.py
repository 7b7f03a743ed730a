"""Sample quality as a measurement: one reference set, many image sets, each with n, ± and the noise floor.

The paper's Tables 1-3 and Fig. 6 compare sets of samples (different step counts, temperatures, priors)
against the same real data. `QualityMeter` computes the reference's features once and then scores any set:

- FID, KID, precision, recall, density, coverage (k = 5) in a feature space (`ulib.eval.extractors.FeatureSpace`:
  'openmoji' offline for the built-in dataset, 'inception' for the paper's data);
- bias (Fig. 6): the category histogram of the set (argmax of the openmoji category head) against the
  reference's, as KL(set || reference) and entropy, both in bits; a set that over-produces the commonest
  categories has a lower entropy and a larger KL, and its share of the reference's commonest category
  (`top_category_share`, beside `reference_top_category_share`) grows. (Inception's head has 1008 ImageNet
  classes; the same
  numbers are computed on it, less meaningfully for emoji.)
- every figure's bootstrap standard deviation: the figure recomputed on `draws` resamples (with replacement)
  of both the set and the reference;
- the noise floor at the same n: `floor(n)` scores n held-out real images (real images not in the
  reference) exactly as a set of samples would be scored. FID and KID depend on n, so a figure is read
  against the floor at its own n, never against another n's.

`paired_difference` is the one error convention for comparing two models on the same items (Table 4):
the mean of the per-item differences and its standard error.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ulib.eval import extractors as X
from ulib.eval.compare import figures
from ulib.eval.features import histogram_entropy, histogram_kl

FIGURES = ("fid", "kid", "precision", "recall", "density", "coverage", "category_kl_bits",
           "category_entropy_bits", "top_category_share")


def _histogram(logits: torch.Tensor) -> np.ndarray:
    counts = torch.bincount(logits.argmax(1), minlength=logits.shape[1]).double()
    return (counts / counts.sum().clamp(min=1)).numpy()


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
        self.ref_histogram = _histogram(self.ref_logits)
        self.top_category = int(np.argmax(self.ref_histogram))  # the reference's commonest category
        self.holdout = holdout
        self._floors: dict[tuple, dict] = {}

    @property
    def features(self) -> str:
        return self.space.features

    @property
    def n_reference(self) -> int:
        return len(self.ref_features)

    def _figures(self, ref: torch.Tensor, ref_hist: np.ndarray, feats: torch.Tensor, logits: torch.Tensor) -> dict:
        out = figures(ref, feats, self.k, self.kid_subsets)
        hist = _histogram(logits)
        out["category_kl_bits"] = histogram_kl(hist, ref_hist)
        out["category_entropy_bits"] = histogram_entropy(hist)
        out["top_category_share"] = float(hist[self.top_category])
        return out

    def score_features(self, feats: torch.Tensor, logits: torch.Tensor, *, draws: int = 5, seed: int = 0) -> dict:
        """The figures of a set given its features, with '<figure>_std' over `draws` bootstrap resamples."""
        if len(feats) <= self.k:
            raise ValueError(f"a set of {len(feats)} images is too small for PRDC with k = {self.k}; need > {self.k}")
        row = {"n": len(feats), "n_reference": self.n_reference, "features": self.features,
               **self._figures(self.ref_features, self.ref_histogram, feats, logits),
               "reference_entropy_bits": histogram_entropy(self.ref_histogram),
               "reference_top_category_share": float(self.ref_histogram[self.top_category])}
        if draws >= 2:
            g = torch.Generator().manual_seed(seed)
            samples = {name: [] for name in FIGURES}
            for _ in range(draws):
                ri = torch.randint(self.n_reference, (self.n_reference,), generator=g)
                fi = torch.randint(len(feats), (len(feats),), generator=g)
                vals = self._figures(self.ref_features[ri], _histogram(self.ref_logits[ri]), feats[fi], logits[fi])
                for name in FIGURES:
                    samples[name].append(vals[name])
            row.update({f"{name}_std": float(np.std(v, ddof=1)) for name, v in samples.items()})
        row["bootstrap_draws"] = draws if draws >= 2 else 0
        return row

    def score(self, images: torch.Tensor, *, draws: int = 5, seed: int = 0) -> dict:
        """The figures of a set of images (uint8 or [-1, 1]) against the reference (module docstring)."""
        feats, logits = extract(self.space, images, self.batch_size)
        return self.score_features(feats, logits, draws=draws, seed=seed)

    def difference(self, a: torch.Tensor, b: torch.Tensor, *, draws: int = 5, seed: int = 0,
                   paired: bool = False) -> dict:
        """Figures of image set a minus those of set b, both against the reference, with '<figure>_std' over
        `draws` bootstrap draws in which a and b share each resample of the reference (the reference's own
        noise cancels in the difference). The sets are resampled independently, as independent samples; with
        paired=True (a[i] and b[i] made from the same item, e.g. two VQGANs' reconstructions of one image)
        both take the same resample of items, so the items' own spread cancels too."""
        fa, la = extract(self.space, a, self.batch_size)
        fb, lb = extract(self.space, b, self.batch_size)
        if paired and len(fa) != len(fb):
            raise ValueError(f"paired difference of sets of {len(fa)} and {len(fb)} items; paired sets must "
                             "have one item each per source item")
        ha, hb = self.score_features(fa, la, draws=0), self.score_features(fb, lb, draws=0)
        row = {"n_a": len(fa), "n_b": len(fb), "features": self.features,
               **{name: ha[name] - hb[name] for name in FIGURES}}
        if draws >= 2:
            g = torch.Generator().manual_seed(seed)
            samples = {name: [] for name in FIGURES}
            for _ in range(draws):
                ri = torch.randint(self.n_reference, (self.n_reference,), generator=g)
                ref, hist = self.ref_features[ri], _histogram(self.ref_logits[ri])
                ia = torch.randint(len(fa), (len(fa),), generator=g)
                ib = ia if paired else torch.randint(len(fb), (len(fb),), generator=g)
                va = self._figures(ref, hist, fa[ia], la[ia])
                vb = self._figures(ref, hist, fb[ib], lb[ib])
                for name in FIGURES:
                    samples[name].append(va[name] - vb[name])
            row.update({f"{name}_std": float(np.std(v, ddof=1)) for name, v in samples.items()})
        row["bootstrap_draws"] = draws if draws >= 2 else 0
        row["paired"] = paired
        return row

    def floor(self, n: int, *, draws: int = 5, seed: int = 0) -> dict:
        """The noise floor at n: n held-out real images scored as a set of samples would be (cached per n)."""
        if self.holdout is None:
            raise ValueError("QualityMeter has no holdout images, so no noise floor; pass holdout=")
        if n > len(self.holdout):
            raise ValueError(f"noise floor at n = {n} needs {n} held-out real images; "
                             f"the meter has {len(self.holdout)}")
        key = (n, draws, seed)
        if key not in self._floors:
            self._floors[key] = self.score(self.holdout[:n], draws=draws, seed=seed)
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
    row - base <= z * sqrt(std_row^2 + std_base^2) (lower is better for FID and KID)."""
    spread = math.hypot(row.get(f"{key}_std", 0.0), base.get(f"{key}_std", 0.0))
    return row[key] - base[key] <= z * spread


def paired_difference(a, b) -> dict:
    """Mean and standard error of the per-item differences a_i - b_i (the same items scored by two models).

    se = std(a - b, ddof=1) / sqrt(n): the error convention of the kit's model comparisons (Table 4)."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: {a.size} items against {b.size}; the same items are needed")
    if a.size < 2:
        raise ValueError("paired_difference: need at least 2 items")
    d = a - b
    return {"n": int(d.size), "mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_difference": float(d.mean()),
            "se": float(d.std(ddof=1) / math.sqrt(d.size))}
