"""Memorisation measured: how close samples come to the training set, against how close unseen real images come.

FID does not see overfitting (a model that replays training images scores well), so a set of samples is also
compared with its nearest training images, in a feature space and in pixels:

- d(x) = min_t ||x - t||_2 over the training rows t: the distance from x to its nearest training image
  (`ulib.eval.neighbours.nearest`). For samples it is set against the same for test images, the baseline of
  how close unseen real images of the same distribution come to the training set. A ratio median d(samples) /
  median d(test) well below 1 means samples sit closer to training images than fresh data does.
- near-copies: the share of samples with d(sample) <= the q-quantile of d(test) (q = 0: no farther from the
  training set than the closest test image is; q = 0.05 also reported), with a Wilson 95% interval. One test
  image that nearly duplicates a training image sets the q = 0 threshold near 0, so the share counts crisp
  copies only; read it beside its threshold, the ratio and C_T, which see looser copying.
- a test image at distance 0 from a training image is the same image on both sides of the split (at 32 px some
  emoji render identically): counted (test_exact_copies) and, by default, left out of the baseline, which is
  of unseen images; kept in, it would set the q = 0 threshold to 0.
- C_T (Meehan, Chaudhuri & Dasgupta 2020, "A Non-Parametric Test to Detect Data-Copying in Generative Models",
  AISTATS): the space is cut into cells by k-means on the training rows; in each cell the samples' d are compared
  with the test images' d by the Mann-Whitney U statistic's z score, and the cells' z are averaged with the
  cells' shares of the test set as weights (`ulib.eval.data_copying`). C_T << 0 (below about -3) is data-copying,
  C_T near 0 is what fresh data gives, C_T > 0 is underfitting (samples farther from the training set than test
  images are).
- `nearest_pairs_grid`: a picture of samples above their nearest training images.
- `memorisation_report`: all of it in a `FeatureSpace` and in pixels, plus FID against train and against test;
  `near_copy_sentence`: one space's figures as a sentence for a notebook, generated from the numbers.

All distances are Euclidean, computed in float64 on the CPU. Pixels are the uint8 values a PNG holds, / 255.
"""
from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np
import torch

from ulib.eval.data_copying import MIN_CELL_SAMPLES, data_copying_statistic
from ulib.eval.intervals import proportion_interval
from ulib.eval.metrics import fid
from ulib.eval.neighbours import check_sets, nearest, rows
from ulib.eval.quality import extract
from ulib.eval.stats import format_p
from ulib.io.logs import image_grid, save_image_grid

QUANTILES = (0.0, 0.05)  # near-copy thresholds: the closest test image, and the test set's 5th percentile


# ---- the figures of one space ---------------------------------------------------------------------------------
def _summary(d: torch.Tensor, prefix: str) -> dict:
    q = torch.quantile(d, torch.tensor([0.25, 0.5, 0.75], dtype=d.dtype))
    return {f"{prefix}_min": d.min().item(), f"{prefix}_q25": q[0].item(), f"{prefix}_median": q[1].item(),
            f"{prefix}_q75": q[2].item(), f"{prefix}_mean": d.mean().item()}


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else (math.nan if a == 0 else math.inf)


def _suffix(q: float) -> str:
    """'' for q = 0 (the closest test image), '_p5' for q = 0.05, '_p2_5' for q = 0.025."""
    return "" if q == 0 else "_p" + f"{100 * q:g}".replace(".", "_")


class Neighbours(NamedTuple):
    distances: torch.Tensor  # (N,) each sample's distance to its nearest training row
    indices: torch.Tensor  # (N,) that row's position in the training set


def _memorisation(samples, train, test, *, quantiles=QUANTILES, cells: int | None = None,
                  min_cell_samples: int = MIN_CELL_SAMPLES, seed: int = 0, batch_size: int = 1024,
                  drop_test_copies: bool = True, cache: dict | None = None) -> tuple[dict, Neighbours]:
    s, t, p = rows(samples, "samples"), rows(train, "train"), rows(test, "test")
    check_sets(samples=s, train=t, test=p)
    for q in quantiles:
        if not 0 <= q < 1:
            raise ValueError(f"memorisation: quantile {q!r}; allowed: 0 <= q < 1")
    ds, idx = nearest(s, t, batch_size)  # d(sample, T)
    dp = cache.get("test_to_train") if cache is not None else None
    if dp is None:
        dp, _ = nearest(p, t, batch_size)  # d(test image, T): the baseline
        if cache is not None:
            cache["test_to_train"] = dp
    n_test, test_copies = len(p), int((dp == 0).sum())  # test rows that are a training row: a leak in the split
    if drop_test_copies:  # a training image again is no unseen image: out of the baseline
        if test_copies == len(p):
            raise ValueError(f"memorisation: all {len(p)} test rows duplicate a training row; no unseen test "
                             "image is left for the baseline")
        p, dp = p[dp > 0], dp[dp > 0]
    out = {"n_samples": len(s), "n_train": len(t), "n_test": n_test, "n_test_used": len(p), "dim": s.shape[1],
           **_summary(ds, "sample_to_train"), **_summary(dp, "test_to_train")}
    out["median_ratio"] = _ratio(out["sample_to_train_median"], out["test_to_train_median"])
    out["mean_ratio"] = _ratio(out["sample_to_train_mean"], out["test_to_train_mean"])
    # exact duplicates: a sample that is a training row; a test row that is one (a leak in the split)
    out["sample_exact_copies"] = int((ds == 0).sum())
    out["test_exact_copies"] = test_copies
    for q in quantiles:
        # near-copy: d(sample, T) <= the q-quantile of d(test, T) (q = 0: the closest test image's distance).
        # "<=" so that, where a test image duplicating a training image is kept (threshold 0), exact copies count.
        threshold = torch.quantile(dp, q).item()
        k = int((ds <= threshold).sum())
        share = proportion_interval(k, len(ds))  # Wilson score interval (ulib.eval.intervals)
        lo, hi = share.lo, share.hi
        sfx = _suffix(q)
        out.update({f"near_copy_threshold{sfx}": threshold, f"near_copy_count{sfx}": k,
                    f"near_copy_share{sfx}": k / len(ds), f"near_copy_share{sfx}_lo": lo,
                    f"near_copy_share{sfx}_hi": hi})
    ct = data_copying_statistic(s, t, p, cells=cells, min_cell_samples=min_cell_samples, seed=seed,
                                batch_size=batch_size, sample_distances=ds, test_distances=dp, cache=cache)
    out.update({"c_t": ct["c_t"], "c_t_cells": ct["cells"], "c_t_cells_used": ct["cells_used"],
                "c_t_test_share_used": ct["test_share_used"], "c_t_min_cell_samples": min_cell_samples,
                "c_t_seed": seed})
    return out, Neighbours(ds, idx)


def memorisation(samples, train, test, *, quantiles=QUANTILES, cells: int | None = None,
                 min_cell_samples: int = MIN_CELL_SAMPLES, seed: int = 0, batch_size: int = 1024,
                 drop_test_copies: bool = True) -> dict:
    """Memorisation figures of samples against training rows, with test rows as the baseline (module docstring).

    samples, train, test: features (N, D) of one space, or images (N, C, H, W) (compared in pixels, see `rows`).
    drop_test_copies: test rows at distance 0 from a training row (the same image on both sides of the split:
    seen, so no baseline of unseen data; at 32 px some emoji render identically) are counted in
    test_exact_copies and left out of the baseline and of C_T; with False they stay in (and a threshold of 0
    then makes exact copies the only near-copies).
    Returns a flat dict:
    - n_samples, n_train, n_test, n_test_used (without the dropped test rows), dim;
    - sample_to_train_{min,q25,median,q75,mean}: d(sample, T); test_to_train_*: d(test image, T), over the
      test rows used;
    - median_ratio, mean_ratio: sample over test (~1 fresh data, < 1 closer to training images, > 1 farther);
    - sample_exact_copies, test_exact_copies: rows at distance 0 from a training row;
    - near_copy_{threshold,count,share,share_lo,share_hi}: samples with d <= min d(test, T), the share with its
      Wilson 95% interval; the same with suffix _p5 for the 5th percentile of d(test, T) (`quantiles`);
    - c_t and its settings (c_t_cells, c_t_cells_used, c_t_test_share_used, c_t_min_cell_samples, c_t_seed):
      `data_copying_statistic`.
    """
    return _memorisation(samples, train, test, quantiles=quantiles, cells=cells,
                         min_cell_samples=min_cell_samples, seed=seed, batch_size=batch_size,
                         drop_test_copies=drop_test_copies)[0]


# ---- the picture ----------------------------------------------------------------------------------------------
def _unit_images(x, name: str) -> torch.Tensor:
    """float (N, 3, H, W) in [-1, 1] from uint8 or [-1, 1] images."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"nearest_pairs_grid: {name} must be images (N, 3, H, W); got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    x = x.detach().cpu()
    return x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float().clamp(-1, 1)


def nearest_pairs_grid(samples, train_images, indices, n: int = 16, *, distances=None, per_row: int = 8,
                       upscale: int = 2, path: str | os.PathLike | None = None) -> np.ndarray:
    """A picture of samples above their nearest training images: uint8 (H', W', 3) (`ulib.io.logs.image_grid`),
    also written as a PNG at `path` when given.

    indices (N,): each sample's nearest training image (`nearest`, or `memorisation_report`'s). With `distances`
    (N,) the n closest samples are shown, closest first (the most copy-like); without, the first n. The pairs go
    in blocks of `per_row` columns: a row of samples, under it the row of their training neighbours; a last,
    partial block is filled with white tiles.
    """
    s, t = _unit_images(samples, "samples"), _unit_images(train_images, "train_images")
    indices = torch.as_tensor(indices).long().cpu()
    if indices.shape != (len(s),):
        raise ValueError(f"nearest_pairs_grid: {len(s)} samples but indices of shape {tuple(indices.shape)}")
    if s.shape[1:] != t.shape[1:]:
        raise ValueError(f"nearest_pairs_grid: samples are {tuple(s.shape[1:])}, training images "
                         f"{tuple(t.shape[1:])}; they must be of one size")
    if len(indices) and not 0 <= int(indices.min()) <= int(indices.max()) < len(t):
        raise ValueError(f"nearest_pairs_grid: indices outside the {len(t)} training images")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or len(s) == 0:
        raise ValueError(f"nearest_pairs_grid: n={n!r} pairs of {len(s)} samples; need n >= 1 and a sample")
    order = torch.arange(len(s)) if distances is None else torch.as_tensor(distances).double().argsort(stable=True)
    order = order[:n]
    cols = min(per_row, len(order))
    blank = torch.ones_like(s[:1])  # white
    tiles = []
    for start in range(0, len(order), cols):
        block = order[start: start + cols]
        pad = [blank] * (cols - len(block))
        tiles += [s[block], *pad, t[indices[block]], *pad]
    grid = torch.cat(tiles)
    if path is not None:
        save_image_grid(grid, path, nrow=cols, upscale=upscale)
    return image_grid(grid, nrow=cols, upscale=upscale)


# ---- features and pixels together --------------------------------------------------------------------------------
class MemorisationReport(NamedTuple):
    row: dict  # flat: feat_* (in the feature space), pix_* (in pixels), FID against train and test
    feat: Neighbours  # each sample's nearest training image in the feature space
    pix: Neighbours  # ... and in pixels


def memorisation_report(space, sample_images, train_images, test_images, *, quantiles=QUANTILES,
                        cells: int | None = None, min_cell_samples: int = MIN_CELL_SAMPLES, seed: int = 0,
                        batch_size: int = 256, drop_test_copies: bool = True,
                        train_features: torch.Tensor | None = None,
                        test_features: torch.Tensor | None = None, cache: dict | None = None) -> MemorisationReport:
    """`memorisation` of image sets (uint8 or [-1, 1], (N, 3, H, W)) twice: on the pool features of `space`
    (a `ulib.eval.extractors.FeatureSpace`, through `ulib.eval.quality.extract`), keys prefixed feat_, and on
    pixels, keys prefixed pix_; plus, in the feature space, feat_fid_train = FID(train, samples),
    feat_fid_test = FID(test, samples) and feat_fid_test_to_train = FID(train, test), the last the value fresh
    data gets (FID falls with n, so read each against sets of like size; the FIDs use every test image). The
    neighbours (distances and
    indices into train_images) of both spaces come with the row, for `nearest_pairs_grid`.
    train_features, test_features: the pool features of train_images and test_images in `space`, when already
    extracted (a notebook that reports several sample sets against the same two splits extracts them once).
    cache: a dict the caller keeps between calls with the same train and test images: each space's test-to-train
    distances and k-means centres (which depend on those two sets only) are stored in it and reused."""
    sets = {"samples": sample_images, "train": train_images, "test": test_images}
    for name, x in sets.items():
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"memorisation_report: {name} must be images (N, C, H, W); got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if len(x) == 0:
            raise ValueError(f"memorisation_report: {name} is empty (0 images)")
    sizes = {name: tuple(x.shape[1:]) for name, x in sets.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"memorisation_report: images of different sizes ({sizes}); the sets must match")
    kw = dict(quantiles=quantiles, cells=cells, min_cell_samples=min_cell_samples, seed=seed,
              drop_test_copies=drop_test_copies)
    given = {"train": train_features, "test": test_features}
    for name, f in given.items():
        if f is not None and (not isinstance(f, torch.Tensor) or f.dim() != 2 or len(f) != len(sets[name])):
            got = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
            raise ValueError(f"memorisation_report: {name}_features must be (N, D) features of the "
                             f"{len(sets[name])} {name} images; got {got}")
    fs, ft, fp = (extract(space, x, batch_size)[0] if f is None else f
                  for x, f in ((sample_images, None), (train_images, train_features), (test_images, test_features)))
    spaces = {name: None if cache is None else cache.setdefault(name, {}) for name in ("feat", "pix")}
    feat, feat_nn = _memorisation(fs, ft, fp, **kw, cache=spaces["feat"])
    pix, pix_nn = _memorisation(sample_images, train_images, test_images, **kw, cache=spaces["pix"])
    row = {"features": space.features, **{f"feat_{k}": v for k, v in feat.items()},
           **{f"pix_{k}": v for k, v in pix.items()}}
    if min(len(fs), len(ft), len(fp)) >= 2:
        row.update(feat_fid_train=fid(ft, fs), feat_fid_test=fid(fp, fs), feat_fid_test_to_train=fid(ft, fp))
    return MemorisationReport(row, feat_nn, pix_nn)


def near_copy_sentence(row: dict, prefix: str = "feat_", space: str = "feature space") -> str:
    """One space's near-copy figures of a memorisation row as a sentence made from the numbers (prose states no
    figure of its own): prefix 'feat_' or 'pix_' for a `memorisation_report` row, '' for a `memorisation` dict.

    'feature space: near-copies 3 of 300 (1.0 %, 95 % Wilson 0.3 % to 2.9 %; none nearer than the closest of
    1,100 test images); 21 within the test images' 5th percentile (7.0 %, 4.6 % to 10.5 %; unseen images 5 %,
    binomial p = 0.11); median distance ratio 0.93; C_T -1.20'. The second part is there when the row has the
    q = 0.05 figures; the binomial p is against 5 %, the share unseen images put within their own 5th
    percentile."""
    def get(key):
        if prefix + key not in row:
            raise ValueError(f"near_copy_sentence: the row has no {prefix + key!r}; pass a memorisation row and "
                             f"its prefix ('feat_', 'pix_', or '' for `memorisation`'s dict)")
        return row[prefix + key]

    n, tests = get("n_samples"), get("n_test_used")
    pct = lambda v: f"{100 * v:.1f} %"
    parts = [f"near-copies {get('near_copy_count')} of {n} ({pct(get('near_copy_share'))}, 95 % Wilson "
             f"{pct(get('near_copy_share_lo'))} to {pct(get('near_copy_share_hi'))}; no farther from a training "
             f"image than the closest of {tests:,} test images)"]
    if prefix + "near_copy_count_p5" in row:
        p5 = proportion_interval(int(get("near_copy_count_p5")), int(n), against=0.05)
        parts.append(f"{p5.successes} within the test images' 5th percentile ({pct(p5.share)}, {pct(p5.lo)} to "
                     f"{pct(p5.hi)}; unseen images 5 %, binomial {format_p(p5.p)})")
    parts.append(f"median distance ratio {get('median_ratio'):.2f}")
    c_t = get("c_t")
    parts.append(f"C_T {c_t:+.2f}" if math.isfinite(c_t) else f"C_T n/a (no cell held {get('c_t_min_cell_samples')} "
                                                               "samples)")
    return f"{space}: " + "; ".join(parts)
