"""Image folders (FFHQ, or any folder of pictures; data.dataset='folder'): every image under a root, checked once
before training. `build` and `fingerprint` are its entry in the dataset registry (`ulib.config.DATASETS`).

`check_image_files` decodes every file up front and caches its verdict (keyed by the folder and its file list
with sizes and mtimes), so a bad file is named before the first step instead of crashing a run hours in.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ulib.config import DataConfig
from ulib.data.cache import before_writing, resolve_cache_dir
from ulib.data.images import (
    DATA_README,
    AugmentedDataset,
    DatasetNotFoundError,
    open_rgb,
    read_image,
    read_with_policy,
    require_path,
)
from ulib.io.files import atomic_write

IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


def _walk_images(root: Path) -> list[tuple[Path, bool]]:
    """(path, reached through a link) of every image file under `root`, each folder entered once.

    First every real sub-folder (breadth-first, sorted), then the folders that links lead to, in the order the
    links were met; a folder is entered only the first time its (st_dev, st_ino) is met, so a link to a folder
    already seen (to itself, to a parent: a loop) adds nothing and a folder with a real name under `root` is
    walked under that name. Hidden files and folders are skipped.
    """
    st = root.stat()
    seen, found, links = {(st.st_dev, st.st_ino)}, [], []
    queue = [(root, False)]
    while queue or links:
        if not queue:  # the real folders are done: follow the next link to a folder not yet entered
            try:
                st = os.stat(link := links.pop(0))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                queue.append((link, True))
            continue
        folder, linked = queue.pop(0)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            warnings.warn(f"cannot list {str(folder)!r} ({e.strerror or e}); its images are left out", stacklevel=3)
            continue
        for entry in entries:
            if entry.name.startswith("."):  # .ipynb_checkpoints, ._ files of macOS
                continue
            path, is_link = Path(entry.path), entry.is_symlink()
            if entry.is_dir(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    queue.append((path, linked))
            elif is_link and os.path.isdir(path):
                links.append(path)
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                found.append((path, linked or is_link))
    return found


def scan_images(root: str | os.PathLike) -> list[Path]:
    """Image files under `root`, recursively, sorted by relative path; hidden files/folders are ignored.

    Links are followed, but every folder is entered and every file counted once: a link loop (a folder linking
    to itself or to a parent) or two names of one file (a link, a hard link) yield it once, under its name
    reached without links where there is one, else the first in sorted order. A dangling link is kept: the
    up-front check names it as a file that cannot be read.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder; {DATA_README} "
                                "for where to download the datasets and where to put them")
    walked = _walk_images(root)
    walked.sort(key=lambda pl: (pl[1], pl[0].relative_to(root).as_posix()))  # names without links first
    found, files_seen = [], set()
    for path, _ in walked:
        try:
            st = path.stat()
            ident: tuple = (st.st_dev, st.st_ino)
        except OSError:
            ident = ("unreadable", str(path))  # a dangling link: kept, to be named by the check
        if ident not in files_seen:
            files_seen.add(ident)
            found.append(path)
    found.sort(key=lambda p: p.relative_to(root).as_posix())
    if not found:
        raise ValueError(f"no images found in {str(root)!r}; allowed extensions (any case): "
                         f"{', '.join(IMAGE_EXTENSIONS)}")
    return found


FOLDER_CHECK_VERSION = "c2"  # bump when check_image_files judges files differently: part of its cache key
_LIST_IN_ERROR = 50  # bad files named in the error message itself; all of them are in the verdict file


class BadImagesError(ValueError):
    """An image folder holds files that cannot be decoded; `.bad` maps each one (relative path) to why."""

    def __init__(self, message: str, bad: dict[str, str]):
        super().__init__(message)
        self.bad = bad


def file_list_facts(root: Path, files: Sequence[Path]) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of every file: what a folder's verdict and fingerprint depend on.
    A dangling link contributes its own (lstat) facts; reading it fails in the check, which names it."""
    facts = []
    for p in files:
        try:
            st = p.stat()
        except FileNotFoundError:
            st = p.lstat()
        rel = p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)
        facts.append((rel, st.st_size, st.st_mtime_ns))
    return facts


def _read_error(path: Path) -> str | None:
    """None if `path` decodes to RGB as training reads it (`open_rgb`: all pixel data, within Pillow's
    decompression-bomb limit), else 'ErrorType: message'."""
    try:
        open_rgb(path)
        return None
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, ImageTooLargeError...
        return f"{type(e).__name__}: {e}"


def folder_check_path(root: str | os.PathLike, facts, cache_dir: str | os.PathLike) -> Path:
    """data/cache/folder-check-HASH.json: one verdict per (folder, file list with sizes and mtimes).
    A relative cache_dir is the checkout's (`ulib.data.cache.resolve_cache_dir`), not the working directory's."""
    ident = json.dumps([FOLDER_CHECK_VERSION, str(Path(root).resolve()), facts])
    return resolve_cache_dir(cache_dir) / f"folder-check-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.json"


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
    facts = file_list_facts(root, paths) if facts is None else facts
    cache = folder_check_path(root, facts, cache_dir) if cache_dir is not None else None
    if cache is not None and cache.exists():
        try:
            verdict = json.loads(cache.read_text())
            if not isinstance(verdict, dict):  # valid JSON, but not a verdict (a list, a number, ...)
                raise ValueError("not a verdict")
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
        results = pool.map(_read_error, paths)
        bar = tqdm(results, total=len(paths), desc=f"checking {len(paths)} images", unit="img",
                   disable=not show_progress or len(paths) < 500, mininterval=1.0, dynamic_ncols=True)
        for (rel, _, _), err in zip(facts, bar):
            if err is not None:
                bad[rel] = err
    if cache is not None:
        text = json.dumps({"folder": str(root.resolve()), "files": len(facts), "bad": bad}, indent=1)
        before_writing(cache.parent)
        try:
            atomic_write(cache, lambda f: f.write(text.encode()))
        except OSError as e:
            warnings.warn(f"could not write the image-folder verdict {cache} ({e}); the check runs again next time")
    return bad


def _bad_listing(bad: dict[str, str], verdict: Path | None) -> list[str]:
    """One line per bad file (the first _LIST_IN_ERROR of them; the verdict file holds them all)."""
    lines = [f"  {rel}: {why}" for rel, why in list(bad.items())[:_LIST_IN_ERROR]]
    if len(bad) > _LIST_IN_ERROR:
        lines.append(f"  ... and {len(bad) - _LIST_IN_ERROR} more" + (f", all listed in {verdict}" if verdict else ""))
    return lines


class ImageFolderDataset(AugmentedDataset):
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
                raise DatasetNotFoundError(f"image folder {str(self.root)!r} does not exist; {DATA_README}")
            self.files = [self.root / f for f in files]  # an absolute f stays absolute
            if not self.files:
                raise ValueError(f"ImageFolderDataset({str(self.root)!r}): files= is empty")
        self.img_size, self.flip, self.skip_bad, self.generator = int(img_size), flip, skip_bad, generator
        self._bad: set[int] = set()
        self.skipped: dict[str, str] = {}  # relative path -> reason, for files the up-front check left out
        if check:
            self._check(cache_dir, show_progress)

    def _check(self, cache_dir, show_progress: bool) -> None:
        facts = file_list_facts(self.root, self.files)
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
        return read_with_policy(self, i, lambda j: read_image(self.files[j], self.img_size),
                                 lambda j: f"image file {str(self.files[j])!r}")


# ---- the dataset registry's entry (ulib.config.DATASETS) ----------------------------------------------------
def build(cfg: DataConfig, *, flip: bool) -> ImageFolderDataset:
    """Every image under data.path, each file decoded once up front (the verdict cached under cfg.cache_dir)."""
    return ImageFolderDataset(require_path(cfg), cfg.img_size, flip=flip, skip_bad=cfg.skip_bad, check=True,
                              cache_dir=cfg.cache_dir)


def fingerprint(cfg: DataConfig) -> dict:
    """The resolved folder and its sorted file list with sizes and mtimes."""
    root = Path(require_path(cfg)).resolve()
    return dict(path=str(root), files=[list(f) for f in file_list_facts(root, scan_images(root))])
