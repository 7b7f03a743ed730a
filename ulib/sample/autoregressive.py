"""Sampling the autoregressive baseline (paper Table 4): L sequential draws, token by token.

x_i ~ softmax(logits_i / temperature), optionally restricted to the top_k logits, in raster order. With a
key/value cache each step runs the network on one new position only (L position-passes in all); on CPU the
sampler applies `ulib.sample.cpu_step` there (a lean step with the weights split across the cores), an
accelerator the network itself knows nothing of. Without the cache every step re-runs the whole prefix
(L(L+1)/2). Both draw one float64 uniform per image per step from the generator (inverse CDF,
`ulib.sample.base.categorical`), so under one seed they give the same tokens (the logits agree to float
rounding, which could only flip a draw that lands within ~1e-7 of a category boundary).

Steps are separate calls (the protocol of `ulib.sample.base`) so notebooks and widgets can show each one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ulib.sample.base import Sampler, SampleStep, SamplingContext, categorical, uniforms
from ulib.sample.cpu_step import CachedForward


# ---- sampling ------------------------------------------------------------------------------------
def tempered_probs(logits: torch.Tensor, temperature: float, top_k: int | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """softmax(top_k(logits) / temperature) over the last axis, in `dtype`: the AR model's p(x_i | x_<i) as it
    is sampled (logits (..., K); top_k None keeps every code, else the k largest logits, ties included)."""
    logits = logits.to(dtype) / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (..., 1) k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(logits, dim=-1)


@dataclass(frozen=True)
class AROptions:
    """The AR baseline's settings."""

    top_k: int | None = None  # draw from the k most likely codes only; None: the whole softmax
    use_cache: bool = True  # key/value cache: one new position per step (else the whole prefix again)
    fast_steps: bool = True  # on CPU, cached steps take ulib.sample.cpu_step's lean path

    def __post_init__(self):
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, int)
                                       or self.top_k < 1):
            raise ValueError(f"top_k={self.top_k!r}; allowed: None or an integer >= 1")


def check_causal_model(model, length: int, top_k: int | None, use_cache: bool) -> int | None:
    """ValueError unless the AR model can be sampled so: top_k within its codebook, forward_cached for the
    cache, length in 1..block_size. Returns the codebook size K (None for a callable that does not say)."""
    K = getattr(model, "codebook_size", None)
    if top_k is not None and K is not None and top_k > K:
        raise ValueError(f"top_k={top_k!r}; allowed: None or an integer in 1..{K}")
    if use_cache and not hasattr(model, "forward_cached"):
        raise ValueError(f"use_cache=True needs a model with forward_cached; {type(model).__name__} has none")
    block = getattr(model, "block_size", None)
    if length < 1 or (block is not None and length > block):
        raise ValueError(f"length={length}; allowed: 1..block_size={block}")
    return K


class ARSampler(Sampler):
    """Token-by-token sampler for a causal model, with temperature, top-k and (optional) kv caching (method
    'autoregressive', chosen by the prior's kind).

    The context's net: `Transformer(causal=True)`; use_cache=True needs its `forward_cached`/`new_cache`, and
    use_cache=False only needs tokens (B, i) -> logits (B, i+1, K) (the head runs on the last position only
    when the model has `features` and `head`). Put the model in eval() mode: dropout would draw from the
    global RNG, not from the generator. The start state is a prefix (B, i) (`initial_state`: no tokens);
    `start` returns the steps to the context's length. extras of each `SampleStep`: 'token' ((B,) the token
    drawn), 'logits' ((B, K) raw logits of p(x_i | x_<i), before temperature and top_k) and 'i' (its position).

    The cache follows the sequence it produced: `step(x)` continues from the cache when x is the tensor
    the previous step returned, and otherwise rebuilds it from x in one pass (so starting from a prefix
    works too). Do not edit a returned x in place.
    """

    Options = AROptions

    def __init__(self, ctx: SamplingContext, steps: int | None = None, options: AROptions | None = None):
        super().__init__(ctx, steps, options)
        model, o = self.model, self.options
        check_causal_model(model, ctx.length, o.top_k, o.use_cache)
        self.top_k, self.use_cache = o.top_k, o.use_cache
        # cached one-token steps on CPU take ulib.sample.cpu_step's lean path unless fast_steps=False
        self.forward_cached = CachedForward(model, enabled=o.fast_steps) if o.use_cache else None
        self.cache = None
        self._last = None  # the x the cache belongs to

    def initial_state(self, batch: int, device) -> torch.Tensor:
        """No tokens yet: (B, 0)."""
        return torch.zeros(batch, 0, dtype=torch.long, device=device)

    def start(self, x: torch.Tensor) -> int:
        """The steps from the prefix x (B, i) to the context's length."""
        if x.dim() != 2 or x.shape[1] > self.ctx.length:
            raise ValueError(f"the prefix has shape {tuple(x.shape)}; expected (B, i) with i <= length="
                             f"{self.ctx.length}")
        return self.ctx.length - x.shape[1]

    def next_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, K) of p(x_i | x_<i) for the next position i = x.shape[1]."""
        self.forward_passes += 1
        if not self.use_cache:  # the whole prefix again: start token + x_0..x_{i-1}
            if hasattr(self.model, "features") and hasattr(self.model, "head"):
                return self.model.head(self.model.features(x)[:, -1])
            return self.model(x)[:, -1]
        if x is not self._last or self.cache is None:
            self.cache = self.model.new_cache()  # empty: the start token and all of x go in one pass
        n_cached = max(self.cache.length - 1, 0)  # tokens of x already in the cache (i - 1 when continuing)
        return self.forward_cached(x[:, n_cached:], self.cache, n_cached)[:, -1]

    def draw(self, logits: torch.Tensor) -> torch.Tensor:
        """x_i ~ softmax(top_k(logits) / temperature), (B,); the same generator calls whatever the logits."""
        if self.top_k is not None and self.top_k > logits.shape[-1]:
            raise ValueError(f"top_k={self.top_k} exceeds the number of codes K={logits.shape[-1]}")
        probs = tempered_probs(logits, self.temperature, self.top_k)
        # inverse CDF with one float64 uniform per row: the law of torch.multinomial(probs, 1), which draws an
        # exponential for every one of the K codes (4x this draw's time at K = 1024 on a CPU)
        return categorical(probs, uniforms(probs.shape[0], self.generator, probs.device))

    @torch.no_grad()
    def step(self, x: torch.Tensor, k: int | None = None) -> SampleStep:
        """Draw token i = x.shape[1] given x (B, i) (k, the step's number, is not needed)."""
        logits = self.next_logits(x)
        token = self.draw(logits)
        x_new = torch.cat([x, token[:, None]], dim=1)
        self._last = x_new
        wrote = torch.zeros_like(x_new, dtype=torch.bool)
        wrote[:, -1] = True
        return SampleStep(x_new, wrote, extras={"token": token, "logits": logits, "i": x.shape[1]})


def sample_ar(model, batch: int, length: int, device, temperature: float = 1.0, top_k: int | None = None,
              generator: torch.Generator | None = None, use_cache: bool = True, callback=None,
              fast_steps: bool = True) -> torch.Tensor:
    """Sample `batch` sequences of `length` tokens from the AR model, (B, L) long; see `ARSampler`."""
    ctx = SamplingContext(model, 0, None, length, temperature=temperature, generator=generator)
    sampler = ARSampler(ctx, options=AROptions(top_k, use_cache, fast_steps))
    return sampler.sample(sampler.initial_state(batch, device), callback=callback)


@torch.no_grad()
def fill_ar(model, tokens: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Inpainting with the AR baseline: the positions where mask (B, L) is True are drawn in raster order,
    x_i ~ softmax(logits_i / temperature) of p(x_i | x_<i), every other token kept as given; returns (B, L).

    The causal model conditions on what lies before i only (the rows above and the left of its own row), never
    on the kept tokens after it: the inpainting an autoregressive prior can do without retraining, to set beside
    the absorbing prior's, which sees every kept token (paper section 4.5). One forward pass of the prefix per
    position that some image fills; one uniform per image per such position from `generator` (inverse CDF).
    """
    if tokens.dim() != 2 or mask.shape != tokens.shape:
        raise ValueError(f"tokens {tuple(tokens.shape)} and mask {tuple(mask.shape)}; expected both (B, L)")
    if not temperature > 0:
        raise ValueError(f"temperature={temperature}; must be > 0")
    x = tokens.clone()
    mask = mask.to(torch.bool)
    for i in torch.nonzero(mask.any(0)).flatten().tolist():
        logits = model(x[:, :i])[:, -1].float() / temperature  # (B, K): p(x_i | x_<i)
        drawn = categorical(torch.softmax(logits, dim=-1), uniforms(x.shape[0], generator, x.device))
        x[:, i] = torch.where(mask[:, i], drawn, x[:, i])
    return x
