"""Halton-order decoding (`sample_tokens(..., method='halton')`): Besnier, Chen, Hurych, Valle and Cord, "Halton
Scheduler for Masked Generative Image Transformers", ICLR 2025.

The positions of the h x w token grid are revealed in a fixed quasi-random order that spreads every step's
positions evenly over the grid. There is no confidence: which positions a step reveals never depends on the
network, only their tokens do.

- The order. The radical inverse of k >= 1 in base b mirrors k's base-b digits about the point:
  phi_b(k) = sum_i d_i b^-(i+1) for k = sum_i d_i b^i (phi_2: 1/2, 1/4, 3/4, 1/8, ...; phi_3: 1/3, 2/3, 1/9, ...).
  The 2-D Halton point (phi_2(k), phi_3(k)), k = 1, 2, ..., falls in the cell (floor(h phi_2(k)), floor(w phi_3(k)))
  (row from base 2, column from base 3, as in the authors' `build_halton_mask`). A point whose cell was visited
  already is skipped (a cell counts at its first visit), and the sequence runs until every cell is visited, so
  the order lists each of the L = h w cells exactly once. It ends: for 2^a >= 2h and 3^b >= 2w the points
  k = 1..2^a 3^b put exactly one point in each box [i/2^a, (i+1)/2^a) x [j/3^b, (j+1)/3^b) (k mod 2^a fixes
  phi_2(k)'s interval, k mod 3^b fixes phi_3(k)'s, and k runs over every pair of residues once: the Chinese
  remainder theorem), and every cell holds a whole box. Without a grid (a plain sequence of L tokens) the grid is 1 x L.
- The random shift, one per image (the authors' `randomize`, a roll of the sequence): s_b ~ Uniform{0..L-1} from
  the generator, and image b visits the cells order[(i + s_b) mod L], i = 0..L-1: the same cyclic sequence entered
  at a random place. What is shifted is the index into the sequence, not the points. `Options(shift=False)` gives
  every image the unshifted order.
- Given tokens (x_start): image b visits only its m_b masked cells, in its order.
- How many per step: MaskGIT's arccos schedule, with the authors' rounding. The masked fraction after j of S steps
  is gamma(j/S), gamma(r) = arccos(r) / (pi/2) (1 at r = 0, 0 at r = 1: few at first, many at the end), so after
  step j image b has revealed R_b(j) = min(m_b, max(j, floor(m_b (1 - gamma(j/S))))) of its m_b positions
  (at least j after j steps while any remain; R_b(S) = m_b; in float64 with 1e-9 slack, so that a product that is
  an integer, such as 48 * (1 - gamma(1/2)) = 16, is not rounded down). Step j reveals its next R_b(j+1) - R_b(j).
- The tokens: each revealed position is drawn from softmax(logits / temperature) by the exact inverse-CDF draw
  (`ulib.sample.base.categorical`); revealed tokens never change.

Every step is a separate call (`HaltonSampler.step`, the protocol of `ulib.sample.base`).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from ulib.device import exact_float
from ulib.sample.base import Sampler, SampleStep, SamplingContext, categorical, step_count


def mirrored_digits(k: int, base: int) -> tuple[int, int]:
    """phi_base(k) as the exact fraction (numerator, denominator): k's digits mirrored about the point.

    >>> mirrored_digits(6, 2)  # 6 = 110 in base 2 -> 0.011 = 3/8
    (3, 8)
    """
    num, den = 0, 1
    while k > 0:
        k, digit = divmod(k, base)
        num, den = num * base + digit, den * base
    return num, den


def radical_inverse(k: int, base: int) -> float:
    """phi_base(k), the van der Corput sequence in that base.

    >>> [radical_inverse(k, 2) for k in range(1, 8)]
    [0.5, 0.25, 0.75, 0.125, 0.625, 0.375, 0.875]
    >>> [round(radical_inverse(k, 3), 4) for k in range(1, 8)]
    [0.3333, 0.6667, 0.1111, 0.4444, 0.7778, 0.2222, 0.5556]
    """
    num, den = mirrored_digits(k, base)
    return num / den


@functools.lru_cache(maxsize=32)
def halton_order(h: int, w: int) -> tuple[int, ...]:
    """The cells of an h x w grid (flat index row * w + col) in the order of the 2-D Halton sequence, bases 2 and
    3, from k = 1, each cell once, at its first visit (module docstring).

    >>> halton_order(2, 3)  # (1,1) (0,2) (1,0) (0,1) (1,2) (0,0)
    (4, 2, 3, 1, 5, 0)
    """
    if h < 1 or w < 1:
        raise ValueError(f"grid ({h}, {w}); both sides must be >= 1")
    a, b = 0, 0
    while 2**a < 2 * h:
        a += 1
    while 3**b < 2 * w:
        b += 1
    seen, order = set(), []
    for k in range(1, 2**a * 3**b + 1):  # enough points to visit every cell (module docstring)
        n2, d2 = mirrored_digits(k, 2)
        n3, d3 = mirrored_digits(k, 3)
        cell = (h * n2 // d2) * w + (w * n3 // d3)  # floor(h phi_2), floor(w phi_3), in integers
        if cell not in seen:
            seen.add(cell)
            order.append(cell)
            if len(order) == h * w:
                break
    assert len(order) == h * w, (h, w)
    return tuple(order)


def arccos_revealed(num_masked: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, S+1) long R_j: positions of each image revealed after j of S steps, R_0 = 0, R_S = m_b (module
    docstring), for the images' masked counts m (B,).

    >>> arccos_revealed(torch.tensor([64, 2]), 4).tolist()
    [[0, 10, 21, 34, 64], [0, 1, 2, 2, 2]]
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}; must be an integer >= 1")
    m = num_masked.long().cpu()  # a small table, in float64 on the CPU whatever the device (MPS has no float64)
    r = torch.arange(steps + 1, dtype=torch.float64) / steps  # j / S
    gamma = torch.arccos(r) / (math.pi / 2)  # masked fraction: 1 -> 0
    revealed = torch.floor(m.double()[:, None] * (1 - gamma) + 1e-9).long()  # (B, S+1)
    revealed = torch.minimum(torch.maximum(revealed, torch.arange(steps + 1)), m[:, None])
    return revealed.to(num_masked.device)


@dataclass(frozen=True)
class HaltonOptions:
    """The Halton order's one setting."""

    shift: bool = True  # enter the order at a random place per image (module docstring); False: the same order

    def __post_init__(self):
        if not isinstance(self.shift, bool):
            raise ValueError(f"shift={self.shift!r}; allowed: True or False")


class HaltonSampler(Sampler):
    """Reveal positions in the order of the 2-D Halton sequence over the grid, as many per step as the arccos
    schedule says, each token drawn from its softmax (method 'halton'). steps: S >= 1 (the registry: 1..T).
    extras of each `SampleStep`, the same two tensors at every step of a run: 'order' ((B, L) long: each
    position's place in its image's visiting order, 0 = first; -1 for a given token) and 'step_of' ((B, L) long:
    the step that reveals it; -1 for a given token)."""

    Options = HaltonOptions

    def __init__(self, ctx: SamplingContext, steps: int | None = None, options: HaltonOptions | None = None):
        super().__init__(ctx, steps, options)
        self.steps = step_count(steps, ctx.num_timesteps)
        self.grid = tuple(ctx.grid) if ctx.grid is not None else (1, ctx.length)
        if self.grid[0] * self.grid[1] != ctx.length:
            raise ValueError(f"grid {self.grid} holds {self.grid[0] * self.grid[1]} cells; the window has "
                             f"length={ctx.length}")
        self._order = self._step_of = None

    def visiting_order(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L) long: each masked position's place in its image's order (0 = first), -1 at given tokens; draws
        the images' shifts s_b from the generator when Options(shift=True)."""
        B, L = x.shape
        cells = torch.tensor(halton_order(*self.grid), device=x.device)  # (L,) cells in visiting order
        place = torch.empty_like(cells)
        place[cells] = torch.arange(L, device=x.device)  # place of each cell in the unshifted order
        if self.options.shift:
            s = torch.randint(L, (B,), generator=self.generator, device=x.device)
        else:
            s = torch.zeros(B, dtype=torch.long, device=x.device)
        key = (place[None, :] - s[:, None]) % L  # (B, L): cell order[(i + s_b) mod L] has key i
        masked = x == self.mask_id
        key = torch.where(masked, key, key + L)  # given tokens after every masked one
        order = torch.empty_like(key).scatter_(1, key.argsort(1), torch.arange(L, device=x.device).expand(B, L))
        return torch.where(masked, order, torch.full_like(order, -1))

    def start(self, x: torch.Tensor) -> int:
        """Draw the shifts; fix each position's place in the order and the step that reveals it."""
        if x.dim() != 2:
            raise ValueError(f"x of shape {tuple(x.shape)}; expected (B, L)")
        self._order = self.visiting_order(x)
        revealed = arccos_revealed((x == self.mask_id).sum(1), self.steps)  # (B, S+1)
        # place o is revealed at the step j with R_j <= o < R_{j+1}
        step_of = torch.searchsorted(revealed, self._order.clamp(min=0), right=True) - 1
        self._step_of = torch.where(self._order >= 0, step_of, torch.full_like(step_of, -1))
        return self.steps

    @torch.no_grad()
    def step(self, x: torch.Tensor, j: int) -> SampleStep:
        """Step j (0-based): reveal each image's places R_b(j) .. R_b(j+1) - 1 of its order."""
        extras = {"order": self._order, "step_of": self._step_of}
        reveal = (self._step_of == j) & (x == self.mask_id)  # (B, L)
        if not reveal.any():
            return SampleStep(x, reveal, ran_network=False, extras=extras)
        active = reveal.any(1)  # only images with something to reveal run
        logits = self.logits_at(x[active], reveal[active]).float() / self.temperature  # (N, K)
        u = torch.rand(logits.shape[0], dtype=exact_float(x.device), device=x.device, generator=self.generator)
        x = x.clone()
        x[reveal] = categorical(torch.softmax(logits, dim=-1), u)
        return SampleStep(x, reveal, extras=extras)
