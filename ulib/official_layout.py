"""The key layout of the checkpoints released with the official code (samb-t/unleashing-transformers), mapped
onto ulib's modules both ways.

The official code saves `model.state_dict()` to `logs/<log_dir>/saved_models/<name>_<step>.th`
(utils/log_utils.py `save_model`). The released files come in three layouts:

- VQGAN (`vqgan_ema_<step>.th`, `vqgan_<step>.th`): the whole `VQGAN` training module. Its `ae.*` keys are
  the autoencoder, which is `ulib.vq.model.VQAutoEncoder` key for key; `disc.*` (patch discriminator) and
  `perceptual.*` (LPIPS) are training-only and ignored here.
- absorbing sampler (`absorbing_ema_<step>.th`): the whole `AbsorbingDiffusion` module. `_denoise_fn.*` is the
  transformer (`ulib.prior.transformer.Transformer`, causal=False); the buffers `Lt_history`, `Lt_count`,
  `loss_history` (length diffusion_steps+1) are training statistics for importance sampling, ignored here.
- autoregressive sampler (`autoregressive_ema_<step>.th`): `net.*` is the transformer (causal=True). Its attention
  layers also hold a buffer `net.blocks.N.attn.mask` = tril(ones(n, n)) viewed (1, 1, n, n), n = prod(latent_shape);
  ours gets the same masking from `scaled_dot_product_attention(is_causal=True)`, so the buffers are checked
  (lower-triangular pattern, shape) and dropped.

`ulib.official` reads these files with the names here; `to_official_state_dict` writes the other way, which the
tests use for round trips (and which lets the official scripts read a ulib-trained model).
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn as nn

from ulib.io.checkpoint import unwrap
from ulib.io.files import is_int
from ulib.prior.transformer import Transformer
from ulib.vq.model import VQAutoEncoder

PAPER_TOTAL_STEPS = 256  # diffusion steps T: the absorbing file's buffers have length T + 1
SAMPLER_KINDS = ("absorbing", "autoregressive")

PREFIXES = {"vqgan": "ae", "absorbing": "_denoise_fn", "autoregressive": "net"}  # kind -> its modules' key prefix
ABSORBING_BUFFERS = ("Lt_history", "Lt_count", "loss_history")
VQGAN_TRAINING_ONLY = ("disc.", "perceptual.")
_MASK_KEY = re.compile(r"net\.blocks\.(\d+)\.attn\.mask")


def check_kind(kind, allowed=SAMPLER_KINDS) -> str:
    """`kind` when it is one of `allowed` (the sampler files' kinds by default); else a ValueError naming them."""
    if kind not in allowed:
        raise ValueError(f"kind={kind!r}; allowed: {', '.join(map(repr, allowed))}")
    return kind


def under_prefix(prefix: str, module: nn.Module) -> nn.Module:
    """A holder whose state-dict keys are `prefix.` + module's, so checks and errors use the official names."""
    holder = nn.Module()
    holder.add_module(prefix, module)
    return holder


# ---- reading: the autoregressive file's attention masks ---------------------------------------------
def mask_problems(state: dict, n_layers: int, n: int) -> tuple[dict, list[str]]:
    """Split off the AR attention masks; list any missing, unexpected, mis-shaped or non-causal ones."""
    masks = {k: v for k, v in state.items() if _MASK_KEY.fullmatch(k)}
    expected = {f"net.blocks.{i}.attn.mask" for i in range(n_layers)}
    problems = [f"missing {k}" for k in sorted(expected - set(masks))]
    problems += [f"unexpected {k}" for k in sorted(set(masks) - expected)]
    for k in sorted(set(masks) & expected):
        m = masks[k]
        if not isinstance(m, torch.Tensor) or tuple(m.shape) != (1, 1, n, n):
            problems.append(f"{k}: shape {tuple(getattr(m, 'shape', ()))}, expected (1, 1, {n}, {n}) with "
                            f"n = prod(latent_shape)")
        elif not torch.equal(m[0, 0] != 0, torch.ones(n, n, dtype=torch.bool).tril()):
            # the official forward masks exactly where the buffer is 0: it must be zero above the diagonal only
            problems.append(f"{k}: not lower-triangular ones (nonzero exactly on and below the diagonal)")
    return {k: v for k, v in state.items() if k not in masks}, problems


# ---- writing the official layout ---------------------------------------------------------------------
def to_official_state_dict(model: nn.Module, kind: str, total_steps: int = PAPER_TOTAL_STEPS,
                           latent_shape=None) -> dict:
    """`model`'s weights in the layout of an official file of `kind` ('vqgan', 'absorbing', 'autoregressive').

    vqgan: `ae.` + the VQAutoEncoder keys (no disc./perceptual.: the official samplers read only `ae.*`).
    absorbing: zero buffers Lt_history, Lt_count, loss_history of length total_steps + 1, then `_denoise_fn.` keys.
    autoregressive: `net.` keys with a tril(ones) (1, 1, n, n) `attn.mask` buffer in every block, n =
    prod(latent_shape) if given, else the model's block_size (equal in every official configuration).
    Tensors are shared with the model, as with `state_dict()`; torch.save copies them.
    """
    check_kind(kind, ("vqgan",) + SAMPLER_KINDS)
    model = unwrap(model)
    if kind == "vqgan":
        if not isinstance(model, VQAutoEncoder):
            raise ValueError(f"kind='vqgan' needs a VQAutoEncoder, got {type(model).__name__}")
        return {f"ae.{k}": v for k, v in model.state_dict().items()}
    if not isinstance(model, Transformer) or model.causal != (kind == "autoregressive"):
        got = f"Transformer(causal={model.causal})" if isinstance(model, Transformer) else type(model).__name__
        raise ValueError(f"kind={kind!r} needs a Transformer(causal={kind == 'autoregressive'}), got {got}")
    sd = model.state_dict()
    device = model.pos_emb.device
    if kind == "absorbing":
        if not is_int(total_steps) or total_steps < 1:
            raise ValueError(f"total_steps={total_steps!r} must be an int >= 1")
        out = {name: torch.zeros(total_steps + 1, device=device) for name in ABSORBING_BUFFERS}
        out.update({f"_denoise_fn.{k}": v for k, v in sd.items()})
        return out
    n = math.prod(latent_shape) if latent_shape is not None else model.block_size
    out = {}
    for k, v in sd.items():
        m = re.fullmatch(r"blocks\.(\d+)\.attn\.key\.weight", k)
        if m:  # the official attention registers its buffer before its Linear layers
            out[f"net.blocks.{m.group(1)}.attn.mask"] = torch.ones(n, n, device=device).tril().view(1, 1, n, n)
        out[f"net.{k}"] = v
    return out
