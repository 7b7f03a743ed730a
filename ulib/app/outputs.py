"""What a notebook shows and leaves in RUN/results/: pictures (PNG) and tables (CSV), so that `python -m ulib
reproduce` gathers results as files, never by reading cell outputs."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from ulib.app.session import Session
from ulib.io.logs import (
    markdown_table,
    preview_upscale,
    save_image_grid,
)


# ---- pictures -------------------------------------------------------------------------------------------
def token_picture(tokens: torch.Tensor, codebook_size: int, mask_id: int | None = None, cell: int = 12):
    """A token grid (h, w) as an RGB uint8 picture: one colour per code, masked cells black.

    Codes get colours from a fixed colour map (code k -> k / (K - 1)), so the same code has the same colour
    in every picture of a notebook.
    """
    import matplotlib

    t = tokens.detach().long().cpu()
    masked = (t == mask_id) if mask_id is not None else torch.zeros_like(t, dtype=torch.bool)
    cmap = matplotlib.colormaps["tab20b"] if codebook_size <= 20 else matplotlib.colormaps["viridis"]
    rgb = cmap((t.clamp(max=codebook_size - 1).float() / max(codebook_size - 1, 1)).numpy())[..., :3]
    rgb[masked.numpy()] = 0.0
    img = (rgb * 255).round().astype(np.uint8)
    return img.repeat(cell, axis=0).repeat(cell, axis=1)


def upscale_for(img_size: int) -> int:
    """Nearest-neighbour enlargement that shows small images at about 128 pixels."""
    return preview_upscale(img_size)


def save_grid(s: Session, images: torch.Tensor, name: str, nrow: int | None = None) -> Path:
    """Save images (B, 3, H, W) in [-1, 1] as RUN/results/NAME.png, enlarged by nearest neighbours so that the
    shorter side shows at about 128 pixels (a 32-px emoji 4x, a 32x64 canvas too), and return the path."""
    path = s.results / f"{name}.png"
    save_image_grid(images.detach().clamp(-1, 1).cpu(), path, nrow=nrow, upscale=upscale_for(min(images.shape[-2:])))
    return path


def save_figure(s: Session, fig, name: str) -> Path:
    """Save a matplotlib figure as RUN/results/NAME.png and return the path."""
    path = s.results / f"{name}.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def show(path) -> None:
    """Display a PNG inline (in a notebook), or print its path elsewhere."""
    try:
        from IPython.display import Image, display

        display(Image(filename=str(path)))
    except ImportError:
        print(path)


# ---- tables ------------------------------------------------------------------------------------------------
def write_table(s: Session, rows: list[dict], name: str) -> Path:
    """Write rows (dicts) as RUN/results/NAME.csv; floats with 6 significant digits. Columns: every key of
    any row, in first-seen order; a row without one of them gets an empty cell."""
    if not rows:
        raise ValueError(f"table {name!r} has no rows")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    path = s.results / f"{name}.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([format(v, ".6g") if isinstance(v, float) else v for v in (r.get(c) for c in columns)])
    return path


def show_table(rows: list[dict], columns: list[str] | None = None) -> None:
    """Display rows as a Markdown table in a notebook (plain text elsewhere)."""
    show_markdown(markdown_table(rows, columns))


def show_markdown(text: str) -> None:
    """Display Markdown text rendered in a notebook (or any IPython kernel); print it elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        print(text)
        return
    if get_ipython() is None:
        print(text)
    else:
        display(Markdown(text))
