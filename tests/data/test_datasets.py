"""ulib.data.datasets: the deterministic split, build_dataset for each kind, fingerprints. No downloads."""
import dataclasses
import os

import lmdb
import numpy as np
import pytest
import torch
from PIL import Image

from ulib.config import DATASETS, Config, DataConfig
from ulib.data import datasets, openmoji
from ulib.data.datasets import build_dataset, dataset_fingerprint, split_indices
from ulib.data.images import ArrayImageDataset

from helpers import jpeg_bytes, write_images


def test_split_deterministic_disjoint():
    train, val = split_indices(1000, 0.05, seed=3)
    assert len(val) == 50 and len(train) == 950
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(range(1000))
    t2, v2 = split_indices(1000, 0.05, seed=3)
    np.testing.assert_array_equal(train, t2)
    np.testing.assert_array_equal(val, v2)
    assert not np.array_equal(val, split_indices(1000, 0.05, seed=4)[1])
    assert [len(v) for v in (split_indices(2, 0.01, 0)[1], split_indices(10, 0.0, 0)[1])] == [1, 0]
    for bad in [(10, 1.0, 0), (10, -0.1, 0), (-1, 0.1, 0)]:
        with pytest.raises(ValueError, match="val_fraction"):
            split_indices(*bad)


def test_build_dataset_openmoji(tmp_path, monkeypatch, moji16):
    monkeypatch.setattr(openmoji, "render_openmoji", lambda size, sequences=None: moji16)
    cfg = DataConfig(dataset="openmoji", img_size=16, flip=True, val_fraction=0.05, cache_dir=str(tmp_path))
    train, val, full = (build_dataset(cfg, s) for s in ("train", "val", "all"))
    n = len(moji16[0])
    assert len(train) + len(val) == len(full) == n and len(val) == round(0.05 * n)
    assert set(train.indices).isdisjoint(val.indices)
    assert train.dataset.flip and not val.dataset.flip and not full.flip
    assert not build_dataset(cfg, "train", train_transforms=False).dataset.flip
    x = val[0]
    assert x.shape == (3, 16, 16) and torch.equal(x, ArrayImageDataset(moji16[0])[val.indices[0]])
    with pytest.raises(ValueError, match="split='test'"):
        build_dataset(cfg, "test")


def test_build_dataset_folder_and_lsun(tmp_path, tiny_lmdb):
    write_images(tmp_path / "imgs")
    cfg = DataConfig(dataset="folder", path=str(tmp_path / "imgs"), img_size=8, val_fraction=0.2)
    assert [len(build_dataset(cfg, s)) for s in ("train", "val")] == [4, 1]
    cfg = DataConfig(dataset="lsun", path=str(tiny_lmdb), img_size=8, skip_bad=True, cache_dir=str(tmp_path / "c"))
    assert len(build_dataset(cfg, "all")) == 5
    with pytest.raises(ValueError, match="data.path must be set"):
        build_dataset(DataConfig(dataset="folder"), "train")


def test_fingerprint_changes(tmp_path, tiny_lmdb):
    write_images(tmp_path / "imgs")
    cfg = DataConfig(dataset="folder", path=str(tmp_path / "imgs"), img_size=16)
    fp = dataset_fingerprint(cfg)
    assert fp == dataset_fingerprint(cfg) and len(fp) == 16
    assert dataset_fingerprint(DataConfig(dataset="folder", path=cfg.path, img_size=32)) != fp
    assert dataset_fingerprint(DataConfig(dataset="folder", path=cfg.path, img_size=16, split_seed=1)) != fp
    Image.new("RGB", (70, 70), (1, 2, 3)).save(tmp_path / "imgs" / "a_rgb.jpg")  # a file changes
    assert dataset_fingerprint(cfg) != fp
    moji = DataConfig(dataset="openmoji", img_size=16)
    assert dataset_fingerprint(moji) != dataset_fingerprint(DataConfig(dataset="openmoji", img_size=32))
    lsun = DataConfig(dataset="lsun", path=str(tiny_lmdb), img_size=16)
    before = dataset_fingerprint(lsun)
    env = lmdb.open(str(tiny_lmdb), map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"img5", jpeg_bytes((9, 9, 9)))
    env.close()
    st = os.stat(tiny_lmdb / "data.mdb")
    os.utime(tiny_lmdb / "data.mdb", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # coarse-mtime filesystems
    assert dataset_fingerprint(lsun) != before


def test_missing_dataset_folder_is_also_a_value_error(tmp_path):
    cfg = DataConfig(dataset="folder", path=str(tmp_path / "absent"), img_size=16)
    with pytest.raises(ValueError, match="absent"):
        build_dataset(cfg, "train")


SOLID = '''"""A solid-colour dataset: one module with the registry's two functions."""
import torch
from torch.utils.data import Dataset


class Solid(Dataset):
    def __init__(self, n, size, flip):
        self.n, self.size, self.flip = n, size, flip

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.full((3, self.size, self.size), -1 + 2 * i / (self.n - 1))


def build(cfg, *, flip):
    return Solid(int(cfg.path), cfg.img_size, flip)


def fingerprint(cfg):
    return {"colours": int(cfg.path)}
'''


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_registered_dataset_module_exports_build_and_fingerprint(name):
    module = datasets.dataset_module(name)
    assert callable(module.build) and callable(module.fingerprint) and module.__name__ == DATASETS[name]


def test_a_dataset_is_one_module_and_one_registry_line(tmp_path, monkeypatch):
    """A new kind: its file, and one line in ulib.config.DATASETS; config validation, build_dataset (with the
    split and the train-only flip) and dataset_fingerprint take it up with no other edit."""
    (tmp_path / "ulib_test_solid.py").write_text(SOLID)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = Config(data=DataConfig(dataset="solid", path="10", img_size=32, flip=True, val_fraction=0.2))
    with pytest.raises(ValueError, match=r"data.dataset='solid'; allowed: 'openmoji', 'folder', 'lsun'$"):
        cfg.validate()
    with pytest.raises(ValueError, match="data.dataset='solid'; allowed"):
        build_dataset(cfg.data, "train")
    monkeypatch.setitem(DATASETS, "solid", "ulib_test_solid")  # the registration line
    cfg.validate()
    with pytest.raises(ValueError, match=r"data.dataset='nope'; allowed: 'openmoji', 'folder', 'lsun', 'solid'$"):
        Config(data=DataConfig(dataset="nope")).validate()
    train, val, full = (build_dataset(cfg.data, s) for s in ("train", "val", "all"))
    assert (len(train), len(val), len(full)) == (8, 2, 10) and set(train.indices).isdisjoint(val.indices)
    assert train.dataset.flip and not val.dataset.flip and val[0].shape == (3, 32, 32)
    assert val[1][0, 0, 0] == -1 + 2 * val.indices[1] / 9, "items come from the module's own dataset"
    fp = dataset_fingerprint(cfg.data)
    assert len(fp) == 16 and fp == dataset_fingerprint(cfg.data)
    assert dataset_fingerprint(dataclasses.replace(cfg.data, path="11")) != fp, "the module's facts count"
    assert dataset_fingerprint(dataclasses.replace(cfg.data, split_seed=1)) != fp, "and the common ones"
