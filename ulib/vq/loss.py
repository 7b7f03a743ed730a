"""The VQGAN training objective (Eq. 9), separate from the networks it trains.

    L = L_rec + L_VQ + lambda * L_GAN                               (Eq. 9)
    L_rec = |x - x_hat|_1 + perceptual_weight * LPIPS(x, x_hat)     (Eq. 9a)
    L_GAN = -mean D(aug(x_hat)) for the generator; hinge loss for D (Eq. 9b)
    lambda = min(|grad_last L_rec| / (|grad_last L_GAN| + delta), lambda_max)   (Eq. 9c)

`last_layer` is the generator's final conv weight (`VQAutoEncoder.last_layer`). The GAN term starts at
`cfg.disc_start_step`; before it the discriminator is not run at all.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ulib.config import VQGANConfig
from ulib.vq.diffaug import diff_augment
from ulib.vq.discriminator import hinge_d_loss

DIFF_AUG_POLICY = "color,translation"  # the official policy


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor,
                    max_weight: float = 1.0, delta: float = 1e-4, scale: float = 1.0) -> torch.Tensor:
    """Eq. 9c: lambda = min(||d L_rec / d last|| / (||d L_G / d last|| + delta), max_weight), detached.

    Balances the GAN gradient against the reconstruction gradient at the generator's last layer. Both
    graphs are kept (retain_graph) for the backward pass of the total loss that follows.

    scale: the fp16 GradScaler's loss scale s. Both gradients are taken of s times the loss, so the backward
    through the fp16 discriminator does not underflow, and lambda is unchanged:
    ||s a|| / (||s b|| + s delta) = ||a|| / (||b|| + delta). Norms in fp32 (an fp16 sum of squares overflows).
    """
    rec_grad = torch.autograd.grad(rec_loss * scale, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss * scale, last_layer, retain_graph=True)[0]
    weight = rec_grad.float().norm() / (g_grad.float().norm() + delta * scale)
    return weight.clamp(0.0, max_weight).detach()


def _read(stats: dict, sync: bool) -> dict:
    """Stats as floats (sync: one host read each) or as detached 0-dim tensors, read later in one go."""
    return {k: (v.item() if sync else v.detach()) for k, v in stats.items()}


class VQGANLoss:
    """Losses of both VQGAN players. Holds references to the discriminator and the LPIPS module; the trainer
    owns them (devices, optimisers). A plain class, not an nn.Module, so neither network's parameters
    are counted twice in a state dict.

    Note: the generator loss back-propagates through D, so D's parameters receive gradients from it too;
    zero them before D's own step (`optimizer.zero_grad()` does).
    """

    def __init__(self, cfg: VQGANConfig, discriminator: nn.Module, perceptual: nn.Module | None = None):
        if cfg.perceptual_weight < 0:
            raise ValueError(f"vqgan.perceptual_weight={cfg.perceptual_weight}; must be >= 0")
        if cfg.perceptual_weight > 0 and perceptual is None:
            raise ValueError(
                f"vqgan.perceptual_weight={cfg.perceptual_weight} > 0 needs an LPIPS module "
                "(ulib.vq.perceptual.load_lpips); "
                "got perceptual=None. Pass one, or set vqgan.perceptual_weight=0"
            )
        self.cfg = cfg
        self.discriminator = discriminator
        self.perceptual = perceptual

    def _aug(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return diff_augment(x, DIFF_AUG_POLICY, generator) if self.cfg.diff_aug else x

    def gan_active(self, step: int) -> bool:
        return step >= self.cfg.disc_start_step

    def generator_loss(self, x: torch.Tensor, x_hat: torch.Tensor, vq_loss: torch.Tensor, last_layer: torch.Tensor,
                       step: int, generator: torch.Generator | None = None, sync: bool = True,
                       grad_scale: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 9 for the autoencoder. x, x_hat (B, C, H, W) in [-1, 1]; vq_loss from the quantiser (Eq. 5).

        Stats: l1, perceptual (when used), rec, vq, g_loss and d_weight (both 0.0 before disc_start_step,
        where they are not computed), loss. Under torch.no_grad() (validation) lambda cannot be computed;
        g_loss is reported and weighted 0. sync=False leaves the stats as 0-dim tensors (no GPU sync);
        grad_scale is the fp16 loss scale for `adaptive_weight`.
        """
        l1 = (x - x_hat).abs().mean()
        rec = l1
        stats = {"l1": l1}
        if self.cfg.perceptual_weight > 0:
            p = self.perceptual(x.contiguous(), x_hat.contiguous()).mean()  # LPIPS gives (B, 1, 1, 1)
            rec = rec + self.cfg.perceptual_weight * p
            stats["perceptual"] = p

        loss = rec + vq_loss
        g_loss = d_weight = torch.zeros((), device=x.device)
        if self.gan_active(step):
            g_loss = -self.discriminator(self._aug(x_hat, generator)).mean()  # Eq. 9b, generator side
            if torch.is_grad_enabled() and g_loss.requires_grad:
                d_weight = adaptive_weight(rec, g_loss, last_layer, max_weight=self.cfg.disc_weight_max,
                                           scale=grad_scale)
            loss = loss + d_weight * g_loss
        stats.update(rec=rec, vq=vq_loss, g_loss=g_loss, d_weight=d_weight, loss=loss)
        return loss, _read(stats, sync)

    def discriminator_loss(self, x: torch.Tensor, x_hat: torch.Tensor, step: int,
                           generator: torch.Generator | None = None,
                           sync: bool = True) -> tuple[torch.Tensor | None, dict[str, float]]:
        """Hinge loss of D on (augmented) real images and detached reconstructions; (None, {}) before
        disc_start_step. Stats: d_loss, logits_real, logits_fake (mean logits); tensors with sync=False."""
        if not self.gan_active(step):
            return None, {}
        logits_real = self.discriminator(self._aug(x.detach(), generator))
        logits_fake = self.discriminator(self._aug(x_hat.detach(), generator))
        d_loss = hinge_d_loss(logits_real, logits_fake)
        return d_loss, _read({"d_loss": d_loss, "logits_real": logits_real.mean(), "logits_fake": logits_fake.mean()},
                             sync)
