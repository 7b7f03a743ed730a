"""The VQGAN's codebook (paper section 3.1): nearest-code quantisation (Eq. 4), the straight-through estimator,
L_VQ (Eq. 5), code usage, and the codebook's data-dependent start and dead-code restarts.

Shapes: latents z (B, D, h, w) with D = emb_dim; indices (B, h, w) in 0..K-1, K = codebook_size; the codebook
`embedding.weight` (K, D), under the official name (`quantize.embedding.weight` in a released checkpoint's keys).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ulib.device import full_precision_matmul


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
        # Distances in float32 at full precision, whatever the caller set: under autocast (bf16) or TF32 matmuls
        # ("high", which `configure_matmul` sets for the whole process on CUDA: inputs rounded to a 10-bit
        # mantissa) near-ties would flip, and the tokens would depend on the path that encoded them (`encode`,
        # the cache train-prior builds, evaluation) while the latents' fingerprint cannot tell.
        with torch.autocast(device_type=z.device.type, enabled=False), full_precision_matmul():
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
