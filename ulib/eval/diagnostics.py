"""Sanity views of a trained absorbing prior: how well it fills in masked tokens as the mask ratio grows.

The plot that tells whether stage 2 learned anything: token accuracy and cross-entropy on validation grids,
as a function of the fraction r of masked tokens. A prior that learned nothing sits at the marginal
frequency of the commonest code for every r (the usual cause of monochrome samples); a useful one is far
better at small r (many visible neighbours) and degrades towards the marginal as r -> 1.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@torch.no_grad()
def accuracy_by_mask_ratio(model, data: torch.Tensor, mask_id: int, ratios=DEFAULT_RATIOS,
                           generator: torch.Generator | None = None, batch_size: int = 64) -> list[dict]:
    """For each ratio r: mask each token of `data` (N, L) with probability r and score the predictions there.

    Returns rows {'mask_ratio', 'accuracy' (argmax == truth), 'cross_entropy_bits' (mean -log2 p(truth)),
    'n_masked'} over all masked positions.
    """
    rows = []
    for r in ratios:
        if not 0 < r <= 1:
            raise ValueError(f"mask ratio {r}; allowed: 0 < r <= 1")
        correct, ce, n = 0, 0.0, 0
        for i in range(0, len(data), batch_size):
            x0 = data[i: i + batch_size].long()
            mask = torch.rand(x0.shape, device=x0.device, generator=generator) < r
            logits = model(torch.where(mask, torch.full_like(x0, mask_id), x0)).float()  # (B, L, K)
            correct += (logits.argmax(-1) == x0)[mask].sum().item()
            ce += F.cross_entropy(logits[mask], x0[mask], reduction="sum").item()
            n += int(mask.sum())
        rows.append({"mask_ratio": r, "accuracy": correct / max(n, 1),
                     "cross_entropy_bits": ce / max(n, 1) / math.log(2), "n_masked": n})
    return rows


def marginal_baseline(data: torch.Tensor, codebook_size: int) -> dict:
    """What a prior that ignores the context achieves: accuracy of always guessing the commonest code and
    the entropy of the code histogram (bits)."""
    counts = torch.bincount(data.flatten().long().cpu(), minlength=codebook_size).double()  # CPU: MPS has no float64
    p = counts / counts.sum()
    return {"accuracy": p.max().item(), "cross_entropy_bits": -(torch.special.xlogy(p, p).sum() / math.log(2)).item()}


def plot_accuracy_by_mask_ratio(rows: list[dict], baseline: dict | None = None, path=None):
    """Two panels (accuracy, cross-entropy) against the mask ratio; saved to `path` when given."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    r = [row["mask_ratio"] for row in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
    a.plot(r, [row["accuracy"] for row in rows], "o-", label="prior")
    b.plot(r, [row["cross_entropy_bits"] for row in rows], "o-", label="prior")
    if baseline is not None:
        a.axhline(baseline["accuracy"], ls="--", c="gray", label="commonest code")
        b.axhline(baseline["cross_entropy_bits"], ls="--", c="gray", label="code marginal")
    a.set(xlabel="mask ratio", ylabel="token accuracy", ylim=(0, 1))
    b.set(xlabel="mask ratio", ylabel="cross-entropy (bits)")
    a.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
