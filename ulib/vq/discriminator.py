"""The patch discriminator D of the VQGAN's adversarial loss (Eq. 9b) and its hinge loss.

The official one (pix2pix's PatchGAN, via taming-transformers): a stack of 4x4 convs whose output is a
grid of logits, one per overlapping image patch. Layers sit in `main` (nn.Sequential), so state_dict keys
read `main.N.*` like the official checkpoints' `disc.main.N.*`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ulib.config import VQGANConfig


class PatchDiscriminator(nn.Module):
    """(B, nc, H, W) images -> (B, 1, H', W') patch logits, H' = H / 2**n_layers - 2 (for H a power of 2).

    main: Conv4x4 s2 (nc -> ndf), LeakyReLU; for n = 1..n_layers-1: Conv4x4 s2 (no bias) to ndf*min(2**n, 8),
    BatchNorm, LeakyReLU; Conv4x4 s1 (no bias) to ndf*min(2**n_layers, 8), BatchNorm, LeakyReLU;
    Conv4x4 s1 to 1 channel. All convs pad by 1.
    """

    def __init__(self, nc: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        if nc < 1 or ndf < 1 or n_layers < 1:
            raise ValueError(f"nc={nc}, ndf={ndf}, n_layers={n_layers}; all must be >= 1")
        self.n_layers = n_layers
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(ndf * mult),
            nn.LeakyReLU(0.2),
            nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1),  # one logit per patch
        ]
        self.main = nn.Sequential(*layers)
        self.apply(_init_weights)

    @classmethod
    def from_config(cls, cfg: VQGANConfig) -> "PatchDiscriminator":
        return cls(nc=cfg.n_channels, ndf=cfg.ndf, n_layers=cfg.disc_layers)

    def output_size(self, size: int) -> int:
        """Side of the logit grid for an input of side `size` (<= 0 means the input is too small)."""
        for _ in range(self.n_layers):
            size = (size + 2 - 4) // 2 + 1  # 4x4 conv, stride 2, pad 1
        return size - 2  # two 4x4 convs with stride 1, pad 1, each lose one pixel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(self.output_size(x.shape[-2]), self.output_size(x.shape[-1])) < 1:
            raise ValueError(
                f"images of size {tuple(x.shape[-2:])} are too small for a patch discriminator with "
                f"n_layers={self.n_layers}; need a side of at least {3 * 2 ** self.n_layers} "
                f"or fewer layers (vqgan.disc_layers)"
            )
        return self.main(x)


def _init_weights(m: nn.Module) -> None:
    # The official weights_init: convs N(0, 0.02); BatchNorm scale N(1, 0.02), shift 0. Conv biases keep
    # PyTorch's default initialisation, as there.
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the discriminator: 0.5 * (mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat))))."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())
