"""ulib.data.datasets: OpenMoji rendering + cache, image folders, LSUN LMDBs, splits, fingerprints. No downloads."""
from __future__ import annotations

import os
import pickle
import warnings

import lmdb
import numpy as np
import pytest
import torch
from PIL import Image

import ulib.data.datasets as data
from ulib.config import DataConfig
from ulib.data.datasets import (
    ArrayImageDataset,
    BadImagesError,
    ImageFolderDataset,
    LSUNDataset,
    build_dataset,
    check_image_files,
    dataset_fingerprint,
    load_openmoji,
    render_openmoji,
    skipped_files,
    split_indices,
    tensor_to_uint8,
)


# ---- OpenMoji ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moji16():
    return render_openmoji(16)


def test_render_shape_dtype_count(moji16):
    images, names = moji16
    assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[1:] == (16, 16, 3)
    assert len(images) == len(names) >= 1500  # ~4,500 with raqm, ~1,900 single codepoints without
    assert names == sorted(names) and len(set(names)) == len(names)
    assert "1F600" in names  # grinning face
    if data._has_raqm():
        assert len(images) >= 4000 and any("-" in n for n in names)


def test_render_white_corners_and_no_blanks(moji16):
    images, _ = moji16
    corners = np.stack([images[:, 0, 0], images[:, 0, -1], images[:, -1, 0], images[:, -1, -1]], 1)  # (N, 4, 3)
    assert (corners == 255).all(axis=(1, 2)).mean() > 0.9  # white background, emoji rarely reach the corners
    assert (images.reshape(len(images), -1) < 250).any(axis=1).all()  # every image has ink


def test_render_deterministic_and_sequences_flag(moji16):
    images, names = moji16
    singles, single_names = render_openmoji(16, sequences=False)
    assert all("-" not in n for n in single_names)
    keep = [i for i, n in enumerate(names) if "-" not in n]
    assert single_names == [names[i] for i in keep]
    np.testing.assert_array_equal(singles, images[keep])  # same pixels on a second render


@pytest.mark.parametrize("size", [7, 257, 0, -32, 32.0, True, "32"])
def test_render_size_bounds(size):
    with pytest.raises(ValueError, match=r"size=.*8 to 256"):
        render_openmoji(size)


def test_sequences_true_without_raqm(monkeypatch):
    monkeypatch.setattr(data, "_has_raqm", lambda: False)
    with pytest.raises(RuntimeError, match="raqm"):
        render_openmoji(16, sequences=True)


def _fake_renderer(calls):
    def render(size, *, sequences=None):
        calls.append(size)
        rng = np.random.default_rng(size)
        return rng.integers(0, 256, (5, size, size, 3), dtype=np.uint8), [f"{i:04X}" for i in range(5)]
    return render


def test_cache_hit_and_new_key(tmp_path, monkeypatch, moji16):
    images, names = load_openmoji(16, tmp_path)  # real render, written to the cache
    path = data.openmoji_cache_path(16, tmp_path, sequences=data._has_raqm())
    assert path.exists() and path.name.startswith(f"openmoji-v{data._openmoji_version()}-s16-seq")
    assert path.name.endswith(f"-{data.RENDERER_VERSION}.npz")
    np.testing.assert_array_equal(images, moji16[0])
    calls = []
    monkeypatch.setattr(data, "render_openmoji", _fake_renderer(calls))
    again, again_names = load_openmoji(16, tmp_path)  # hit: the (fake) renderer is not called
    assert calls == [] and again_names == names
    np.testing.assert_array_equal(again, images)
    small, _ = load_openmoji(8, tmp_path)  # another size -> another file
    assert calls == [8] and small.shape == (5, 8, 8, 3)
    assert len(list(tmp_path.glob("*.npz"))) == 2 and not list(tmp_path.glob("*.tmp"))


def test_corrupt_cache_is_rerendered(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(data, "render_openmoji", _fake_renderer(calls))
    path = data.openmoji_cache_path(16, tmp_path, sequences=data._has_raqm())
    path.write_bytes(b"PK\x03\x04 this is not an npz")
    with pytest.warns(UserWarning, match="unreadable"):
        images, _ = load_openmoji(16, tmp_path)
    assert calls == [16] and images.shape == (5, 16, 16, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(load_openmoji(16, tmp_path)[0], images)  # repaired file, no warning
    assert calls == [16]


# ---- splits ---------------------------------------------------------------------------------------
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


# ---- image folders --------------------------------------------------------------------------------
def _write_images(root):
    """Five images of assorted modes, sizes and extensions (one in a subfolder); returns relative names."""
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)).save(root / "a_rgb.jpg")
    Image.new("RGBA", (20, 40), (255, 0, 0, 0)).save(root / "b_rgba.PNG")  # fully transparent -> white
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8), "L").save(root / "c_gray.bmp")
    Image.new("RGB", (33, 17), (0, 128, 255)).convert("P").save(root / "sub" / "d_palette.gif.png")
    Image.fromarray(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)).save(root / "sub" / "e_small.webp")
    (root / "notes.txt").write_text("not an image")
    return ["a_rgb.jpg", "b_rgba.PNG", "c_gray.bmp", "sub/d_palette.gif.png", "sub/e_small.webp"]


def test_image_folder_modes_and_shapes(tmp_path):
    names = _write_images(tmp_path)
    ds = ImageFolderDataset(tmp_path, 16)
    assert [p.relative_to(tmp_path).as_posix() for p in ds.files] == names
    for i in range(len(ds)):
        x = ds[i]
        assert x.shape == (3, 16, 16) and x.dtype == torch.float32
        assert x.min() >= -1.0 and x.max() <= 1.0
    assert torch.all(ds[1] == 1.0)  # transparent RGBA composited on white
    gray = ds[2]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert torch.allclose(ds[3][:, 8, 8], torch.tensor([0, 128, 255]) / 127.5 - 1, atol=0.02)  # palette colour


def test_image_folder_flip(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :3] = 255  # bright left edge: not left-right symmetric
    Image.fromarray(img).save(tmp_path / "x.png")
    plain = ImageFolderDataset(tmp_path, 8)[0]
    ds = ImageFolderDataset(tmp_path, 8, flip=True, generator=torch.Generator().manual_seed(0))
    draws = [ds[0] for _ in range(40)]
    flipped = [bool(torch.equal(d, plain.flip(-1))) for d in draws]
    assert all(torch.equal(d, plain) or f for d, f in zip(draws, flipped))
    assert 0 < sum(flipped) < 40  # both outcomes occur
    ds2 = ImageFolderDataset(tmp_path, 8, flip=True, generator=torch.Generator().manual_seed(0))
    assert [bool(torch.equal(ds2[0], plain.flip(-1))) for _ in range(40)] == flipped  # seeded -> same flips


def test_image_folder_corrupt_file(tmp_path):
    Image.new("RGB", (10, 10), (10, 20, 30)).save(tmp_path / "a_good.png")
    (tmp_path / "b_bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    Image.new("RGB", (10, 10), (200, 100, 0)).save(tmp_path / "c_good.png")
    ds = ImageFolderDataset(tmp_path, 8)  # lazy: construction does not open files
    with pytest.raises(ValueError, match="b_bad.jpg"):
        ds[1]
    skip = ImageFolderDataset(tmp_path, 8, skip_bad=True)
    with pytest.warns(UserWarning, match="b_bad.jpg"):
        x = skip[1]
    assert torch.equal(x, ds[2])  # the next good image


def test_image_folder_truncated_and_all_bad(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "t.png")
    raw = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="t.png"):
        ImageFolderDataset(tmp_path, 8)[0]
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no readable image"):
        ImageFolderDataset(tmp_path, 8, skip_bad=True)[0]


def test_image_folder_empty_and_missing(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"no images found.*\.jpg"):
        ImageFolderDataset(tmp_path, 8)
    with pytest.raises(FileNotFoundError, match="data/README.md"):
        ImageFolderDataset(tmp_path / "nope", 8)


# ---- the up-front check of an image folder ---------------------------------------------------------------
def _folder_with_two_bad(root, n_good=40):
    """n_good small PNGs, one text file named like an image and one PNG cut in half."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_good):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / f"img_{i:04d}.png")
    (root / "notes.png").write_text("this is not an image")
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(root / "zz_truncated.png")
    raw = (root / "zz_truncated.png").read_bytes()
    (root / "zz_truncated.png").write_bytes(raw[: len(raw) // 2])
    return {"notes.png", "zz_truncated.png"}


def test_folder_check_names_every_bad_file_before_any_item_is_read(tmp_path):
    bad = _folder_with_two_bad(tmp_path / "imgs")
    cfg = DataConfig(dataset="folder", path=str(tmp_path / "imgs"), img_size=8, cache_dir=str(tmp_path / "c"))
    with pytest.raises(BadImagesError) as e:
        build_dataset(cfg, "train")  # no item is asked for: the check runs at construction
    assert set(e.value.bad) == bad
    msg = str(e.value)
    assert "2 of 42 image files" in msg and "notes.png" in msg and "zz_truncated.png" in msg
    assert "data.skip_bad=true" in msg
    assert isinstance(e.value, ValueError)  # the CLI's bad-input path


def test_folder_check_skip_bad_leaves_them_out_and_names_them(tmp_path):
    bad = _folder_with_two_bad(tmp_path / "imgs")
    cfg = DataConfig(dataset="folder", path=str(tmp_path / "imgs"), img_size=8, cache_dir=str(tmp_path / "c"),
                     skip_bad=True, val_fraction=0.0)
    with pytest.warns(UserWarning, match=r"leaving out 2 of 42.*\n.*notes\.png"):
        ds = build_dataset(cfg, "all")
    assert len(ds) == 40 and set(skipped_files(ds)) == bad
    assert set(skipped_files(build_dataset(cfg, "train"))) == bad  # through a Subset too
    assert all(p.name not in bad for p in ds.files)
    for i in (0, 39):
        assert ds[i].shape == (3, 8, 8)


def test_folder_check_is_cached_per_file_list(tmp_path, monkeypatch):
    bad = _folder_with_two_bad(tmp_path / "imgs", n_good=5)
    root, cache = tmp_path / "imgs", tmp_path / "c"
    files = sorted(p.name for p in root.iterdir())
    assert set(check_image_files(root, files, cache_dir=cache)) == bad
    assert len(list(cache.glob("folder-check-*.json"))) == 1
    decoded = []
    real = data._decode_error
    monkeypatch.setattr(data, "_decode_error", lambda p: decoded.append(p.name) or real(p))
    assert set(check_image_files(root, files, cache_dir=cache)) == bad
    assert decoded == []  # the verdict came from the cache
    Image.new("RGB", (9, 9), (1, 2, 3)).save(root / "zz_truncated.png")  # repaired: new size and mtime
    assert set(check_image_files(root, files, cache_dir=cache)) == {"notes.png"}
    assert len(decoded) == len(files)  # a changed file list is checked again, all of it
    (cache / next(cache.glob("folder-check-*.json")).name).write_text("{not json")  # a damaged verdict
    decoded.clear()
    assert set(check_image_files(root, files, cache_dir=cache)) == {"notes.png"}


def test_folder_check_all_bad_is_an_error_even_with_skip_bad(tmp_path):
    (tmp_path / "a.png").write_text("nope")
    with pytest.raises(BadImagesError, match="No readable image is left"):
        ImageFolderDataset(tmp_path, 8, skip_bad=True, check=True)


# ---- LSUN LMDB ------------------------------------------------------------------------------------
def _jpeg(color, size=(24, 16)) -> bytes:
    import io

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture
def tiny_lmdb(tmp_path):
    path = tmp_path / "church_outdoor_train_lmdb"
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, color in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
            txn.put(f"img{i}".encode(), _jpeg(color))
        txn.put(b"img3_corrupt", b"\xff\xd8 broken")
        txn.put(b"img4", _jpeg((255, 255, 255), size=(16, 40)))
    env.close()
    return path


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


# ---- build_dataset and fingerprints ---------------------------------------------------------------
def test_build_dataset_openmoji(tmp_path, monkeypatch, moji16):
    monkeypatch.setattr(data, "render_openmoji", lambda size, sequences=None: moji16)
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
    _write_images(tmp_path / "imgs")
    cfg = DataConfig(dataset="folder", path=str(tmp_path / "imgs"), img_size=8, val_fraction=0.2)
    assert [len(build_dataset(cfg, s)) for s in ("train", "val")] == [4, 1]
    cfg = DataConfig(dataset="lsun", path=str(tiny_lmdb), img_size=8, skip_bad=True, cache_dir=str(tmp_path / "c"))
    assert len(build_dataset(cfg, "all")) == 5
    with pytest.raises(ValueError, match="data.path must be set"):
        build_dataset(DataConfig(dataset="folder"), "train")


def test_fingerprint_changes(tmp_path, tiny_lmdb):
    _write_images(tmp_path / "imgs")
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
        txn.put(b"img5", _jpeg((9, 9, 9)))
    env.close()
    st = os.stat(tiny_lmdb / "data.mdb")
    os.utime(tiny_lmdb / "data.mdb", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # coarse-mtime filesystems
    assert dataset_fingerprint(lsun) != before


# ---- tensors --------------------------------------------------------------------------------------
def test_tensor_to_uint8_round_trip():
    u = np.random.default_rng(0).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    x = torch.stack([ArrayImageDataset(u)[i] for i in range(4)])  # (4, 3, 5, 6) in [-1, 1]
    back = tensor_to_uint8(x)
    assert back.dtype == np.uint8 and back.shape == (4, 5, 6, 3)
    np.testing.assert_array_equal(back, u)
    np.testing.assert_array_equal(tensor_to_uint8(x[0]), u[0])
    assert tensor_to_uint8(torch.full((1, 3, 2, 2), 5.0)).min() == 255  # clamped
    assert tensor_to_uint8(torch.full((1, 3, 2, 2), -5.0)).max() == 0
    with pytest.raises(ValueError, match="shape"):
        tensor_to_uint8(torch.zeros(2, 4, 3, 3))


def test_missing_dataset_folder_is_also_a_value_error(tmp_path):
    from ulib.config import DataConfig
    from ulib.data.datasets import build_dataset

    cfg = DataConfig(dataset="folder", path=str(tmp_path / "absent"), img_size=16)
    with pytest.raises(ValueError, match="absent"):
        build_dataset(cfg, "train")
