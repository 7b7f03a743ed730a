"""Encode a dataset once into token grids with the trained VQGAN, and cache them.

The cache (run/latents.pt) records a fingerprint of the VQGAN checkpoint and of the data config; when
either changes the cache is stale and is rebuilt. Tokens are stored in the smallest integer dtype that
holds the codebook (uint8 for K <= 256, else int16).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config
from .data import build_dataset, dataset_fingerprint
from .loading import load_vqgan


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def latents_fingerprint(cfg: Config, vqgan_ckpt: Path) -> str:
    if not vqgan_ckpt.exists():
        raise FileNotFoundError(f"no VQGAN checkpoint at {vqgan_ckpt}; run `python -m ulib train-vqgan` first")
    parts = [file_digest(vqgan_ckpt), dataset_fingerprint(cfg.data), str(cfg.data.flip)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def token_dtype(codebook_size: int) -> torch.dtype:
    return torch.uint8 if codebook_size <= 256 else torch.int16


@torch.no_grad()
def encode_split(vqgan, dataset, device, batch_size: int = 64, flip: bool = False, desc: str = "",
                 progress: bool = True) -> torch.Tensor:
    """Token grids (N, h, w) of every image of `dataset` (optionally mirrored)."""
    from tqdm.auto import tqdm

    out = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for x in tqdm(loader, desc=desc or "encoding", leave=False, mininterval=1.0, disable=not progress):
        x = x.to(device)
        if flip:
            x = x.flip(-1)
        out.append(vqgan.encode(x).cpu())
    return torch.cat(out)


def encode_dataset(cfg: Config, vqgan_ckpt: Path, out: Path, device, use_ema: bool = True,
                   batch_size: int = 64, progress: bool = True) -> dict:
    """Encode the train and validation splits; write `out` atomically; return the cache dict."""
    fp = latents_fingerprint(cfg, vqgan_ckpt)
    vqgan = load_vqgan(cfg, vqgan_ckpt, device, use_ema=use_ema)
    dt = token_dtype(cfg.vqgan.codebook_size)
    cache = {"fingerprint": fp, "codebook_size": cfg.vqgan.codebook_size}
    for split in ("train", "val"):
        ds = build_dataset(cfg.data, split, train_transforms=False)
        cache[split] = encode_split(vqgan, ds, device, batch_size, desc=f"encoding {split}", progress=progress).to(dt)
    if cfg.data.flip:  # mirrored training images, so the prior sees the same augmentation
        ds = build_dataset(cfg.data, "train", train_transforms=False)
        cache["train_flipped"] = encode_split(vqgan, ds, device, batch_size, flip=True, desc="encoding flipped",
                                               progress=progress).to(dt)
    save_checkpoint(out, cache)
    return cache


def load_latents(cfg: Config, vqgan_ckpt: Path, path: Path, device, rebuild: str = "auto",
                 use_ema: bool = True, progress: bool = True) -> dict:
    """The cached latents, rebuilt when missing or stale (rebuild='auto'), or always ('force').

    rebuild='never' raises ValueError on a missing or stale cache instead.
    """
    if rebuild not in ("auto", "force", "never"):
        raise ValueError(f"rebuild={rebuild!r}; allowed: 'auto', 'force', 'never'")
    fp = latents_fingerprint(cfg, vqgan_ckpt)
    if rebuild != "force" and path.exists():
        cache = load_checkpoint(path)
        if cache.get("fingerprint") == fp:
            return cache
        if rebuild == "never":
            raise ValueError(f"{path} is stale: it was made from another VQGAN checkpoint or data config")
        print(f"{path} is stale (VQGAN checkpoint or data changed): re-encoding")
    elif rebuild == "never":
        raise ValueError(f"no latents at {path}; run `python -m ulib encode` first")
    return encode_dataset(cfg, vqgan_ckpt, path, device, use_ema=use_ema, progress=progress)
