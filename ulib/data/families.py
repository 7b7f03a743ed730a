"""Held-out by design: split OpenMoji by family, so an emoji's siblings never sit on both sides of a split.

About half of OpenMoji is People & Body, where one design comes in many skin tones, genders and hair styles;
and at 32 px some different code points render pixel-identically. A random split puts siblings and identical
renders on both sides, so "validation" images were, in effect, seen in training. Here:

- `family_key(name)`: an OpenMoji name (hex code points joined by '-', e.g. '1F44D-1F3FD') with the
  modifiers removed, so every variant of one design shares a key;
- `collapse_duplicates(images)`: a label per image, shared by pixel-identical renders;
- `split_groups(keys, labels)`: families joined with the duplicate groups (union-find);
- `group_split(groups, fractions, seed)`: whole groups go to train, validation or test, seeded.

Decision on the person bases: U+1F9D1 PERSON, U+1F468 MAN and U+1F469 WOMAN, when they are the first code
point, all become U+1F9D1: 🧑‍🚒/👨‍🚒/👩‍🚒 are one design drawn as three genders, exactly as 🏃/🏃‍♀️/🏃‍♂️,
and 🧑/👨/👩 alone are the same. Only the leading code point is rewritten: in a sequence such as
👨‍👩‍👧 (a family) the later members describe the design, not a variant of it.
"""
from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence

import numpy as np

ZWJ = 0x200D
VS16 = 0xFE0F
SKIN_TONES = range(0x1F3FB, 0x1F3FF + 1)  # Fitzpatrick modifiers 🏻..🏿
GENDER_SIGNS = (0x2640, 0x2642)  # ♀ ♂, joined by ZWJ: 🏃‍♀️ = 1F3C3-200D-2640-FE0F
HAIR = range(0x1F9B0, 0x1F9B3 + 1)  # red, curly, bald, white hair components: 👨‍🦰 = 1F468-200D-1F9B0
PERSON_BASES = (0x1F9D1, 0x1F468, 0x1F469)  # 🧑 👨 👩: the gender variants of one design (see above)
MODIFIERS = frozenset([*SKIN_TONES, *GENDER_SIGNS, *HAIR, VS16])


def family_key(name: str) -> str:
    """The family of an OpenMoji entry: its code points without skin tone, gender sign, hair component and VS16,
    ZWJs left dangling by those removals dropped, a leading 👨/👩 read as 🧑. An entry that is nothing but
    modifiers (the skin-tone swatch '1F3FB', the sign '2640') is its own family."""
    cps = [int(h, 16) for h in name.split("-")]
    kept = [c for c in cps if c not in MODIFIERS]
    out: list[int] = []
    for c in kept:  # a ZWJ joins two kept code points, never starts, ends or doubles
        if c == ZWJ and (not out or out[-1] == ZWJ):
            continue
        out.append(c)
    while out and out[-1] == ZWJ:
        out.pop()
    if not out:
        return name
    if out[0] in PERSON_BASES:
        out[0] = PERSON_BASES[0]
    return "-".join(f"{c:04X}" for c in out)


def collapse_duplicates(images: np.ndarray) -> np.ndarray:
    """(N,) int64 labels, equal exactly where the uint8 images are pixel-identical (sha256 of the bytes, and
    shape and dtype). Labels number the distinct images in order of first appearance."""
    images = np.ascontiguousarray(images)
    first: dict[bytes, int] = {}
    labels = np.empty(len(images), np.int64)
    for i, img in enumerate(images):
        h = hashlib.sha256(img.tobytes()).digest()
        labels[i] = first.setdefault(h, len(first))
    return labels


def split_groups(*labelings: Sequence[Hashable]) -> np.ndarray:
    """(N,) int64 group ids: items i and j share a group when any labelling gives them equal labels, directly or
    through a chain (union-find), e.g. split_groups(family keys, collapse_duplicates(images))."""
    n = len(labelings[0])
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for labels in labelings:
        if len(labels) != n:
            raise ValueError(f"split_groups: labellings of {n} and {len(labels)} items; allowed: equal lengths")
        seen: dict = {}
        for i, lab in enumerate(labels):
            j = seen.setdefault(lab, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = [find(i) for i in range(n)]
    ids = {r: k for k, r in enumerate(dict.fromkeys(roots))}
    return np.array([ids[r] for r in roots], np.int64)


def group_split(keys: Sequence[Hashable], fractions: tuple[float, float], seed: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train_idx, val_idx, test_idx), each sorted int64: every group (items with equal keys) on one side.

    The groups are shuffled with `seed` and laid end to end; a group goes to validation when its middle item
    falls in the first round(n * val) places, to test in the next round(n * test), else to train. So each
    side's size is off its target by at most half a group at each boundary (one family's size in all).
    """
    val, test = fractions
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"group_split: fractions={fractions}; allowed: val, test >= 0 with val + test < 1")
    keys = list(keys)
    n = len(keys)
    members: dict = {}
    for i, k in enumerate(keys):
        members.setdefault(k, []).append(i)
    order = sorted(members, key=lambda k: (type(k).__name__, str(k)))  # independent of the items' order
    perm = np.random.default_rng(seed).permutation(len(order))
    n_val, n_test = round(n * val), round(n * test)
    side = {0: [], 1: [], 2: []}  # train, val, test
    start = 0
    for g in perm:
        items = members[order[g]]
        mid = start + len(items) / 2
        side[1 if mid < n_val else 2 if mid < n_val + n_test else 0].extend(items)
        start += len(items)
    return tuple(np.array(sorted(side[s]), np.int64) for s in (0, 1, 2))
