"""ulib.io.files: atomic writes (old content kept on failure, no temporary file left, unique temporary names for
concurrent writers, destinations that cannot be written named with the reason), save_npz and load_npz (never
unpickles), remove_stale_temporaries, file_sha256."""
import errno
import hashlib
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ulib.io import files
from ulib.io.files import (
    NpzError,
    UnwritableError,
    atomic_write,
    file_sha256,
    load_npz,
    npz_headers,
    remove_stale_temporaries,
    save_npz,
)

from helpers import ROOT


def test_atomic_write_failure_keeps_old_content(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def write(f):
        f.write(b"new-but-")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_write(path, write)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


def test_atomic_write_creates_the_folder_and_replaces_whole_files(tmp_path):
    path = tmp_path / "a" / "b" / "f.txt"
    atomic_write(path, lambda f: f.write(b"first"))
    atomic_write(path, lambda f: f.write(b"second, longer"))
    assert path.read_bytes() == b"second, longer" and os.listdir(path.parent) == ["f.txt"]


def test_two_writers_of_one_file_never_share_a_temporary_file(tmp_path):
    """A writer that starts while another is still writing (two notebooks filling one cache) gets its own
    temporary file; each rename puts a whole file in place."""
    path = tmp_path / "cache.bin"
    seen = []

    def outer(f):
        seen.append(f.name)
        atomic_write(path, inner)  # a second writer, start to finish, while the first is half-way
        f.write(b"outer")

    def inner(f):
        seen.append(f.name)
        f.write(b"inner")

    atomic_write(path, outer)
    assert len(set(seen)) == 2 and all(str(tmp_path) in name and name.endswith(".tmp") for name in seen)
    assert path.read_bytes() == b"outer" and os.listdir(tmp_path) == ["cache.bin"]


def test_save_npz_round_trip_and_failure(tmp_path):
    path = tmp_path / "x.npz"
    save_npz(path, images=np.arange(6, dtype=np.uint8).reshape(2, 3), names=np.array(["a", "b"]))
    with np.load(path) as z:
        assert z["images"].tolist() == [[0, 1, 2], [3, 4, 5]] and z["names"].tolist() == ["a", "b"]
    class Unreadable:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("device lost")

    with pytest.raises(RuntimeError, match="device lost"):  # fails half-way through the zip: the old file stays
        save_npz(path, first=np.zeros(3), images=Unreadable())
    with np.load(path) as z:
        assert z["images"].shape == (2, 3)
    assert os.listdir(tmp_path) == ["x.npz"]


def test_file_sha256_by_hand(tmp_path):
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2
    big = tmp_path / "big"
    data = os.urandom(3 * (1 << 20) + 5)  # spans several 1 MiB blocks
    big.write_bytes(data)
    assert file_sha256(big) == hashlib.sha256(data).hexdigest()


# ---- a destination that cannot be written is named, never the hidden temporary file ----------------------
def _blocked(tmp_path):
    (tmp_path / "plain").write_text("a regular file where a folder should be")
    return tmp_path / "plain"


@pytest.mark.parametrize("dest, reason", [
    ("plain/out.json", "its folder {tmp}/plain is not a directory"),
    ("plain/sub/out.json", "{tmp}/plain, on the way to its folder {tmp}/plain/sub, is not a directory"),
    ("taken", "a folder of that name is in the way"),
])
def test_unwritable_destination_names_the_file_and_why(tmp_path, dest, reason):
    _blocked(tmp_path)
    (tmp_path / "taken").mkdir()
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(UnwritableError) as info:
        atomic_write(tmp_path / dest, lambda f: f.write(b"x"))
    msg = str(info.value)
    assert msg == f"cannot write {tmp_path / dest}: {reason.format(tmp=tmp_path)}"
    assert ".tmp" not in msg and isinstance(info.value, ValueError) and isinstance(info.value, OSError)
    assert sorted(os.listdir(tmp_path)) == before and os.listdir(tmp_path / "taken") == []  # nothing left over


@pytest.mark.parametrize("code, reason", [(errno.ENOSPC, "no space left on the device holding"),
                                          (errno.EROFS, "is on a read-only file system"),
                                          (errno.EACCES, "no permission to write in")])
def test_file_system_failures_while_writing_name_the_destination(tmp_path, code, reason):
    """A full disk mid-write (OSError without a file name), a read-only or forbidden folder (the open fails
    on the temporary name): each an UnwritableError naming out.bin, the old content kept, no temporary left."""
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def full_disk(f):
        raise OSError(code, os.strerror(code))

    with pytest.raises(UnwritableError, match=f"cannot write {path}: .*{reason}") as info:
        atomic_write(path, full_disk)
    assert info.value.errno == code and path.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]

    real_open = open

    def refusing_open(name, mode="r", *args, **kwargs):
        if str(name).endswith(".tmp"):
            raise OSError(code, os.strerror(code), str(name))  # what open() raises: it names the temporary file
        return real_open(name, mode, *args, **kwargs)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(files, "open", refusing_open, raising=False)
        with pytest.raises(UnwritableError) as info:
            atomic_write(path, lambda f: f.write(b"new"))
    assert str(info.value).startswith(f"cannot write {path}: ") and ".tmp" not in str(info.value)
    assert reason in str(info.value) and path.read_bytes() == b"old"


def test_errors_of_the_writer_itself_propagate_unchanged(tmp_path):
    """An OSError about another file (the writer reads a source that is missing) is not the destination's."""
    def reads_missing(f):
        open(tmp_path / "missing-source.bin", "rb")

    with pytest.raises(FileNotFoundError, match="missing-source.bin"):
        atomic_write(tmp_path / "out.bin", reads_missing)
    assert os.listdir(tmp_path) == []


# ---- temporaries of killed writers ----------------------------------------------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_remove_stale_temporaries_only_takes_dead_writers_files(tmp_path):
    dead, live = _dead_pid(), os.getpid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            f".cache.npz.{dead}-0123abcd.tmp": False,  # a killed writer's: removed
            f".run.pt.{dead}-ffffffff.tmp": False,
            f".cache.npz.{live}-0123abcd.tmp": True,  # this process is writing it
            f".cache.npz.{sleeper.pid}-0123abcd.tmp": True,  # another live process
            f".cache.npz.{dead}-0123abcd.tmp.keep": True,  # not the pattern
            f"cache.npz.{dead}-0123abcd.tmp": True,  # not hidden: not ours
            f".cache.npz.{dead}-XYZ.tmp": True,  # not a hex suffix
            ".cache.npz.0-0123abcd.tmp": True,  # pid 0 is a process group, never "dead"
            "cache.npz": True,
            ".gitignore": True,
        }
        for name in names:
            (tmp_path / name).write_bytes(b"x")
        old = time.time() - 3600
        for name in names:
            os.utime(tmp_path / name, (old, old))
        (tmp_path / f".dir.{dead}-0123abcd.tmp").mkdir()  # a folder, whatever its name: kept
        removed = remove_stale_temporaries(tmp_path)
        assert sorted(p.name for p in removed) == sorted(n for n, keep in names.items() if not keep)
        left = set(os.listdir(tmp_path))
        assert left == {n for n, keep in names.items() if keep} | {f".dir.{dead}-0123abcd.tmp"}
    finally:
        sleeper.kill()
        sleeper.wait()


def test_remove_stale_temporaries_spares_fresh_files_and_missing_folders(tmp_path):
    """A temporary modified within min_age_s may belong to a writer on another machine (a shared cache):
    kept; once old, removed. A folder that does not exist holds nothing."""
    name = f".x.bin.{_dead_pid()}-0123abcd.tmp"
    (tmp_path / name).write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [] and (tmp_path / name).exists()
    assert remove_stale_temporaries(tmp_path, min_age_s=0) == [tmp_path / name]
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_a_killed_writer_leaves_a_temporary_that_is_then_removed(tmp_path):
    """The real thing: a process killed inside atomic_write's write leaves its .tmp; the cleanup removes it."""
    code = ("import os, signal, sys; from ulib.io.files import atomic_write; "
            "atomic_write(sys.argv[1], lambda f: (f.write(b'half'), f.flush(), os.kill(os.getpid(), signal.SIGKILL)))")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.npz")],
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == -signal.SIGKILL
    left = os.listdir(tmp_path)
    assert len(left) == 1 and left[0].startswith(".c.npz.") and left[0].endswith(".tmp")
    assert remove_stale_temporaries(tmp_path, min_age_s=0) == [tmp_path / left[0]] and os.listdir(tmp_path) == []


# ---- .npz files read without pickles -----------------------------------------------------------------------
def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


BAD_NPZ = [  # (what the file holds, a part of the error)
    (b"", "is empty (0 bytes), not an .npz file"),
    (b"just some text, not an archive", "is not an .npz file (an .npz is a zip archive"),
    (b"\x80\x04\x95 a pickle", "is not an .npz file"),  # np.load would offer to unpickle it
    (_npz_bytes(images=np.zeros((4, 8, 8, 3), np.uint8))[:200], "is a damaged or truncated .npz file"),
    (_npz_bytes(images=np.array([{"a": 1}, None], dtype=object)), "holds Python objects (dtype object)"),
    (_npz_bytes(other=np.zeros(3)), "has no array named 'images' (it holds ['other'])"),
]


@pytest.mark.parametrize("content, expected", BAD_NPZ)
def test_load_npz_bad_files_are_one_line_errors_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(NpzError) as info:
        load_npz(path, ["images"])
    msg = str(info.value)
    assert expected in msg and str(path) in msg and "\n" not in msg and "pickle=" not in msg.replace(" ", "")


def test_load_npz_round_trip_and_damaged_data(tmp_path):
    save_npz(tmp_path / "a.npz", images=np.arange(24, dtype=np.uint8).reshape(2, 3, 4), names=np.array(["x", "y"]))
    got = load_npz(tmp_path / "a.npz")
    assert got["images"].tolist() == np.arange(24).reshape(2, 3, 4).tolist() and got["names"].tolist() == ["x", "y"]
    assert npz_headers(tmp_path / "a.npz")["images"] == ((2, 3, 4), np.dtype(np.uint8))
    raw = bytearray(_npz_bytes(images=np.arange(100_000, dtype=np.uint8)))
    raw[5000] ^= 0xFF  # one flipped byte in the array's data: the zip's CRC catches it
    (tmp_path / "b.npz").write_bytes(bytes(raw))
    with pytest.raises(NpzError, match="array 'images' is damaged or truncated"):
        load_npz(tmp_path / "b.npz")
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "missing.npz")
