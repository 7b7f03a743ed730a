"""The run's data splits by name, for the notebooks: a split's images in a seeded order, varied images by OpenMoji
category, the exact words that name a split in tables and prose, a split's OpenMoji names, and its token grids.

The splits themselves (random, by OpenMoji family, by folder group; train / val / test) are made in
`ulib.data.datasets`; `ulib.app.measuring` scores and compares images drawn from them.
"""
from __future__ import annotations

import torch

from ulib.app.session import Session
from ulib.data.datasets import build_dataset, split_sides
from ulib.eval import extractors as X
from ulib.eval.categories import CATEGORIES, emoji_categories


def split_images(s: Session, split: str, n: int | None = None, seed_offset: int = 0) -> torch.Tensor:
    """uint8 images (N, 3, H, W) of the run's `split` ('train', 'val', 'test'), in a fixed random order seeded by
    the session's seed + seed_offset; the first n of them (all when n is None)."""
    ds = build_dataset(s.cfg.data, split, train_transforms=False)
    if n is not None and n > len(ds):
        raise ValueError(f"{n} images of the {split!r} split asked for; it has {len(ds)}")
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(s.seed + seed_offset)).tolist()
    return X.to_uint8(torch.stack([ds[i] for i in perm[:n]]))


def varied_images(s: Session, split: str, categories: tuple[str, ...] = ("Smileys & Emotion", "Animals & Nature",
                  "Food & Drink", "Objects"), per_category: int = 1) -> tuple[torch.Tensor, list[str]]:
    """uint8 images (N, 3, H, W) of the run's OpenMoji `split`, `per_category` of each CLDR category in turn
    (smileys & emotion, animals, food, objects by default), each the first of its category in `split_images`'
    seeded order, and their categories. For pictures that show a method on varied subjects rather than on the
    first few images (which at random are mostly people and flags)."""
    if s.cfg.data.dataset != "openmoji":
        raise ValueError(f"varied_images: data.dataset={s.cfg.data.dataset!r}; only OpenMoji items have categories")
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"categories {unknown}; allowed: {CATEGORIES}")
    ds = build_dataset(s.cfg.data, "all", train_transforms=False)
    indices = split_sides(s.cfg.data, ds)[split]
    perm = torch.randperm(len(indices), generator=torch.Generator().manual_seed(s.seed)).tolist()
    category_of = emoji_categories([ds.names[i] for i in indices])  # (len(indices),) index in CATEGORIES
    picked, names = [], []
    for category in categories:
        want = CATEGORIES.index(category)
        found = [indices[j] for j in perm if category_of[j] == want][:per_category]
        if len(found) < per_category:
            raise ValueError(f"the {split!r} split holds {len(found)} {category!r} emoji; {per_category} asked for")
        picked += found
        names += [category] * len(found)
    return X.to_uint8(torch.stack([ds[i] for i in picked])), names


def has_test_split(s: Session) -> bool:
    """True when the run's data has a test split (data.test_fraction > 0): images no model ever saw."""
    return s.cfg.data.test_fraction > 0


SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}  # split -> the word tables use


def split_name(s: Session, split: str, n: int | None = None) -> str:
    """The exact name of the run's `split` images for tables and prose: '241 validation images (whole design
    families, none of them in the training or test split)'; with n below the split's size, 'the first n of
    the N validation images (...)'. A random split (data.split_by='random') says that variants of one emoji
    can sit on both sides."""
    if split not in SPLIT_WORDS:
        raise ValueError(f"split={split!r}; allowed: {', '.join(SPLIT_WORDS)}")
    total = len(build_dataset(s.cfg.data, split, train_transforms=False))
    count = f"the first {n} of the {total}" if n is not None and n < total else f"{total}"
    if s.cfg.data.split_by == "family":
        others = [SPLIT_WORDS[o] for o in SPLIT_WORDS if o != split and (o != "test" or has_test_split(s))]
        how = f"whole design families, none of them in the {' or '.join(others)} split"
    else:
        how = "a random split by image: variants of one emoji can sit on both sides"
    return f"{count} {SPLIT_WORDS[split]} images ({how})"


def split_names(s: Session, split: str) -> list[str]:
    """The OpenMoji names of the run's `split` ('train', 'val', 'test'), in load order."""
    if s.cfg.data.dataset != "openmoji":
        raise ValueError(f"split_names: data.dataset={s.cfg.data.dataset!r}; only 'openmoji' items have names")
    ds = build_dataset(s.cfg.data, "all", train_transforms=False)
    return [ds.names[i] for i in split_sides(s.cfg.data, ds)[split]]


@torch.no_grad()
def split_tokens(s: Session, vq, split: str, n: int | None = None, batch_size: int = 100) -> torch.Tensor:
    """Token grids, flattened to (N, L) long on the session's device, of the first n images of `split` in
    `split_images`' seeded order (all when n is None or larger than the split), encoded by the VQGAN `vq`. For
    likelihoods on images no checkpoint was chosen on: the test split (the run's token cache holds train and
    validation only)."""
    size = len(build_dataset(s.cfg.data, split, train_transforms=False))
    images = split_images(s, split, None if n is None else min(n, size))
    tokens = [vq.encode(images[i: i + batch_size].float().div(127.5).sub(1).to(s.device))
              for i in range(0, len(images), batch_size)]
    return torch.cat(tokens).reshape(len(images), -1).long()
