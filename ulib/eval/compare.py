"""`python -m ulib compare REAL FAKE`: FID, KID and PRDC of two image sets, with uncertainty and noise floor.

REAL and FAKE are folders of images or `.npz` files of uint8 images. Every figure comes with
- its n (images in each set) and the feature space it was computed in;
- a bootstrap standard deviation: the figure recomputed on B resamples (with replacement) of both sets;
- the noise floor: the same figure between two disjoint random halves of REAL, at n = len(REAL) // 2 against
  the same n, so a FAKE that scores near it is as close to REAL as REAL is to itself at that size.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from ulib.data.folders import scan_images
from ulib.data.images import open_rgb
from ulib.device import resolve_device
from ulib.eval import extractors as X
from ulib.eval import scoring as S
from ulib.io.files import NpzError, atomic_write, load_npz, npz_headers

HELP = "FID, KID, precision, recall, density, coverage of two image sets (folders or .npz), with uncertainty"


# ---- reading image sets ---------------------------------------------------------------------------------
NPZ_EXPECTED = "a .npz holding one uint8 array of shape (N, H, W, 3) or (N, 3, H, W), named 'images' or alone"


def _load_npz_set(path: Path, limit: int | None) -> torch.Tensor:
    """uint8 (N, 3, H, W) from an .npz, its shape and dtype checked from the array header before any data is
    read; never unpickles. ValueError naming the file and NPZ_EXPECTED for anything else."""
    try:
        headers = npz_headers(path)
    except NpzError as e:
        raise ValueError(f"image set {e}; expected {NPZ_EXPECTED}") from None
    key = "images" if "images" in headers else (next(iter(headers)) if len(headers) == 1 else None)
    if key is None:
        held = f"{len(headers)} arrays ({', '.join(sorted(headers))}), none named 'images'" if headers else "no arrays"
        raise ValueError(f"image set {path}: it holds {held}; expected {NPZ_EXPECTED}")
    shape, dtype = headers[key]
    if dtype != np.uint8 or len(shape) != 4 or 3 not in (shape[1], shape[-1]) or 0 in shape[1:]:
        raise ValueError(f"image set {path}: array {key!r} is {dtype} of shape {shape}; expected {NPZ_EXPECTED}")
    try:
        a = load_npz(path, [key])[key]
    except NpzError as e:
        raise ValueError(f"image set {e}; expected {NPZ_EXPECTED}") from None
    x = torch.from_numpy(np.ascontiguousarray(a[:limit]))
    if shape[-1] == 3 and shape[1] != 3:
        x = x.permute(0, 3, 1, 2)  # (N, H, W, 3) -> (N, 3, H, W)
    return x.contiguous()


def load_image_set(path: str | os.PathLike, *, limit: int | None = None) -> torch.Tensor:
    """uint8 (N, 3, H, W) from a folder of images (recursively, sorted; transparency on white) or an .npz.

    An .npz must hold one uint8 array (N, H, W, 3) or (N, 3, H, W), under 'images' or as its only array.
    All images of a set must have one size (ValueError naming a file that differs). `limit`: the first
    `limit` images (>= 1), or None for all. Any unreadable input is a one-line ValueError naming the file.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"limit={limit!r}: expected a number of images >= 1 (or None: all of them)")
    path = Path(path)
    if path.suffix.lower() == ".npz" and not path.is_dir():
        if not path.is_file():
            raise FileNotFoundError(f"image set {path}: no such file")
        return _load_npz_set(path, limit)
    if not path.exists():
        raise FileNotFoundError(f"image set {path}: no such folder or .npz file")
    if not path.is_dir():
        raise ValueError(f"image set {path}: expected a folder of images or an .npz file")
    files = scan_images(path)[:limit]
    arrays, size = [], None
    for f in files:
        try:
            a = np.asarray(open_rgb(f), dtype=np.uint8)  # any mode -> RGB; over Pillow's pixel limit: refused
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
def families(space: str | None = None) -> list[S.Family]:
    """The figure families compare computes: those of the scoring core (`ulib.eval.scoring`) that read pool
    features only and belong to `space` (None: those of every space)."""
    return S.families(space, head=False)


FIGURES = S.names(families())  # the built-in ones: FID, KID (mean over subsets), precision, recall, density, coverage


def figures(real: torch.Tensor, fake: torch.Tensor, k: int = 5, kid_subsets: int = 20,
            space: str | None = None) -> dict[str, float]:
    """Every figure of `families(space)` for two feature sets (N, D)."""
    return S.values(S.Pair(real, fake, k=k, kid_subsets=kid_subsets), families(space))


def bootstrap(real: torch.Tensor, fake: torch.Tensor, draws: int, seed: int, k: int = 5,
              space: str | None = None) -> dict[str, float]:
    """Standard deviation of each figure over `draws` resamples (with replacement) of both sets."""
    if draws < 2:
        return {}
    g = torch.Generator().manual_seed(seed)
    vals = {name: [] for name in S.names(families(space))}
    for _ in range(draws):
        r = real[torch.randint(len(real), (len(real),), generator=g)]
        f = fake[torch.randint(len(fake), (len(fake),), generator=g)]
        for name, v in figures(r, f, k, space=space).items():
            vals[name].append(v)
    return {name: float(np.std(v, ddof=1)) for name, v in vals.items()}


def noise_floor(real: torch.Tensor, seed: int, k: int = 5, n: int | None = None, space: str | None = None) -> dict:
    """The figures between two disjoint random halves of `real` (n images each, default len(real) // 2)."""
    n = n or len(real) // 2
    if 2 * n > len(real) or n < k + 2:  # PRDC needs k + 2 points per set (metrics.prdc)
        return {}
    g = torch.Generator().manual_seed(seed + 1)
    perm = torch.randperm(len(real), generator=g)
    return {"n": n, **figures(real[perm[:n]], real[perm[n: 2 * n]], k, space=space)}


def compare_features(real: torch.Tensor, fake: torch.Tensor, *, draws: int = 10, seed: int = 0, k: int = 5,
                     space: str | None = None) -> dict:
    """Figures, bootstrap std and real|real noise floor of two feature sets (N, D) (`space`: the name of the
    feature space they are in, for the figures that belong to it)."""
    return {"n_real": len(real), "n_fake": len(fake), "prdc_k": k, **figures(real, fake, k, space=space),
            "std": bootstrap(real, fake, draws, seed, k, space), "bootstrap_draws": draws if draws >= 2 else 0,
            "noise_floor": noise_floor(real, seed, k, space=space)}


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
        rows.append({"set": name, "n_reference": len(fr), "n": len(ff), **figures(fr, ff, k, space=space.features),
                     **{f"{key}_std": v for key, v in bootstrap(fr, ff, draws, seed, k, space.features).items()},
                     "features": space.features})
    return rows


def compare_images(real: torch.Tensor, fake: torch.Tensor, space, *, draws: int = 10, seed: int = 0, k: int = 5,
                   batch_size: int = 256) -> dict:
    """Features of two uint8 image sets in `space` (an `extractors.FeatureSpace`), then `compare_features`."""
    out = compare_features(image_features(space, real, batch_size), image_features(space, fake, batch_size),
                           draws=draws, seed=seed, k=k, space=space.features)
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
    for name in S.names(families(r.get("features"))):
        fmt = S.figure(name).fmt
        std = r["std"].get(name)
        floor = r["noise_floor"].get(name)
        lines.append(f"{name:10} {format(r[name], fmt):>10} {format(std, fmt) if std is not None else '-':>9} "
                     f"{format(floor, fmt) if floor is not None else '-':>12}")
    return "\n".join(lines)


def compare_files(real_path, fake_path, *, features: str = "openmoji", weights_dir=None, allow_unverified: bool = False,
                  device="cpu", bootstrap: int = 10, seed: int = 0, prdc_k: int = 5, limit: int | None = None,
                  json_path=None, log=print) -> dict:
    """`python -m ulib compare`: two image sets (folders or .npz) compared in a feature space, the report said by
    `log` and, with json_path, every figure written there as JSON. Returns the figures."""
    real = load_image_set(real_path, limit=limit)
    fake = load_image_set(fake_path, limit=limit)
    for name, x in (("REAL", real), ("FAKE", fake)):
        if len(x) <= prdc_k + 1:  # the k-th neighbour of each image other than itself
            raise ValueError(f"{name} has {len(x)} images; PRDC with k={prdc_k} needs at least {prdc_k + 2} "
                             f"(--prdc-k)")
    space = X.load_inception(features, weights_dir, resolve_device(device), allow_unverified=allow_unverified)
    r = compare_images(real, fake, space, draws=bootstrap, seed=seed, k=prdc_k)
    r.update(real=str(real_path), fake=str(fake_path), seed=seed)
    log(format_report(r, real_path, fake_path))
    if json_path:
        text = json.dumps(r, indent=2, default=lambda v: None if isinstance(v, float) and math.isnan(v) else str(v))
        atomic_write(Path(json_path), lambda f: f.write((text + "\n").encode()))
        log(f"wrote {json_path}")
    return r
