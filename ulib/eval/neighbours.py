"""Nearest neighbours of image or feature rows: `rows` turns features (N, D) or images (N, C, H, W) into float64
rows on the CPU (images as the PNG values they would be saved as, / 255), `nearest` finds each query row's
Euclidean nearest reference row, exactly (an exact copy is at distance 0). `ulib.eval.memorisation` and
`ulib.eval.data_copying` measure with them.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ulib.eval.extractors import to_uint8


def rows(x, name: str = "rows") -> torch.Tensor:
    """float64 (N, D) rows on the CPU from features (N, D) or images (N, C, H, W).

    Images are compared as the PNGs they would be saved as: uint8 u stays u, a float image in [-1, 1] becomes
    u = round((x + 1) * 127.5) (`ulib.eval.extractors.to_uint8`); then the row is u / 255 in [0, 1], flattened.
    """
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    x = x.detach().cpu()
    if x.dim() == 4:
        if x.dtype != torch.uint8:
            if not torch.isfinite(x).all():
                raise ValueError(f"{name}: the images contain NaN or inf")
            x = to_uint8(x)
        return x.flatten(1).double() / 255.0
    if x.dim() != 2:
        raise ValueError(f"{name}: expected features (N, D) or images (N, C, H, W); got shape {tuple(x.shape)}")
    x = x.double()
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: the features contain NaN or inf")
    return x


def check_sets(**sets: torch.Tensor) -> None:
    """Each set non-empty; all of one dimension D (a ValueError names the set and the dimensions)."""
    for name, x in sets.items():
        if len(x) == 0:
            raise ValueError(f"memorisation: {name} is empty (0 rows); each set needs at least one")
    dims = {name: x.shape[1] for name, x in sets.items()}
    if len(set(dims.values())) > 1:
        what = ", ".join(f"{name} {d}" for name, d in dims.items())
        raise ValueError(f"memorisation: the sets have different dimensions ({what}); compare rows of one space")


@torch.no_grad()
def nearest(query, reference, batch_size: int = 1024, exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances (N,) float64, indices (N,) long): for each query row its Euclidean nearest reference row.

    query, reference: features (N, D) or images (N, C, H, W) (see `rows`). exclude_self: the query is the
    reference itself and row i may not pick itself (leave-one-out: i's distance to the rest of the set);
    duplicates of row i elsewhere in the set still count, at distance 0.

    torch.cdist in float64 over batches of `batch_size` query rows picks the neighbour; for large sets it uses
    ||q||^2 + ||r||^2 - 2 q.r, which loses digits when q ~ r, so the chosen pair's distance is then recomputed
    directly, ||q - r||: an exact copy is at distance 0.
    """
    q, r = rows(query, "query"), rows(reference, "reference")
    if len(q) == 0 or len(r) == 0:
        raise ValueError(f"nearest: empty set (query {len(q)} rows, reference {len(r)} rows)")
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"nearest: query rows have {q.shape[1]} dimensions, reference rows {r.shape[1]}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"nearest: batch_size={batch_size!r}; allowed: an int >= 1")
    if exclude_self:
        if q.shape != r.shape:
            raise ValueError(f"nearest: exclude_self needs the query to be the reference; got {len(q)} and "
                             f"{len(r)} rows")
        if len(r) < 2:
            raise ValueError("nearest: exclude_self needs at least 2 rows (a row's nearest other row)")
    dist, idx = [], []
    for start in range(0, len(q), batch_size):
        qb = q[start: start + batch_size]
        d = torch.cdist(qb, r)  # (b, R)
        if exclude_self:
            own = torch.arange(start, start + len(qb))
            d[torch.arange(len(qb)), own] = math.inf
        i = d.argmin(1)
        dist.append((qb - r[i]).norm(dim=1))  # the exact distance of the chosen pair
        idx.append(i)
    return torch.cat(dist), torch.cat(idx)
