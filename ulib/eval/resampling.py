"""PRDC of bootstrap resamples from distances computed once: a resample is a count per item.

Precision, recall, density and coverage (Naeem et al. 2020, `ulib.eval.metrics.prdc`) need every distance between
and within the two sets; recomputing them for each of 200 bootstrap draws is most of a draw's time. A resample
(with replacement) of a set changes no distance, only how often each item appears: item i appears c_i times
(c = bincount of the drawn indices), a copy at distance 0 from itself. With real counts c (N,), fake counts c' (M,),
distances D (N, M) between the sets and k the neighbourhood size, the figures of the resample are

    r_i  = the (k+1)-th smallest distance from real i to the resampled reals, its own c_i copies at 0 included:
           the least d with sum_j c_j [D_rr(i, j) <= d] >= k + 1  (the `prdc` package's radius, self included);
    r'_j likewise for fake j among the resampled fakes;
    precision = sum_j c'_j [some present real i has D_ij < r_i]  / M
    recall    = sum_i c_i  [some present fake j has D_ij < r'_j] / N
    density   = sum_j c'_j sum_i c_i [D_ij < r_i]                 / (k M)
    coverage  = sum_i c_i  [min over present fakes j of D_ij < r_i] / N

exactly what `prdc` computes on the resampled features. The radius only needs each item's nearest neighbours:
the first m (sorted) usually hold k + 1 present copies (a bootstrap keeps ~63 % of the items), and a row whose
first m do not is recomputed from all its distances.
"""
from __future__ import annotations

import numpy as np
import torch

NEIGHBOURS = 64  # nearest neighbours kept per item; P(fewer than k + 1 = 6 present copies among 64) ~ 1e-21


def _distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Euclidean distances (len(x), len(y)) in float64."""
    return torch.cdist(x.double(), y.double())


class Neighbours:
    """Each item's m nearest items of its own set (itself first, at distance 0), sorted by distance."""

    def __init__(self, features: torch.Tensor, m: int = NEIGHBOURS, chunk: int = 1024):
        self.features = features.detach().double().cpu()
        n = len(self.features)
        self.m = min(m, n)
        dist, index = [], []
        for s in range(0, n, chunk):  # chunks of rows: never an N x N matrix in memory
            d = _distances(self.features[s: s + chunk], self.features)
            d[torch.arange(len(d)), torch.arange(s, s + len(d))] = 0.0  # exactly 0 to itself
            top = d.topk(self.m, dim=1, largest=False)  # sorted ascending
            dist.append(top.values)
            index.append(top.indices)
        self.dist, self.index = torch.cat(dist).numpy(), torch.cat(index).numpy()  # (N, m)

    def radii(self, counts: np.ndarray, k: int) -> np.ndarray:
        """(N,) the (k+1)-th smallest distance of each item to the resample given by `counts` (N,)."""
        cum = np.cumsum(counts[self.index], axis=1)  # (N, m) copies within each neighbour distance
        reached = cum[:, -1] >= k + 1
        r = self.dist[np.arange(len(cum)), np.argmax(cum >= k + 1, axis=1)]
        for i in np.flatnonzero(~reached):  # rare: fewer than k + 1 copies among the m nearest
            d = _distances(self.features[i: i + 1], self.features)[0].numpy()
            d[i] = 0.0
            order = np.argsort(d, kind="stable")
            r[i] = d[order][np.argmax(np.cumsum(counts[order]) >= k + 1)]
        return r


class ResampledPRDC:
    """PRDC of resamples of (real, fake) given as counts (module docstring); the reals' `Neighbours` can be shared
    by every fake set scored against the same reference."""

    def __init__(self, real: Neighbours, fake: torch.Tensor, k: int = 5, m: int = NEIGHBOURS):
        self.real, self.fake, self.k = real, Neighbours(fake, m), k
        self.d = _distances(real.features, self.fake.features).numpy()  # (N, M)

    def figures(self, real_counts: np.ndarray, fake_counts: np.ndarray) -> dict[str, float]:
        c, cf, k = np.asarray(real_counts), np.asarray(fake_counts), self.k
        if c.sum() < k + 2 or cf.sum() < k + 2:
            raise ValueError(f"PRDC with k={k} needs at least {k + 2} (k + 2) real and fake points")
        r = np.where(c > 0, self.real.radii(c, k), 0.0)  # absent reals: radius 0 holds nothing (D >= 0)
        rf = np.where(cf > 0, self.fake.radii(cf, k), 0.0)
        inside = self.d < r[:, None]  # (N, M) fake j in real i's ball
        precision = cf @ inside.any(axis=0) / cf.sum()
        recall = c @ (self.d < rf[None, :]).any(axis=1) / c.sum()
        density = cf @ (c @ inside) / (k * cf.sum())
        nearest_fake = np.where(cf[None, :] > 0, self.d, np.inf).min(axis=1)  # (N,) over present fakes
        coverage = c @ (nearest_fake < r) / c.sum()
        return {"precision": float(precision), "recall": float(recall), "density": float(density),
                "coverage": float(coverage)}
