"""Fixtures the tests of ulib.data share: OpenMoji rendered at 16 px, and a tiny LSUN-style LMDB."""
import lmdb
import pytest

from ulib.data.openmoji import render_openmoji

from helpers import jpeg_bytes


@pytest.fixture(scope="module")
def moji16():
    return render_openmoji(16)


@pytest.fixture
def tiny_lmdb(tmp_path):
    path = tmp_path / "church_outdoor_train_lmdb"
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, color in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
            txn.put(f"img{i}".encode(), jpeg_bytes(color))
        txn.put(b"img3_corrupt", b"\xff\xd8 broken")
        txn.put(b"img4", jpeg_bytes((255, 255, 255), size=(16, 40)))
    env.close()
    return path
