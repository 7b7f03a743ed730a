"""The reference set an evaluation compares with: which images of a split (all, or a fixed random subset), and
their features, cached in RUN/eval_cache/ keyed by the dataset's fingerprint, the split, the subset and the
feature extractor (weights sha256 or random seed), and rebuilt when any of them changes.

Without --max-reference a split larger than the paper's 50,000 is subsampled to 50,000 (recorded); with
--max-reference all (or N > REFERENCE_KEEP), FID uses moments streamed over every image and KID/PRDC a fixed
random REFERENCE_KEEP of them, so memory stays ~0.4 GB instead of ~37 GB for LSUN Bedrooms' 3M images.
"""
from __future__ import annotations

import sys

import torch
from torch.utils.data import DataLoader, Subset

from ulib.data.datasets import build_dataset, dataset_fingerprint
from ulib.eval.extractors import stream_features
from ulib.eval.metrics import FeatureMoments
from ulib.eval.recipe import PAPER_N_SAMPLES
from ulib.io.checkpoint import load_checkpoint, save_checkpoint
from ulib.train.common import progress

REFERENCE_SUBSET_SEED = 0  # a --max-reference subset is the same for every evaluation of a run (shared cache)
DEFAULT_MAX_REFERENCE = PAPER_N_SAMPLES
REFERENCE_KEEP = PAPER_N_SAMPLES


def reference_indices(n_total: int, max_n: int | None) -> list[int]:
    """All of range(n_total), or a fixed random subset of max_n (sorted), the same for every evaluation."""
    if max_n is None or max_n >= n_total:
        return list(range(n_total))
    g = torch.Generator().manual_seed(REFERENCE_SUBSET_SEED)
    return sorted(torch.randperm(n_total, generator=g)[:max_n].tolist())


def split_loader(cfg, split: str, indices: list[int], batch_size: int):
    """Batches of (B, 3, H, W) images in [-1, 1] of `indices` of `split`, in order, without augmentation."""
    ds = Subset(build_dataset(cfg.data, split, train_transforms=False), indices)
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=cfg.vqgan_train.num_workers)


def reference_features(run, cfg, inception, split: str, max_n, batch_size: int, show_progress: bool = True):
    """(features (N, 2048) of the reference images, their description): `reference_set` without the moments."""
    feats, key, _ = reference_set(run, cfg, inception, split, max_n, batch_size, show_progress)
    return feats, key


def reference_set(run, cfg, inception, split: str, max_n, batch_size: int, show_progress: bool = True):
    """(features (N, 2048) of the reference images, their description, their streamed moments or None), from
    RUN/eval_cache/ when its key (data fingerprint, split, subset, extractor) still matches, else computed and
    cached. max_n: None (the whole split, at most DEFAULT_MAX_REFERENCE), 'all' or a number. Beyond
    REFERENCE_KEEP images the features of a fixed random REFERENCE_KEEP are kept, with moments of them all."""
    n_total = len(build_dataset(cfg.data, split, train_transforms=False))
    limit = {None: DEFAULT_MAX_REFERENCE, "all": None}.get(max_n, max_n)
    indices = reference_indices(n_total, limit)
    shown = f"default: at most {DEFAULT_MAX_REFERENCE}" if max_n is None else max_n  # recorded, not in the key
    key = {"data_fingerprint": dataset_fingerprint(cfg.data), "split": split, "n": len(indices), "n_split": n_total,
           "subset_seed": REFERENCE_SUBSET_SEED if len(indices) < n_total else None, "image_size": cfg.data.img_size,
           "features": inception.features, "extractor": inception.key, "layer": inception.pool,
           "kept": min(len(indices), REFERENCE_KEEP)}
    path = run.path / "eval_cache" / f"reference_{inception.features}_{split}_{len(indices)}.pt"
    if path.is_file():
        try:
            state = load_checkpoint(path)
        except ValueError as e:
            print(f"rebuilding {path}: {e}", file=sys.stderr)
            state = {}
        if state.get("key") == key:
            moments = state.get("moments")
            return state["features"], dict(key, limit=shown), moments and FeatureMoments.from_state_dict(moments)
        if state:
            changed = sorted(k for k in key if state.get("key", {}).get(k) != key[k])
            print(f"reference features {path} are stale ({', '.join(changed)} changed); rebuilding", file=sys.stderr)
    keep = None
    if len(indices) > REFERENCE_KEEP:  # stream: moments of all, features of a fixed random REFERENCE_KEEP
        keep = torch.zeros(len(indices), dtype=torch.bool)
        keep[torch.randperm(len(indices),
                            generator=torch.Generator().manual_seed(REFERENCE_SUBSET_SEED))[:REFERENCE_KEEP]] = True
    with progress(len(indices), 0, f"reference features ({split})", show_progress) as bar:
        feats, moments = stream_features(inception, split_loader(cfg, split, indices, batch_size), keep, bar)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, {"key": key, "features": feats, "moments": moments and moments.state_dict()})
    return feats, dict(key, limit=shown), moments
