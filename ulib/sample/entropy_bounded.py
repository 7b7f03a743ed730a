"""Entropy-bounded adaptive steps, the EB-sampler (`sample_tokens(..., method='eb')`): Ben-Hamu, Gat, Severo, Nolte
and Karrer, "Accelerated Sampling from Masked Diffusion Models via Entropy Bounded Unmasking" (arXiv:2505.24857,
NeurIPS 2025).

At each call of the network every masked position i of an image gets its predicted distribution
p_i = softmax(logits_i / temperature) and its entropy H_i = -sum_c p_i(c) ln p_i(c) (in nats). The positions are
sorted by H ascending (the paper's 'entropy' error proxy; ties by position), and the largest prefix U of that order
is revealed that keeps the paper's bound

    sum_{i in U} H_i - max_{i in U} H_i <= gamma.

Its left side bounds the error of drawing the tokens of U independently (the paper's joint dependence error):
KL(p(x^U) || prod_i p(x^i)) = sum_i H_i - H(x^U) <= sum_i H_i - max_i H_i, since a joint entropy is at least each
marginal's. In ascending order the max is the last one, so U is the k lowest with H_(1) + ... + H_(k-1) <= gamma:
the lowest is always revealed (at least one per call), and the prefix stops at the first position whose
predecessors' entropies sum above gamma. gamma = 0 reveals the lowest plus whatever follows zero-entropy
(certain) positions; a large gamma reveals all at once. Each revealed token is drawn from p_i by the exact
inverse-CDF draw (`ulib.sample.base.categorical`); revealed tokens never change.

The number of calls is a result, not a setting: an image with m masked positions takes between 1 and m calls.
Each call runs only the images that still have masked positions, so an image that is done is not run again and
a batch costs the most calls any of its images needs (`Sampler.forward_passes`). `steps`, if given (the
registry's 'cap'; an addition of this kit, not the paper's), caps the calls at S per image: call c (0-based)
reveals at least ceil(m_c / (S - c)) of the m_c positions still masked (the lowest-entropy ones), so every image is
done after at most S calls. Without steps there is no cap.

Every call is a separate step (`EntropyBoundedSampler.step`, the protocol of `ulib.sample.base`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ulib.device import exact_float
from ulib.sample.base import Sampler, SampleStep, SamplingContext, categorical, run_steps


def entropy_prefix(entropy: torch.Tensor, gamma: float) -> torch.Tensor:
    """(B,) long k: how many of each row's entropies (B, L), sorted ascending, the bound admits: the largest k with
    H_(1) + ... + H_(k-1) <= gamma (module docstring). Entries to leave out are +inf; a row of them gives 1.

    >>> entropy_prefix(torch.tensor([[0.5, 0.1, 0.2, 1.0]]), 0.35).tolist()  # 0 <= .35, .1 <= .35, .3 <= .35
    [3]
    """
    ordered = entropy.sort(1).values
    before = torch.cat([torch.zeros_like(ordered[:, :1]), ordered.cumsum(1)[:, :-1]], 1)  # sum of the lower ones
    return (before <= gamma).sum(1)  # entropies are >= 0, so the admitted ones are a prefix


@dataclass(frozen=True)
class EntropyBoundedOptions:
    """The EB-sampler's one setting."""

    gamma: float = 1.0  # the bound on sum H - max H over a call's revealed positions, in nats, >= 0

    def __post_init__(self):
        if not (isinstance(self.gamma, (int, float)) and math.isfinite(self.gamma) and self.gamma >= 0):
            raise ValueError(f"gamma={self.gamma!r}; allowed: a finite number >= 0 (nats)")


class EntropyBoundedSampler(Sampler):
    """Reveal, per call and per image, the lowest-entropy masked positions whose entropies keep sum - max <= gamma
    (method 'eb'). steps: None (no cap) or a cap S >= 1 on the calls per image. extras of each `SampleStep`:
    'entropy' ((B, L) the predicted entropy in nats at the positions scored this call, NaN elsewhere), 'active'
    ((B,) bool: the images that ran) and 'revealed' ((B,) long: how many each revealed)."""

    Options = EntropyBoundedOptions

    def __init__(self, ctx: SamplingContext, steps: int | None = None, options: EntropyBoundedOptions | None = None):
        super().__init__(ctx, steps, options)
        if steps is not None and (not isinstance(steps, int) or steps < 1):
            raise ValueError(f"steps={steps!r}; allowed: None (no cap) or an integer >= 1 (a cap on the calls)")
        self.cap, self.gamma = steps, self.options.gamma

    def start(self, x: torch.Tensor) -> int:
        """The most calls the run can need: the largest masked count, or the cap."""
        if x.dim() != 2:
            raise ValueError(f"x of shape {tuple(x.shape)}; expected (B, L)")
        most = int((x == self.mask_id).sum(1).max()) if x.shape[0] else 0
        return most if self.cap is None else min(most, self.cap)

    @torch.no_grad()
    def sample(self, x: torch.Tensor, callback=None, progress: bool = False) -> torch.Tensor:
        """Call after call until no mask token is left (at most `start(x)` calls)."""
        return run_steps(self.step, x, self.start(x), callback, progress, type(self).__name__,
                         until=lambda x: not bool((x == self.mask_id).any()))

    @torch.no_grad()
    def step(self, x: torch.Tensor, c: int) -> SampleStep:
        """Call c (0-based): score every masked position of the images not done, reveal each image's admitted
        prefix (module docstring)."""
        B, L = x.shape
        masked = x == self.mask_id
        active = masked.any(1)  # images that are done do not run again
        dtype = exact_float(x.device)  # float64, float32 on MPS
        entropy = torch.full((B, L), math.nan, dtype=dtype, device=x.device)
        if not active.any():
            return SampleStep(x, torch.zeros_like(masked), ran_network=False,
                              extras={"entropy": entropy, "active": active, "revealed": torch.zeros_like(x[:, 0])})
        # rows of the finished images hold no masked position, so row-major order over x[active] matches `masked`
        logits = self.logits_at(x[active], masked[active]).to(dtype) / self.temperature  # (N, K)
        probs = torch.softmax(logits, dim=-1)
        entropy[masked] = (-torch.special.xlogy(probs, probs).sum(-1)).clamp(min=0)  # H_i, with 0 ln 0 = 0
        key = torch.where(masked, entropy, torch.full_like(entropy, math.inf))
        m = masked.sum(1)  # (B,)
        n = torch.minimum(entropy_prefix(key, self.gamma), m)
        if self.cap is not None:  # at least ceil(m / calls left), so the cap is met
            n = torch.maximum(n, -(-m // max(self.cap - c, 1)))
        order = torch.sort(key, dim=1, stable=True).indices  # ascending entropy, ties by position
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(L, device=x.device).expand(B, L))
        reveal = masked & (rank < n[:, None])  # (B, L)
        chosen = reveal[masked]  # (N,): which scored rows are revealed
        u = torch.rand(int(chosen.sum()), dtype=dtype, device=x.device, generator=self.generator)
        x = x.clone()
        x[reveal] = categorical(probs[chosen], u)
        return SampleStep(x, reveal, extras={"entropy": entropy, "active": active, "revealed": reveal.sum(1)})
