"""Bad data inputs end in one ValueError naming the file and what is wrong, never a traceback: image folders
(empty, no images, zero-byte or fake images, dangling links, link loops, decompression bombs), LSUN paths that
are not LMDBs; damaged caches are rebuilt with a warning; the cache folder does not depend on the working
directory, and what killed writers left in it is cleared before writing."""
import json
import os
import re
import subprocess
import sys
import time
import warnings

import lmdb
import numpy as np
import pytest
from PIL import Image

from ulib.config import DataConfig
from ulib.data import cache as data_cache
from ulib.data import openmoji
from ulib.data.datasets import build_dataset, dataset_fingerprint
from ulib.data.folders import BadImagesError, ImageFolderDataset, check_image_files, folder_check_path, scan_images
from ulib.data.images import ImageTooLargeError, read_image
from ulib.data.lsun import LSUNDataset
from ulib.data.openmoji import load_openmoji

from helpers import ROOT, huge_png_header, jpeg_bytes, png_folder


# ---- one table: input maker -> the error a training run stops with ----------------------------------------
def _empty(root):
    root.mkdir()
    return "folder", root


def _only_other_files(root):
    root.mkdir()
    (root / "notes.txt").write_text("no pictures")
    (root / "images.npz").write_bytes(b"PK\x05\x06" + bytes(18))
    (root / ".hidden.png").write_bytes(b"")  # hidden files are not images of the set
    return "folder", root


def _loop_only(root):
    root.mkdir()
    os.symlink(".", root / "loop")
    os.symlink("..", root / "up")
    return "folder", root


def _zero_byte(root):
    png_folder(root, 2)
    (root / "empty.png").write_bytes(b"")
    return "folder", root


def _text_as_jpeg(root):
    png_folder(root, 2)
    (root / "fake.jpg").write_text("not a jpeg at all")
    return "folder", root


def _dangling_link(root):
    png_folder(root, 2)
    os.symlink(root / "gone.png", root / "link.png")
    return "folder", root


def _bomb(root):
    png_folder(root, 2)
    (root / "big.png").write_bytes(huge_png_header())
    return "folder", root


def _a_file(root):
    root.write_bytes(b"a file where the image folder should be")
    return "folder", root


def _lsun_garbage(root):
    root.mkdir()
    (root / "data.mdb").write_bytes(b"garbage " * 512)
    return "lsun", root


def _lsun_zero_bytes(root):
    root.mkdir()
    (root / "data.mdb").write_bytes(b"")
    return "lsun", root


def _lsun_plain_file(root):
    root.write_bytes(b"x" * 4096)
    return "lsun", root


BAD_DATA = [  # (input maker: path -> (dataset kind, path), a part of the error)
    (_empty, "no images found in"),
    (_only_other_files, "no images found in"),
    (_loop_only, "no images found in"),
    (_zero_byte, "empty.png: UnidentifiedImageError"),
    (_text_as_jpeg, "fake.jpg: UnidentifiedImageError"),
    (_dangling_link, "link.png: FileNotFoundError"),
    (_bomb, "big.png: ImageTooLargeError: 400,000,000 pixels, over the limit of 89,478,485"),
    (_a_file, "does not exist or is not a folder"),
    (_lsun_garbage, "cannot be opened as an LMDB (InvalidError"),
    (_lsun_zero_bytes, "cannot be opened as an LMDB"),
    (_lsun_plain_file, "cannot be opened as an LMDB (InvalidError"),
]


@pytest.mark.timeout(60)  # a link loop used to be walked 2**40 ways
@pytest.mark.parametrize("make, expected", BAD_DATA, ids=[f"data{i}" for i in range(len(BAD_DATA))])
def test_bad_training_data_stops_with_a_value_error_naming_it(tmp_path, make, expected):
    kind, path = make(tmp_path / "data")
    cfg = DataConfig(dataset=kind, path=str(path), img_size=8, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError) as info:
        build_dataset(cfg, "train")
    assert expected in str(info.value) and str(path) in str(info.value), str(info.value)


@pytest.mark.parametrize("mode, ext", [("L", "png"), ("LA", "png"), ("RGBA", "png"), ("P", "png"), ("1", "bmp"),
                                       ("I;16", "png"), ("I", "tif"), ("F", "tif"), ("CMYK", "jpg"),
                                       ("CMYK", "tif"), ("YCbCr", "jpg"), ("LAB", "tif")])
def test_any_mode_trains_even_as_a_one_image_folder(tmp_path, mode, ext):
    rng = np.random.default_rng(0)
    (tmp_path / "a").mkdir()
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).convert(mode).save(tmp_path / "a" / f"x.{ext}")
    cfg = DataConfig(dataset="folder", path=str(tmp_path / "a"), img_size=8, cache_dir=str(tmp_path / "c"))
    ds = build_dataset(cfg, "train")  # one image: all of it trains, none is held out
    assert len(ds) == 1 and ds[0].shape == (3, 8, 8) and -1 <= ds[0].min() <= ds[0].max() <= 1
    assert len(build_dataset(cfg, "val")) == 0


# ---- link loops, two names of one file ----------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_a_folder_linking_to_itself_and_its_parent_yields_its_images_once(tmp_path):
    root = png_folder(tmp_path / "imgs")
    os.symlink(".", root / "loop")
    os.symlink("..", root / "up")
    names = [p.relative_to(root).as_posix() for p in scan_images(root)]
    assert names == ["0.png", "1.png", "2.png"]
    assert len(ImageFolderDataset(root, 8, check=True, cache_dir=tmp_path / "c")) == 3
    cfg = DataConfig(dataset="folder", path=str(root), img_size=8, cache_dir=str(tmp_path / "c"), val_fraction=0.0)
    assert len(build_dataset(cfg, "all")) == 3 and len(dataset_fingerprint(cfg)) == 16


def test_linked_folders_and_files_count_once_under_their_real_names(tmp_path):
    """A link to a sub-folder met before the sub-folder itself, a link and a hard link to one file: each image
    once, named without links; a link to a folder outside the root brings that folder's images in."""
    root = tmp_path / "imgs"
    png_folder(root / "sub")
    png_folder(tmp_path / "outside", 2, size=(9, 9))
    os.symlink(root / "sub", root / "a_link_to_sub")  # sorts before "sub"
    os.symlink(root / "sub" / "0.png", root / "alias.png")
    os.link(root / "sub" / "1.png", root / "hard.png")
    os.symlink(tmp_path / "outside", root / "more")
    names = [p.relative_to(root).as_posix() for p in scan_images(root)]
    assert names == ["hard.png", "more/0.png", "more/1.png", "sub/0.png", "sub/2.png"]


# ---- decompression bombs: named, or skipped with data.skip_bad ------------------------------------------
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, before our error
def test_an_image_over_pillows_pixel_limit_is_a_bad_file(tmp_path, monkeypatch):
    """Up to twice MAX_IMAGE_PIXELS Pillow only warns and decodes it all: here it is refused like a damaged file."""
    root = png_folder(tmp_path / "imgs", 3)  # 64 pixels each
    Image.new("RGB", (40, 40)).save(root / "big.png")  # 1,600 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    why = "ImageTooLargeError: 1,600 pixels (40x40), over the limit of 1,000 (PIL.Image.MAX_IMAGE_PIXELS"
    with pytest.raises(BadImagesError, match=r"1 of 4 image files") as info:
        ImageFolderDataset(root, 8, check=True, cache_dir=tmp_path / "c")
    assert info.value.bad["big.png"].startswith(why)
    with pytest.warns(UserWarning, match="leaving out 1 of 4"):
        ds = ImageFolderDataset(root, 8, check=True, cache_dir=tmp_path / "c2", skip_bad=True)
    assert [p.name for p in ds.files] == ["0.png", "1.png", "2.png"]
    with pytest.raises(ValueError, match=r"cannot read image file .*big.png.*: " + re.escape(why)):
        ImageFolderDataset(root, 8)[3]  # no up-front check: the read itself refuses
    with pytest.raises(ImageTooLargeError, match="1,600 pixels"):
        read_image((root / "big.png").read_bytes(), 8)  # encoded bytes (an LSUN value) too


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_lsun_entry_over_the_pixel_limit_is_named_or_skipped(tmp_path, monkeypatch):
    path = tmp_path / "lmdb"
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"a_small", jpeg_bytes((255, 0, 0), size=(8, 8)))
        txn.put(b"b_big", jpeg_bytes((0, 255, 0), size=(40, 40)))
    env.close()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"cannot read LSUN key b'b_big'.*ImageTooLargeError: 1,600 pixels"):
        LSUNDataset(path, 8)[1]
    with pytest.warns(UserWarning, match="b_big"):
        assert LSUNDataset(path, 8, skip_bad=True)[1].shape == (3, 8, 8)  # the next readable entry


def test_a_damaged_folder_verdict_is_checked_again(tmp_path):
    """A verdict file that is valid JSON but not a verdict (a list) used to end in AttributeError."""
    root = png_folder(tmp_path / "imgs")
    files = [p.name for p in scan_images(root)]
    assert check_image_files(root, files, cache_dir=tmp_path / "c") == {}
    verdict = next((tmp_path / "c").glob("folder-check-*.json"))
    for text in ("[1, 2]", "3", "null", '{"files": "x"}'):
        verdict.write_text(text)
        assert check_image_files(root, files, cache_dir=tmp_path / "c") == {}


# ---- damaged caches: rebuilt, with a warning that never suggests unpickling ----------------------------------
def _save(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def _truncate(path, arrays):
    _save(path, **arrays)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


BAD_CACHES = [  # (what the damaged cache file is, a part of the warning)
    ("zero bytes", "is empty (0 bytes)"),
    ("text", "is not an .npz file"),
    ("pickle", "is not an .npz file"),
    ("truncated", "damaged or truncated"),
    ("object arrays", "holds Python objects (dtype object)"),
    ("missing array", "has no array named"),
    ("wrong shapes", "unexpected"),
    ("a folder", "is a folder"),
]


def _damage(path, how, good):
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "zero bytes":
        path.write_bytes(b"")
    elif how == "text":
        path.write_text("rendered emoji, honest")
    elif how == "pickle":
        path.write_bytes(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01K\x02e.")
    elif how == "truncated":
        _truncate(path, good)
    elif how == "object arrays":
        _save(path, **{k: np.array([None, {"x": 1}], dtype=object) for k in good})
    elif how == "missing array":
        _save(path, **{k: v for k, v in list(good.items())[:1]})
    elif how == "wrong shapes":
        _save(path, **{k: np.zeros((2, 3, 4, 5), np.float32) for k in good})
    elif how == "a folder":
        path.mkdir()


def _fake_render(calls):
    def render(size, *, sequences=None):
        calls.append(size)
        return np.full((5, size, size, 3), 7, np.uint8), [f"{i:04X}" for i in range(5)]
    return render


@pytest.mark.parametrize("how, expected", BAD_CACHES, ids=[h for h, _ in BAD_CACHES])
def test_a_damaged_openmoji_cache_is_rendered_again(tmp_path, monkeypatch, how, expected):
    calls = []
    monkeypatch.setattr(openmoji, "render_openmoji", _fake_render(calls))
    path = openmoji.openmoji_cache_path(16, tmp_path, sequences=openmoji.has_raqm())
    _damage(path, how, {"images": np.zeros((5, 16, 16, 3), np.uint8), "names": np.array(list("abcde"))})
    with pytest.warns(UserWarning, match="OpenMoji cache .* is unreadable") as record:
        images, names = load_openmoji(16, tmp_path)
    msg = str(record[0].message)
    assert expected in msg and "allow_pickle" not in msg and "pickle.load" not in msg, msg
    assert calls == [16] and images.shape == (5, 16, 16, 3) and names[0] == "0000"
    if how != "a folder":  # rebuilt: the next load is a hit, silently
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            load_openmoji(16, tmp_path)
        assert calls == [16]


@pytest.mark.parametrize("how, expected", BAD_CACHES, ids=[h for h, _ in BAD_CACHES])
def test_a_damaged_lsun_key_cache_is_scanned_again(tmp_path, tiny_lmdb, how, expected):
    LSUNDataset(tiny_lmdb, 8, key_cache_dir=tmp_path / "c")
    path = next((tmp_path / "c").glob("lsun-keys-*.npz"))
    path.unlink()
    _damage(path, how, {"blob": np.zeros(3, np.uint8), "offsets": np.array([0, 3])})
    with pytest.warns(UserWarning, match="LSUN key cache .* is unreadable") as record:
        ds = LSUNDataset(tiny_lmdb, 8, key_cache_dir=tmp_path / "c")
    msg = str(record[0].message)
    assert expected in msg and "allow_pickle" not in msg, msg
    assert len(ds) == 5 and ds.key(4) == b"img4"


def test_an_unwritable_cache_only_warns_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(openmoji, "render_openmoji", _fake_render([]))
    (tmp_path / "plain").write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match=r"could not write the OpenMoji cache .*openmoji-.*\.npz \(cannot write "
                                         r".*: its folder .*plain is not a directory\)"):
        images, _ = load_openmoji(16, tmp_path / "plain")
    assert images.shape == (5, 16, 16, 3)


# ---- where the cache lives ------------------------------------------------------------------------------------
def test_a_relative_cache_dir_is_the_same_from_any_working_directory(tmp_path):
    """Two processes in two folders agree on the cache files of the default data.cache_dir: the checkout's."""
    code = ("from ulib.config import DataConfig; from ulib.data.openmoji import openmoji_cache_path; "
            "from ulib.data.folders import folder_check_path; d = DataConfig().cache_dir; "
            "print(openmoji_cache_path(16, d, sequences=False).resolve()); "
            "print(folder_check_path('/x', [], d).resolve())")
    seen = []
    for cwd in (tmp_path / "a", tmp_path / "b" / "notebooks"):
        cwd.mkdir(parents=True)
        r = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert r.returncode == 0, r.stderr
        seen.append(r.stdout.split())
    assert seen[0] == seen[1] and all(line.startswith(str(ROOT / "data" / "cache") + "/") for line in seen[0])
    assert not (tmp_path / "a" / "data").exists() and not (tmp_path / "b" / "notebooks" / "data").exists()


def test_cache_files_land_under_the_checkout_wherever_the_command_runs(tmp_path, monkeypatch):
    checkout = tmp_path / "checkout"
    (checkout / "ulib").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("[project]\nname = 'ulib'\n")
    monkeypatch.setattr(data_cache, "_CHECKOUT", checkout)
    calls = []
    monkeypatch.setattr(openmoji, "render_openmoji", _fake_render(calls))
    for cwd in (tmp_path / "one", tmp_path / "two"):
        cwd.mkdir()
        monkeypatch.chdir(cwd)
        load_openmoji(16, "data/cache")
    assert calls == [16]  # the second folder found the first one's cache
    assert len(list((checkout / "data" / "cache").glob("openmoji-*.npz"))) == 1
    assert not (tmp_path / "one" / "data").exists() and not (tmp_path / "two" / "data").exists()
    assert data_cache.resolve_cache_dir(tmp_path / "abs") == tmp_path / "abs"  # absolute: as given
    (checkout / "pyproject.toml").unlink()  # installed without a checkout: the user's cache folder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_cache.resolve_cache_dir("data/cache") == tmp_path / "xdg" / "ulib" / "data" / "cache"


# ---- what killed writers left in a cache is cleared before writing ------------------------------------------
def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_in_the_cache_are_removed_before_writing(tmp_path, monkeypatch, tiny_lmdb):
    monkeypatch.setattr(openmoji, "render_openmoji", _fake_render([]))
    cache = tmp_path / "c"
    cache.mkdir()
    dead = _dead_pid()
    stale = [cache / f".openmoji.npz.{dead}-0123abcd.tmp", cache / f".lsun-keys.npz.{dead}-89abcdef.tmp"]
    live = cache / f".openmoji.npz.{os.getpid()}-0123abcd.tmp"
    for p in [*stale, live]:
        p.write_bytes(b"half a file")
        os.utime(p, (time.time() - 3600,) * 2)
    load_openmoji(16, cache)
    assert not any(p.exists() for p in stale) and live.exists()
    stale[0].write_bytes(b"x")
    os.utime(stale[0], (time.time() - 3600,) * 2)
    LSUNDataset(tiny_lmdb, 8, key_cache_dir=cache)
    assert not stale[0].exists()
    stale[1].write_bytes(b"x")
    os.utime(stale[1], (time.time() - 3600,) * 2)
    root = png_folder(tmp_path / "imgs")
    check_image_files(root, ["0.png"], cache_dir=cache)
    assert not stale[1].exists() and live.exists()
    assert json.loads(folder_check_path(root, [("0.png", *_facts(root / "0.png"))], cache).read_text())["bad"] == {}


def _facts(path):
    st = path.stat()
    return st.st_size, st.st_mtime_ns
