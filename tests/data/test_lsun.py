"""ulib.data.lsun: an LSUN LMDB read as distributed, its errors, pickling into workers, the key cache."""
import pickle

import lmdb
import pytest
import torch

from ulib.data.lsun import LSUNDataset


def test_lsun_reads_and_errors(tiny_lmdb, tmp_path):
    ds = LSUNDataset(tiny_lmdb, 16)
    assert len(ds) == 5 and ds.key(0) == b"img0"
    x = ds[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    assert x[0].mean() > 0.9 and x[1].mean() < -0.9  # red
    assert ds[4].shape == (3, 16, 16)
    with pytest.raises(ValueError, match="img3_corrupt"):
        ds[3]
    skip = LSUNDataset(tiny_lmdb, 16, skip_bad=True)
    with pytest.warns(UserWarning, match="img3_corrupt"):
        assert torch.equal(skip[3], ds[4])
    with pytest.raises(FileNotFoundError, match="data/README.md"):
        LSUNDataset(tmp_path / "missing_lmdb", 16)
    empty = tmp_path / "empty_lmdb"
    lmdb.open(str(empty), map_size=1 << 20).close()
    with pytest.raises(ValueError, match="no entries"):
        LSUNDataset(empty, 16)


def test_lsun_pickle_workers_and_key_cache(tiny_lmdb, tmp_path, monkeypatch):
    ds = LSUNDataset(tiny_lmdb, 16, key_cache_dir=tmp_path / "cache")
    ds[0]  # opens the env in this process; the dataset itself must still pickle
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[2], ds[2])
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, [0, 1, 2, 4]), batch_size=2, num_workers=1)
    batches = list(loader)
    assert [b.shape for b in batches] == [(2, 3, 16, 16)] * 2
    assert torch.equal(batches[1][0], ds[2])  # and the parent still reads after its worker closed its copy
    assert len(list((tmp_path / "cache").glob("lsun-keys-*.npz"))) == 1
    monkeypatch.setattr(LSUNDataset, "_scan_keys", lambda self: pytest.fail("key cache was not used"))
    assert LSUNDataset(tiny_lmdb, 16, key_cache_dir=tmp_path / "cache").key(4) == b"img4"
