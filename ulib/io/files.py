"""Files that are never half-written: `atomic_write` (temporary file, fsync, rename), `save_npz` on top of it,
`remove_stale_temporaries` for what a killed writer left, `load_npz` (never unpickles), `file_sha256` and `is_int`.

A crash (or Ctrl-C, or a full disk) in the middle of a write must never destroy what was there before: every
checkpoint, log, table, picture and cache of the kit goes through `atomic_write`. A destination that cannot be
written is an `UnwritableError` naming it and why, never the hidden temporary file.
"""
from __future__ import annotations

import errno
import hashlib
import numbers
import os
import re
import stat
import time
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

import numpy as np


def is_int(value) -> bool:
    """An integer (Python or numpy), not a bool: how a step, count or size read from a file is checked."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class UnwritableError(OSError, ValueError):
    """A file that cannot be written (its folder is a file, read-only, full, ...): the message names the
    destination and the reason; `errno` is the operating system's. A ValueError too, so the CLI prints it as
    a one-line error."""


def _unwritable(path: Path, e: OSError) -> UnwritableError:
    """`e` (raised while writing `path` or its temporary file) as an UnwritableError naming `path`."""
    folder = path.parent
    blocker = next((a for a in [folder, *folder.parents] if a.exists() or a.is_symlink()), None)
    if blocker is not None and not blocker.is_dir():
        why = (f"its folder {folder} is not a directory" if blocker == folder else
               f"{blocker}, on the way to its folder {folder}, is not a directory")
    elif path.is_dir():
        why = "a folder of that name is in the way"
    elif e.errno == errno.EROFS:
        why = f"its folder {folder} is on a read-only file system"
    elif e.errno in (errno.EACCES, errno.EPERM):
        why = f"no permission to write in {folder}"
    elif e.errno == errno.ENOSPC:
        why = f"no space left on the device holding {folder}"
    elif e.errno == errno.EDQUOT:
        why = f"disk quota exceeded on the device holding {folder}"
    else:
        why = e.strerror or str(e)
    err = UnwritableError(f"cannot write {path}: {why}")
    err.errno = e.errno
    return err


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(f)` on a temporary file beside `path`, fsync it, then rename it onto `path`.

    The folder is created if missing. If `write` (or anything after it) fails, the temporary file is
    removed, the exception propagates, and whatever was at `path` before is left untouched. The temporary
    name (`.NAME.PID-HEX.tmp`) is unique (process id and a random part), so two writers of one file (two
    notebooks filling one cache) never write into the same temporary file; the last rename wins with a whole
    file. `open` honours the umask (unlike tempfile.mkstemp's 0600), so shared caches stay readable to the group.
    A file-system failure (folder is a file, read-only, full disk, ...) is raised as UnwritableError naming
    `path`; what `write` raises for its own reasons propagates unchanged.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # also KeyboardInterrupt: never leave a half-written temp file behind
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # its folder is not a folder: there is no temporary file
        # an OSError about our own files (no file name: a full disk mid-write) is about `path`; one naming
        # another file comes from `write` itself and is not ours to rename
        if isinstance(e, OSError) and not isinstance(e, UnwritableError) and (
                e.filename is None or str(e.filename) in (str(tmp), str(path)) or
                any(str(e.filename) == str(a) for a in path.parents)):
            raise _unwritable(path, e) from e
        raise
    _fsync_dir(path.parent)


# what atomic_write leaves behind when its process is killed between open and rename: .NAME.PID-HEX.tmp
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)-[0-9a-f]{8}\.tmp")


def _process_exists(pid: int) -> bool:
    """Whether `pid` is a running process on this machine (signal 0 checks without sending anything)."""
    if pid <= 0:
        return True  # 0 and negative numbers name process groups: never treat them as dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process (or a number the OS will not check): leave it alone
    return True


def remove_stale_temporaries(folder: str | os.PathLike, *, min_age_s: float = 60.0) -> list[Path]:
    """Delete `atomic_write` temporaries (`.NAME.PID-HEX.tmp`) in `folder` whose writer is gone; return them.

    A temporary is stale when its process id runs no process on this machine (a killed write). Files of live
    processes, files of any other name and sub-folders are kept. `min_age_s`: also keep temporaries modified
    this recently, so a writer on another machine sharing the folder (NFS), whose process id means nothing
    here, is not robbed of the file it is still writing. A missing folder holds nothing to remove.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    now = time.time()
    for entry in entries:
        m = _TEMPORARY.fullmatch(entry.name)
        if m is None or _process_exists(int(m.group("pid"))):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < min_age_s:
                continue
            os.unlink(entry.path)
        except FileNotFoundError:
            continue  # removed by someone else meanwhile
        removed.append(Path(entry.path))
    return removed


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


# ---- reading .npz files: never unpickles -----------------------------------------------------------------
class NpzError(ValueError):
    """An .npz that cannot be read as plain arrays: the message names the file and what is wrong with it."""


def _npz_members(z: zipfile.ZipFile) -> dict[str, str]:
    """Array name -> zip member ('images' -> 'images.npy'), as np.savez writes them."""
    return {n[:-4]: n for n in z.namelist() if n.endswith(".npy")}


def _open_npz(path: Path) -> zipfile.ZipFile:
    if path.is_dir():
        raise NpzError(f"{path} is a folder, not an .npz file")
    with open(path, "rb") as f:  # FileNotFoundError stays one: the caller says what was missing
        head = f.read(4)
    if not head:
        raise NpzError(f"{path} is empty (0 bytes), not an .npz file")
    if not head.startswith(b"PK"):
        raise NpzError(f"{path} is not an .npz file (an .npz is a zip archive; this file starts with {head!r})")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise NpzError(f"{path} is a damaged or truncated .npz file ({type(e).__name__}: {e})") from None


def npz_headers(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Name -> (shape, dtype) of every array in an .npz, read from the array headers alone (no data).

    NpzError (a ValueError) names the file when it is not a readable .npz; FileNotFoundError when it is missing.
    """
    path = Path(path)
    out = {}
    with _open_npz(path) as z:
        for name, member in _npz_members(z).items():
            try:
                with z.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
                raise NpzError(f"{path}: array {name!r} is damaged or truncated ({type(e).__name__}: {e})") from None
            out[name] = (tuple(shape), np.dtype(dtype))
    return out


def load_npz(path: str | os.PathLike, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an .npz (`names`: just these, each required), read without ever unpickling anything.

    What `save_npz` / `np.savez` write loads back. An empty, truncated or non-zip file, a missing array, or an
    array of Python objects (dtype object, which would need pickle) raises NpzError (a ValueError) naming the
    file; a missing file raises FileNotFoundError.
    """
    path = Path(path)
    headers = npz_headers(path)
    wanted = list(headers) if names is None else list(names)
    for name in wanted:
        if name not in headers:
            raise NpzError(f"{path} has no array named {name!r} (it holds {sorted(headers) or 'no arrays'})")
        if headers[name][1].hasobject:
            raise NpzError(f"{path}: array {name!r} holds Python objects (dtype object), which are never "
                           f"unpickled; expected plain numbers or strings")
    out = {}
    with _open_npz(path) as z:
        members = _npz_members(z)
        for name in wanted:
            try:
                with z.open(members[name]) as f:
                    out[name] = np.lib.format.read_array(f, allow_pickle=False)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
                raise NpzError(f"{path}: array {name!r} is damaged or truncated ({type(e).__name__}: {e})") from None
    return out
