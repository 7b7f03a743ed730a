"""Encode a dataset once into token grids with the trained VQGAN, and cache them.

The cache (run/latents.pt) records a fingerprint of the VQGAN checkpoint and of the data config; when
either changes the cache is stale and is rebuilt. Tokens are stored in the smallest integer dtype that
holds the codebook (uint8 for K <= 256, else int16).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from ulib.config import Config
from ulib.data.datasets import build_dataset, dataset_fingerprint
from ulib.io.checkpoint import load_checkpoint, save_checkpoint
from ulib.train import distributed as dist_utils
from ulib.trained import load_run_vqgan, vqgan_digest
from ulib.vq.chunked import encode_chunked


def latents_fingerprint(cfg: Config, vqgan_ckpt: Path) -> str:
    """16 hex digits that change with the VQGAN checkpoint's bytes or the data config: the cache's identity,
    also recorded in every prior checkpoint trained on it."""
    parts = [vqgan_digest(vqgan_ckpt), dataset_fingerprint(cfg.data), str(cfg.data.flip)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def token_dtype(codebook_size: int) -> torch.dtype:
    return torch.uint8 if codebook_size <= 256 else torch.int16


@torch.no_grad()
def encode_split(vqgan, dataset, device, batch_size: int = 64, flip: bool = False, desc: str = "",
                 progress: bool = True, num_workers: int = 0, dtype: torch.dtype = torch.long,
                 both: bool = False):
    """Token grids (N, h, w) of every image of `dataset` (optionally mirrored), in `dtype`.

    both=True encodes each image and its mirror image from one read of the file: returns (plain, mirrored).
    Images come through `num_workers` loader processes in pinned memory on CUDA; the tokens are narrowed to
    `dtype` on the device, batch by batch, so only the small integers cross back to the host. A batch larger than
    the free memory holds is encoded in chunks (`ulib.vq.chunked.encode_chunked`: the same tokens)."""
    device = torch.device(device)
    out, out_flipped = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    for x in tqdm(loader, desc=desc or "encoding", leave=False, mininterval=1.0, disable=not progress):
        x = x.to(device, non_blocking=True)
        if both:
            out_flipped.append(encode_chunked(vqgan, x.flip(-1)).to(dtype).cpu())
        elif flip:
            x = x.flip(-1)
        out.append(encode_chunked(vqgan, x).to(dtype).cpu())
    return (torch.cat(out), torch.cat(out_flipped)) if both else torch.cat(out)


def encode_dataset(cfg: Config, vqgan_ckpt: Path, out: Path, device, use_ema: bool = True,
                   batch_size: int = 64, progress: bool = True, rank: int = 0, world: int = 1) -> dict:
    """Encode the train and validation splits; write `out` atomically; return the cache dict.

    With world > 1 this process encodes images rank, rank + world, ... of each split and writes them to
    `shard_path(out, rank, world)` instead (returning that shard); `merge_shards` joins them."""
    fp = latents_fingerprint(cfg, vqgan_ckpt)
    vqgan = load_run_vqgan(cfg, vqgan_ckpt, device, use_ema=use_ema)
    dt = token_dtype(cfg.vqgan.codebook_size)
    cache = {"fingerprint": fp, "codebook_size": cfg.vqgan.codebook_size}
    opts = dict(batch_size=batch_size, progress=progress and rank == 0, num_workers=cfg.vqgan_train.num_workers,
                dtype=dt)
    for split in ("train", "val"):
        def build(split=split):
            return build_dataset(cfg.data, split, train_transforms=False)
        # rank 0 first: an image folder's up-front decode check runs once, the other processes read its verdict
        ds = dist_utils.rank0_first(build) if split == "train" else build()
        if world > 1:
            ds = Subset(ds, range(rank, len(ds), world))
        if split == "train" and cfg.data.flip:  # mirrored training images too, so the prior sees the augmentation
            cache["train"], cache["train_flipped"] = encode_split(vqgan, ds, device, desc="encoding train (+ mirrored)",
                                                                  both=True, **opts)
        else:
            cache[split] = encode_split(vqgan, ds, device, desc=f"encoding {split}", **opts)
    save_checkpoint(shard_path(out, rank, world) if world > 1 else out, cache)
    return cache


def shard_path(out: Path, rank: int, world: int) -> Path:
    return out.parent / f".{out.name}.shard{rank}of{world}"


def merge_shards(out: Path, world: int) -> dict:
    """Join the shards of `world` processes into `out` (shard r holds items r, r + world, ...); delete them."""
    shards = [load_checkpoint(shard_path(out, r, world)) for r in range(world)]
    fps = {s["fingerprint"] for s in shards}
    if len(fps) != 1:
        raise ValueError(f"the latent shards of {out} were made from different checkpoints or data ({sorted(fps)})")
    cache = {"fingerprint": fps.pop(), "codebook_size": shards[0]["codebook_size"]}
    for key in [k for k in shards[0] if isinstance(shards[0][k], torch.Tensor)]:
        parts = [s[key] for s in shards]
        merged = parts[0].new_empty((sum(len(p) for p in parts), *parts[0].shape[1:]))
        for r, part in enumerate(parts):
            merged[r::world] = part  # item i came from shard i % world, at place i // world
        cache[key] = merged
    save_checkpoint(out, cache)
    for r in range(world):
        shard_path(out, r, world).unlink()
    return cache


def _stored_fingerprint(path: Path) -> str | None:
    """The fingerprint of the cache at `path` (memory-mapped: the tokens are not read), None if unreadable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("fingerprint")
    except Exception:
        return None


def load_latents_distributed(cfg: Config, vqgan_ckpt: Path, path: Path, device, rank: int, world: int,
                             progress: bool = True) -> dict:
    """`load_latents` for every process of a torchrun job: when the cache is missing or stale, each process
    encodes its 1/world share (instead of rank 0 encoding everything while the others wait at a barrier for
    hours, past any collective timeout), rank 0 merges the shards, and every process reads the result."""
    if world <= 1:
        return load_latents(cfg, vqgan_ckpt, path, device, progress=progress)
    fresh = _stored_fingerprint(path) == latents_fingerprint(cfg, vqgan_ckpt)
    if not fresh:
        encode_dataset(cfg, vqgan_ckpt, path, device, progress=progress, rank=rank, world=world)
        dist_utils.barrier()
        if rank == 0:
            merge_shards(path, world)
    dist_utils.barrier()
    return load_latents(cfg, vqgan_ckpt, path, device, rebuild="never")


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
