"""Reconstruction quality (the paper's Table 5), per image: PSNR, SSIM and LPIPS of a VQGAN's reconstructions
against the originals, and the codebook usage of a split's tokens. rFID, the fourth figure of Table 5, is
`ulib.eval.metrics.fid` between the features of the originals and of their reconstructions.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ulib.device import exact_float


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().to(exact_float(x.device))  # float64, float32 on MPS (no float64 there)
    return (x.clamp(-1, 1) + 1) / 2  # [-1, 1] -> [0, 1], data range L = 1


def psnr(x: torch.Tensor, y: torch.Tensor, max_db: float = 100.0) -> torch.Tensor:
    """Per-image PSNR in dB of images (B, C, H, W) in [-1, 1], on the [0, 1] scale: 10 log10(1 / mse);
    identical images give `max_db` instead of infinity."""
    mse = (_unit(x) - _unit(y)).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1 / mse.clamp_min(10 ** (-max_db / 10)))).float()


def gaussian_window(size: int, sigma: float, dtype=torch.float64, device=None) -> torch.Tensor:
    """(size,) normalised Gaussian weights centred on the middle tap."""
    r = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004) of images (B, C, H, W) in [-1, 1], on the [0, 1] scale.

    Local statistics under a `window` x `window` Gaussian (sigma 1.5), only where the window fits (no padding):
      SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),
      C1 = (k1 L)^2, C2 = (k2 L)^2, L = 1; averaged over positions and channels. The window shrinks (odd) to fit
    images smaller than it.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim: images must be two (B, C, H, W) tensors of one shape; got {tuple(x.shape)}, "
                         f"{tuple(y.shape)}")
    x, y = _unit(x), _unit(y)
    c = x.shape[1]
    size = min(window, x.shape[-2], x.shape[-1])
    size -= 1 - size % 2  # odd
    g = gaussian_window(size, sigma, dtype=x.dtype, device=x.device)
    w = (g[:, None] * g[None, :]).expand(c, 1, size, size)  # (C, 1, s, s) separable Gaussian, one per channel

    def blur(t):
        return F.conv2d(t, w, groups=c)  # (B, C, H - s + 1, W - s + 1)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = k1**2, k2**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3)).float()


def lpips_distance(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pair LPIPS (B,) of images in [-1, 1] with a model from `ulib.vq.perceptual.load_lpips`."""
    with torch.no_grad():
        return model(x, y).flatten().float()


def codebook_usage(counts: torch.Tensor) -> dict:
    """From the histogram (K,) of every token of a split: codes used, their fraction of K, and the perplexity
    exp(-sum p log p) (K when all codes are used equally, 1 when one code is)."""
    counts = counts.to(exact_float(counts.device))
    p = counts / counts.sum()
    return {"codes_used": int((counts > 0).sum()), "codebook_size": int(counts.numel()),
            "codebook_usage": float((counts > 0).to(counts.dtype).mean()),
            "perplexity": float(torch.exp(-torch.special.xlogy(p, p).sum()))}

