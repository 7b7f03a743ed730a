"""The pictures of the playground's Steps tab (`ulib.app.playground_actions`), as PNG bytes for ipywidgets.Image:

- `reveal_png`: the reveal order, a heat map of the step at which each position was written last, i.e. took the
  token it keeps (dark: early, bright: late; grey: never written), with a colour bar of the steps;
- `entropy_png`: the per-step entropy (nats, `ulib.sample.trace.step_entropies`): its mean over the positions
  still masked when the step ran and over those the step wrote, against the step, the shown step marked.

Both are matplotlib Figures drawn without pyplot (no global figure state, safe in a widget's thread).
"""
from __future__ import annotations

import io

import numpy as np


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def reveal_png(reveal: np.ndarray, steps: int, title: str = "reveal order") -> bytes:
    """reveal: (h, w) step at which each position was last written (NaN: never); steps: the run's S."""
    import matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2, 2.8))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.6")
    im = ax.imshow(np.ma.masked_invalid(reveal), cmap=cmap, vmin=0, vmax=max(steps - 1, 1))
    fig.colorbar(im, ax=ax, label="step of the last write")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return _png(fig)


def entropy_png(rows: list[dict], current: int | None = None, title: str = "entropy per step") -> bytes:
    """rows: `step_entropies`' rows (step, masked, written); current: the step after which the slider stands
    (state k shows steps 0..k-1), marked by a vertical line."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 2.8))
    ax = fig.add_subplot()
    for key, label, style in (("masked", "mean over still-masked positions", "o-"),
                              ("written", "mean over the positions it wrote", "s--")):
        pts = [(r["step"], r[key]) for r in rows if r[key] is not None]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, style, ms=3, lw=1, label=label)
    if current is not None and current > 0:
        ax.axvline(current - 1, color="k", lw=0.8, alpha=0.5)
    ax.set_xlabel("step")
    ax.set_ylabel("entropy (nats)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)
