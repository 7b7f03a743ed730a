"""The autoregressive baseline of stage 2 (paper Table 4): exact likelihood and loss.

An AR prior factorises p(x) = prod_i p(x_i | x_<i) over the L tokens of a grid in raster order. The network
(`ulib.prior.transformer.Transformer` with causal=True) reads a start token followed by x[:, :-1] and its output
position i gives the logits of p(x_i | x_<i) (B, L, K): this file holds the process, never the network.

- Likelihood: the exact NLL is sum_i -log p(x_i | x_<i), one teacher-forced forward pass; we report it in
  bits per token, NLL / (L ln 2), the unit of the absorbing model's ELBO (`ulib.prior.absorbing`), so the two
  are comparable (an ELBO is a bound, this is exact).
- Loss: the same figure averaged over the batch (maximum likelihood = minimum cross-entropy).
Its sampler (token by token, with a key/value cache) is `ulib.sample.autoregressive`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


# ---- likelihood and loss -------------------------------------------------------------------------
def _check_causal(model) -> None:
    if getattr(model, "causal", True) is False:
        raise ValueError("the AR likelihood needs a causal model (Transformer(causal=True)); "
                         "a bidirectional one would see the tokens it predicts")


def _token_nll(model, x0: torch.Tensor) -> torch.Tensor:
    """-log p(x_i | x_<i) in nats for every token, (B, L), from one teacher-forced pass."""
    _check_causal(model)
    logits = model(x0[:, :-1])  # (B, L, K): start token + x_0..x_{L-2} -> predictions of x_0..x_{L-1}
    return F.cross_entropy(logits.float().transpose(1, 2), x0, reduction="none")


def ar_loss(model, x0: torch.Tensor) -> dict:
    """Mean cross-entropy of x0 (B, L) in bits per token.

    Returns 'loss' (scalar to minimise) and 'nll_bpt' (the same number, detached, for logging).
    """
    bpt = _token_nll(model, x0).mean() / math.log(2)  # CE / ln 2, averaged over all B x L tokens
    return {"loss": bpt, "nll_bpt": bpt.detach()}


@torch.no_grad()
def nll_bits_per_token(model, x0: torch.Tensor) -> torch.Tensor:
    """Exact NLL of each grid, sum_i -log2 p(x_i | x_<i) / L, shape (B,)."""
    return _token_nll(model, x0).mean(1) / math.log(2)
