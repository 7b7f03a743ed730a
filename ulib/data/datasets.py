"""The datasets a config names: `build_dataset(cfg.data, split)` picks the built-in OpenMoji set
(`ulib.data.openmoji`), a folder of images (`ulib.data.folders`, FFHQ) or an LSUN LMDB (`ulib.data.lsun`) and
applies the deterministic train/validation split; `dataset_fingerprint` changes whenever its images may.

Every dataset yields float32 tensors (3, H, W) in [-1, 1] (`ulib.data.images`). Where to get the paper's
datasets and where to put them: data/README.md. OpenMoji: "All emojis designed by OpenMoji – the open-source
emoji and icon project. License: CC BY-SA 4.0" (https://openmoji.org).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset, Subset

from ulib.config import DataConfig
from ulib.data.folders import ImageFolderDataset, file_list_facts, scan_images
from ulib.data.images import DATA_README, ArrayImageDataset, DatasetNotFoundError
from ulib.data.lsun import LSUNDataset, lmdb_data_file
from ulib.data.openmoji import FONT_SCALE, RENDERER_VERSION, has_raqm, load_openmoji, openmoji_version


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


def _require_path(cfg: DataConfig) -> str:
    if not cfg.path:
        raise ValueError(f"data.path must be set for data.dataset={cfg.dataset!r} (an image folder or an LSUN "
                         f"LMDB folder, e.g. --set data.path=data/ffhq); {DATA_README}")
    return cfg.path


def build_dataset(cfg: DataConfig, split: str, *, train_transforms: bool | None = None) -> Dataset:
    """The dataset `cfg` describes, restricted to split 'train', 'val' or 'all'.

    Random flips (cfg.flip) apply only with train transforms, which default to on for 'train' only.
    OpenMoji ("All emojis designed by OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0")
    is rendered once and cached under cfg.cache_dir.
    """
    if split not in ("train", "val", "all"):
        raise ValueError(f"build_dataset: split={split!r}; allowed: 'train', 'val', 'all'")
    if train_transforms is None:
        train_transforms = split == "train"
    flip = bool(cfg.flip and train_transforms)
    if cfg.dataset == "openmoji":
        images, names = load_openmoji(cfg.img_size, cfg.cache_dir)
        ds: Dataset = ArrayImageDataset(images, flip=flip, names=names)
    elif cfg.dataset == "folder":
        ds = ImageFolderDataset(_require_path(cfg), cfg.img_size, flip=flip, skip_bad=cfg.skip_bad, check=True,
                                cache_dir=cfg.cache_dir)
    elif cfg.dataset == "lsun":
        ds = LSUNDataset(_require_path(cfg), cfg.img_size, flip=flip, skip_bad=cfg.skip_bad,
                         key_cache_dir=cfg.cache_dir)
    else:
        raise ValueError(f"data.dataset={cfg.dataset!r}; allowed: 'openmoji', 'folder', 'lsun'")
    if split == "all":
        return ds
    train_idx, val_idx = split_indices(len(ds), cfg.val_fraction, cfg.split_seed)
    return Subset(ds, (train_idx if split == "train" else val_idx).tolist())


def dataset_fingerprint(cfg: DataConfig) -> str:
    """16 hex digits that change whenever the images build_dataset(cfg, ...) yields may change.

    Covers the kind, resolved path, img_size, split settings and the source's identity: the OpenMoji package
    and renderer versions; a folder's sorted file list with sizes and mtimes; an LMDB's data.mdb size and mtime.
    """
    facts: dict = dict(dataset=cfg.dataset, img_size=cfg.img_size, val_fraction=cfg.val_fraction,
                       split_seed=cfg.split_seed)
    if cfg.dataset == "openmoji":
        facts.update(openmoji=openmoji_version(), renderer=RENDERER_VERSION, font_scale=FONT_SCALE,
                     sequences=has_raqm())
    elif cfg.dataset == "folder":
        root = Path(_require_path(cfg)).resolve()
        facts.update(path=str(root), files=[list(f) for f in file_list_facts(root, scan_images(root))])
    elif cfg.dataset == "lsun":
        path = Path(_require_path(cfg)).resolve()
        data = lmdb_data_file(path)
        if not data.is_file():
            raise DatasetNotFoundError(f"LSUN LMDB {str(path)!r} not found (expected data.mdb inside); {DATA_README}")
        st = data.stat()
        facts.update(path=str(path), size=st.st_size, mtime_ns=st.st_mtime_ns)
    else:
        raise ValueError(f"data.dataset={cfg.dataset!r}; allowed: 'openmoji', 'folder', 'lsun'")
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
