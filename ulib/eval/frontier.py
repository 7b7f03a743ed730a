"""Quality against network calls: every sampling method of the registry on one frontier (the decoding lab).

A *setting* is a method of `ulib.sample.registry` with its steps and options. `draw` samples n token grids of a
setting from one seed and records, from the steps' `SampleStep`s, what each image cost:

- calls per image: the steps in which the network ran AND the image had a position written
  (c_b = sum_k [ran_k and any_i unmasked_k[b, i]]); the cost of sampling that image alone. A batch runs the
  network max_b c_b times (`batch_passes`), the figure a batched sampler pays, which a method whose number of
  calls varies per image (entropy-bounded steps) would inflate;
- the reveal order: for each position, the step at which it was first written ((n, L) long), the heat map
  of a method's order;
- seconds per image (sampling only; decoding is the same for every method).

`measure` draws every setting from the same seed (common random numbers), decodes, scores each set with a
`ulib.eval.quality.QualityMeter` (FID ± its bootstrap std) beside the noise floor at the same n, and scores each
set against the baseline (the paper's random order at T steps) as a paired difference with its 95 % interval.
`fewest_calls` reads off, per method, the fewest calls per image from which on its sets are not worse than the
baseline within the uncertainty: the paired difference's 95 % interval reaches 0 or below (lo <= 0), i.e. the
difference from the baseline is not resolved as a loss at this n, for that setting and every costlier one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ulib.eval import intervals, stats
from ulib.sample import registry
from ulib.sample.api import sample_tokens
from ulib.sample.trace import StepTrace
from ulib.vq.chunked import decode_chunked


@dataclass(frozen=True)
class Setting:
    """One point of the frontier: a registered method, its steps (None: the method's default) and options."""

    method: str
    steps: int | None = None
    options: tuple[tuple[str, object], ...] = ()  # (name, value) pairs of the method's Options

    def __post_init__(self):
        entry = registry.get(self.method)  # an unknown method is a ValueError naming the allowed ones
        unknown = sorted(set(dict(self.options)) - set(entry.options))
        if unknown:
            raise ValueError(f"Setting({self.method!r}): option(s) {unknown} unknown; allowed: {tuple(entry.options)}")

    @classmethod
    def of(cls, method: str, steps: int | None = None, **options) -> "Setting":
        return cls(method, steps, tuple(sorted(options.items())))

    @property
    def label(self) -> str:
        """'confidence, 16 steps, schedule=linear'."""
        parts = [self.method] + ([f"{self.steps} steps"] if self.steps is not None else [])
        return ", ".join(parts + [f"{k}={v}" for k, v in self.options])


@dataclass
class Drawn:
    """What `draw` returns: the tokens and what each image cost."""

    tokens: torch.Tensor  # (n, L) long
    calls: torch.Tensor  # (n,) long: network calls in which the image had a position written
    reveal_step: torch.Tensor  # (n, L) long: the step at which each position was first written (-1: given)
    batch_passes: int  # forward passes of the network summed over the batches
    seconds: float  # wall time of the sampling, all batches
    extras: dict = field(default_factory=dict)

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / len(self.tokens)


def draw(models, setting: Setting, n: int, *, seed: int = 0, temperature: float = 1.0, batch_size: int = 250,
         device=None) -> Drawn:
    """n token grids of `setting` from `models` (a `ulib.models.SamplingModels`), one generator seeded with
    `seed` for all batches, so two settings drawn with the same seed share their random numbers where they
    consume them alike. The reveal order counts steps from 0 within each batch."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}; must be an integer >= 1")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; must be >= 1")
    device = device if device is not None else next(models.prior.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    L = models.latent_shape[0] * models.latent_shape[1]
    tokens, calls, first, passes = [], [], [], 0
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        rec = StepTrace(torch.zeros(b, L, dtype=torch.long))
        tok = sample_tokens(models, b, method=setting.method, steps=setting.steps, temperature=temperature,
                            generator=g, device=device, callback=rec, **dict(setting.options))
        tokens.append(tok.reshape(b, -1).cpu())
        calls.append(rec.calls)
        first.append(rec.first)
        passes += rec.passes
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return Drawn(torch.cat(tokens), torch.cat(calls), torch.cat(first), passes, time.perf_counter() - t0)


def measure(models, meter, settings: list[Setting], n: int, *, baseline: Setting | None = None, seed: int = 0,
            temperature: float = 1.0, draws: int = intervals.DEFAULT_DRAWS, batch_size: int = 250,
            log=print) -> tuple[list[dict], dict[Setting, Drawn]]:
    """One row per setting (the baseline first; default: 'random' at T steps): its calls per image (mean, std,
    min, max), batch passes, seconds per image, FID ± bootstrap std with the floor at n, and the paired
    difference FID(setting) - FID(baseline) with its 95 % interval, p and direction ('lower', 'higher' or 'not
    resolved at this n'). Returns (rows, {setting: Drawn})."""
    baseline = baseline or Setting("random", models.num_timesteps)
    order = [baseline] + [st for st in settings if st != baseline]
    floor = meter.floor(n, draws=draws, seed=seed, figures=("fid",))
    rows, drawn, base_images = [], {}, None
    for st in order:
        d = draw(models, st, n, seed=seed, temperature=temperature, batch_size=batch_size)
        images = decode(models, d.tokens)
        score = meter.score(images, draws=draws, seed=seed, figures=("fid",))
        c = d.calls.double()
        row = {"method": st.method, "setting": st.label, "steps": st.steps, **dict(st.options), "n": n,
               "seed": seed, "temperature": temperature, "calls_per_image": c.mean().item(),
               "calls_std": c.std().item() if n > 1 else 0.0, "calls_min": int(c.min()), "calls_max": int(c.max()),
               "batch_passes": d.batch_passes, "seconds_per_image": d.seconds_per_image,
               "fid": score["fid"], "fid_std": score["fid_std"], "floor_fid": floor["fid"],
               "floor_fid_std": floor["fid_std"]}
        if base_images is None:
            base_images = images
        else:
            diff = meter.difference(images, base_images, draws=draws, seed=seed, paired=True, figures=("fid",))
            v = stats.verdict_of_difference(diff, "fid", better="lower", label=f"FID {st.label} - {baseline.label}")
            row.update(fid_minus_base=diff["fid"], fid_minus_base_lo=diff["fid_lo"],
                       fid_minus_base_hi=diff["fid_hi"], fid_minus_base_p=diff["fid_p"], vs_base=stats.direction(v))
        rows.append(row)
        drawn[st] = d
        if log:
            log(f"{st.label}: {row['calls_per_image']:.1f} calls/image, FID {row['fid']:.2f} ± {row['fid_std']:.2f}"
                + (f", {row['fid_minus_base']:+.2f} vs baseline ({row['vs_base']})" if "vs_base" in row else ""))
    return rows, drawn


@torch.no_grad()
def decode(models, tokens: torch.Tensor) -> torch.Tensor:
    """Token grids (n, L) of `models`' window -> images (n, 3, H, W) in [-1, 1] on the CPU, by its VQGAN."""
    device = next(models.prior.parameters()).device
    grids = tokens.view(len(tokens), *models.latent_shape).to(device)
    return decode_chunked(models.vqgan, grids).clamp(-1, 1).cpu()


def fewest_calls(rows: list[dict]) -> dict[str, dict | None]:
    """Per method, the row with the fewest calls per image from which on the method is not worse than the baseline
    within the uncertainty: that setting and every setting of the method with more calls have a paired difference
    whose 95 % interval reaches 0 (fid_minus_base_lo <= 0). Reading down from the most calls and stopping at the
    first setting resolved as worse keeps one lucky cheap setting from being read as the answer. None when the
    method's costliest setting is already worse. The baseline row (no difference) is its own method's answer."""
    best: dict[str, dict | None] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        best[method] = None
        for r in sorted((r for r in rows if r["method"] == method), key=lambda r: -r["calls_per_image"]):
            if "fid_minus_base_lo" in r and r["fid_minus_base_lo"] > 0:
                break
            best[method] = r
    return best


def best_within(rows: list[dict], max_calls: float) -> dict | None:
    """The row with the lowest FID among those costing at most `max_calls` calls per image (None: none does)."""
    cheap = [r for r in rows if r["calls_per_image"] <= max_calls]
    return min(cheap, key=lambda r: r["fid"]) if cheap else None


def plot_frontier(rows: list[dict], ax_fid, ax_time=None, *, paper: dict | None = None):
    """FID (± 1.96 bootstrap std as a band) against calls per image, one line per method, the baseline's FID as a
    dashed line with its band and the noise floor dotted; `ax_time`: seconds per image against calls."""
    base = rows[0]
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["calls_per_image"])
        x = np.array([r["calls_per_image"] for r in rs])
        y = np.array([r["fid"] for r in rs])
        e = 1.96 * np.array([r["fid_std"] for r in rs])
        (line,) = ax_fid.plot(x, y, "o-", label=method)
        ax_fid.fill_between(x, y - e, y + e, color=line.get_color(), alpha=0.15)
        if ax_time is not None:
            ax_time.plot(x, [r["seconds_per_image"] * 1000 for r in rs], "o-", color=line.get_color(), label=method)
    ax_fid.axhline(base["fid"], ls="--", c="k", lw=1, label=f"baseline ({base['setting']})")
    ax_fid.axhspan(base["fid"] - 1.96 * base["fid_std"], base["fid"] + 1.96 * base["fid_std"], color="k", alpha=0.07)
    ax_fid.axhline(base["floor_fid"], ls=":", c="gray", lw=1, label=f"noise floor (n = {base['n']} real images)")
    ax_fid.set_xscale("log")
    ax_fid.set_xlabel("network calls per image")
    ax_fid.set_ylabel("FID (lower is better)")
    ax_fid.legend(fontsize=7)
    if ax_time is not None:
        ax_time.set_xscale("log")
        ax_time.set_xlabel("network calls per image")
        ax_time.set_ylabel("ms per image (sampling)")
