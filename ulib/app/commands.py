"""What `python -m ulib sample` and `python -m ulib inpaint` do, apart from parsing their arguments."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ulib.config import downsampling_factor
from ulib.data.images import ImageTooLargeError, open_rgb, resize_center_crop, to_tensor
from ulib.io.logs import preview_upscale, save_image_grid
from ulib.sample.api import sample_images
from ulib.sample.inpaint import inpaint
from ulib.sample.models import SamplingModels


def parse_canvas(text: str) -> tuple[int, int]:
    """'24x32' -> (24, 32) latent cells."""
    try:
        a, b = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--canvas={text!r}; expected HxW in latent cells, e.g. 24x32")
    return a, b


def check_sample_args(m: SamplingModels, n: int, steps: int, temperature: float, method: str, canvas) -> None:
    """The sample command's arguments against the models, as --flag errors (before anything is drawn)."""
    if n < 1:
        raise ValueError(f"--n={n}; must be >= 1")
    if temperature <= 0:
        raise ValueError(f"--temperature={temperature}; must be > 0")
    if m.kind == "autoregressive":
        if canvas is not None or method != "random":
            raise ValueError("--canvas and --method apply to the absorbing prior; the AR prior samples in raster order")
    elif not 1 <= steps <= m.num_timesteps:
        raise ValueError(f"--steps={steps}; allowed: 1..T={m.num_timesteps}")


def sample_to_png(m: SamplingModels, out: Path, *, n: int, steps: int, temperature: float, seed: int,
               method: str, canvas, stride: int, top_k: int | None = None, precision: str = "auto") -> str:
    check_sample_args(m, n, steps, temperature, method, canvas)
    t0 = time.perf_counter()
    images = sample_images(m, n, steps=steps, temperature=temperature, seed=seed, method=method, canvas=canvas,
                           stride=stride, top_k=top_k, precision=precision)
    dt = time.perf_counter() - t0
    save_image_grid(images, out, upscale=preview_upscale(images.shape[-1]))
    what = f"{steps} steps, " if m.kind == "absorbing" else ""
    return (f"{n} samples ({what}temperature {temperature}, seed {seed}"
            f"{', method ' + method if m.kind == 'absorbing' else ''}{', canvas %dx%d' % canvas if canvas else ''}) "
            f"in {dt:.1f}s ({dt / n * 1000:.0f} ms/image): {out}")


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
                device, dilate: int, paste_back: bool) -> str:
    """Regenerate the white part of `mask` in `image`; writes [input, masked input, result] side by side."""
    if m.kind != "absorbing":
        raise ValueError("inpainting needs the absorbing prior (the AR prior cannot condition on later tokens)")
    size = m.vqgan.latent_shape[0] * downsampling_factor(m.vqgan.ch_mult)
    x = to_tensor(load_rgb(image, size, "--image"))[None].to(device)
    pm = load_rgb(mask, size, "--mask").mean(-1) > 127  # white = regenerate
    pixel_mask = torch.from_numpy(pm)[None, None].to(device)
    g = torch.Generator(device=device).manual_seed(seed)
    t0 = time.perf_counter()
    res = inpaint(m.vqgan, m.prior, x, pixel_mask, num_timesteps=m.num_timesteps, mask_id=m.mask_id,
                  steps=steps, temperature=temperature, dilate=dilate, paste_back=paste_back, generator=g)
    dt = time.perf_counter() - t0
    shown = torch.where(pixel_mask, torch.full_like(x, 0.5), x)  # the region to regenerate in grey
    save_image_grid(torch.cat([x, shown, res.images.clamp(-1, 1)]), out, nrow=3, upscale=preview_upscale(size))
    cells = int(res.latent_mask.sum())
    return (f"regenerated {cells} of {res.latent_mask.numel()} tokens (from t={res.start_times[0]}) in {dt:.1f}s; "
            f"input | masked | result: {out}")
