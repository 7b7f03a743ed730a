"""Pixels: one preprocessing for every dataset, and what every dataset shares.

Any image (a file, encoded bytes, any PIL mode) becomes uint8 (S, S, 3): transparency composited on white,
shorter side resized to S (bicubic, antialiased), centre crop. An image over Pillow's decompression-bomb limit is
an `ImageTooLargeError` (its pixel count and the limit), never decoded. A dataset item is float32 (3, S, S) in [-1, 1]
(x = u / 127.5 - 1), flipped at random when the dataset flips. `tensor_to_uint8` goes back.
"""
from __future__ import annotations

import io
import os
import re
import warnings
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from ulib.config import DataConfig

DATA_README = "see data/README.md"  # where the paper's datasets come from and where they go


class DatasetNotFoundError(FileNotFoundError, ValueError):
    """A dataset path that does not exist: both a FileNotFoundError and a ValueError (bad input)."""


def require_path(cfg: DataConfig) -> str:
    """data.path of a dataset read from disk; ValueError when it is empty."""
    if not cfg.path:
        raise ValueError(f"data.path must be set for data.dataset={cfg.dataset!r} (an image folder or an LSUN "
                         f"LMDB folder, e.g. --set data.path=data/ffhq); {DATA_README}")
    return cfg.path


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparency is composited on white (emoji, logos), 16-bit grey scaled to 8 bits."""
    img = ImageOps.exif_transpose(img)  # photos stored sideways with an EXIF orientation tag
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        a = a / 257.0 if a.max() > 255 else a  # 16-bit 0..65535 -> 0..255
        img = Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, RGBX, ... (no-op for RGB)


def resize_center_crop(img: Image.Image, size: int) -> Image.Image:
    """Shorter side -> `size` (bicubic; PIL's resize filters are antialiased when shrinking), centre crop."""
    w, h = img.size
    if min(w, h) != size:
        scale = size / min(w, h)
        w, h = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((w, h), Image.Resampling.BICUBIC)
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))  # torchvision's CenterCrop rule
    return img.crop((left, top, left + size, top + size))


class ImageTooLargeError(ValueError):
    """An image of more pixels than PIL.Image.MAX_IMAGE_PIXELS (a possible decompression bomb): not decoded."""


def _too_large(pixels: int, size: tuple[int, int] | None = None) -> ImageTooLargeError:
    dims = f" ({size[0]}x{size[1]})" if size else ""
    return ImageTooLargeError(f"{pixels:,} pixels{dims}, over the limit of {Image.MAX_IMAGE_PIXELS:,} "
                              "(PIL.Image.MAX_IMAGE_PIXELS, Pillow's guard against decompression bombs); shrink it")


def open_rgb(source: bytes | str | os.PathLike) -> Image.Image:
    """File path or encoded bytes -> a fully decoded RGB image (`to_rgb`), whatever its mode.

    More than PIL.Image.MAX_IMAGE_PIXELS pixels raises ImageTooLargeError before any decoding (Pillow itself
    only warns up to twice the limit, then decodes it all); for other bad data, whatever PIL raises.
    """
    try:
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except Image.DecompressionBombError as e:  # over twice the limit: Pillow refuses, with its own wording
        m = re.search(r"\((\d+) pixels\)", str(e))
        raise (_too_large(int(m.group(1))) if m else ImageTooLargeError(str(e))) from None
    with img:
        limit = Image.MAX_IMAGE_PIXELS
        if limit and img.width * img.height > limit:
            raise _too_large(img.width * img.height, img.size)
        img.load()  # decode now, so a truncated file fails here and not later
        return to_rgb(img)


def read_image(data: bytes | str | os.PathLike, size: int) -> np.ndarray:
    """File path or encoded bytes -> uint8 (size, size, 3). Raises ImageTooLargeError or whatever PIL raises
    for bad data (`open_rgb`)."""
    return np.asarray(resize_center_crop(open_rgb(data), size), dtype=np.uint8)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [-1, 1]:  x = u / 127.5 - 1."""
    img = np.require(img, np.uint8, ["C_CONTIGUOUS", "WRITEABLE"])  # PIL's arrays are read-only: copy those
    return torch.from_numpy(img).permute(2, 0, 1).float().div(127.5).sub(1.0)


def tensor_to_uint8(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3): u = round((clamp(x) + 1) * 127.5). (3, H, W) -> (H, W, 3)."""
    x = torch.as_tensor(x).detach().to("cpu", torch.float32)
    if x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"tensor_to_uint8: expected (B, 3, H, W) or (3, H, W), got shape {tuple(x.shape)}")
    u = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return u.movedim(-3, -1).numpy()


class AugmentedDataset(Dataset):
    """Shared by all datasets: subclasses implement `_load(i) -> uint8 (S, S, 3)`; we add the flip + scaling.

    Random flips draw from `generator` when given (reproducible), else from torch's global RNG, which a
    DataLoader seeds differently in every worker (a generator is copied into each worker, so workers would
    repeat one another's flips).
    """

    flip: bool = False
    generator: torch.Generator | None = None

    def _load(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, i: int) -> torch.Tensor:
        x = to_tensor(self._load(int(i)))  # (3, S, S)
        if self.flip and torch.rand((), generator=self.generator).item() < 0.5:
            x = x.flip(-1)  # horizontal: reverse the width axis
        return x


class ArrayImageDataset(AugmentedDataset):
    """In-memory uint8 images (N, H, W, 3) -> float32 (3, H, W) in [-1, 1]; e.g. rendered OpenMoji
    ("All emojis designed by OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0")."""

    def __init__(self, images: np.ndarray, flip: bool = False, *, names: Sequence[str] | None = None,
                 generator: torch.Generator | None = None):
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"ArrayImageDataset: expected uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        self.images, self.flip, self.generator = images, flip, generator
        self.names = list(names) if names is not None else None

    def __len__(self) -> int:
        return len(self.images)

    def _load(self, i: int) -> np.ndarray:
        return self.images[i]


def read_with_policy(ds, i: int, read: Callable[[int], np.ndarray], what: Callable[[int], str]) -> np.ndarray:
    """read(i); on failure raise ValueError naming the item, or (skip_bad) warn once and try the next one."""
    n = len(ds)
    for step in range(n):
        j = (i + step) % n
        if j in ds._bad:
            continue
        try:
            return read(j)
        except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, DecompressionBomb...
            msg = f"cannot read {what(j)}: {type(e).__name__}: {e}"
            if not ds.skip_bad:
                raise ValueError(f"{msg}; fix or remove it, or set data.skip_bad=true to skip unreadable images") from e
            ds._bad.add(j)
            warnings.warn(f"skipping {msg}", stacklevel=3)
    raise ValueError(f"no readable image in {ds!r}: all {n} items failed to decode")
