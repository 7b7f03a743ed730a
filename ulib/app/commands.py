"""What `python -m ulib sample` and `python -m ulib inpaint` do, apart from parsing their arguments."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from ulib.app.flags import check_steps, check_temperature
from ulib.config import downsampling_factor
from ulib.data.images import ImageTooLargeError, open_rgb, resize_center_crop, to_tensor
from ulib.io.files import atomic_write
from ulib.io.logs import preview_upscale, save_image_grid
from ulib.models import SamplingModels
from ulib.sample import registry
from ulib.sample.api import sample_images
from ulib.sample.inpaint import inpaint

MAX_GRID = 1024  # images one PNG grid shows (32 x 32 tiles); --npz takes more
BATCH_SIZE = 64  # images per call of the sampler unless --batch-size says otherwise


def parse_canvas(text: str) -> tuple[int, int]:
    """'24x32' -> (24, 32) latent cells."""
    try:
        a, b = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--canvas={text!r}; expected HxW in latent cells, e.g. 24x32")
    return a, b


def check_sample_flags(n: int | None, batch_size: int, temperature: float | None, top_k: int | None,
                       npz: Path | None, n_flag: str = "--n") -> None:
    """The sample command's flags that need no model, as --flag errors (before the models load); --steps,
    --canvas and --stride depend on the models' T and grid (`check_sample_args`)."""
    if n is not None and n < 1:
        raise ValueError(f"{n_flag}={n}; must be >= 1")
    if n is not None and n > MAX_GRID and npz is None:
        raise ValueError(f"{n_flag}={n}; a PNG grid holds at most {MAX_GRID} images: pass --npz FILE to also write all "
                         f"{n} as uint8 arrays (what `python -m ulib compare` reads), or measure with "
                         f"`python -m ulib evaluate --samples {n}`")
    if batch_size < 1:
        raise ValueError(f"--batch-size={batch_size}; must be >= 1 (images per call of the sampler)")
    check_temperature(temperature)
    if top_k is not None and top_k < 1:
        raise ValueError(f"--top-k={top_k}; must be >= 1 (or left out: no top-k filtering)")
    if npz is not None and npz.suffix != ".npz":
        raise ValueError(f"--npz {npz}; allowed: a file name ending in .npz")


def check_sample_args(m: SamplingModels, n: int, steps: int | None, temperature: float, method: str, canvas,
                      stride: int = 1, top_k: int | None = None, options: dict | None = None) -> int | None:
    """The sample command's arguments against the models, as --flag errors (before anything is drawn). Returns the
    steps the method gets: --steps (None: not given) as the method reads it (`ulib.sample.registry.resolve_steps`;
    the run's sample.steps where it reads schedule steps)."""
    if n < 1:
        raise ValueError(f"--n={n}; must be >= 1")
    check_temperature(temperature)
    if m.kind == "autoregressive":
        ar_methods = registry.choices("autoregressive")
        if canvas is not None or (method != "random" and method not in ar_methods):
            raise ValueError(f"--canvas and --method {method} apply to the absorbing prior; the AR prior samples in "
                             f"raster order (--method random) or with --method {' or '.join(ar_methods)}")
        if method == "random" and options:
            raise ValueError(f"--option {', '.join(options)} applies to a --method's settings; the AR prior's "
                             f"raster order has none")
        return None if method != "random" else steps if steps is not None else m.default_steps
    if registry.get(method).prior != "absorbing":
        raise ValueError(f"--method {method} samples an autoregressive prior; this one is absorbing")
    if top_k is not None:
        raise ValueError(f"--top-k={top_k} applies to an autoregressive prior; this one is absorbing (it samples "
                         f"from the whole softmax)")
    steps = registry.resolve_steps(method, steps, m.num_timesteps, default=m.default_steps, name="--steps",
                                   t_name="T")
    h, w = m.latent_shape
    if canvas is not None and (canvas[0] < h or canvas[1] < w):
        raise ValueError(f"--canvas={canvas[0]}x{canvas[1]}; allowed: HxW latent cells with H >= {h} and W >= {w} "
                         f"(the training grid)")
    if not 1 <= stride <= min(h, w):
        raise ValueError(f"--stride={stride}; allowed: 1..{min(h, w)} (the training grid's side)")
    return steps


def batch_seeds(seed: int, n_batches: int) -> list[int]:
    """One seed per batch: batch 0 keeps `seed`, so n <= batch size draws exactly what `sample_images(m, n,
    seed=seed)` draws; batch i >= 1 takes s_i, s = torch.randint(2**62, (n_batches,), generator=Generator(seed)).
    The images therefore depend on (seed, batch size): the same pair gives the same images."""
    rest = torch.randint(2**62, (n_batches,), generator=torch.Generator().manual_seed(seed)).tolist()[1:]
    return [seed, *rest]


def sample_uint8(m: SamplingModels, n: int, *, batch_size: int = BATCH_SIZE, seed: int = 0, **kwargs) -> np.ndarray:
    """n samples as uint8 (n, H, W, 3), drawn `batch_size` at a time (seeds: `batch_seeds`); kwargs go to
    `sample_images`. Memory: one batch of the sampler at a time, plus n images as bytes."""
    n_batches = math.ceil(n / batch_size)
    out = []
    for i, s in enumerate(batch_seeds(seed, n_batches)):
        images = sample_images(m, min(batch_size, n - i * batch_size), seed=s, **kwargs)
        if not torch.isfinite(images).all():
            raise FloatingPointError("the sampled images contain NaN or inf (has training diverged?)")
        out.append(((images.float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1))
    return torch.cat(out).numpy()


def sample_to_png(m: SamplingModels, out: Path, *, n: int, steps: int | None, temperature: float, seed: int,
                  method: str, canvas, stride: int, top_k: int | None = None, precision: str = "auto",
                  batch_size: int = BATCH_SIZE, npz: Path | None = None, options: dict | None = None,
                  compile: bool = False) -> str:
    """Draw n samples in batches; write a grid of (the first MAX_GRID of) them to `out`, and all to `npz`.
    steps: --steps, None when not given (`check_sample_args`); options: the method's settings by name."""
    options = options or {}
    check_sample_flags(n, batch_size, temperature, top_k, npz)
    given = steps
    steps = check_sample_args(m, n, steps, temperature, method, canvas, stride, top_k, options)
    passes = []  # one entry per step that ran the network, over every batch

    drafted, accepted = [], []  # --method speculative: draft tokens proposed and kept, per round

    def count(k, res):
        if res.ran_network:
            passes.append(k)
        if "drafted" in res.extras:
            drafted.append(int(res.extras["drafted"].sum()))
            accepted.append(int(res.extras["accepted"].sum()))

    t0 = time.perf_counter()
    images = sample_uint8(m, n, batch_size=batch_size, seed=seed, steps=steps, temperature=temperature,
                          method=method, canvas=canvas, stride=stride, top_k=top_k, precision=precision,
                          compile=compile, callback=count, **options)
    dt = time.perf_counter() - t0
    shown = images[:MAX_GRID]
    save_image_grid(shown, out, upscale=preview_upscale(images.shape[2]))  # (n, H, W, 3): by the width
    where = f"{out}" if len(shown) == n else f"{out} (the first {len(shown)})"
    if npz is not None:
        atomic_write(npz, lambda f: np.savez_compressed(f, images=images))
        where += f", all {n} as uint8 (n, H, W, 3) in {npz}"
    what, kind = "", registry.get(method).steps
    if m.kind == "absorbing":
        what = {"schedule": f"{steps} steps, ", "total": f"{steps} steps, ", "unused": "",
                "cap": f"at most {steps} calls per image, " if steps is not None else "adaptive steps, "}[kind]
    settings = "".join(f", {k}={v}" for k, v in options.items() if k not in registry.get(method).from_caller)
    if drafted:
        settings += (f", draft: the run's absorbing prior, {sum(accepted)} of {sum(drafted)} draft tokens accepted "
                     f"({100 * sum(accepted) / max(sum(drafted), 1):.0f} %)")
    unused = f"; --steps={given} not used: method {method} sets its own number of calls" if (
        kind == "unused" and given is not None and (m.kind == "absorbing" or method != "random")) else ""
    batches = f", {math.ceil(n / batch_size)} batches of <= {batch_size}" if n > batch_size else ""
    return (f"{n} samples ({what}temperature {temperature}, seed {seed}"
            f"{', method ' + method if m.kind == 'absorbing' or method != 'random' else ''}{settings}"
            f"{', canvas %dx%d' % canvas if canvas else ''}{batches}{unused}) in {dt:.1f}s "
            f"({dt / n * 1000:.0f} ms/image, {len(passes)} forward passes): {where}")


def load_rgb(path: str | Path, size: int, what: str) -> np.ndarray:
    """An image file as uint8 (size, size, 3), resized and centre-cropped like the training data."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} {p} does not exist")
    try:
        img = open_rgb(p)  # any mode -> RGB; more pixels than Pillow's decompression-bomb limit: refused
    except ImageTooLargeError as e:
        raise ValueError(f"{what} {p} is too large to read: {e}") from None
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, ... for bad data
        raise ValueError(f"{what} {p} cannot be read as an image ({type(e).__name__}: {e})") from None
    return np.asarray(resize_center_crop(img, size), dtype=np.uint8)


@torch.no_grad()
def inpaint_to_png(m: SamplingModels, image: str, mask: str, out: Path, *, steps: int, temperature: float, seed: int,
                device, dilate: int, paste_back: bool, precision: str = "auto") -> str:
    """Regenerate the white part of `mask` in `image`; writes [input, masked input, result] side by side.
    precision: the prior's forward pass ('auto', 'fp32', 'bf16'; `ulib.sample.inpaint.inpaint`)."""
    if m.kind != "absorbing":
        raise ValueError("inpainting needs the absorbing prior (the AR prior cannot condition on later tokens)")
    check_steps(steps, m.num_timesteps)
    check_temperature(temperature)
    if dilate < 0:
        raise ValueError(f"--dilate={dilate}; allowed: an integer >= 0 (latent cells)")
    size = m.vqgan.latent_shape[0] * downsampling_factor(m.vqgan.ch_mult)
    x = to_tensor(load_rgb(image, size, "--image"))[None].to(device)
    pm = load_rgb(mask, size, "--mask").mean(-1) > 127  # white = regenerate
    pixel_mask = torch.from_numpy(pm)[None, None].to(device)
    g = torch.Generator(device=device).manual_seed(seed)
    t0 = time.perf_counter()
    res = inpaint(m.vqgan, m.prior, x, pixel_mask, num_timesteps=m.num_timesteps, mask_id=m.mask_id,
                  steps=steps, temperature=temperature, dilate=dilate, paste_back=paste_back, generator=g,
                  precision=precision)
    dt = time.perf_counter() - t0
    shown = torch.where(pixel_mask, torch.full_like(x, 0.5), x)  # the region to regenerate in grey
    save_image_grid(torch.cat([x, shown, res.images.clamp(-1, 1)]), out, nrow=3, upscale=preview_upscale(size))
    cells = int(res.latent_mask.sum())
    return (f"regenerated {cells} of {res.latent_mask.numel()} tokens (from t={res.start_times[0]}) in {dt:.1f}s; "
            f"input | masked | result: {out}")
