"""The denoising network of stage 2: a GPT-2-style transformer over token grids (paper section 3.2).

Pre-LN blocks (x + attn(ln1(x)), x + mlp(ln2(x))), learned position embeddings, a head to the codebook.
By default attention is bidirectional ("unconstrained"), which is what lets the absorbing prior look at
every unmasked token; `causal=True` gives the autoregressive baseline with a learned start token.

The network knows nothing about diffusion (the process and the network are kept apart): it maps tokens to
logits; masking, losses and
sampling live in `ulib.prior.absorbing` (and `ulib.prior.autoregressive` for the baseline). Module names follow the
official code (tok_emb, pos_emb, start_tok, blocks.N.{ln1,ln2,attn.{key,query,value,proj},mlp.{0,2}},
ln_f, head) so released weights map by name.

Key/value caching (causal model only, for token-by-token sampling): `forward_cached` runs only the new
positions and reads the keys/values of the earlier ones from a `KVCache` (no parameters, so the key layout
is unchanged), so generating L tokens costs O(L) position-passes instead of O(L^2). The plain `forward`
never touches a cache. The network knows no sampler and no CPU speed-up: `ulib.sample.cpu_step` is an
accelerator the AR sampler applies to one-position steps, built from `embed_cached` and this file's weights.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class SelfAttention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention` (bidirectional or causal).

    q, k, v come from three Linear modules (key, query, value: the official names, kept for the key layout). Where
    no gradient flows to them (sampling, evaluation under no_grad) they are one product against the three weights
    stacked, [W_q; W_k; W_v] (3C, C): the input is read once and one large matmul replaces three. The stack is
    cached and rebuilt when a weight changes (another tensor, or an in-place update); under torch.compile it is
    stacked in the graph. Training (gradients on) keeps the three products.
    """

    fused = True  # False: always the three products (the bench's comparison)

    def __init__(self, n_emb: int, n_head: int, dropout: float = 0.0, causal: bool = False):
        super().__init__()
        if n_emb % n_head != 0:
            raise ValueError(f"n_emb={n_emb} is not divisible by n_head={n_head}")
        self.key = nn.Linear(n_emb, n_emb)
        self.query = nn.Linear(n_emb, n_emb)
        self.value = nn.Linear(n_emb, n_emb)
        self.proj = nn.Linear(n_emb, n_emb)
        self.n_head = n_head
        self.dropout = dropout
        self.causal = causal
        self.resid_drop = nn.Dropout(dropout)
        self._stack = None  # (weights, versions, stacked W, stacked b): the fused q/k/v product's cache

    def __getstate__(self):  # copies and pickles leave the cache behind (it belongs to these very tensors)
        return {**self.__dict__, "_stack": None}

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v (B, nh, T, hs) of x (B, T, C): one product against the stacked weights where no gradient is
        needed, else the three modules (class docstring)."""
        B, T, C = x.shape
        if not self.fused or (torch.is_grad_enabled() and any(p.requires_grad for p in self._qkv_params())):
            q, k, v = self.query(x), self.key(x), self.value(x)
        else:
            w, b = self._stacked()
            q, k, v = F.linear(x, w, b).split(C, dim=-1)
        return tuple(t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))

    def _qkv_params(self) -> tuple[torch.Tensor, ...]:
        return (self.query.weight, self.key.weight, self.value.weight, self.query.bias, self.key.bias, self.value.bias)

    def _stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        ps = self._qkv_params()
        if torch.compiler.is_compiling():
            return torch.cat(ps[:3]), torch.cat(ps[3:])
        versions = tuple(p._version for p in ps)
        c = self._stack
        if c is None or c[1] != versions or any(a is not b for a, b in zip(c[0], ps)):
            with torch.no_grad():  # the same tensors (held, so no address is reused) at the same versions
                c = self._stack = (ps, versions, torch.cat(ps[:3]), torch.cat(ps[3:]))
        return c[2], c[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        q, k, v = self.qkv(x)  # (B, L, C) -> (B, nh, L, hs)
        # softmax(q k^T / sqrt(hs)) v, with the causal mask for the AR baseline
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=self.causal
        )
        y = y.transpose(1, 2).reshape(B, L, C)
        return self.resid_drop(self.proj(y))

    def forward_cached(self, x: torch.Tensor, cache: "KVCache", layer: int, pos: int) -> torch.Tensor:
        """Causal attention for T new positions pos..pos+T-1, x (B, T, C), against the cached earlier ones."""
        B, T, C = x.shape
        q, k, v = self.qkv(x)  # (B, nh, T, hs)
        k, v = cache.update(layer, pos, k, v)  # (B, nh, S, hs), S = pos + T: every position so far
        # new query j sits at position pos + j and sees keys 0..pos+j; a single query sees all S keys.
        # (is_causal would align the mask top-left, which is wrong when T < S.)
        mask = None
        if T > 1:
            mask = torch.arange(pos + T, device=x.device) <= pos + torch.arange(T, device=x.device)[:, None]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln1(x)), then x + mlp(ln2(x)); MLP width 4*n_emb with GELU."""

    def __init__(self, n_emb: int, n_head: int, dropout: float = 0.0, causal: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_emb)
        self.ln2 = nn.LayerNorm(n_emb)
        self.attn = SelfAttention(n_emb, n_head, dropout, causal)
        self.mlp = nn.Sequential(
            nn.Linear(n_emb, 4 * n_emb),
            nn.GELU(),
            nn.Linear(4 * n_emb, n_emb),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))

    def forward_cached(self, x: torch.Tensor, cache: "KVCache", layer: int, pos: int) -> torch.Tensor:
        x = x + self.attn.forward_cached(self.ln1(x), cache, layer, pos)
        return x + self.mlp(self.ln2(x))


class KVCache:
    """Keys and values of every layer for the sequence positions seen so far (causal decoding).

    k[l], v[l]: (B, nh, max_len, hs), allocated at the first write of a sequence with the keys' batch,
    dtype and device (so autocast and the caller's device carry over); positions [0, length) are valid.
    Sequence positions count the start token: position 0 is the start token, position p >= 1 is x[:, p-1].
    """

    def __init__(self, n_layers: int, max_len: int):
        self.max_len = max_len
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers
        self.length = 0  # positions filled, start token included

    def update(self, layer: int, pos: int, k: torch.Tensor, v: torch.Tensor):
        """Write k, v (B, nh, T, hs) at positions pos..pos+T-1; return the keys/values of 0..pos+T-1."""
        T = k.shape[2]
        buf = self.k[layer]
        if buf is None or buf.shape[:2] != k.shape[:2] or buf.dtype != k.dtype or buf.device != k.device:
            if pos != 0:
                raise ValueError(f"layer {layer}: the cache holds no keys of this shape/dtype/device to continue "
                                 f"from at position {pos}; start a new sequence at position 0")
            shape = (k.shape[0], k.shape[1], self.max_len, k.shape[3])
            self.k[layer] = k.new_empty(shape)
            self.v[layer] = v.new_empty(shape)
        self.k[layer][:, :, pos:pos + T] = k
        self.v[layer][:, :, pos:pos + T] = v
        return self.k[layer][:, :, :pos + T], self.v[layer][:, :, :pos + T]


class Transformer(nn.Module):
    """Tokens (B, L) -> logits (B, L, codebook_size).

    Absorbing prior (causal=False): the vocabulary has codebook_size + 1 entries, the last being the mask
    token (id = codebook_size); the head predicts only real codes.
    AR baseline (causal=True): vocabulary codebook_size; a learned start token is prepended, so the input
    is x[:, :-1] and output position i predicts x[:, i].
    """

    def __init__(self, codebook_size: int, block_size: int, n_emb: int = 256, n_head: int = 8,
                 n_layers: int = 8, dropout: float = 0.0, causal: bool = False):
        super().__init__()
        self.codebook_size = codebook_size
        self.block_size = block_size
        self.causal = causal
        self.mask_id = None if causal else codebook_size
        vocab = codebook_size if causal else codebook_size + 1
        self.tok_emb = nn.Embedding(vocab, n_emb)
        self.pos_emb = nn.Parameter(torch.zeros(1, block_size, n_emb))
        self.start_tok = nn.Parameter(torch.zeros(1, 1, n_emb))  # used by the causal model only
        if not causal:  # kept for the official key layout; frozen so DDP does not wait for its gradient
            self.start_tok.requires_grad_(False)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*[Block(n_emb, n_head, dropout, causal) for _ in range(n_layers)])
        self.ln_f = nn.LayerNorm(n_emb)
        self.head = nn.Linear(n_emb, codebook_size, bias=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # GPT-2 initialisation, as in the official code
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @classmethod
    def from_config(cls, prior_cfg, codebook_size: int, block_size: int) -> "Transformer":
        return cls(codebook_size=codebook_size, block_size=block_size, n_emb=prior_cfg.n_emb,
                   n_head=prior_cfg.n_head, n_layers=prior_cfg.n_layers, dropout=prior_cfg.dropout,
                   causal=prior_cfg.kind == "autoregressive")

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """Final hidden states (B, L, n_emb) after ln_f; `head` turns them into logits.

        Samplers that need logits at a few positions only call this and apply `head` there.
        """
        x = self.tok_emb(idx)  # (B, L, C)
        if self.causal:
            x = torch.cat([self.start_tok.expand(x.shape[0], -1, -1), x], dim=1)
        L = x.shape[1]
        if L > self.block_size:
            raise ValueError(f"sequence length {L} exceeds the model's block_size {self.block_size}")
        x = self.drop(x + self.pos_emb[:, :L])
        x = self.blocks(x)
        return self.ln_f(x)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(idx))  # (B, L, codebook_size)

    # ---- key/value caching (causal model, inference) ----------------------------------------------
    def new_cache(self) -> KVCache:
        """An empty cache for one batch of sequences of up to block_size positions."""
        return KVCache(len(self.blocks), self.block_size)

    def forward_cached(self, idx_new: torch.Tensor, cache: KVCache, start: int) -> torch.Tensor:
        """Logits for the new tokens idx_new = x[:, start:start+T] (B, T), reusing the cached start token
        and x[:, :start]; logits[:, -1] predicts the next token x[:, start+T].

        Empty cache (a new sequence): start must be 0, the start token is fed first (T may be 0: the start
        token alone) and the result is (B, T+1, K), equal to `forward(idx_new)`. Otherwise the cache must
        hold the start token and at least x[:, :start] (start <= cache.length - 1; a smaller start rewinds,
        overwriting what follows) and the result is (B, T, K), equal to `forward(x[:, :start+T])[:, start+1:]`.
        For inference (under torch.no_grad()); the cache is written in place.
        """
        x, pos = self.embed_cached(idx_new, cache, start)
        logits = self.run_cached(x, cache, pos)
        cache.length = pos + x.shape[1]
        return logits  # (B, T, codebook_size), T counting the start token if fed

    def embed_cached(self, idx_new: torch.Tensor, cache: KVCache, start: int) -> tuple[torch.Tensor, int]:
        """The checks and input embedding of `forward_cached`: (x (B, T, C), sequence position of x[:, 0])."""
        if not self.causal:
            raise ValueError("forward_cached needs the causal (autoregressive) model; this one is bidirectional")
        n_cached = max(cache.length - 1, 0)  # tokens of x in the cache, the start token not counted
        if not 0 <= start <= n_cached:
            raise ValueError(f"start={start}, but the cache holds {n_cached} tokens after the start token; "
                             f"allowed: 0..{n_cached}")
        x = self.tok_emb(idx_new)  # (B, T, C)
        pos = start + 1  # sequence position of idx_new[:, 0]; the start token sits at 0
        if cache.length == 0:
            x = torch.cat([self.start_tok.expand(x.shape[0], -1, -1), x], dim=1)
            pos = 0
        T = x.shape[1]
        if pos + T > self.block_size:
            raise ValueError(f"sequence length {pos + T} exceeds the model's block_size {self.block_size}")
        return self.drop(x + self.pos_emb[:, pos:pos + T]), pos

    def run_cached(self, x: torch.Tensor, cache: KVCache, pos: int) -> torch.Tensor:
        """The blocks and head of `forward_cached` on embedded x (B, T, C) at positions pos..pos+T-1."""
        for layer, block in enumerate(self.blocks):
            x = block.forward_cached(x, cache, layer, pos)
        return self.head(self.ln_f(x))
