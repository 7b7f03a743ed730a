"""The denoising network of stage 2: a GPT-2-style transformer over token grids (paper section 3.2).

Pre-LN blocks (x + attn(ln1(x)), x + mlp(ln2(x))), learned position embeddings, a head to the codebook.
By default attention is bidirectional ("unconstrained"), which is what lets the absorbing prior look at
every unmasked token; `causal=True` gives the autoregressive baseline with a learned start token.

The network knows nothing about diffusion (CONVENTIONS): it maps tokens to logits; masking, losses and
sampling live in `ulib.absorbing`. Module names follow the official code (tok_emb, pos_emb, start_tok,
blocks.N.{ln1,ln2,attn.{key,query,value,proj},mlp.{0,2}}, ln_f, head) so released weights map by name.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class SelfAttention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention` (bidirectional or causal)."""

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        # (B, L, C) -> (B, nh, L, hs)
        q = self.query(x).view(B, L, self.n_head, C // self.n_head).transpose(1, 2)
        k = self.key(x).view(B, L, self.n_head, C // self.n_head).transpose(1, 2)
        v = self.value(x).view(B, L, self.n_head, C // self.n_head).transpose(1, 2)
        # softmax(q k^T / sqrt(hs)) v, with the causal mask for the AR baseline
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=self.causal
        )
        y = y.transpose(1, 2).reshape(B, L, C)
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
