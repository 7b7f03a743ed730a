"""ulib.io.files: atomic writes (old content kept on failure, no temporary file left, unique temporary names for
concurrent writers), save_npz, file_sha256."""
import hashlib
import os

import numpy as np
import pytest

from ulib.io.files import atomic_write, file_sha256, save_npz


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
