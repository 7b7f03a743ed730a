"""The autoregressive baseline of stage 2 (paper Table 4): exact likelihood, loss and token-by-token sampling.

An AR prior factorises p(x) = prod_i p(x_i | x_<i) over the L tokens of a grid in raster order. The network
(`ulib.transformer.Transformer` with causal=True) reads a start token followed by x[:, :-1] and its output
position i gives the logits of p(x_i | x_<i) (B, L, K): this file holds the process, never the network.

- Likelihood: the exact NLL is sum_i -log p(x_i | x_<i), one teacher-forced forward pass; we report it in
  bits per token, NLL / (L ln 2), the unit of the absorbing model's ELBO (`ulib.absorbing`), so the two
  are comparable (an ELBO is a bound, this is exact).
- Loss: the same figure averaged over the batch (maximum likelihood = minimum cross-entropy).
- Sampling: L sequential draws x_i ~ softmax(logits_i / temperature), optionally restricted to the top_k
  logits. With key/value caching each step runs the network on one new position only (L position-passes
  in all; on CPU through `ulib.fast_decode`, a lean step with the weights split across the cores); without
  it every step re-runs the whole prefix (L(L+1)/2). Both draw one uniform per image per step from the generator (inverse CDF,
  `ulib.sampling.categorical`), so under one seed they give the same tokens (the logits agree to float
  rounding, which could only flip a draw that lands within ~1e-7 of a category boundary).

Steps are separate calls (like diffusers' `scheduler.step`) so notebooks and widgets can show each one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .sampling import categorical


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


# ---- sampling ------------------------------------------------------------------------------------
@dataclass
class ARStepResult:
    x: torch.Tensor  # (B, i+1) tokens after the step
    token: torch.Tensor  # (B,) the token drawn at position i
    logits: torch.Tensor  # (B, K) raw logits of p(x_i | x_<i), before temperature and top_k
    i: int  # position drawn by this step


class ARSampler:
    """Token-by-token sampler for a causal model, with temperature, top-k and (optional) kv caching.

    model: `Transformer(causal=True)`; use_cache=True needs its `forward_cached`/`new_cache`, and
    use_cache=False only needs tokens (B, i) -> logits (B, i+1, K) (the head runs on the last position only
    when the model has `features` and `head`). Put the model in eval() mode: dropout would draw from the
    global RNG, not from `generator`.

    The cache follows the sequence it produced: `step(x)` continues from the cache when x is the tensor
    the previous step returned, and otherwise rebuilds it from x in one pass (so starting from a prefix
    works too). Do not edit a returned x in place.
    """

    def __init__(self, model, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None, use_cache: bool = True, fast_steps: bool = True):
        if not temperature > 0:
            raise ValueError(f"temperature={temperature}; must be > 0")
        K = getattr(model, "codebook_size", None)
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1
                                  or (K is not None and top_k > K)):
            raise ValueError(f"top_k={top_k!r}; allowed: None or an integer in 1..{K if K else 'K'}")
        if use_cache and not hasattr(model, "forward_cached"):
            raise ValueError(f"use_cache=True needs a model with forward_cached; {type(model).__name__} has none")
        self.model = model
        self.temperature = temperature
        self.top_k = top_k
        self.generator = generator
        self.use_cache = use_cache
        self.fast_steps = fast_steps  # cached one-token steps on CPU take ulib.fast_decode's lean path
        self.cache = None
        self._last = None  # the x the cache belongs to
        self.forward_passes = 0

    def initial_state(self, batch: int, device) -> torch.Tensor:
        """No tokens yet: (B, 0)."""
        return torch.zeros(batch, 0, dtype=torch.long, device=device)

    def next_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, K) of p(x_i | x_<i) for the next position i = x.shape[1]."""
        self.forward_passes += 1
        if not self.use_cache:  # the whole prefix again: start token + x_0..x_{i-1}
            if hasattr(self.model, "features") and hasattr(self.model, "head"):
                return self.model.head(self.model.features(x)[:, -1])
            return self.model(x)[:, -1]
        if x is not self._last or self.cache is None:
            self.cache = self.model.new_cache(self.fast_steps)  # empty: the start token and all of x go in one pass
        n_cached = max(self.cache.length - 1, 0)  # tokens of x already in the cache (i - 1 when continuing)
        return self.model.forward_cached(x[:, n_cached:], self.cache, n_cached)[:, -1]

    def draw(self, logits: torch.Tensor) -> torch.Tensor:
        """x_i ~ softmax(top_k(logits) / temperature), (B,); the same generator calls whatever the logits."""
        if self.top_k is not None and self.top_k > logits.shape[-1]:
            raise ValueError(f"top_k={self.top_k} exceeds the number of codes K={logits.shape[-1]}")
        logits = logits.float() / self.temperature
        if self.top_k is not None:
            kth = torch.topk(logits, self.top_k, dim=-1).values[:, -1:]  # (B, 1) k-th largest
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        # inverse CDF with one uniform per row: the law of torch.multinomial(probs, 1), which draws an
        # exponential for every one of the K codes (4x this draw's time at K = 1024 on a CPU)
        u = torch.rand(probs.shape[0], generator=self.generator, device=probs.device)
        return categorical(probs, u)

    @torch.no_grad()
    def step(self, x: torch.Tensor) -> ARStepResult:
        """Draw token i = x.shape[1] given x (B, i)."""
        logits = self.next_logits(x)
        token = self.draw(logits)
        x_new = torch.cat([x, token[:, None]], dim=1)
        self._last = x_new
        return ARStepResult(x_new, token, logits, x.shape[1])

    @torch.no_grad()
    def sample(self, batch: int, length: int, device, x: torch.Tensor | None = None,
               callback=None, progress: bool = False) -> torch.Tensor:
        """Draw tokens until there are `length` (from nothing, or continuing the prefix x); returns (B, L).

        callback(i, ARStepResult) is called after each step (for pictures of the process).
        """
        block = getattr(self.model, "block_size", None)
        if length < 1 or (block is not None and length > block):
            raise ValueError(f"length={length}; allowed: 1..block_size={block}")
        x = self.initial_state(batch, device) if x is None else x
        if x.shape[1] > length:
            raise ValueError(f"the prefix has {x.shape[1]} tokens, more than length={length}")
        steps = range(x.shape[1], length)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="sampling", leave=False)
        for i in steps:
            res = self.step(x)
            x = res.x
            if callback is not None:
                callback(i, res)
        return x


def sample_ar(model, batch: int, length: int, device, temperature: float = 1.0, top_k: int | None = None,
              generator: torch.Generator | None = None, use_cache: bool = True, callback=None,
              fast_steps: bool = True) -> torch.Tensor:
    """Sample `batch` sequences of `length` tokens from the AR model, (B, L) long; see `ARSampler`."""
    sampler = ARSampler(model, temperature, top_k, generator, use_cache, fast_steps)
    return sampler.sample(batch, length, device, callback=callback)
