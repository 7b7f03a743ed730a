"""C_T, the data-copying statistic of Meehan, Chaudhuri & Dasgupta (2020), "A Non-Parametric Test to Detect
Data-Copying in Generative Models" (AISTATS): the space is cut into cells by k-means on the training rows; in each
cell the samples' distances to the training set are compared with the test images' by the Mann-Whitney U
statistic's z score, and the cells' z are averaged with the cells' shares of the test set as weights.
C_T << 0 (below about -3) is data-copying, C_T near 0 is what fresh data gives, C_T > 0 is underfitting.
`ulib.eval.memorisation` reports it beside the near-copy figures.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from ulib.eval.neighbours import check_sets, nearest, rows

MIN_CELL_SAMPLES = 20  # C_T's tau as a count: a cell enters the average when it holds >= 20 samples
CELLS_MAX = 10


# ---- the Mann-Whitney z score ---------------------------------------------------------------------------------
def _midranks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ranks 1..N with ties given their average rank, the sizes of the tie groups)."""
    values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # the rank of each distinct value's last copy
    return (last - (counts - 1) / 2.0)[inverse], counts


def mann_whitney_z(x, y) -> float:
    """z score of the Mann-Whitney U statistic of x (m values) against y (n values); < 0 when x tends smaller.

    U = #{(i, j): x_i > y_j} + #{(i, j): x_i = y_j} / 2 = R_x - m(m + 1)/2, R_x the sum of x's midranks in the
    pooled values. Under H0 (x and y from one distribution) E U = mn/2 and
    Var U = mn/12 ((N + 1) - sum_t (t^3 - t) / (N (N - 1))), N = m + n, t the sizes of the tie groups
    (without ties: mn(m + n + 1)/12, the formula in Meehan et al.). z = (U - mn/2) / sqrt(Var U), no continuity
    correction; 0 when every value is tied.
    """
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    m, n = x.size, y.size
    if m == 0 or n == 0:
        raise ValueError(f"mann_whitney_z: needs values on both sides; got {m} and {n}")
    ranks, ties = _midranks(np.concatenate([x, y]))
    u = ranks[:m].sum() - m * (m + 1) / 2
    big_n = m + n
    var = m * n / 12 * ((big_n + 1) - (ties**3 - ties).sum() / (big_n * (big_n - 1)))
    return 0.0 if var <= 0 else float((u - m * n / 2) / math.sqrt(var))


# ---- k-means cells -------------------------------------------------------------------------------------------
_KMEANS_CACHE: dict[tuple, torch.Tensor] = {}  # (the rows' digest, k, seed, restarts, iters) -> centres
KMEANS_CACHE_SIZE = 8  # C_T fits the same training rows for every sample set a notebook scores: fit them once


def _digest(x: torch.Tensor) -> tuple:
    """(shape, BLAKE2b of the bytes) of a CPU tensor: equal for equal rows, whatever object holds them."""
    return tuple(x.shape), hashlib.blake2b(np.ascontiguousarray(x.numpy()).data, digest_size=16).hexdigest()


def kmeans(x, k: int, seed: int = 0, restarts: int = 4, iters: int = 100) -> torch.Tensor:
    """Centroids (k, D) of Lloyd's k-means on rows x, seeded; the best of `restarts` by inertia.

    Each restart: k-means++ seeding (the first centre a uniform row, each next one a row drawn with probability
    proportional to its squared distance to the nearest centre so far), then Lloyd's steps (each row to its
    nearest centre; each centre to the mean of its rows; a centre left with no rows moves to the row farthest
    from its own centre) until no row changes cell. inertia = sum over rows of the squared distance to its centre.

    The fit is deterministic, so it is kept for the last KMEANS_CACHE_SIZE (rows, k, seed, restarts, iters): a
    notebook scoring several sample sets against one training set (C_T's cells) fits its k-means once per space.
    """
    x = rows(x, "kmeans")
    if not 1 <= k <= len(x):
        raise ValueError(f"kmeans: k={k} cells for {len(x)} rows; need 1 <= k <= rows")
    key = (_digest(x), k, seed, restarts, iters)
    if key in _KMEANS_CACHE:
        return _KMEANS_CACHE[key].clone()
    best = _kmeans(x, k, seed, restarts, iters)
    _KMEANS_CACHE[key] = best.clone()
    while len(_KMEANS_CACHE) > KMEANS_CACHE_SIZE:
        _KMEANS_CACHE.pop(next(iter(_KMEANS_CACHE)))  # the oldest fit
    return best


def _kmeans(x: torch.Tensor, k: int, seed: int, restarts: int, iters: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    best, best_inertia = None, math.inf
    for _ in range(restarts):
        centres = x[torch.randint(len(x), (1,), generator=g)]
        for _ in range(k - 1):
            d2 = torch.cdist(x, centres).min(1).values.pow(2)
            pick = (torch.multinomial(d2 / d2.sum(), 1, generator=g) if d2.sum() > 0
                    else torch.randint(len(x), (1,), generator=g))  # every row is a centre already
            centres = torch.cat([centres, x[pick]])
        labels = None
        for _ in range(iters):
            d = torch.cdist(x, centres)
            new = d.argmin(1)
            if labels is not None and torch.equal(new, labels):
                break
            labels = new
            own = d.gather(1, labels[:, None])[:, 0]
            for c in range(k):
                members = labels == c
                if members.any():
                    centres[c] = x[members].mean(0)
                else:  # an empty cell takes the worst-served row
                    far = own.argmax()
                    centres[c], own[far] = x[far], 0.0
        inertia = torch.cdist(x, centres).min(1).values.pow(2).sum().item()
        if inertia < best_inertia:
            best, best_inertia = centres.clone(), inertia
    return best


def default_cells(n_test: int, n_samples: int, n_train: int) -> int:
    """About 50 test images and 50 samples per cell, between 1 and 10 cells (and no more than training rows)."""
    return max(1, min(CELLS_MAX, min(n_test, n_samples) // 50, n_train))


def data_copying_statistic(samples, train, test, *, cells: int | None = None,
                           min_cell_samples: int = MIN_CELL_SAMPLES, seed: int = 0, batch_size: int = 1024,
                           sample_distances: torch.Tensor | None = None,
                           test_distances: torch.Tensor | None = None, cache: dict | None = None) -> dict:
    """Meehan et al.'s C_T of samples (Q_m, m rows) against test rows (P_n, n rows) and training rows T.

    Sign, as in the paper: each cell's z is that of U counting pairs (sample, test image) in which the sample is
    the farther from the training set, so z < 0 when samples lie closer to T than test images do:
    C_T << 0 (below about -3): data-copying; C_T ~ 0: samples as close to T as fresh data; C_T > 0: underfitting.

    1. cells: k-means with `cells` centres fitted on T (`kmeans`, seeded); a row's cell is its nearest centre.
       cells=None: `default_cells`.
    2. L(x) = d(x, T), the distance to the nearest training row (the whole training set; Meehan et al.'s released
       code measures to the training rows of x's own cell: the same row, except for rows near a cell's border).
    3. z_pi = `mann_whitney_z`(L(samples in pi), L(test rows in pi)).
    4. Pi_tau: the cells holding at least `min_cell_samples` samples (the paper's Q_m(pi) >= tau, here with
       tau = min_cell_samples / m) and at least one test row. C_T = sum_{Pi_tau} P_n(pi) z_pi / sum_{Pi_tau} P_n(pi),
       P_n(pi) the share of the test rows in pi. Under H0 each z_pi ~ N(0, 1), so C_T has standard deviation
       sqrt(sum w^2) <= 1 (w the normalised weights).

    Returns c_t (nan when no cell qualifies), the cells and those used, the test share they cover, and per cell
    its z, counts and test share. sample_distances, test_distances: d(., T) already computed (`nearest`).
    cache: a dict kept by the caller between calls with the same train rows: the k-means centres are stored in it
    (per cells and seed) and reused, since they depend on T only.
    """
    s, t, p = rows(samples, "samples"), rows(train, "train"), rows(test, "test")
    check_sets(samples=s, train=t, test=p)
    if isinstance(min_cell_samples, bool) or not isinstance(min_cell_samples, int) or min_cell_samples < 1:
        raise ValueError(f"data_copying_statistic: min_cell_samples={min_cell_samples!r}; allowed: an int >= 1")
    k = default_cells(len(p), len(s), len(t)) if cells is None else cells
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(t):
        raise ValueError(f"data_copying_statistic: cells={cells!r}; allowed: an int from 1 to the {len(t)} "
                         "training rows")
    ls = nearest(s, t, batch_size)[0] if sample_distances is None else sample_distances.double()
    lp = nearest(p, t, batch_size)[0] if test_distances is None else test_distances.double()
    if ls.shape != (len(s),) or lp.shape != (len(p),):
        raise ValueError(f"data_copying_statistic: distances of shapes {tuple(ls.shape)}, {tuple(lp.shape)} for "
                         f"{len(s)} samples and {len(p)} test rows")
    key = ("kmeans_centres", k, seed)
    centres = cache.get(key) if cache is not None else None
    if centres is None:
        centres = kmeans(t, k, seed=seed)
        if cache is not None:
            cache[key] = centres
    cell_s, cell_p = nearest(s, centres, batch_size)[1], nearest(p, centres, batch_size)[1]
    per_cell, n_used, weighted = [], 0, 0.0
    for c in range(k):
        in_s, in_p = ls[cell_s == c], lp[cell_p == c]
        used = len(in_s) >= min_cell_samples and len(in_p) > 0
        z = mann_whitney_z(in_s.numpy(), in_p.numpy()) if len(in_s) and len(in_p) else math.nan
        per_cell.append({"cell": c, "n_samples": len(in_s), "n_test": len(in_p), "test_share": len(in_p) / len(p),
                         "z": z, "used": used})
        if used:  # P_n(pi) = n_pi / n: the weights in test rows, so the shares sum exactly
            n_used += len(in_p)
            weighted += len(in_p) * z
    return {"c_t": weighted / n_used if n_used else math.nan, "cells": k,
            "cells_used": sum(c["used"] for c in per_cell), "test_share_used": n_used / len(p),
            "min_cell_samples": min_cell_samples, "seed": seed, "per_cell": per_cell}
