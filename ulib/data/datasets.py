"""The datasets a config names: `build_dataset(cfg.data, split)` builds the kind data.dataset names through the
registry `ulib.config.DATASETS` (the built-in OpenMoji set `ulib.data.openmoji`, a folder of images
`ulib.data.folders`, FFHQ, or an LSUN LMDB `ulib.data.lsun`; each module exports `build` and `fingerprint`) and
applies the deterministic train/validation(/test) split; `dataset_fingerprint` changes whenever its images may.

Every dataset yields float32 tensors (3, H, W) in [-1, 1] (`ulib.data.images`). Where to get the paper's
datasets and where to put them: data/README.md. OpenMoji: "All emojis designed by OpenMoji – the open-source
emoji and icon project. License: CC BY-SA 4.0" (https://openmoji.org).
"""
from __future__ import annotations

import hashlib
import importlib
import json
import re
from collections import Counter
from types import ModuleType

import numpy as np
from torch.utils.data import Dataset, Subset

from ulib.config import DATASETS, SPLIT_BY, DataConfig, allowed_datasets
from ulib.data.families import collapse_duplicates, family_key, group_split, split_groups
from ulib.data.folders import ImageFolderDataset, file_list_facts


def skipped_files(ds: Dataset) -> dict[str, str]:
    """The files an image folder's up-front check left out under data.skip_bad ({} for other datasets)."""
    base = ds.dataset if isinstance(ds, Subset) else ds
    return dict(getattr(base, "skipped", {}))


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic shuffled split of range(n) -> (train_idx, val_idx), each sorted, int64.

    |val| = round(n * val_fraction), at least 1 when val_fraction > 0 and n >= 2, at most n - 1.
    """
    if n < 0 or not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"split_indices: n={n}, val_fraction={val_fraction}; allowed: n >= 0, 0 <= val_fraction < 1")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]).astype(np.int64), np.sort(perm[:n_val]).astype(np.int64)


def random_split(n: int, val_fraction: float, test_fraction: float, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """split_indices plus a test side: (train_idx, val_idx, test_idx). With test_fraction 0 it is exactly
    split_indices (and an empty test side), so runs made before the test split keep their split; otherwise
    validation is the same first round(n * val_fraction) places of the same permutation and test the next."""
    if test_fraction == 0:
        return (*split_indices(n, val_fraction, seed), np.zeros(0, np.int64))
    if not (0 <= val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"random_split: val_fraction={val_fraction}, test_fraction={test_fraction}; allowed: "
                         f"both >= 0 with val_fraction + test_fraction < 1")
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    perm = np.random.default_rng(seed).permutation(n)
    return tuple(np.sort(p).astype(np.int64) for p in (perm[n_val + n_test:], perm[:n_val],
                                                         perm[n_val:n_val + n_test]))


def openmoji_split(names: list[str], images: np.ndarray, cfg: DataConfig
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """split_by='family': families (ulib.data.families.family_key) joined with pixel-identical renders, whole
    groups to one side, seeded by cfg.split_seed."""
    groups = split_groups([family_key(n) for n in names], collapse_duplicates(images))
    return group_split(groups, (cfg.val_fraction, cfg.test_fraction), cfg.split_seed)


def path_group_keys(paths: list[str], pattern: str) -> list[tuple]:
    """split_by='group': each path's group key under data.group_pattern, searched in the path (relative,
    '/'-separated). The first capture group (the whole match when the pattern has none) is the key, so equal
    keys share a side; a path the pattern does not match, or whose group 1 takes no part, is its own group."""
    rx = re.compile(pattern)
    keys = []
    for p in paths:
        m = rx.search(p)
        key = None if m is None else m.group(1) if rx.groups else m.group(0)
        keys.append(("file", p) if key is None else ("group", key))
    return keys


def folder_split(ds: ImageFolderDataset, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """split_by='group': group_split over the folder's files keyed by path_group_keys, seeded by cfg.split_seed.
    A side asked for (a fraction > 0) that no whole group fits in is an error, not an empty side."""
    rel = [rel for rel, _, _ in file_list_facts(ds.root, ds.files)]
    keys = path_group_keys(rel, cfg.group_pattern)
    sides = group_split(keys, (cfg.val_fraction, cfg.test_fraction), cfg.split_seed)
    for name, fraction, side in (("val", cfg.val_fraction, sides[1]), ("test", cfg.test_fraction, sides[2])):
        if fraction > 0 and len(side) == 0:
            sizes = sorted(Counter(keys).values(), reverse=True)
            raise ValueError(f"data.group_pattern={cfg.group_pattern!r} makes {len(sizes)} groups of {len(keys)} files "
                             f"in {str(ds.root)!r} (largest {sizes[0]}), and no whole group falls in the {name} split "
                             f"({name}_fraction={fraction}); allowed: a pattern with smaller groups, or a larger "
                             f"{name}_fraction")
    return sides


def dataset_module(name: str) -> ModuleType:
    """The module registered for data.dataset=name in `ulib.config.DATASETS`: it exports
    `build(cfg, *, flip) -> Dataset` (every item, float32 (3, S, S) in [-1, 1], before any split) and
    `fingerprint(cfg) -> dict` (JSON facts of the source its images depend on)."""
    if name not in DATASETS:
        raise ValueError(f"data.dataset={name!r}; allowed: {allowed_datasets()}")
    return importlib.import_module(DATASETS[name])


def build_dataset(cfg: DataConfig, split: str, *, train_transforms: bool | None = None) -> Dataset:
    """The dataset `cfg` describes, restricted to split 'train', 'val', 'test' or 'all'.

    cfg.split_by picks the split ('random'; 'family' for OpenMoji; 'group' with cfg.group_pattern for a folder);
    'test' needs cfg.test_fraction > 0.

    Random flips (cfg.flip) apply only with train transforms, which default to on for 'train' only.
    OpenMoji ("All emojis designed by OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0")
    is rendered once and cached under cfg.cache_dir.
    """
    if split not in ("train", "val", "test", "all"):
        raise ValueError(f"build_dataset: split={split!r}; allowed: 'train', 'val', 'test', 'all'")
    if split == "test" and cfg.test_fraction == 0:
        raise ValueError("build_dataset: split='test' but data.test_fraction=0 (no test split); allowed: "
                         "set data.test_fraction > 0, or ask for 'train', 'val' or 'all'")
    if SPLIT_BY.get(cfg.split_by, "") not in (None, cfg.dataset) or (cfg.split_by == "group" and not cfg.group_pattern):
        raise ValueError(f"data.split_by={cfg.split_by!r} with data.dataset={cfg.dataset!r}; allowed: 'random', "
                         f"'family' for openmoji, or 'group' with data.group_pattern for a folder")
    if train_transforms is None:
        train_transforms = split == "train"
    ds = dataset_module(cfg.dataset).build(cfg, flip=bool(cfg.flip and train_transforms))
    if split == "all":
        return ds
    return Subset(ds, split_sides(cfg, ds)[split].tolist())


def split_sides(cfg: DataConfig, ds: Dataset) -> dict[str, np.ndarray]:
    """{'train', 'val', 'test': sorted int64 indices} of the whole dataset `ds` under cfg.split_by."""
    if cfg.split_by == "family":
        sides = openmoji_split(ds.names, ds.images, cfg)
    elif cfg.split_by == "group":
        sides = folder_split(ds, cfg)
    else:
        sides = random_split(len(ds), cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
    return dict(zip(("train", "val", "test"), sides))


def split_record(cfg: DataConfig) -> dict | None:
    """What each side of cfg's split holds, for RUN/split.json: {split: {'count', 'sha256' of the names joined by
    newlines, 'names' sorted}} plus the split settings. OpenMoji only (its names are cheap to list); None for
    other datasets."""
    if cfg.dataset != "openmoji":
        return None
    ds = build_dataset(cfg, "all", train_transforms=False)
    rec: dict = dict(split_by=cfg.split_by, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                     split_seed=cfg.split_seed)
    sides = split_sides(cfg, ds)
    for split in ("train", "val") + (("test",) if cfg.test_fraction > 0 else ()):
        names = sorted(ds.names[i] for i in sides[split])
        rec[split] = dict(count=len(names), sha256=hashlib.sha256("\n".join(names).encode()).hexdigest(),
                          names=names)
    return rec


def dataset_fingerprint(cfg: DataConfig) -> str:
    """16 hex digits that change whenever the images build_dataset(cfg, ...) yields may change.

    Covers the kind, img_size, split settings and the source's identity, as its module's `fingerprint` states
    it: the OpenMoji package and renderer versions; a folder's resolved path and sorted file list with sizes and
    mtimes; an LMDB's resolved path and data.mdb size and mtime.
    """
    module = dataset_module(cfg.dataset)
    facts: dict = dict(dataset=cfg.dataset, img_size=cfg.img_size, val_fraction=cfg.val_fraction,
                       split_seed=cfg.split_seed)
    # Added later: named only when not the defaults, so runs made before them keep their fingerprint
    if cfg.split_by != "random":
        facts.update(split_by=cfg.split_by)
    if cfg.test_fraction != 0:
        facts.update(test_fraction=cfg.test_fraction)
    if cfg.group_pattern:
        facts.update(group_pattern=cfg.group_pattern)
    facts.update(module.fingerprint(cfg))
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
