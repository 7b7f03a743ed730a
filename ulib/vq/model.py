"""Stage 1: the VQGAN autoencoder (paper section 3.1), layer for layer the official architecture.

Reading order: Encoder → Generator → VQAutoEncoder, built from the blocks of `ulib.vq.blocks` (ResBlock,
AttnBlock, Down/Upsample) and the codebook of `ulib.vq.quantizer` (VectorQuantizer). Module names follow the
official code (samb-t/unleashing-transformers, itself adapted from taming-transformers), so a released
checkpoint's `ae.*` keys, with the `ae.` prefix removed, load straight into `VQAutoEncoder` with `strict=True` and
compute the same function.

Shapes: images x (B, n_channels, H, W) in [-1, 1]; latents z (B, emb_dim, h, w) with h = H / 2**(len(ch_mult)-1);
indices (B, h, w) in 0..codebook_size-1.

The losses (Eq. 9: L1 + LPIPS, GAN, adaptive weight) live in `ulib.vq.loss`; only the VQ term (Eq. 5),
which needs the quantiser's internals, is computed in `ulib.vq.quantizer`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ulib.config import VQGANConfig, downsampling_factor
from ulib.vq.blocks import GROUPS, AttnBlock, Downsample, ResBlock, Upsample, normalize
from ulib.vq.quantizer import VectorQuantizer


class Encoder(nn.Module):
    """E: image (B, in_channels, H, W) -> latent (B, out_channels, H/f, W/f), f = 2**(len(ch_mult)-1).

    `blocks` holds, in order: conv_in; per level i, res_blocks ResBlocks (each followed by an AttnBlock when
    the level's resolution is in attn_resolutions) and a Downsample except after the last level; then
    ResBlock, AttnBlock, ResBlock; GroupNorm; conv3x3 to out_channels. Like the official code there is NO
    swish between that final GroupNorm and the final conv (the list is applied in sequence).
    """

    def __init__(self, in_channels: int, nf: int, out_channels: int, ch_mult: tuple[int, ...],
                 res_blocks: int, resolution: int, attn_resolutions: tuple[int, ...], norm_groups: int = GROUPS):
        super().__init__()
        g = norm_groups
        in_ch_mult = (1,) + tuple(ch_mult)
        res = resolution
        blocks: list[nn.Module] = [nn.Conv2d(in_channels, nf, kernel_size=3, stride=1, padding=1)]
        ch = nf
        for i, mult in enumerate(ch_mult):
            ch = nf * in_ch_mult[i]
            for _ in range(res_blocks):
                blocks.append(ResBlock(ch, nf * mult, g))
                ch = nf * mult
                if res in attn_resolutions:
                    blocks.append(AttnBlock(ch, g))
            if i != len(ch_mult) - 1:
                blocks.append(Downsample(ch))
                res //= 2
        blocks += [ResBlock(ch, ch, g), AttnBlock(ch, g), ResBlock(ch, ch, g)]  # the bottleneck ("non-local") stage
        blocks += [normalize(ch, g), nn.Conv2d(ch, out_channels, kernel_size=3, stride=1, padding=1)]
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class Generator(nn.Module):
    """G: latent (B, in_channels, h, w) -> image (B, out_channels, h*f, w*f); the encoder mirrored.

    `blocks`: conv_in to nf*ch_mult[-1]; ResBlock, AttnBlock, ResBlock; per level from the last to the first,
    res_blocks ResBlocks to nf*ch_mult[i] (each followed by an AttnBlock at attn_resolutions) and an Upsample
    except after level 0; GroupNorm; conv3x3 to out_channels (again no swish before it).

    `logsigma` is the official ELBO fine-tuning head (a per-pixel log standard deviation predicted from the
    features before the last conv, trained after the VQGAN to turn it into a likelihood model for the
    paper's NLL numbers). `forward` never uses it; it exists so that released checkpoints load strictly.
    """

    def __init__(self, in_channels: int, nf: int, out_channels: int, ch_mult: tuple[int, ...],
                 res_blocks: int, resolution: int, attn_resolutions: tuple[int, ...], norm_groups: int = GROUPS):
        super().__init__()
        g = norm_groups
        ch = nf * ch_mult[-1]
        res = resolution // downsampling_factor(ch_mult)
        blocks: list[nn.Module] = [nn.Conv2d(in_channels, ch, kernel_size=3, stride=1, padding=1)]
        blocks += [ResBlock(ch, ch, g), AttnBlock(ch, g), ResBlock(ch, ch, g)]
        for i in reversed(range(len(ch_mult))):
            for _ in range(res_blocks):
                blocks.append(ResBlock(ch, nf * ch_mult[i], g))
                ch = nf * ch_mult[i]
                if res in attn_resolutions:
                    blocks.append(AttnBlock(ch, g))
            if i != 0:
                blocks.append(Upsample(ch))
                res *= 2
        blocks += [normalize(ch, g), nn.Conv2d(ch, out_channels, kernel_size=3, stride=1, padding=1)]
        self.blocks = nn.ModuleList(blocks)
        self.logsigma = nn.Sequential(
            nn.Conv2d(ch, ch, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
            nn.Conv2d(ch, out_channels, kernel_size=1, stride=1, padding=0),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            z = block(z)
        return z


class VQAutoEncoder(nn.Module):
    """Encoder → VectorQuantizer → Generator. `state_dict()` keys equal the official `ae.*` keys minus `ae.`."""

    def __init__(self, img_size: int, n_channels: int = 3, nf: int = 64, ch_mult: tuple[int, ...] = (1, 2, 2),
                 res_blocks: int = 1, attn_resolutions: tuple[int, ...] = (8,), codebook_size: int = 256,
                 emb_dim: int = 64, beta: float = 0.25, norm_groups: int = GROUPS):
        super().__init__()
        ch_mult, attn_resolutions = tuple(ch_mult), tuple(attn_resolutions)
        if len(ch_mult) == 0 or any(m < 1 for m in ch_mult):
            raise ValueError(f"ch_mult={ch_mult}; need at least one multiplier, each >= 1")
        factor = downsampling_factor(ch_mult)
        if img_size <= 0 or img_size % factor != 0:
            raise ValueError(
                f"img_size={img_size} is not divisible by the downsampling factor 2**(len(ch_mult)-1) = {factor} "
                f"of ch_mult={ch_mult}; use a positive multiple of {factor}"
            )
        bad = [nf * m for m in ch_mult if norm_groups < 1 or (nf * m) % norm_groups != 0]
        if nf <= 0 or bad:
            raise ValueError(
                f"nf={nf} with ch_mult={ch_mult} gives channel counts {[nf * m for m in ch_mult]}; GroupNorm needs "
                f"every one divisible by norm_groups={norm_groups} (not: {bad}); use nf a multiple of {norm_groups}"
            )
        for name, value in (("n_channels", n_channels), ("res_blocks", res_blocks),
                            ("codebook_size", codebook_size), ("emb_dim", emb_dim)):
            if value < 1:
                raise ValueError(f"{name}={value}; must be >= 1")
        self.img_size, self.n_channels, self.ch_mult, self.nf = img_size, n_channels, ch_mult, nf
        self.codebook_size, self.emb_dim = codebook_size, emb_dim
        self.encoder = Encoder(n_channels, nf, emb_dim, ch_mult, res_blocks, img_size, attn_resolutions, norm_groups)
        self.quantize = VectorQuantizer(codebook_size, emb_dim, beta)
        self.generator = Generator(emb_dim, nf, n_channels, ch_mult, res_blocks, img_size, attn_resolutions,
                                   norm_groups)

    @classmethod
    def from_config(cls, cfg: VQGANConfig, img_size: int) -> "VQAutoEncoder":
        return cls(img_size, n_channels=cfg.n_channels, nf=cfg.nf, ch_mult=cfg.ch_mult, res_blocks=cfg.res_blocks,
                   attn_resolutions=cfg.attn_resolutions, codebook_size=cfg.codebook_size,
                   emb_dim=cfg.emb_dim, beta=cfg.beta, norm_groups=cfg.norm_groups)

    @property
    def latent_shape(self) -> tuple[int, int]:
        """(h, w) of the index grid."""
        side = self.img_size // downsampling_factor(self.ch_mult)
        return (side, side)

    @property
    def last_layer(self) -> torch.Tensor:
        """The generator's final conv weight: the adaptive GAN weight (Eq. 9c) compares gradients here."""
        return self.generator.blocks[-1].weight

    def _check_images(self, x: torch.Tensor) -> None:
        expected = (self.n_channels, self.img_size, self.img_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"images of shape {tuple(x.shape)}; expected (B, {', '.join(map(str, expected))})")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """x (B, C, H, W) in [-1, 1] -> (x_hat (B, C, H, W), L_VQ, stats: perplexity, codes_used, indices)."""
        self._check_images(x)
        z_q, vq_loss, stats = self.quantize(self.encoder(x))
        return self.generator(z_q), vq_loss, stats

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] -> codebook indices (B, h, w), int64."""
        self._check_images(x)
        return self.quantize.nearest(self.encoder(x))

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, h, w) or flattened (B, h*w) -> images (B, C, H, W), roughly in [-1, 1].

        Differentiable w.r.t. the generator's weights; wrap in torch.no_grad() when sampling.
        """
        h, w = self.latent_shape
        if indices.dim() == 2 and indices.shape[1] == h * w:
            indices = indices.reshape(-1, h, w)
        if indices.dim() != 3 or tuple(indices.shape[1:]) != (h, w):
            raise ValueError(f"indices of shape {tuple(indices.shape)}; expected (B, {h}, {w}) or (B, {h * w})")
        if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
            raise ValueError(f"indices have dtype {indices.dtype}; "
                             "expected an integer dtype (e.g. int64, int16, uint8)")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(
                f"indices range {int(indices.min())}..{int(indices.max())}; allowed 0..{self.codebook_size - 1} "
                f"(the mask token {self.codebook_size} must be replaced before decoding)"
            )
        return self.generator(self.quantize.to_latent(indices.long()))
