"""`python -m ulib compare REAL FAKE`'s inputs: every bad folder, image or .npz is a one-line ValueError naming the
file and what is expected (never a traceback, never advice to unpickle); a link loop counts each image once; an
output that cannot be written is an `error:` line naming it."""
import io
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ulib.eval import compare as C
from ulib.eval import metrics as M

from helpers import huge_png_header, png_folder, run_cli

EXPECTED_NPZ = "expected a .npz holding one uint8 array of shape (N, H, W, 3) or (N, 3, H, W)"


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _truncated(p):
    raw = _npz(p, images=np.zeros((4, 8, 8, 3), np.uint8)).read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    return p


def _zip_of_png(p):
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("a.png", b"\x89PNG not really")
    return p


def _pickle(p):
    p.write_bytes(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01K\x02e.")  # pickle.dumps([1, 2])
    return p


def _write(content):
    def make(p):
        p.write_bytes(content)
        return p
    return make


def _crc_damaged(p):
    raw = bytearray(_npz(p, images=np.arange(4 * 64 * 64 * 3, dtype=np.uint8).reshape(4, 64, 64, 3)).read_bytes())
    raw[6000] ^= 0xFF
    p.write_bytes(bytes(raw))
    return p


BAD_NPZ = [  # (input maker: path -> path, a part of the one-line error)
    (lambda p: _npz(p), "it holds no arrays"),  # np.savez with nothing
    (_truncated, "is a damaged or truncated .npz file"),
    (_write(b"hello, this is not an archive"), "is not an .npz file (an .npz is a zip archive"),
    (_write(b""), "is empty (0 bytes)"),
    (_pickle, "is not an .npz file"),  # np.load would say: load it with allow_pickle
    (lambda p: _npz(p, images=np.array([{"a": 1}, None], dtype=object)), "array 'images' is object of shape (2,)"),
    (lambda p: _npz(p, images=np.zeros((2, 8, 8, 3), np.float32)), "array 'images' is float32 of shape (2, 8, 8, 3)"),
    (lambda p: _npz(p, images=np.zeros((2, 8, 8, 3), np.uint16)), "is uint16 of shape"),
    (lambda p: _npz(p, images=np.zeros((8, 8, 3), np.uint8)), "is uint8 of shape (8, 8, 3)"),  # one image, no N
    (lambda p: _npz(p, images=np.zeros((2, 8, 8, 4), np.uint8)), "is uint8 of shape (2, 8, 8, 4)"),  # RGBA
    (lambda p: _npz(p, images=np.zeros((2, 0, 0, 3), np.uint8)), "is uint8 of shape (2, 0, 0, 3)"),
    (lambda p: _npz(p, a=np.zeros((2, 8, 8, 3), np.uint8), b=np.zeros(2)), "2 arrays (a, b), none named 'images'"),
    (_zip_of_png, "it holds no arrays"),
    (_crc_damaged, "array 'images' is damaged or truncated"),
]


def _bomb(folder):
    png_folder(folder, 2)
    (folder / "big.png").write_bytes(huge_png_header())
    return folder


def _mixed_sizes(folder):
    png_folder(folder, 2)
    Image.new("RGB", (9, 8)).save(folder / "z.png")
    return folder


def _only_text(folder):
    folder.mkdir()
    (folder / "notes.txt").write_text("no pictures here")
    (folder / "data.npy").write_bytes(b"\x93NUMPY")
    return folder


def _zero_byte(folder):
    png_folder(folder, 2)
    (folder / "empty.png").write_bytes(b"")
    return folder


def _not_an_image(folder):
    png_folder(folder, 2)
    (folder / "fake.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def _empty(folder):
    folder.mkdir()
    return folder


def _only_loops(folder):
    folder.mkdir()
    os.symlink(".", folder / "loop")
    return folder


BAD_FOLDERS = [  # (input maker: folder -> folder, a part of the one-line error)
    (_empty, "no images found in"),
    (_only_text, "no images found in"),
    (_only_loops, "no images found in"),
    (_zero_byte, "cannot read empty.png (UnidentifiedImageError"),
    (_not_an_image, "cannot read fake.jpg (OSError"),
    (_mixed_sizes, "z.png is 9x8, the first image is 8x8"),
    # a decompression bomb: its pixel count and Pillow's limit (MAX_IMAGE_PIXELS, not the 2x Pillow quotes)
    (_bomb, "cannot read big.png (ImageTooLargeError: 400,000,000 pixels, over the limit of 89,478,485"),
]


# one table of bad image sets: (maker, expected words, the name it is made under, words every such error holds)
BAD_SETS = ([(make, expected, "fake.npz", EXPECTED_NPZ) for make, expected in BAD_NPZ]
            + [(make, expected, "real", "") for make, expected in BAD_FOLDERS])
SET_IDS = [f"npz{i}" for i in range(len(BAD_NPZ))] + [f"folder{i}" for i in range(len(BAD_FOLDERS))]


@pytest.mark.parametrize("make, expected, name, also", BAD_SETS, ids=SET_IDS)
def test_bad_image_sets_are_one_line_errors_naming_the_file(tmp_path, make, expected, name, also):
    path = make(tmp_path / name)
    with pytest.raises(ValueError) as info:
        C.load_image_set(path)
    msg = str(info.value)
    assert expected in msg and also in msg and str(path) in msg and "\n" not in msg, msg
    assert "allow_pickle" not in msg and "pickle.load" not in msg  # never advise unpickling a file


@pytest.mark.parametrize("limit", [0, -1, True, 2.5])
def test_limit_must_be_a_positive_count(tmp_path, limit):
    """--limit -1 used to drop the last image silently (files[:-1]); 0 meant all of them."""
    with pytest.raises(ValueError, match="expected a number of images >= 1"):
        C.load_image_set(png_folder(tmp_path / "a"), limit=limit)
    assert len(C.load_image_set(tmp_path / "a", limit=2)) == 2


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, before our error
def test_image_over_pillows_limit_is_refused_not_decoded(tmp_path, monkeypatch):
    """Between MAX_IMAGE_PIXELS and twice that, Pillow only warns and decodes the whole image anyway."""
    png_folder(tmp_path / "a", 2, size=(40, 40))  # 1,600 pixels each
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"cannot read 0.png \(ImageTooLargeError: 1,600 pixels \(40x40\), over the "
                                         r"limit of 1,000 \(PIL.Image.MAX_IMAGE_PIXELS"):
        C.load_image_set(tmp_path / "a")


@pytest.mark.timeout(60)  # before the fix: 2**40 paths through the two links
def test_a_link_loop_counts_each_image_once(tmp_path):
    """3 images, a link to their own folder and one to its parent: 3 images, under their real names."""
    folder = png_folder(tmp_path / "real")
    os.symlink(".", folder / "loop")
    os.symlink("..", folder / "up")
    x = C.load_image_set(folder)
    assert x.shape == (3, 3, 8, 8)
    assert torch.equal(x[:, 0, 0, 0], torch.tensor([0, 40, 80], dtype=torch.uint8))


@pytest.mark.parametrize("mode, ext", [("L", "png"), ("LA", "png"), ("RGBA", "png"), ("P", "png"), ("1", "png"),
                                       ("I;16", "png"), ("I", "tif"), ("F", "tif"), ("CMYK", "jpg"),
                                       ("CMYK", "tif"), ("YCbCr", "jpg"), ("LAB", "tif")])
def test_every_mode_reads_as_rgb(tmp_path, mode, ext):
    rng = np.random.default_rng(0)
    folder = tmp_path / "a"
    folder.mkdir()
    for i in range(2):
        img = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).convert(mode)
        img.save(folder / f"{i}.{ext}")
    x = C.load_image_set(folder)
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.uint8


def test_prdc_needs_k_plus_two_points_and_the_noise_floor_waits_for_them():
    """A set of k + 1 images passed the 'more than k' check, then numpy failed: "kth(=6) out of bounds (6)";
    a REAL of 12 images made halves of 6 for the noise floor at k = 5, the same failure."""
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(12, 4, generator=g), torch.randn(6, 4, generator=g)
    with pytest.raises(ValueError, match=r"PRDC with k=5 needs at least 7 \(k \+ 2\) real and fake points; got 12 "
                                         r"and 6"):
        M.prdc(real, fake, k=5)
    with pytest.raises(ValueError, match="allowed: an integer k >= 1"):
        M.prdc(real, real, k=0)
    r = C.compare_features(real, real[:7], draws=0, k=5)
    assert r["noise_floor"] == {} and 0 <= r["precision"] <= 1


# ---- the command --------------------------------------------------------------------------------------------
def _emoji_npz(path, n=8):
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8))
    return path


def test_compare_command_bad_inputs_and_unwritable_json_are_error_lines(tmp_path):
    """Exit 2 and one `error:` line naming the file, no traceback: a garbage .npz, a decompression bomb, and a
    --json whose folder is a regular file (where the hidden temporary file used to be named, or a traceback)."""
    real = _emoji_npz(tmp_path / "real.npz")
    (tmp_path / "garbage.npz").write_bytes(b"\x80\x04 not an archive")
    _bomb(tmp_path / "bomb")
    (tmp_path / "plain").write_text("a file, not a folder")
    cases = [
        (["compare", str(real), str(tmp_path / "garbage.npz")], f"{tmp_path / 'garbage.npz'} is not an .npz file"),
        (["compare", str(tmp_path / "bomb"), str(real)], "400,000,000 pixels, over the limit of 89,478,485"),
        (["compare", str(real), str(real), "--prdc-k", "2", "--bootstrap", "0", "--json",
          str(tmp_path / "plain" / "out.json")],
         f"--json {tmp_path / 'plain'}: {tmp_path / 'plain'} is not a folder"),  # checked before any work
    ]
    for args, expected in cases:
        r = run_cli(*args)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2, (args, r.stderr[-2000:])
        assert "Traceback" not in r.stderr and lines[-1].startswith("error: ") and expected in lines[-1], r.stderr
        assert sum(line.startswith("error:") for line in lines) == 1
    assert sorted(os.listdir(tmp_path)) == ["bomb", "garbage.npz", "plain", "real.npz"]  # no stray temporaries


def test_pillow_decompression_bomb_error_text_is_what_we_parse():
    """ImageTooLargeError reads the pixel count from Pillow's DecompressionBombError message."""
    with pytest.raises(Image.DecompressionBombError, match=r"\(400000000 pixels\)"):
        Image.open(io.BytesIO(huge_png_header()))
