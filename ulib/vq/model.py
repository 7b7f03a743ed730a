"""Stage 1: the VQGAN autoencoder (paper section 3.1), layer for layer the official architecture.

Reading order: helpers → ResBlock → AttnBlock → Down/Upsample → Encoder → Generator → VectorQuantizer →
VQAutoEncoder. Module names follow the official code (samb-t/unleashing-transformers, itself adapted from
taming-transformers), so a released checkpoint's `ae.*` keys, with the `ae.` prefix removed, load straight
into `VQAutoEncoder` with `strict=True` and compute the same function.

Shapes: images x (B, n_channels, H, W) in [-1, 1]; latents z (B, emb_dim, h, w) with h = H / 2**(len(ch_mult)-1);
indices (B, h, w) in 0..codebook_size-1.

The losses (Eq. 9: L1 + LPIPS, GAN, adaptive weight) live in `ulib.vq.loss`; only the VQ term (Eq. 5),
which needs the quantiser's internals, is computed here.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ulib.config import VQGANConfig, downsampling_factor

GROUPS = 32  # GroupNorm groups everywhere, as in the official code (the default of `norm_groups`)


def normalize(channels: int, groups: int = GROUPS) -> nn.GroupNorm:
    """GroupNorm(groups, eps 1e-6). With one channel per group it is InstanceNorm, which removes each
    channel's per-image mean: a narrow model (nf=32 at 32 groups) then cannot carry an image's colours to
    the output (measured: sepia reconstructions), so small profiles use fewer groups."""
    return nn.GroupNorm(num_groups=groups, num_channels=channels, eps=1e-6, affine=True)


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class ResBlock(nn.Module):
    """norm → swish → conv3x3 → norm → swish → conv3x3, plus the skip path.

    `conv_out` (1x1) always exists, because the official checkpoints hold its weights for every block, but it
    is applied to the skip path only when in_channels != out_channels; otherwise the skip is the identity.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, groups: int = GROUPS):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = normalize(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = normalize(out_channels, groups)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.conv_out = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H, W)
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        skip = self.conv_out(x) if self.in_channels != self.out_channels else x
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the h*w positions of a feature map, with a residual connection.

    out = x + proj_out(softmax(q k^T * C**-0.5) v), q/k/v are 1x1 convs of GroupNorm(x).
    """

    def __init__(self, channels: int, groups: int = GROUPS):
        super().__init__()
        self.channels = channels
        self.norm = normalize(channels, groups)
        self.q = nn.Conv2d(channels, channels, kernel_size=1)
        self.k = nn.Conv2d(channels, channels, kernel_size=1)
        self.v = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        B, C, H, W = x.shape
        h = self.norm(x)
        # (B, 1, HW, C): one head, the positions are the sequence
        q, k, v = (conv(h).reshape(B, 1, C, H * W).transpose(2, 3) for conv in (self.q, self.k, self.v))
        # scaled_dot_product_attention's default scale is 1/sqrt(last dim) = C**-0.5, the official scale
        a = F.scaled_dot_product_attention(q, k, v)  # (B, 1, HW, C)
        a = a.transpose(2, 3).reshape(B, C, H, W)
        return x + self.proj_out(a)


class Downsample(nn.Module):
    """Halve the resolution: zero-pad right and bottom by one, then a 3x3 conv with stride 2 and no padding."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H/2, W/2)
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour x2, then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, 2H, 2W)
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


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


class VectorQuantizer(nn.Module):
    """Nearest-neighbour codebook quantisation (Eq. 4) with the straight-through estimator and L_VQ (Eq. 5)."""

    def __init__(self, codebook_size: int, emb_dim: int, beta: float = 0.25):
        super().__init__()
        self.codebook_size, self.emb_dim, self.beta = codebook_size, emb_dim, beta
        self.embedding = nn.Embedding(codebook_size, emb_dim)  # (K, D), the codebook c_1..c_K
        nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)

    @torch.no_grad()
    def init_from_latents(self, z: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Data-dependent start: copy K encoder outputs, drawn at random from z (B, D, h, w), into the codebook.

        The official uniform(-1/K, 1/K) start puts every code next to 0, far from the encoder's outputs, so
        a few codes win every argmin and the rest never move (short CPU runs then lose most of the colours).
        Starting the codes on actual latents puts all of them in use from step 0.
        """
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (N, D)
        if flat.shape[0] < self.codebook_size:
            raise ValueError(f"need at least codebook_size={self.codebook_size} latent vectors, got {flat.shape[0]}")
        pick = torch.randperm(flat.shape[0], generator=generator, device=flat.device)[: self.codebook_size]
        self.embedding.weight.copy_(flat[pick].to(self.embedding.weight.dtype))

    @torch.no_grad()
    def restart_codes(self, dead: torch.Tensor, z: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Move the codes flagged in `dead` (K,) bool onto random encoder outputs from z (B, D, h, w).

        Codes that win no argmin get no gradient and never move again; putting them back where the
        encoder's outputs are lets them compete (Jukebox's and the official code's code recycling).
        Returns the number of codes moved.
        """
        n = int(dead.sum())
        if n == 0:
            return 0
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (N, D)
        pick = torch.randint(0, flat.shape[0], (n,), generator=generator, device=flat.device)
        self.embedding.weight[dead] = flat[pick].to(self.embedding.weight.dtype)
        return n

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. 4: the index of the closest codebook vector for every position; z (B, D, h, w) -> (B, h, w)."""
        B, D, h, w = z.shape
        if D != self.emb_dim:
            raise ValueError(f"latent has {D} channels; the codebook has emb_dim={self.emb_dim}")
        # Distances in float32 even under autocast: bf16 rounding would change the argmin.
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = z.permute(0, 2, 3, 1).reshape(-1, D).float()  # (N, D), N = B*h*w
            codebook = self.embedding.weight.float()  # (K, D)
            # ||z - c||^2 = ||z||^2 + ||c||^2 - 2 z.c, without building the (N, K, D) difference tensor
            d = flat.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2.0 * flat @ codebook.t()  # (N, K)
        return d.argmin(dim=1).reshape(B, h, w)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook vectors for integer indices of any shape: (...) -> (..., D)."""
        return self.embedding(indices)

    def to_latent(self, indices: torch.Tensor) -> torch.Tensor:
        """The quantised latent of an index grid: (B, h, w) -> (B, D, h, w)."""
        return self.lookup(indices).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: torch.Tensor, stats: bool = True) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """z = E(x) (B, D, h, w) -> (z_q with straight-through gradients, L_VQ, stats).

        stats=False gives only {'indices'}: the usage figures read values back to the host (a GPU sync), which
        a training step should do only when it logs (`usage_stats` then)."""
        indices = self.nearest(z)  # (B, h, w)
        z_q = self.to_latent(indices)  # (B, D, h, w), in the codebook's dtype
        # Eq. 5, as the paper writes it: codebook term ||sg[E(x)] - z_q||^2 plus beta times the commitment
        # term ||sg[z_q] - E(x)||^2 (means over all elements). The official code puts beta on the codebook
        # term instead: mean((z_q.detach() - z)**2) + beta * mean((z_q - z.detach())**2). The value is the
        # same, (1 + beta) * mse; only the gradients differ. We follow the paper.
        z32 = z.to(z_q.dtype)
        loss = F.mse_loss(z_q, z32.detach()) + self.beta * F.mse_loss(z32, z_q.detach())
        # straight-through estimator: forward value z_q, gradient d/dz_q copied to z
        z_q = z + (z_q.to(z.dtype) - z).detach()
        return z_q, loss, self.usage_stats(indices) if stats else {"indices": indices}

    def usage_stats(self, indices: torch.Tensor) -> dict:
        """Perplexity exp(-sum_k p_k log p_k) of the batch's code usage (K when all codes are used equally,
        1 when a single code is used), the number of distinct codes used, and the indices themselves."""
        counts = torch.bincount(indices.flatten(), minlength=self.codebook_size)  # (K,)
        p = counts.float() / indices.numel()
        perplexity = torch.exp(-torch.special.xlogy(p, p).sum())  # 0 log 0 = 0
        return {"perplexity": perplexity, "codes_used": int((counts > 0).sum().item()), "indices": indices}


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
        self.img_size, self.n_channels, self.ch_mult = img_size, n_channels, ch_mult
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
