"""`python -m ulib inpaint --image/--mask`: an image file that cannot be used is a one-line ValueError naming the
flag and the file (`ulib.app.commands.load_rgb`), a decompression bomb with its pixel count and the limit."""
import numpy as np
import pytest
from PIL import Image

from ulib.app.commands import load_rgb

from helpers import huge_png_header


def _write(content):
    def make(p):
        p.write_bytes(content)
    return make


def _folder(p):
    p.mkdir()


BAD_IMAGE_ARGS = [  # (input maker, a part of the error)
    (_write(huge_png_header()), "is too large to read: 400,000,000 pixels, over the limit of 89,478,485"),
    # already one-line errors before the bomb fix; kept as a guard
    (_write(b""), "cannot identify image file"),
    (_write(b"a text file"), "cannot identify image file"),
    (_write(b"\x89PNG\r\n\x1a\n truncated"), "cannot be read as an image ("),
    (_folder, "Is a directory"),
]


@pytest.mark.parametrize("make, expected", BAD_IMAGE_ARGS, ids=[f"image{i}" for i in range(len(BAD_IMAGE_ARGS))])
def test_bad_image_arguments_are_one_line_errors(tmp_path, make, expected):
    path = tmp_path / "face.png"
    make(path)
    with pytest.raises(ValueError) as info:
        load_rgb(path, 16, "--image")
    msg = str(info.value)
    assert msg.startswith(f"--image {path} ") and expected in msg and "\n" not in msg, msg


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, before our error
def test_an_image_between_the_limit_and_twice_it_is_refused_too(tmp_path, monkeypatch):
    Image.new("RGB", (40, 40), (255, 255, 255)).save(tmp_path / "mask.png")
    assert load_rgb(tmp_path / "mask.png", 16, "--mask").shape == (16, 16, 3)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow would only warn, then decode it all
    with pytest.raises(ValueError, match=r"--mask .*mask.png is too large to read: 1,600 pixels \(40x40\), over the "
                                         r"limit of 1,000"):
        load_rgb(tmp_path / "mask.png", 16, "--mask")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_rgb(tmp_path / "missing.png", 16, "--image")


def test_image_arguments_of_any_mode_become_rgb(tmp_path):
    rng = np.random.default_rng(0)
    for mode in ("L", "LA", "RGBA", "P", "CMYK", "I;16", "1"):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).convert(mode).save(tmp_path / "x.tif")
        a = load_rgb(tmp_path / "x.tif", 16, "--image")
        assert a.shape == (16, 16, 3) and a.dtype == np.uint8, mode
