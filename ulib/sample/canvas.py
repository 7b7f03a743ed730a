"""Images larger than the training window (paper section 3.3, Eq. 8, Fig. 4 and Fig. 11).

The prior was trained on h x w token grids; a canvas of a x b >= h x w tokens is sampled by running the
same network on h x w windows of the canvas. At a step, every position i that is being unmasked gets a
prediction from each window r in R_i (the chosen windows that contain i), and the predictions are combined
as a mixture with temperature (Eq. 8):

    pbar_i(k)        = (1 / |R_i|) * sum_{r in R_i} p_theta(x_0^i = k | x_t^(r))       (mixture over windows)
    p(x_0^i = k | x_t) = pbar_i(k)^(1/tau) / sum_k' pbar_i(k')^(1/tau)                 (temperature tau)

Each p_theta(. | x_t^(r)) is the softmax of the window's logits at temperature 1; tau acts on the mixture.
This is the official implementation's rule (`sample_shape` in src/models/absorbing_diffusion.py of
samb-t/unleashing-transformers): it averages the windows' softmaxes, renormalises, and takes
softmax((log pbar + log K) / tau). The "+ log K" adds the same constant to every code, so it cancels in
the softmax, leaving pbar^(1/tau) normalised, as written above. With one window (canvas = window) the
mixture is that window's softmax and pbar^(1/tau) normalised = softmax(logits / tau): the same distribution
as `AbsorbingSampler`, and we compute it the same way there so the tokens agree bit for bit under one seed.

Which positions unmask, per step:
- order='random': the absorbing reverse process over the whole canvas (as `ulib.sample.absorbing`): from time t to
  s each still-masked position unmasks with probability (t - s) / t; at s = 0 every remaining one does.
- order='raster': the official script's choice (one token per step, row-major, when steps = a*b); with
  fewer steps, each step takes the next ~n/steps still-masked positions in raster order.

Windows: offsets (i, j) every `stride` tokens (stride <= min(h, w), else rows/columns fall between
windows), plus the last row/column offsets a-h and b-w so that the bottom and right edges are always covered.
`window_subset` evaluates only a random subset per step (Monte
Carlo over R_i); windows are then added back until every position being unmasked is covered. A window that
contains no position being unmasked is never run: it contributes to no pbar_i that the step needs. The
windows of a step go through the network `window_batch` at a time, each carrying the B canvases.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ulib.sample.absorbing import time_schedule
from ulib.sample.base import Sampler, SampleStep, SamplingContext, draw
from ulib.sample.network import network_device

ORDERS = ("random", "raster")


def window_offsets(canvas: tuple[int, int], window: tuple[int, int], stride: int = 1) -> torch.Tensor:
    """Top-left offsets (Nw, 2) of the windows, every `stride` rows/columns plus the last ones.

    >>> window_offsets((5, 4), (3, 4), stride=3).tolist()
    [[0, 0], [2, 0]]
    """
    (a, b), (h, w) = _check_sizes(canvas, window)
    if not isinstance(stride, int) or not 1 <= stride <= min(h, w):
        # a stride longer than the window would leave rows/columns that no window covers
        raise ValueError(f"stride={stride!r}; allowed: an integer in 1..min(h, w)={min(h, w)} for window {(h, w)}")
    rows = list(range(0, a - h + 1, stride))
    cols = list(range(0, b - w + 1, stride))
    rows += [a - h] if rows[-1] != a - h else []  # the last row offset: the bottom edge is covered
    cols += [b - w] if cols[-1] != b - w else []
    return torch.tensor([(i, j) for i in rows for j in cols], dtype=torch.long)


def coverage(canvas: tuple[int, int], window: tuple[int, int], offsets: torch.Tensor) -> torch.Tensor:
    """|R_i| for every position: how many of the windows at `offsets` (Nw, 2) contain it, (a, b) long."""
    (a, b), (h, w) = _check_sizes(canvas, window)
    starts = torch.zeros(1, 1, a - h + 1, b - w + 1)
    starts[0, 0].index_put_((offsets[:, 0].cpu(), offsets[:, 1].cpu()), torch.ones(len(offsets)), accumulate=True)
    # each window start spreads a 1 over its h x w block: a transposed convolution with a box kernel
    return F.conv_transpose2d(starts, torch.ones(1, 1, h, w))[0, 0].round().long()


def mixture_with_temperature(log_mixture: torch.Tensor, temperature: float) -> torch.Tensor:
    """Eq. 8: probabilities (N, K) proportional to pbar^(1/tau), from log pbar (N, K) up to a constant per row."""
    return torch.softmax(log_mixture.float() / temperature, dim=-1)


@dataclass(frozen=True)
class CanvasOptions:
    """The canvas and how its windows are run (module docstring)."""

    canvas: tuple[int, int]  # (a, b) latent cells, at least the window (h, w) of the context's grid
    stride: int = 1  # the windows' spacing, 1..min(h, w)
    window_subset: int | float | None = None  # windows run per step: None all, an int n, a float fraction
    order: str = "random"  # which positions unmask: 'random' (the absorbing process) or 'raster' (one by one)
    window_batch: int = 64  # windows per forward pass

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"order={self.order!r}; allowed: {ORDERS}")
        if not isinstance(self.window_batch, int) or self.window_batch < 1:
            raise ValueError(f"window_batch={self.window_batch!r}; allowed: an integer >= 1 (windows per forward pass)")


class CanvasSampler(Sampler):
    """Reverse absorbing process on an a x b canvas with a prior trained on h x w windows (method 'canvas').

    The context's net is any callable tokens (N, h*w) -> logits (N, h*w, K) (`ulib.sample.network`); with
    `features` and `head` (as `ulib.prior.transformer.Transformer`) the head runs only at the positions being
    unmasked; its grid is the window (h, w). steps: 1..T (order 'random', default T) or 1..a*b ('raster',
    default a*b). extras of each `SampleStep`: 't', 's' (time, or steps left, before and after) and 'windows'
    ((Nw, 2) offsets of the windows run at this step).
    """

    Options = CanvasOptions

    def __init__(self, ctx: SamplingContext, steps: int | None = None, options: CanvasOptions | None = None):
        if options is None:
            raise ValueError("the canvas sampler needs options=CanvasOptions(canvas=(a, b))")
        super().__init__(ctx, steps, options)
        if ctx.grid is None:
            raise ValueError("a canvas needs the training window: a context with grid=(h, w)")
        self.canvas, self.window = _check_sizes(options.canvas, ctx.grid)
        L = self.window[0] * self.window[1]
        block = getattr(self.model, "block_size", None)
        if block is not None and L > block:
            raise ValueError(f"window {self.window} holds {L} tokens; the model's block_size is {block}")
        self.offsets = window_offsets(self.canvas, self.window, options.stride)  # (Nw, 2), every window allowed
        self.n_subset = _subset_size(options.window_subset, len(self.offsets))
        self.order, self.window_batch = options.order, options.window_batch
        n_positions = self.canvas[0] * self.canvas[1]
        steps = None if steps == 0 else steps
        if self.order == "random":
            self.times = time_schedule(self.T, self.T if steps is None else steps)
        else:
            steps = n_positions if steps is None else steps
            if not 1 <= steps <= n_positions:
                raise ValueError(f"steps={steps} with order='raster'; allowed: 1..a*b={n_positions}")
            self.times = list(range(steps, -1, -1))  # steps left: S, S-1, ..., 0

    @property
    def steps(self) -> int:
        return len(self.times) - 1

    def initial_state(self, batch: int, device) -> torch.Tensor:
        """x_T: the all-masked canvas, (B, a, b)."""
        return torch.full((batch, *self.canvas), self.mask_id, dtype=torch.long, device=device)

    def start(self, x: torch.Tensor) -> int:
        if x.dim() != 3 or tuple(x.shape[1:]) != self.canvas:
            a, b = self.canvas
            raise ValueError(f"x_start of shape {tuple(x.shape)}; expected (B, {a}, {b})")
        return self.steps

    # ---- which positions, which windows ---------------------------------------------------------
    def _to_unmask(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """(B, a, b) bool: the positions step k reveals."""
        masked = x == self.mask_id
        t, s = self.times[k], self.times[k + 1]
        if self.order == "random":
            u = torch.rand(x.shape, device=x.device, generator=self.generator)  # same draw as AbsorbingSampler
            return masked & (u < (t - s) / t)
        # raster: with t = S - k steps left, take the first ceil(n_left / t) still-masked positions in
        # row-major order (one per step when S = a*b); at t = 1 that is all of them
        flat = masked.flatten(1)
        rank = flat.long().cumsum(1) - 1  # (B, a*b), rank among the still-masked positions
        n_left = flat.sum(1, keepdim=True)  # (B, 1)
        return (flat & (rank < (n_left + t - 1) // t)).view_as(x)

    def choose_windows(self, need: torch.Tensor) -> torch.Tensor:
        """Offsets (Nw', 2) of the windows to run for the positions `need` (a, b) bool: all allowed windows
        (or a random subset, then enough added back to cover every needed position) that contain one."""
        offsets = self.offsets
        if self.n_subset is not None and self.n_subset < len(offsets):
            pick = torch.randperm(len(offsets), generator=self.generator, device=_gen_device(self.generator))
            chosen = offsets[pick[: self.n_subset].cpu()]
            uncovered = need.cpu() & (coverage(self.canvas, self.window, chosen) == 0)
            extra = []
            while uncovered.any():  # each pass covers at least the first uncovered position
                p, q = (int(v) for v in uncovered.nonzero()[0])
                h, w = self.window
                holds = ((offsets[:, 0] <= p) & (p < offsets[:, 0] + h) & (offsets[:, 1] <= q)
                         & (q < offsets[:, 1] + w)).nonzero().squeeze(1)
                r = int(torch.randint(len(holds), (1,), generator=self.generator,
                                      device=_gen_device(self.generator)))
                extra.append(offsets[holds[r]])
                i, j = (int(v) for v in extra[-1])
                uncovered[i:i + h, j:j + w] = False
            offsets = torch.cat([chosen, torch.stack(extra)]) if extra else chosen
        # keep the windows that hold at least one needed position
        h, w = self.window
        hits = need.cpu().unfold(0, h, 1).unfold(1, w, 1).any(-1).any(-1)  # (a-h+1, b-w+1)
        return offsets[hits[offsets[:, 0], offsets[:, 1]]]

    # ---- Eq. 8 ------------------------------------------------------------------------------------
    @torch.no_grad()
    def mixed_probs(self, x: torch.Tensor, where: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Eq. 8 at the N positions where `where` (B, a, b) is True, in row-major order: (N, K) probabilities,
        mixing the windows at `offsets` (Nw, 2) that contain each position (every one must be covered)."""
        h, w = self.window
        N = int(where.sum())
        ids = torch.full(where.shape, -1, dtype=torch.long, device=x.device)  # (B, a, b) slot in 0..N-1
        ids[where] = torch.arange(N, device=x.device)
        # (B, a-h+1, b-w+1, h, w) views: every window of the canvas, without copying
        x_win, id_win = (v.unfold(1, h, 1).unfold(2, w, 1) for v in (x, ids))
        prob_sum = count = single = None
        for chunk in offsets.to(x.device).split(self.window_batch):
            # (n, B, h, w) -> (n*B, h*w): window-major, so one window of B canvases is x itself, (B, L)
            xs = x_win[:, chunk[:, 0], chunk[:, 1]].transpose(0, 1).reshape(-1, h * w)
            slot = id_win[:, chunk[:, 0], chunk[:, 1]].transpose(0, 1).reshape(-1, h * w)
            need = slot >= 0
            if not need.any():
                continue
            logits = self.logits_at(xs, need).float()  # (M, K), one row per (window, position) pair
            if prob_sum is None:
                K = logits.shape[1]
                prob_sum = logits.new_zeros(N, K)
                count = logits.new_zeros(N)
                single = logits.new_zeros(N, K)
            target = slot[need]
            prob_sum.index_add_(0, target, torch.softmax(logits, dim=-1))  # sum_r p_theta(x_0^i | x_t^(r))
            count.index_add_(0, target, torch.ones_like(target, dtype=count.dtype))  # |R_i|
            single.index_copy_(0, target, logits)  # read only where |R_i| = 1
        if prob_sum is None or bool((count == 0).any()):
            raise ValueError("some positions to unmask lie in none of the given windows")
        # log pbar up to a per-row constant; where one window covers i, its logits (the same distribution,
        # and exactly AbsorbingSampler's arithmetic, so canvas = window reproduces its tokens)
        log_mix = torch.where(count[:, None] == 1, single, torch.log(prob_sum / count[:, None]))
        return mixture_with_temperature(log_mix, self.temperature)

    # ---- the loop -----------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, x: torch.Tensor, k: int) -> SampleStep:
        """Step k (0-based): reveal some masked positions, drawing each from Eq. 8's distribution."""
        if tuple(x.shape[1:]) != self.canvas:
            a, b = self.canvas
            raise ValueError(f"canvas tokens of shape {tuple(x.shape)}; expected (B, {a}, {b})")
        t, s = self.times[k], self.times[k + 1]
        unmask = self._to_unmask(x, k)
        if not unmask.any():  # nothing to reveal: no window runs, no draw
            return SampleStep(x, unmask, ran_network=False, extras={"t": t, "s": s, "windows": self.offsets[:0]})
        offsets = self.choose_windows(unmask.any(0))
        probs = self.mixed_probs(x, unmask, offsets)  # (N, K)
        draws = draw(probs, self.generator)  # (N,)
        x = x.clone()
        x[unmask] = draws
        return SampleStep(x, unmask, extras={"t": t, "s": s, "windows": offsets})


def sample_canvas(model, canvas: tuple[int, int], window: tuple[int, int], *, num_timesteps: int, mask_id: int,
                  steps: int | None = None, temperature: float = 1.0, stride: int = 1,
                  window_subset: int | float | None = None, order: str = "random", batch: int = 1,
                  window_batch: int = 64, generator: torch.Generator | None = None,
                  x_start: torch.Tensor | None = None, device=None, callback=None,
                  progress: bool = False) -> torch.Tensor:
    """Sample B canvases of a x b tokens (LongTensor (B, a, b)) with a prior trained on h x w windows.

    x_start (B, a, b): tokens to keep, mask_id where to generate (outpainting); `batch` is then ignored.
    device: defaults to x_start's, else to the model's parameters' (the CPU for a plain callable).
    """
    window = tuple(int(v) for v in window)
    ctx = SamplingContext(model, num_timesteps, mask_id, window[0] * window[1], window, temperature, generator)
    sampler = CanvasSampler(ctx, steps, CanvasOptions(tuple(canvas), stride, window_subset, order, window_batch))
    if x_start is not None:
        return sampler.sample(x_start.long(), callback=callback, progress=progress)
    if batch < 1:
        raise ValueError(f"batch={batch}; must be >= 1")
    if device is None:
        device = network_device(model)
    return sampler.sample(sampler.initial_state(batch, device), callback=callback, progress=progress)


def decode_canvas(vqgan, tokens: torch.Tensor) -> torch.Tensor:
    """Tokens (B, a, b) -> images (B, C, a*f, b*f): the generator is convolutional (its attention blocks are
    global), so it decodes canvases larger than the grid it was trained on. Wrap in torch.no_grad()."""
    K = vqgan.codebook_size
    if tokens.dim() != 3:
        raise ValueError(f"canvas tokens of shape {tuple(tokens.shape)}; expected (B, a, b)")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= K):
        raise ValueError(f"token range {int(tokens.min())}..{int(tokens.max())}; allowed 0..{K - 1} "
                         f"(replace the mask token before decoding)")
    return vqgan.generator(vqgan.quantize.to_latent(tokens.long()))


# ---- helpers ------------------------------------------------------------------------------------------
def _check_sizes(canvas, window) -> tuple[tuple[int, int], tuple[int, int]]:
    canvas, window = tuple(int(v) for v in canvas), tuple(int(v) for v in window)
    if len(canvas) != 2 or len(window) != 2 or min(window) < 1:
        raise ValueError(f"canvas={canvas}, window={window}; expected (rows, cols) pairs of positive integers")
    if canvas[0] < window[0] or canvas[1] < window[1]:
        raise ValueError(f"canvas {canvas} is smaller than the window {window}; allowed: a >= h and b >= w")
    return canvas, window


def _subset_size(window_subset, n_windows: int) -> int | None:
    """Windows drawn per step: None = all; an int n >= 1; a float fraction in (0, 1] of the allowed ones."""
    if window_subset is None:
        return None
    if isinstance(window_subset, bool):
        raise ValueError(f"window_subset={window_subset!r}; allowed: None, an int >= 1, a float in (0, 1]")
    if isinstance(window_subset, int) and window_subset >= 1:
        return window_subset
    if isinstance(window_subset, float) and 0 < window_subset <= 1:
        return max(1, int(round(window_subset * n_windows)))
    raise ValueError(f"window_subset={window_subset!r}; allowed: None, an int >= 1, a float in (0, 1]")


def _gen_device(generator: torch.Generator | None):
    return generator.device if generator is not None else "cpu"
