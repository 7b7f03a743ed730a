"""Temperature and diversity (paper Fig. 6): simple figures that show the quality/diversity trade-off.

Lower temperatures sharpen p(x_0 | x_t): samples get cleaner but more alike and biased towards the
commonest codes. Two measures that move with it:
- token entropy: the entropy (bits) of the histogram of all sampled tokens; it falls as samples collapse
  onto fewer codes;
- mean pairwise distance: the mean over pairs i != j of the per-pixel RMS distance between samples.
"""
from __future__ import annotations

import math
from typing import Callable

import torch


def token_entropy(tokens: torch.Tensor, codebook_size: int) -> float:
    """Entropy in bits of the pooled token histogram of `tokens` (any shape)."""
    counts = torch.bincount(tokens.flatten().long().cpu(), minlength=codebook_size).double()  # CPU: MPS has no float64
    p = counts / counts.sum()
    return -(torch.special.xlogy(p, p).sum() / math.log(2)).item()


def mean_pairwise_distance(images: torch.Tensor) -> float:
    """Mean over pairs i != j of sqrt(mean((x_i - x_j)^2)) for images (N, C, H, W); 0 for N < 2."""
    n = images.shape[0]
    if n < 2:
        return 0.0
    flat = images.reshape(n, -1).cpu().double()  # CPU: MPS has no float64
    d = torch.cdist(flat, flat) / math.sqrt(flat.shape[1])  # (N, N) RMS distances
    return (d.sum() / (n * (n - 1))).item()


def temperature_sweep(sample: Callable[[float], tuple[torch.Tensor, torch.Tensor]], temperatures,
                      codebook_size: int) -> list[dict]:
    """sample(temperature) -> (images (N,3,H,W), tokens); returns one row per temperature with both measures
    and the images (for a picture grid)."""
    rows = []
    for t in temperatures:
        if t <= 0:
            raise ValueError(f"temperature {t}; must be > 0")
        images, tokens = sample(t)
        rows.append({"temperature": t, "token_entropy_bits": token_entropy(tokens, codebook_size),
                     "pairwise_distance": mean_pairwise_distance(images), "images": images})
    return rows
