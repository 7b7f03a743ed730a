"""Files that are never half-written: `atomic_write` (temporary file, fsync, rename), `save_npz` on top of it,
and `file_sha256`.

A crash (or Ctrl-C, or a full disk) in the middle of a write must never destroy what was there before: every
checkpoint, log, table, picture and cache of the kit goes through `atomic_write`.
"""
from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(f)` on a temporary file beside `path`, fsync it, then rename it onto `path`.

    The folder is created if missing. If `write` (or anything after it) fails, the temporary file is
    removed, the exception propagates, and whatever was at `path` before is left untouched. The temporary
    name is unique (process id and a random part), so two writers of one file (two notebooks filling one
    cache) never write into the same temporary file; the last rename wins with a whole file. `open` honours
    the umask (unlike tempfile.mkstemp's 0600), so shared caches stay readable to the group.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # also KeyboardInterrupt: never leave a half-written temp file behind
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_npz(path: str | os.PathLike, **arrays) -> None:
    """`np.savez(path, **arrays)`, written atomically (caches of rendered images and LMDB keys)."""
    atomic_write(path, lambda f: np.savez(f, **arrays))
