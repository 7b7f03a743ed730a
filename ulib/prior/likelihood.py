"""Likelihoods on validation data (paper Table 4, Fig. 5): the absorbing model's ELBO, the AR model's NLL.

Negative ELBO of the absorbing model (Eq. 6), in bits per token:

    -ELBO(x_0) = sum_{t=1..T} a_t,   a_t = (1/t) E_{q(x_t|x_0)}[ sum_{masked i} -log p([x_0]_i | x_t) ] / (L ln 2)

- `full`: every t = 1..T once (one x_t draw per t): T forward passes per batch.
- `monte_carlo`: n values of t drawn uniformly (with replacement) per grid; the estimate is T * mean(a_t)
  over the draws, unbiased, with standard error T * std(a_t) / sqrt(number of draws). Cheaper by T/n.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ulib.prior.absorbing import AbsorbingDiffusion
from ulib.prior.autoregressive import nll_bits_per_token


@dataclass
class Estimate:
    bits_per_token: float  # mean over the data
    stderr: float  # standard error of the mean (0 for the full sum's t, only x_t is random)
    n_items: int  # grids evaluated
    n_passes: int  # network forward passes used
    per_item: torch.Tensor | None = field(default=None, repr=False)  # (n_items,) bits/token of each grid, on the CPU


@torch.no_grad()
def absorbing_elbo(diffusion: AbsorbingDiffusion, model, data: torch.Tensor, *, mc: int | None = None,
                   batch_size: int = 64, generator: torch.Generator | None = None, progress: bool = False) -> Estimate:
    """Negative ELBO (Eq. 6) of token grids `data` (N, L): the full sum over t (mc=None) or `mc` random t's."""
    if mc is not None and mc < 1:
        raise ValueError(f"mc={mc}; the number of Monte-Carlo draws of t must be >= 1")
    T = diffusion.T
    device = data.device
    per_item, draws, passes = [], [], 0
    starts = range(0, len(data), batch_size)
    if progress:
        starts = tqdm(starts, desc="ELBO", leave=False)
    for i in starts:
        x0 = data[i: i + batch_size].long()
        B = x0.shape[0]
        if mc is None:
            total = torch.zeros(B, device=device)
            for t in range(1, T + 1):
                total += diffusion.elbo_term(model, x0, torch.full((B,), t, device=device), generator)
                passes += 1
            per_item.append(total)
        else:
            terms = []
            for _ in range(mc):
                t = diffusion.sample_time(B, device, generator)
                terms.append(T * diffusion.elbo_term(model, x0, t, generator))  # unbiased for sum_t a_t
                passes += 1
            terms = torch.stack(terms, 1)  # (B, mc)
            per_item.append(terms.mean(1))
            draws.append(terms.flatten())
    values = torch.cat(per_item)
    if mc is None:
        return Estimate(values.mean().item(), 0.0, len(values), passes, values.cpu())
    d = torch.cat(draws)
    stderr = (d.std(unbiased=True) / math.sqrt(d.numel())).item() if d.numel() > 1 else float("nan")
    return Estimate(values.mean().item(), stderr, len(values), passes, values.cpu())


@torch.no_grad()
def ar_nll(model, data: torch.Tensor, batch_size: int = 64) -> Estimate:
    """Exact NLL of the AR model on `data` (N, L), bits per token, with the standard error over grids."""
    vals = torch.cat([nll_bits_per_token(model, data[i: i + batch_size].long())
                      for i in range(0, len(data), batch_size)])
    se = (vals.std(unbiased=True) / math.sqrt(len(vals))).item() if len(vals) > 1 else 0.0
    return Estimate(vals.mean().item(), se, len(vals), math.ceil(len(data) / batch_size), vals.cpu())
