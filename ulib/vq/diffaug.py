"""Differentiable augmentation (DiffAugment; Zhao et al., "Differentiable Augmentation for Data-Efficient GAN
Training", NeurIPS 2020), applied by the official VQGAN training to every discriminator input.

Every op is differentiable w.r.t. the images, so the generator is trained through the augmentation; the
discriminator sees augmented reals and fakes alike, so it cannot tell them apart by the augmentation.
Each sample gets its own random parameters, drawn from `generator` (a torch.Generator on x's device) when
one is given, else from the global RNG. Images are (B, C, H, W), in [-1, 1] as everywhere in ulib.

Policies (comma-separated, applied in the order given):
  color        brightness + U(-0.5, 0.5); saturation x U(0, 2); contrast x U(0.5, 1.5)
  translation  integer shift by up to 1/8 of the image side in each direction, zero padding
  cutout       a zero square of half the image side at a random centre
"""
from __future__ import annotations

import torch

TRANSLATION_RATIO = 0.125  # maximum shift, as a fraction of the image side
CUTOUT_RATIO = 0.5  # side of the cut-out square, as a fraction of the image side


def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """U[0, 1) per sample, shaped (B, 1, 1, 1) to broadcast over (C, H, W)."""
    return torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=x.device, dtype=x.dtype)


def _randint(low: int, high: int, n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """n integers uniform in [low, high), on x's device."""
    return torch.randint(low, high, (n,), generator=generator, device=x.device)


def brightness(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return x + (_uniform(x, generator) - 0.5)


def saturation(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)  # (B, 1, H, W) grey level of each pixel
    return (x - mean) * (_uniform(x, generator) * 2.0) + mean


def contrast(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1) mean of each image
    return (x - mean) * (_uniform(x, generator) + 0.5) + mean


def translate(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Shift each image by integer (dx[b], dy[b]) pixels (right, down), filling with zeros.

    out[b, :, i, j] = x[b, :, i - dy[b], j - dx[b]] where that is inside the image, else 0. dx, dy: (B,)
    integer tensors. A gather, so gradients flow back to the pixels that were kept.
    """
    B, C, H, W = x.shape
    # One zero row/column on each side; every source index outside the image is clamped onto it.
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))  # (B, C, H + 2, W + 2)
    rows = (torch.arange(H, device=x.device)[None, :] - dy[:, None] + 1).clamp(0, H + 1)  # (B, H) rows in `padded`
    cols = (torch.arange(W, device=x.device)[None, :] - dx[:, None] + 1).clamp(0, W + 1)  # (B, W)
    batch = torch.arange(B, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


def translation(x: torch.Tensor, generator: torch.Generator | None = None,
                ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    B, _, H, W = x.shape
    sy, sx = int(H * ratio + 0.5), int(W * ratio + 0.5)  # the largest shift in each direction
    dy = _randint(-sy, sy + 1, B, x, generator)
    dx = _randint(-sx, sx + 1, B, x, generator)
    return translate(x, dx, dy)


def cutout(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    B, _, H, W = x.shape
    ch, cw = int(H * ratio + 0.5), int(W * ratio + 0.5)  # side of the square
    # square centres; the square may hang over the border, as in the original
    cy = _randint(0, H + (1 - ch % 2), B, x, generator)
    cx = _randint(0, W + (1 - cw % 2), B, x, generator)
    top, left = (cy - ch // 2)[:, None], (cx - cw // 2)[:, None]  # (B, 1)
    rows = torch.arange(H, device=x.device)[None, :]  # (1, H)
    cols = torch.arange(W, device=x.device)[None, :]
    in_rows = (rows >= top) & (rows < top + ch)  # (B, H)
    in_cols = (cols >= left) & (cols < left + cw)  # (B, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # (B, H, W)
    return x * keep[:, None].to(x.dtype)


POLICIES = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


def diff_augment(x: torch.Tensor, policy: str = "color,translation",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the ops of `policy` ('color', 'translation', 'cutout', comma-separated; '' = none) to x (B, C, H, W)."""
    if x.dim() != 4:
        raise ValueError(f"diff_augment expects images (B, C, H, W); got shape {tuple(x.shape)}")
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown} in {policy!r}; allowed: {sorted(POLICIES)}")
    for name in names:
        for op in POLICIES[name]:
            x = op(x, generator)
    return x
