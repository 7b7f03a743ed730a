"""Evaluation metrics of the paper's tables, computed with the libraries the field uses.

- Sample quality (Tables 1, 2): FID, KID and IS through torch-fidelity's own functions, and Precision, Recall,
  Density and Coverage (Naeem et al. 2020) through the `prdc` package, all on one set of features: the 2048-d
  pool features (and, for IS, the 1008 logits) of torch-fidelity's InceptionV3 ('inception-v3-compat'). It takes
  uint8 images of any size and resizes them inside the network to 299x299 with TensorFlow-1.x-compatible
  bilinear interpolation (what the official code got by calling torch-fidelity with default settings).
  (FID of sets smaller than the 2048 feature dimensions goes through an exact low-rank identity; see `fid`.)
- Reconstruction quality (Table 5): rFID is `fid` between the features of the originals and of their
  reconstructions; PSNR, SSIM, LPIPS and codebook usage are in `ulib.eval.reconstruction`.
- Nearest neighbours of samples in the training set by LPIPS distance (supplementary C), as an image grid.

The features come from `ulib.eval.extractors` (InceptionV3, random Inception, the OpenMoji network).
"""
from __future__ import annotations

import contextlib
import io
import math
import os
from typing import Callable, Iterable, NamedTuple

import numpy as np
import torch

from ulib.io.logs import save_image_grid


# ---- figures from features ---------------------------------------------------------------------------
def _features(x) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().float().cpu()
    if x.dim() != 2:
        raise ValueError(f"features must be (N, D); got shape {tuple(x.shape)}")
    return x


def fid(real, fake) -> float:
    """Fréchet distance of feature sets (N, D): ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2).

    torch-fidelity's own statistics and metric (an eigendecomposition of the D x D product S1 S2: half a minute
    on two CPU cores for D = 2048) whenever a set is larger than D, as at the paper's 50,000 samples; for smaller
    sets the same value, to float precision, through N x N matrices (`fid_method` says which).
    """
    real, fake = _features(real), _features(fake)
    if fid_method(len(real), len(fake), real.shape[1]) == "low-rank":
        return _fid_low_rank(real, fake)
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    s1, s2 = fid_features_to_statistics(real), fid_features_to_statistics(fake)
    return float(fid_statistics_to_metric(s1, s2, verbose=False)[KEY_METRIC_FID])


def fid_method(n_real: int, n_fake: int, dim: int) -> str:
    """'torch-fidelity' (fid_statistics_to_metric) or 'low-rank' (`_fid_low_rank`, when both sets are smaller
    than the feature dimension)."""
    return "low-rank" if max(n_real, n_fake) < dim else "torch-fidelity"


def _fid_low_rank(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID through the centred features X (n1, D), Y (n2, D): S1 = X^T X / (n1-1), S2 = Y^T Y / (n2-1), and the
    non-zero eigenvalues of S1 S2 are those of (X Y^T)(X Y^T)^T / c, c = (n1-1)(n2-1); so
    tr (S1 S2)^1/2 = ||X Y^T||_* / sqrt(c), the sum of the singular values of an n1 x n2 matrix."""
    x, y = real.double(), fake.double()
    mu1, mu2 = x.mean(0), y.mean(0)
    xc, yc = x - mu1, y - mu2
    n1, n2 = len(x), len(y)
    tr_covmean = torch.linalg.svdvals(xc @ yc.T).sum() / math.sqrt((n1 - 1) * (n2 - 1))
    value = (mu1 - mu2).pow(2).sum() + xc.pow(2).sum() / (n1 - 1) + yc.pow(2).sum() / (n2 - 1) - 2 * tr_covmean
    return float(value)


def _weighted_moments(x: torch.Tensor, counts) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and covariance (D, D), float64, of the rows of x (N, D) repeated counts (N,) times each:
    mu = sum_i c_i x_i / n, S = sum_i c_i (x_i - mu)(x_i - mu)^T / (n - 1), n = sum_i c_i (np.cov of the repeats)."""
    x = _features(x).double()
    w = torch.ones(len(x), dtype=torch.float64) if counts is None else torch.as_tensor(counts).double()
    if w.shape != (len(x),):
        raise ValueError(f"counts of shape {tuple(w.shape)} for {len(x)} feature vectors; need one count per item")
    n = float(w.sum())
    if n < 2:
        raise ValueError(f"a covariance needs at least 2 drawn items; the counts sum to {n:g}")
    mu = (w @ x) / n
    xc = x - mu
    return mu, (xc.T * w) @ xc / (n - 1)


def fid_resampled(real, fake, counts_real=None, counts_fake=None) -> float:
    """`fid` of a bootstrap resample given as item counts (N,) (how often each item was drawn; None: once each):
    the value of `fid(real[idx], fake[jdx])` for the drawn indices, without copying the resample.

    Moments from the counts (`_weighted_moments`), and tr (S1 S2)^1/2 = tr (S1^1/2 S2 S1^1/2)^1/2 (similar
    matrices share eigenvalues), two symmetric D x D eigendecompositions: about ten times faster than the
    non-symmetric eigenvalues of S1 S2 (0.03 against 0.3 CPU-seconds at D = 256, n = 2,000), which is what makes
    200 bootstrap draws per figure cheap. Tiny negative eigenvalues of rank-deficient covariances are set to 0."""
    mu1, s1 = _weighted_moments(real, counts_real)
    mu2, s2 = _weighted_moments(fake, counts_fake)
    lam, q = torch.linalg.eigh(s1)
    root = (q * lam.clamp_min(0).sqrt()) @ q.T  # S1^1/2
    tr_covmean = torch.linalg.eigvalsh(root @ s2 @ root).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + s1.trace() + s2.trace() - 2 * tr_covmean)


def kid(real, fake, subsets: int = 100, subset_size: int = 1000, seed: int = 2020) -> dict:
    """Kernel Inception Distance by torch-fidelity (cubic polynomial kernel, unbiased MMD^2 over random subsets).
    The subset size shrinks to the smaller set when needed (torch-fidelity's default is 1000)."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    real, fake = _features(real), _features(fake)
    size = min(subset_size, len(real), len(fake))
    out = kid_features_to_metric(real, fake, kid_subsets=subsets, kid_subset_size=size, rng_seed=seed,
                                 verbose=False)
    return {"kid_mean": float(out[KEY_METRIC_KID_MEAN]), "kid_std": float(out[KEY_METRIC_KID_STD]),
            "kid_subset_size": size, "kid_subsets": subsets}


def inception_score(logits, splits: int = 10, seed: int = 2020) -> dict:
    """Inception Score by torch-fidelity: exp(E_x KL(p(y|x) || p(y))) in `splits` chunks, mean and std."""
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    logits = _features(logits)
    splits = max(1, min(splits, len(logits)))
    out = isc_features_to_metric(logits, splits=splits, shuffle=True, rng_seed=seed)
    return {"is_mean": float(out[KEY_METRIC_ISC_MEAN]), "is_std": float(out[KEY_METRIC_ISC_STD]), "is_splits": splits}


def prdc(real, fake, k: int = 5) -> dict:
    """Precision, Recall, Density, Coverage (Naeem et al. 2020) by the `prdc` package, k-NN balls of radius the
    distance to the k-th nearest neighbour. Needs k >= 1 and at least k + 2 points in each set (the package
    ranks each point's distances to all points of its set, itself included, and takes index k + 1 of them)."""
    from prdc import compute_prdc

    real, fake = _features(real).numpy(), _features(fake).numpy()
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"PRDC with k={k!r}; allowed: an integer k >= 1")
    if min(len(real), len(fake)) < k + 2:
        raise ValueError(f"PRDC with k={k} needs at least {k + 2} (k + 2) real and fake points; got {len(real)} "
                         f"and {len(fake)}")
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the set sizes
        out = compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    return {name: float(out[name]) for name in ("precision", "recall", "density", "coverage")}


# ---- nearest neighbours (supplementary C) --------------------------------------------------------------
class Neighbours(NamedTuple):
    distances: torch.Tensor  # (n, k) ascending
    indices: torch.Tensor  # (n, k) positions in the order the reference batches were given
    images: torch.Tensor  # (n, k, 3, H, W) the neighbours themselves, in [-1, 1]


@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, references: Iterable[torch.Tensor],
                       distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], k: int = 10,
                       progress=None) -> Neighbours:
    """The k reference images closest to each query under `distance(x, y) -> (B,)` (e.g. LPIPS), streamed over
    reference batches so the reference set never sits in memory; exhaustive, like the official script."""
    n = queries.shape[0]
    best_d = torch.full((n, 0), float("inf"))
    best_i = torch.zeros((n, 0), dtype=torch.long)
    best_x = queries.new_zeros((n, 0, *queries.shape[1:])).cpu()
    seen = 0
    for batch in references:
        b = batch.shape[0]
        batch = batch.to(queries.device, queries.dtype)
        d = torch.stack([distance(q.expand_as(batch), batch).cpu() for q in queries])  # (n, b)
        all_d = torch.cat([best_d, d], 1)  # (n, k' + b): the kept ones, then this batch
        all_i = torch.cat([best_i, torch.arange(seen, seen + b).expand(n, b)], 1)
        best_d, order = all_d.topk(min(k, all_d.shape[1]), dim=1, largest=False)  # sorted ascending
        best_i = all_i.gather(1, order)
        batch = batch.cpu()
        best_x = torch.stack([torch.cat([best_x[j], batch])[order[j]] for j in range(n)])
        seen += b
        if progress is not None:
            progress.update(b)
    if seen == 0:
        raise ValueError("nearest_neighbours: no reference images")
    return Neighbours(best_d, best_i, best_x)


def save_neighbours_grid(queries: torch.Tensor, neighbours: Neighbours, path: str | os.PathLike) -> None:
    """One row per query: the query, then its neighbours from nearest to farthest."""
    rows = torch.cat([queries.cpu()[:, None].float(), neighbours.images.float()], 1)  # (n, 1 + k, 3, H, W)
    save_image_grid(rows.flatten(0, 1), path, nrow=rows.shape[1], upscale=max(1, 64 // queries.shape[-1]))


# ---- streamed statistics (reference sets too large to hold) -----------------------------------------------
class FeatureMoments:
    """Mean and covariance of features (N, D), accumulated batch by batch, in float64 on the CPU.

    Chan, Golub & LeVeque's pairwise update: with n items of mean mu and scatter M2 = sum (x - mu)(x - mu)^T
    so far, a batch of m items with mean mu_b and scatter M2_b gives, for delta = mu_b - mu,
        mu <- mu + delta m / (n + m),    M2 <- M2 + M2_b + delta delta^T n m / (n + m),
    exact (no large sums of squares to cancel); cov = M2 / (N - 1), np.cov's estimate. Memory is D x D
    doubles (32 MB for the 2048-d pool features) for any N: ~3M LSUN images need no 37 GB of features.
    """

    def __init__(self, dim: int):
        self.n = 0
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self.m2 = torch.zeros(dim, dim, dtype=torch.float64)

    def update(self, features) -> "FeatureMoments":
        x = _features(features).double()  # (m, D)
        m = len(x)
        if m == 0:
            return self
        if x.shape[1] != len(self.mean):
            raise ValueError(f"features of dimension {x.shape[1]}; these moments are of dimension {len(self.mean)}")
        mu_b = x.mean(0)
        xc = x - mu_b
        delta = mu_b - self.mean
        total = self.n + m
        self.m2 += xc.T @ xc + torch.outer(delta, delta) * (self.n * m / total)
        self.mean += delta * (m / total)
        self.n = total
        return self

    @classmethod
    def of(cls, features) -> "FeatureMoments":
        x = _features(features)
        return cls(x.shape[1]).update(x)

    @property
    def cov(self) -> torch.Tensor:
        if self.n < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors; got {self.n}")
        return self.m2 / (self.n - 1)

    def state_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean, "m2": self.m2}

    @classmethod
    def from_state_dict(cls, state: dict) -> "FeatureMoments":
        out = cls(len(state["mean"]))
        out.n, out.mean, out.m2 = int(state["n"]), state["mean"].double(), state["m2"].double()
        return out


def fid_from_moments(a: FeatureMoments, b: FeatureMoments) -> float:
    """FID of two sets given by their moments, by torch-fidelity's `fid_statistics_to_metric` (as `fid`)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    s1, s2 = ({"mu": m.mean.numpy(), "sigma": m.cov.numpy()} for m in (a, b))
    return float(fid_statistics_to_metric(s1, s2, verbose=False)[KEY_METRIC_FID])


def fid_against(real: torch.Tensor, real_moments: FeatureMoments | None, fake: torch.Tensor) -> float:
    """`fid(real, fake)`, or, when the reference was streamed (`real_moments`), FID from the moments of all of it."""
    if real_moments is None:
        return fid(real, fake)
    return fid_from_moments(real_moments, FeatureMoments.of(fake))
