"""The absorbing discrete diffusion process of stage 2 (paper section 3.2, Eq. 6 and 7).

Forward process q(x_t | x_0): every token is replaced by the mask token m independently with probability
t/T, t in 1..T. At t = T everything is masked, so q(x_T) is a point mass and needs no learned prior.

The network p(x_0 | x_t) is any module mapping tokens (B, L) to logits (B, L, K) (e.g.
`ulib.prior.transformer.Transformer`): this file holds the process, never the network, so the same process
trains any network and the same network serves the AR baseline.

Losses, per sampled t ~ Uniform{1..T} and in bits per token (divide nats by L ln 2), with
CE(x_0, x_t) = sum over masked positions i of -log p([x_0]_i | x_t):

- 'elbo' (Eq. 6):  T * (1/t) * CE. The negative ELBO is sum_t (1/t) E_q[CE] (the L_T term is 0), and
  T * (1/t) * CE with t uniform is its unbiased one-sample estimate.
- 'reweighted_elbo' (Eq. 7 and supplementary): ((T - t + 1) / T) * CE. The paper weights step t by
  (T - t + 1)/T instead of 1/t: the 1/t weight makes the loss's variance explode at small t, while
  (T-t+1)/T still decreases with t (few masked tokens are easy) and never vanishes. We implement the paper's
  weight exactly. The official code uses 1 - t/T = (T - t)/T instead, which is the paper's weight minus
  1/T and gives zero weight to t = T, the all-masked input every sampling run starts from; we keep the
  paper's form and note the difference here.
- 'mlm': CE divided by the number of masked tokens (BERT-style masked-token cross-entropy), in bits.

Whatever the loss, `training_losses` also returns `elbo_bpt`, the one-sample estimate of the negative ELBO
in bits per token, so that runs with different losses can be compared (paper Fig. 5).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOSS_TYPES = ("elbo", "reweighted_elbo", "mlm")


class AbsorbingDiffusion:
    """Forward process, losses and ELBO of the absorbing diffusion; the network is passed in."""

    def __init__(self, num_timesteps: int, mask_id: int, loss_type: str = "reweighted_elbo"):
        if num_timesteps < 1:
            raise ValueError(f"num_timesteps={num_timesteps}; must be >= 1")
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type={loss_type!r}; allowed: {LOSS_TYPES}")
        self.T = num_timesteps
        self.mask_id = mask_id
        self.loss_type = loss_type

    def sample_time(self, batch: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """t ~ Uniform{1, ..., T}, shape (B,)."""
        return torch.randint(1, self.T + 1, (batch,), device=device, generator=generator)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None):
        """Sample x_t ~ q(x_t | x_0): mask each token independently with probability t/T.

        x0: (B, L) long; t: (B,) in 1..T. Returns (x_t, mask) with mask True where x_t = m.
        """
        u = torch.rand(x0.shape, device=x0.device, generator=generator)
        mask = u < (t.float() / self.T).unsqueeze(1)  # (B, L)
        x_t = torch.where(mask, torch.full_like(x0, self.mask_id), x0)
        return x_t, mask

    def masked_cross_entropy(self, logits: torch.Tensor, x0: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """CE(x_0, x_t) = sum over masked i of -log p([x_0]_i | x_t), in nats, shape (B,)."""
        ce = F.cross_entropy(logits.float().transpose(1, 2), x0, reduction="none")  # (B, L)
        return (ce * mask).sum(1)

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """Per-sample weight w(t) of the masked cross-entropy for the chosen loss type (see module doc)."""
        t = t.float()
        if self.loss_type == "elbo":
            return self.T / t  # Eq. 6 with the 1/p(t) = T importance factor
        if self.loss_type == "reweighted_elbo":
            return (self.T - t + 1) / self.T  # Eq. 7
        raise ValueError("the 'mlm' loss has no t-weight; it normalises by the number of masked tokens")

    def training_losses(self, model, x0: torch.Tensor, generator: torch.Generator | None = None,
                        t: torch.Tensor | None = None) -> dict:
        """One Monte-Carlo draw of the training loss for a batch of token grids x0 (B, L).

        Returns a dict with 'loss' (scalar to minimise, bits per token), 'elbo_bpt' (scalar, one-sample
        negative-ELBO estimate in bits/token), 'ce_masked' (mean nats per masked token) and 't' (B,).
        """
        B, L = x0.shape
        if t is None:
            t = self.sample_time(B, x0.device, generator)
        x_t, mask = self.q_sample(x0, t, generator)
        logits = model(x_t)  # (B, L, K)
        ce = self.masked_cross_entropy(logits, x0, mask)  # (B,) nats
        to_bits = 1.0 / (L * math.log(2))
        elbo = (self.T / t.float()) * ce * to_bits  # (B,) Eq. 6 estimate, bits/token
        n_masked = mask.sum(1)
        if self.loss_type == "mlm":
            loss = ce / n_masked.clamp(min=1) / math.log(2)
        else:
            loss = self.weight(t) * ce * to_bits
        return {
            "loss": loss.mean(),
            "elbo_bpt": elbo.mean().detach(),
            "ce_masked": (ce.sum() / n_masked.sum().clamp(min=1)).detach(),
            "t": t,
        }

    @torch.no_grad()
    def elbo_term(self, model, x0: torch.Tensor, t: torch.Tensor,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """a_t = (1/t) * E_q[CE(x_0, x_t)] for each grid of x0 (B, L) at its own t (B,), one x_t draw, in bits per
        token, shape (B,): the t-th term of Eq. 6 (`ulib.prior.likelihood` sums or samples it)."""
        x_t, mask = self.q_sample(x0, t, generator)
        ce = self.masked_cross_entropy(model(x_t), x0, mask)
        return ce / t.float() / (x0.shape[1] * math.log(2))

    @torch.no_grad()
    def full_elbo(self, model, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Negative ELBO (Eq. 6) summed over every t = 1..T (one x_t draw per t), bits/token, shape (B,)."""
        B = x0.shape[0]
        return sum(self.elbo_term(model, x0, torch.full((B,), t, device=x0.device, dtype=torch.long), generator)
                   for t in range(1, self.T + 1))
