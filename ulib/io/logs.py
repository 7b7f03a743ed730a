"""What a training run leaves behind besides checkpoints: a CSV of metrics and PNG grids of images.

Both are plain files a notebook or a runner can read without this code. The CSV's first column is
`step`; columns can appear later in a run (the VQGAN's GAN loss starts at `disc_start_step`), in which case
the file is rewritten with the wider header. A resumed run drops the rows logged after its checkpoint,
so its log ends up identical to that of a run that was never interrupted.
"""
from __future__ import annotations

import csv
import io
import math
import numbers
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ulib.io.files import atomic_write, is_int

__all__ = ["MetricsLog", "save_image_grid"]


# ---- CSV metrics -------------------------------------------------------------------------------------
def _format(name: str, value) -> str:
    """One CSV cell: '' for None, ints as ints, floats with 6 significant digits ('0.0002', '1.23457e-05')."""
    if value is None:
        return ""
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        n = value.numel() if isinstance(value, torch.Tensor) else np.size(value)
        if n != 1:
            raise ValueError(f"metric {name!r}: expected one number, got an array of shape {tuple(value.shape)}")
        value = value.item()
    if is_int(value):
        return str(int(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return format(float(value), ".6g")
    raise TypeError(
        f"metric {name!r}={value!r} ({type(value).__name__}); allowed: int, float, a one-element tensor, None"
    )


def _parse(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a metrics CSV. A malformed last line (a crash mid-write) is dropped with a warning."""
    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    if not lines or not lines[0] or lines[0][0] != "step":
        head = lines[0] if lines else "(empty file)"
        raise ValueError(f"metrics log {str(path)!r} does not start with a 'step' column; its header is {head}")
    columns, rows = lines[0], lines[1:]

    def ok(row):
        return len(row) == len(columns) and row[0].lstrip("-").isdigit()

    if rows and not ok(rows[-1]):
        warnings.warn(f"metrics log {str(path)!r}: dropping a malformed last line {rows[-1]} (interrupted write?)")
        rows = rows[:-1]
    for i, row in enumerate(rows):
        if not ok(row):
            raise ValueError(
                f"metrics log {str(path)!r}, line {i + 2}: {row} does not fit the header {columns} "
                f"(expected {len(columns)} cells, the first an integer step)"
            )
    return columns, rows


class MetricsLog:
    """Append-only CSV of `step, metric1, metric2, ...`; see the module docstring.

    `MetricsLog(path)` starts a fresh log (an existing file is replaced); `MetricsLog(path, resume_step=s)`
    keeps the existing rows with step <= s and appends after them.
    """

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None):
        self.path = Path(path)
        if resume_step is not None and not is_int(resume_step):
            raise TypeError(f"MetricsLog resume_step={resume_step!r}; allowed: an int step or None (fresh run)")
        columns, rows = ["step"], []
        if resume_step is not None and self.path.exists():
            columns, rows = _parse(self.path)
            rows = [r for r in rows if int(r[0]) <= resume_step]
            # Drop columns that no kept row uses: they reappear, in the same order, when logged again, just
            # as they first appeared in the interrupted run, so the file matches an uninterrupted run's.
            keep = [0] + [j for j in range(1, len(columns)) if any(r[j] != "" for r in rows)]
            columns = [columns[j] for j in keep]
            rows = [[r[j] for j in keep] for r in rows]
        self._columns = columns
        self._rewrite(rows)

    @property
    def columns(self) -> list[str]:
        """The header, 'step' first, in the order the metrics first appeared."""
        return list(self._columns)

    def _rewrite(self, rows: list[list[str]]) -> None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(self._columns)
        writer.writerows(rows)
        atomic_write(self.path, lambda f: f.write(text.getvalue().encode("utf-8")))

    def log(self, step: int, **metrics) -> None:
        """Append one row; a metric not seen before widens the header (earlier rows get empty cells)."""
        if not is_int(step):
            raise TypeError(f"MetricsLog.log step={step!r} ({type(step).__name__}); allowed: int")
        cells = {name: _format(name, value) for name, value in metrics.items()}
        new = [name for name in metrics if name not in self._columns]
        if new:
            _, rows = _parse(self.path)
            self._columns += new
            self._rewrite([r + [""] * len(new) for r in rows])
        row = [str(int(step))] + [cells.get(c, "") for c in self._columns[1:]]
        with open(self.path, "a", newline="") as f:  # closing flushes: each row is on disk as it is logged
            csv.writer(f, lineterminator="\n").writerow(row)

    @staticmethod
    def read(path: str | os.PathLike) -> list[dict]:
        """Rows as dicts: 'step' an int, every metric a float, or None where it was not logged."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"metrics log {str(path)!r} does not exist")
        columns, rows = _parse(path)
        return [
            {"step": int(r[0]), **{c: (float(v) if v != "" else None) for c, v in zip(columns[1:], r[1:])}}
            for r in rows
        ]


# ---- image grids -------------------------------------------------------------------------------------
def _to_uint8_bhwc(images) -> np.ndarray:
    """(B, 3, H, W) float tensor in [-1, 1] (clamped) or (B, H, W, 3) uint8 array -> (B, H, W, 3) uint8."""
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"save_image_grid: a float tensor must be (B, 3, H, W); got shape {tuple(images.shape)}")
        x = images.detach().float().cpu()
        if not torch.isfinite(x).all():
            raise ValueError("save_image_grid: the images contain NaN or inf (has training diverged?)")
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # -1 -> 0, 1 -> 255
        return x.permute(0, 2, 3, 1).numpy()
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        if images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"save_image_grid: a uint8 array must be (B, H, W, 3); got shape {images.shape}")
        return images
    what = f"{type(images).__name__} of dtype {getattr(images, 'dtype', '?')}"
    raise TypeError(
        f"save_image_grid: got a {what}; allowed: a float torch tensor (B, 3, H, W) in [-1, 1] or a uint8 "
        f"numpy array (B, H, W, 3)"
    )


def image_grid(images, nrow: int | None = None, padding: int = 1, pad_value: float = 1.0,
               upscale: int = 1) -> np.ndarray:
    """Tile `images` into one uint8 (H', W', 3) array.

    `nrow` images per row (default ceil(sqrt(B)), at most B), `padding` pixels between and around them
    filled with `pad_value` on the [-1, 1] scale (1 = white, -1 = black). The grid is
    (rows * (H + padding) + padding) x (nrow * (W + padding) + padding) pixels, then enlarged `upscale`
    times by nearest neighbour so 16x16 images stay visible.
    """
    arr = _to_uint8_bhwc(images)
    b, h, w, _ = arr.shape
    if b == 0:
        raise ValueError("save_image_grid: got an empty batch (B = 0)")
    if nrow is None:
        nrow = math.isqrt(b - 1) + 1  # ceil(sqrt(B))
    for name, value, low in (("nrow", nrow, 1), ("padding", padding, 0), ("upscale", upscale, 1)):
        if not is_int(value) or value < low:
            raise ValueError(f"save_image_grid: {name}={value!r}; allowed: an int >= {low}")
    if not -1.0 <= pad_value <= 1.0:
        raise ValueError(f"save_image_grid: pad_value={pad_value}; allowed: -1 <= pad_value <= 1")
    ncol = min(nrow, b)
    nrows = math.ceil(b / ncol)
    fill = round((pad_value + 1) * 127.5)
    grid = np.full((nrows * (h + padding) + padding, ncol * (w + padding) + padding, 3), fill, dtype=np.uint8)
    for i in range(b):
        r, c = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + c * (w + padding)
        grid[y : y + h, x : x + w] = arr[i]
    if upscale > 1:
        grid = grid.repeat(upscale, axis=0).repeat(upscale, axis=1)
    return grid


def save_image_grid(images, path: str | os.PathLike, nrow: int | None = None, padding: int = 1,
                    pad_value: float = 1.0, upscale: int = 1) -> None:
    """`image_grid(...)` written as a PNG at `path` (atomically; the folder is created)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_image_grid writes PNG files; path {str(path)!r} should end in '.png'")
    grid = image_grid(images, nrow, padding, pad_value, upscale)
    atomic_write(path, lambda f: Image.fromarray(grid).save(f, format="PNG"))


def preview_upscale(side: int) -> int:
    """Nearest-neighbour enlargement that shows images of `side` pixels at about 128 pixels."""
    return max(1, 128 // side)


def markdown_table(rows: list[dict], columns: list[str] | None = None, digits: int = 4) -> str:
    """Rows as a GitHub Markdown table; numbers rounded to `digits` significant digits, None/'' as '–'."""
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0])

    def cell(v):
        if v is None or v == "":
            return "–"
        if isinstance(v, float):
            return format(v, f".{digits}g")
        if isinstance(v, str):
            try:
                f = float(v)
            except ValueError:
                return v
            return v if v.lstrip("-").isdigit() else format(f, f".{digits}g")
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"
