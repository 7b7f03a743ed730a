"""Is a feature space a metric? Corruptions of real images that a sample-quality metric must rank.

Before FID or PRDC in a feature space judges models, it must pass these checks (Heusel et al. 2017 did the
same for Inception FID with noise, blur, swirl and salt-and-pepper):
- two disjoint halves of the real data score at the noise floor;
- Gaussian blur, additive Gaussian noise and patch shuffling score monotonically worse as they grow;
- a collapsed set (a few images repeated) keeps high precision but gets low recall and coverage.
All corruptions act on uint8 images (N, 3, H, W) and return uint8, so they see what a saved PNG would hold.

Two feature spaces are compared on the same image sets by `fids_across_spaces`: FID of each pair of sets in each
space, with bootstrap draws shared by every space, so a figure of one space is compared with another's draw by
draw (notebook 12: the shipped space, which saw every emoji, against one trained without the test families).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ulib.eval.compare import bootstrap, figures
from ulib.eval.metrics import fid_resampled


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with standard deviation `sigma` pixels (kernel radius ceil(3 sigma)), edges
    replicated; sigma = 0 returns the images unchanged."""
    if sigma <= 0:
        return x.clone()
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = (k / k.sum()).float()
    c = x.shape[1]
    y = F.pad(x.float(), (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return y.round().clamp(0, 255).to(torch.uint8)


def gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """x + N(0, std^2) per pixel and channel, std in uint8 levels (0..255), rounded and clipped."""
    noise = torch.randn(x.shape, generator=generator) * std
    return (x.float() + noise).round().clamp(0, 255).to(torch.uint8)


def shuffle_patches(x: torch.Tensor, fraction: float, patch: int, generator: torch.Generator) -> torch.Tensor:
    """Cut each image into patch x patch tiles and permute a random `fraction` of them within the image."""
    n, c, h, w = x.shape
    if h % patch or w % patch:
        raise ValueError(f"shuffle_patches: image size {h}x{w} is not a multiple of patch={patch}")
    gh, gw = h // patch, w // patch
    tiles = x.reshape(n, c, gh, patch, gw, patch).permute(0, 2, 4, 1, 3, 5).reshape(n, gh * gw, c, patch, patch)
    out = tiles.clone()
    m = int(round(fraction * gh * gw))
    for i in range(n):
        if m < 2:
            break
        chosen = torch.randperm(gh * gw, generator=generator)[:m]
        out[i, chosen] = tiles[i, chosen[torch.randperm(m, generator=generator)]]
    return out.reshape(n, gh, gw, c, patch, patch).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


def collapse(x: torch.Tensor, distinct: int, generator: torch.Generator) -> torch.Tensor:
    """A set as large as x made of `distinct` of its images, repeated (mode collapse)."""
    keep = x[torch.randperm(len(x), generator=generator)[:distinct]]
    return keep[torch.arange(len(x)) % distinct]


CORRUPTIONS = {  # name: (strengths to sweep, what the strength is)
    "blur": ((0.0, 0.5, 1.0, 1.5, 2.0), "Gaussian sigma, pixels"),
    "noise": ((0.0, 8.0, 16.0, 32.0, 64.0), "noise std, uint8 levels"),
    "patch shuffle": ((0.0, 0.25, 0.5, 0.75, 1.0), "fraction of 4x4 tiles permuted"),
}


def corrupt(x: torch.Tensor, name: str, strength: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if name == "blur":
        return gaussian_blur(x, strength)
    if name == "noise":
        return gaussian_noise(x, strength, g)
    if name == "patch shuffle":
        return shuffle_patches(x, strength, 4, g)
    raise ValueError(f"corruption {name!r}; allowed: {', '.join(CORRUPTIONS)}")


def sanity_sweep(features, real_a: torch.Tensor, real_b: torch.Tensor, *, seed: int = 0, k: int = 5,
                 collapse_to: int = 20, draws: int = 0) -> list[dict]:
    """Rows {corruption, strength, n, fid, kid, precision, recall, density, coverage}: real_a against real_b
    corrupted at each strength of CORRUPTIONS (strength 0 = the real|real noise floor), then against a
    collapsed real_b. `features(images uint8) -> (N, D)`. draws >= 2 adds '<figure>_std' (bootstrap)."""
    fa = features(real_a)
    cases = [(name, s, unit, corrupt(real_b, name, s, seed))
             for name, (strengths, unit) in CORRUPTIONS.items() for s in strengths]
    cases.append(("collapse", collapse_to, "distinct images", collapse(real_b, collapse_to,
                                                                        torch.Generator().manual_seed(seed))))
    rows = []
    for name, s, unit, images in cases:
        fb = features(images)
        row = {"corruption": name, "strength": s, "unit": unit, "n": len(real_b), **figures(fa, fb, k)}
        row.update({f"{key}_std": v for key, v in bootstrap(fa, fb, draws, seed, k).items()})
        rows.append(row)
    return rows


def fids_across_spaces(features: dict[str, dict[str, torch.Tensor]], pairs: list[tuple[str, str]], *, draws: int,
                       seed: int = 0, tied: dict[str, str] | None = None) -> dict[str, dict[tuple[str, str], dict]]:
    """FID of each pair of image sets in each feature space, with `draws` bootstrap draws shared by every space.

    features: {space: {set: features (N_set, D_space)}}, every space holding the same sets, items in the same
    order; pairs: (set a, set b) to score; tied: {set: the set it is resampled with}, for paired items (a
    reconstruction is drawn with its original). In each draw every set is resampled once (item counts), and that
    resample is scored in every space (`ulib.eval.metrics.fid_resampled`), so the figures of two spaces, or two
    pairs sharing a set, are compared draw by draw. Returns {space: {pair: {'fid': on the sets themselves,
    'draws': (draws,) float64 array}}} (no 'draws' entries when draws < 2)."""
    spaces = list(features)
    if not spaces:
        raise ValueError("fids_across_spaces: no feature spaces given")
    sizes = {name: len(f) for name, f in features[spaces[0]].items()}
    for space in spaces:
        got = {name: len(f) for name, f in features[space].items()}
        if got != sizes:
            raise ValueError(f"fids_across_spaces: space {space!r} holds sets {got}, space {spaces[0]!r} {sizes}; "
                             "every space must hold the same sets of the same items")
    tied = dict(tied or {})
    for a, b in [*pairs, *tied.items()]:
        for name in (a, b):
            if name not in sizes:
                raise ValueError(f"fids_across_spaces: no set {name!r}; the sets are {', '.join(sizes)}")
    for name, source in tied.items():
        if sizes[name] != sizes[source]:
            raise ValueError(f"fids_across_spaces: {name!r} ({sizes[name]} items) is tied to {source!r} "
                             f"({sizes[source]} items); tied sets need one item each per source item")
    out = {space: {(a, b): {"fid": fid_resampled(features[space][a], features[space][b])} for a, b in pairs}
           for space in spaces}
    if draws < 2:
        return out
    g = torch.Generator().manual_seed(seed)
    values = {space: {pair: [] for pair in pairs} for space in spaces}
    for _ in range(draws):
        counts = {name: torch.bincount(torch.randint(n, (n,), generator=g), minlength=n)
                  for name, n in sizes.items() if name not in tied}
        counts.update({name: counts[source] for name, source in tied.items()})
        for space in spaces:
            f = features[space]
            for a, b in pairs:
                values[space][(a, b)].append(fid_resampled(f[a], f[b], counts[a], counts[b]))
    for space in spaces:
        for pair in pairs:
            out[space][pair]["draws"] = np.asarray(values[space][pair])
    return out
