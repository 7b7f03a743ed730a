"""LSUN (churches, bedrooms) as distributed (data.dataset='lsun'): an LMDB whose values are JPEG/WebP bytes.
`build` and `fingerprint` are its entry in the dataset registry (`ulib.config.DATASETS`)."""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ulib.config import DataConfig
from ulib.data.cache import before_writing, resolve_cache_dir
from ulib.data.images import (
    DATA_README,
    AugmentedDataset,
    DatasetNotFoundError,
    read_image,
    read_with_policy,
    require_path,
)
from ulib.io.files import load_npz, save_npz


def lmdb_data_file(path: Path) -> Path:
    return path / "data.mdb" if path.is_dir() else path


_LMDB_ENVS: dict[str, object] = {}  # resolved path -> read-only env; py-lmdb allows one env per path per process
_LMDB_PID = [os.getpid()]


def _lmdb_env(path: Path):
    """The process's shared read-only environment for `path`, opened on first use (again after a fork)."""
    import lmdb

    if _LMDB_PID[0] != os.getpid():  # a forked child (DataLoader worker): LMDB envs must not cross a fork
        for env in _LMDB_ENVS.values():
            env.close()  # closes the child's copy of the map and file only; the parent's env is untouched
        _LMDB_ENVS.clear()
        _LMDB_PID[0] = os.getpid()
    key = str(path.resolve())
    if key not in _LMDB_ENVS:
        try:
            _LMDB_ENVS[key] = lmdb.open(key, subdir=path.is_dir(), readonly=True, lock=False, readahead=False,
                                        meminit=False)
        except lmdb.Error as e:  # not an LMDB (garbage, empty, another format): say so, naming the path
            raise ValueError(f"LSUN LMDB {str(path)!r} cannot be opened as an LMDB ({type(e).__name__}: {e}); "
                             f"expected the folder as distributed, holding data.mdb; {DATA_README}") from None
    return _LMDB_ENVS[key]


class LSUNDataset(AugmentedDataset):
    """An LSUN LMDB as distributed (key: image id, value: JPEG/WebP bytes) -> (3, S, S) in [-1, 1].

    Keys are read once at construction (or from a key cache under `key_cache_dir`, keyed by the path and the
    size and mtime of data.mdb) and kept as one byte blob + offsets (3M keys ~ 150 MB, not 3M Python objects).
    The dataset holds no open handle: each process opens one shared read-only environment per LMDB on first
    read (py-lmdb refuses a second open of one path in a process), so it pickles into DataLoader workers.
    """

    def __init__(self, lmdb_path: str | os.PathLike, img_size: int, *, flip: bool = False, skip_bad: bool = False,
                 key_cache_dir: str | os.PathLike | None = None, generator: torch.Generator | None = None):
        self.path = Path(lmdb_path)
        if not lmdb_data_file(self.path).is_file():
            raise DatasetNotFoundError(f"LSUN LMDB {str(self.path)!r} not found (expected a folder holding data.mdb); "
                                    f"{DATA_README} for how to download LSUN and where to put it")
        self.img_size, self.flip, self.skip_bad, self.generator = int(img_size), flip, skip_bad, generator
        self._bad: set[int] = set()
        self._blob, self._offsets = self._keys(key_cache_dir)  # key i = blob[off[i]:off[i+1]]
        if len(self._offsets) <= 1:
            raise ValueError(f"LSUN LMDB {str(self.path)!r} holds no entries")

    def _scan_keys(self) -> tuple[np.ndarray, np.ndarray]:
        with _lmdb_env(self.path).begin(write=False) as txn:
            keys = list(txn.cursor().iternext(keys=True, values=False))  # sorted: LMDB keeps keys in order
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        np.cumsum([len(k) for k in keys], out=offsets[1:])
        return np.frombuffer(b"".join(keys), dtype=np.uint8).copy(), offsets

    def _keys(self, cache_dir) -> tuple[np.ndarray, np.ndarray]:
        if cache_dir is None:
            return self._scan_keys()
        st = lmdb_data_file(self.path).stat()
        ident = f"{self.path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        cache = resolve_cache_dir(cache_dir) / f"lsun-keys-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.npz"
        if cache.exists():
            try:
                z = load_npz(cache, ["blob", "offsets"])  # never unpickles
                blob, offsets = z["blob"], z["offsets"]
                if blob.dtype != np.uint8 or blob.ndim != 1 or offsets.ndim != 1 or len(offsets) == 0 \
                        or offsets.dtype.kind not in "iu":
                    raise ValueError(f"unexpected arrays: blob {blob.dtype} {blob.shape}, offsets {offsets.dtype} "
                                     f"{offsets.shape}")
                if offsets[0] != 0 or offsets[-1] != len(blob) or (np.diff(offsets) < 0).any():
                    raise ValueError("offsets do not match the key blob")
                return blob, offsets
            except Exception as e:  # noqa: BLE001
                warnings.warn(f"LSUN key cache {cache} is unreadable ({type(e).__name__}: {e}); scanning again")
        blob, offsets = self._scan_keys()
        before_writing(cache.parent)
        try:
            save_npz(cache, blob=blob, offsets=offsets)
        except OSError as e:
            warnings.warn(f"could not write the LSUN key cache {cache} ({e}); continuing without it")
        return blob, offsets

    def key(self, i: int) -> bytes:
        return self._blob[self._offsets[i]:self._offsets[i + 1]].tobytes()

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __repr__(self) -> str:
        return f"LSUNDataset({str(self.path)!r}, {len(self)} images, img_size={self.img_size})"

    def _read(self, j: int) -> np.ndarray:
        with _lmdb_env(self.path).begin(write=False) as txn:  # the env lives in a per-process table, not in self
            value = txn.get(self.key(j))
        if value is None:
            raise KeyError("key missing from the LMDB")
        return read_image(bytes(value), self.img_size)

    def _load(self, i: int) -> np.ndarray:
        return read_with_policy(self, i, self._read, lambda j: f"LSUN key {self.key(j)!r} in {str(self.path)!r}")


# ---- the dataset registry's entry (ulib.config.DATASETS) ----------------------------------------------------
def build(cfg: DataConfig, *, flip: bool) -> LSUNDataset:
    """Every entry of the LMDB at data.path, its keys cached under cfg.cache_dir."""
    return LSUNDataset(require_path(cfg), cfg.img_size, flip=flip, skip_bad=cfg.skip_bad, key_cache_dir=cfg.cache_dir)


def fingerprint(cfg: DataConfig) -> dict:
    """The resolved LMDB path and its data.mdb's size and mtime."""
    path = Path(require_path(cfg)).resolve()
    data = lmdb_data_file(path)
    if not data.is_file():
        raise DatasetNotFoundError(f"LSUN LMDB {str(path)!r} not found (expected data.mdb inside); {DATA_README}")
    st = data.stat()
    return dict(path=str(path), size=st.st_size, mtime_ns=st.st_mtime_ns)
