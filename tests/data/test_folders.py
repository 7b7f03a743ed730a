"""ulib.data.folders: image folders of any mode, size and extension; bad files found before training."""

import numpy as np
import pytest
import torch
from PIL import Image

from ulib.config import DataConfig
from ulib.data import folders
from ulib.data.datasets import build_dataset, skipped_files
from ulib.data.folders import BadImagesError, ImageFolderDataset, check_image_files

from helpers import write_images


def test_image_folder_modes_and_shapes(tmp_path):
    names = write_images(tmp_path)
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
    real = folders._read_error
    monkeypatch.setattr(folders, "_read_error", lambda p: decoded.append(p.name) or real(p))
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
