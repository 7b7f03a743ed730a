"""`python -m ulib compare REAL FAKE`: FID, KID and PRDC of two image sets, with uncertainty and noise floor.

REAL and FAKE are folders of images or `.npz` files of uint8 images. Every figure comes with
- its n (images in each set) and the feature space it was computed in;
- a bootstrap standard deviation: the figure recomputed on B resamples (with replacement) of both sets;
- the noise floor: the same figure between two disjoint random halves of REAL, at n = len(REAL) // 2 against
  the same n, so a FAKE that scores near it is as close to REAL as REAL is to itself at that size.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ulib.data.folders import scan_images
from ulib.data.images import to_rgb
from ulib.eval import extractors as X
from ulib.eval import metrics as M

HELP = "FID, KID, precision, recall, density, coverage of two image sets (folders or .npz), with uncertainty"


# ---- reading image sets ---------------------------------------------------------------------------------
def load_image_set(path: str | os.PathLike, *, limit: int | None = None) -> torch.Tensor:
    """uint8 (N, 3, H, W) from a folder of images (recursively, sorted; transparency on white) or an .npz.

    An .npz must hold one uint8 array (N, H, W, 3) or (N, 3, H, W), under 'images' or as its only array.
    All images of a set must have one size (ValueError naming a file that differs).
    """


    path = Path(path)
    if path.suffix == ".npz":
        if not path.is_file():
            raise FileNotFoundError(f"image set {path}: no such file")
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = "images" if "images" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise ValueError(f"{path}: expected an array named 'images' or a single array; found {keys}")
            a = z[key]
        if a.dtype != np.uint8 or a.ndim != 4 or 3 not in (a.shape[1], a.shape[-1]):
            raise ValueError(f"{path}[{key!r}]: expected uint8 (N, H, W, 3) or (N, 3, H, W); got {a.dtype} {a.shape}")
        x = torch.from_numpy(np.ascontiguousarray(a))
        if a.shape[-1] == 3 and a.shape[1] != 3:
            x = x.permute(0, 3, 1, 2)
        return x[:limit].contiguous() if limit else x.contiguous()
    if not path.exists():
        raise FileNotFoundError(f"image set {path}: no such folder or .npz file")
    if not path.is_dir():
        raise ValueError(f"image set {path}: expected a folder of images or an .npz file")
    files = scan_images(path)[:limit] if limit else scan_images(path)
    arrays, size = [], None
    for f in files:
        try:
            with Image.open(f) as img:
                img.load()
                a = np.asarray(to_rgb(img), dtype=np.uint8)
        except Exception as e:  # noqa: BLE001 - name the file, whatever PIL raised
            raise ValueError(f"image set {path}: cannot read {f.relative_to(path)} ({type(e).__name__}: {e})") from e
        if size is None:
            size = a.shape[:2]
        elif a.shape[:2] != size:
            raise ValueError(f"image set {path}: {f.relative_to(path)} is {a.shape[1]}x{a.shape[0]}, the first image "
                             f"is {size[1]}x{size[0]}; all images of a set must have one size")
        arrays.append(a)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


# ---- figures --------------------------------------------------------------------------------------------
FIGURES = ("fid", "kid", "precision", "recall", "density", "coverage")


def figures(real: torch.Tensor, fake: torch.Tensor, k: int = 5, kid_subsets: int = 20) -> dict[str, float]:
    """FID, KID (mean over subsets) and PRDC of two feature sets (N, D)."""
    out = {"fid": M.fid(real, fake), "kid": M.kid(real, fake, subsets=kid_subsets)["kid_mean"]}
    out.update(M.prdc(real, fake, k=k))
    return out


def bootstrap(real: torch.Tensor, fake: torch.Tensor, draws: int, seed: int, k: int = 5) -> dict[str, float]:
    """Standard deviation of each figure over `draws` resamples (with replacement) of both sets."""
    if draws < 2:
        return {}
    g = torch.Generator().manual_seed(seed)
    vals = {name: [] for name in FIGURES}
    for _ in range(draws):
        r = real[torch.randint(len(real), (len(real),), generator=g)]
        f = fake[torch.randint(len(fake), (len(fake),), generator=g)]
        for name, v in figures(r, f, k).items():
            vals[name].append(v)
    return {name: float(np.std(v, ddof=1)) for name, v in vals.items()}


def noise_floor(real: torch.Tensor, seed: int, k: int = 5, n: int | None = None) -> dict:
    """The figures between two disjoint random halves of `real` (n images each, default len(real) // 2)."""
    n = n or len(real) // 2
    if 2 * n > len(real) or n <= k:
        return {}
    g = torch.Generator().manual_seed(seed + 1)
    perm = torch.randperm(len(real), generator=g)
    return {"n": n, **figures(real[perm[:n]], real[perm[n: 2 * n]], k)}


def compare_features(real: torch.Tensor, fake: torch.Tensor, *, draws: int = 10, seed: int = 0, k: int = 5) -> dict:
    """Figures, bootstrap std and real|real noise floor of two feature sets (N, D)."""
    return {"n_real": len(real), "n_fake": len(fake), "prdc_k": k, **figures(real, fake, k),
            "std": bootstrap(real, fake, draws, seed, k), "bootstrap_draws": draws if draws >= 2 else 0,
            "noise_floor": noise_floor(real, seed, k)}


def image_features(space, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Pool features (N, D) of uint8 (or [-1, 1]) images in `space` (an `extractors.FeatureSpace`)."""
    return X.extract_features(space, (x[i: i + batch_size] for i in range(0, len(x), batch_size)))[space.pool]


def quality_table(space, reference: torch.Tensor, sets: dict, *, draws: int = 10, seed: int = 0,
                  k: int = 5) -> list[dict]:
    """One row per named image set: its figures against `reference`, with bootstrap '<figure>_std'."""
    fr = image_features(space, reference)
    rows = []
    for name, x in sets.items():
        ff = image_features(space, x)
        rows.append({"set": name, "n_reference": len(fr), "n": len(ff), **figures(fr, ff, k),
                     **{f"{key}_std": v for key, v in bootstrap(fr, ff, draws, seed, k).items()},
                     "features": space.features})
    return rows


def compare_images(real: torch.Tensor, fake: torch.Tensor, space, *, draws: int = 10, seed: int = 0, k: int = 5,
                   batch_size: int = 256) -> dict:
    """Features of two uint8 image sets in `space` (an `extractors.FeatureSpace`), then `compare_features`."""
    out = compare_features(image_features(space, real, batch_size), image_features(space, fake, batch_size),
                           draws=draws, seed=seed, k=k)
    out["features"] = space.features
    out["feature_info"] = {k2: v for k2, v in space.info.items() if k2 != "weights"}
    return out


def format_report(r: dict, real_name: str = "REAL", fake_name: str = "FAKE") -> str:
    info = r.get("feature_info", {})
    sha = info.get("sha256", "")
    lines = [f"feature space: {r.get('features')}" + (f" (weights sha256 {sha[:12]}...)" if sha else ""),
             f"real: {r['n_real']} images ({real_name})   fake: {r['n_fake']} images ({fake_name})",
             f"± = bootstrap std over {r['bootstrap_draws']} resamples of both sets; noise floor = REAL half vs "
             f"REAL half at n = {r['noise_floor'].get('n', '-')} each (seed {r.get('seed', 0)})",
             f"{'':10} {'value':>10} {'±':>9} {'noise floor':>12}"]
    for name in FIGURES:
        fmt = ".5f" if name == "kid" else ".4g" if name == "fid" else ".3f"
        std = r["std"].get(name)
        floor = r["noise_floor"].get(name)
        lines.append(f"{name:10} {format(r[name], fmt):>10} {format(std, fmt) if std is not None else '-':>9} "
                     f"{format(floor, fmt) if floor is not None else '-':>12}")
    return "\n".join(lines)
