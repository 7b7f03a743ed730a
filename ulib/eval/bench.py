"""`python -m ulib bench`: speed figures of the prior, as a table and (with --json) a list of records.

Every record: name, value, unit, configuration, device, torch version. Measured at the issue's mid-size
model (8 layers, width 256, 8 heads, 16x16 latents, codebook 1024, batch 4) unless `--quick`, which uses a
tiny model so the whole run takes seconds (for tests; its numbers mean nothing).

What is measured:
- the machine's float32 matmul rate (GFLOP/s) and the transformer forward's rate as a fraction of it;
- absorbing sampling, time per image, at several step counts and methods, against a straightforward
  implementation of the paper's sampler (`naive_sample`: full forward and a draw at every position every
  step, like the official code); the sampler's own overhead beside its forward passes;
- AR sampling with and without the key/value cache, and the cached steps through the modules against
  `ulib.sample.cpu_step`'s lean step (weights split across the cores);
- big-image sampling (Eq. 8) for several canvases and strides, with the number of windows;
- training steps per second;
- opt-in (`--only speculative`, never in the default run): speculative sampling of the AR model with the absorbing
  prior drafting (`ulib.sample.speculative`) against the cached AR sampler, per block size and draft steps, on a
  trained run's two priors (`--spec-run RUN`: its prior_ar.pt and prior.pt), else on random models of the bench's
  size (whose acceptance means nothing: two untrained priors both predict about 1/K).
- opt-in (`--only paths`): the sampler's GPU-minded paths against the default ones, interleaved repeats
  (`ulib.eval.bench_paths`): q/k/v as one product or three, the random-order sampler's fixed-shape pass, bf16.
`--only GROUP ...` runs some of these: forward, absorbing, ar, bigimage, training, speculative, paths.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from ulib.eval import timing
from ulib.eval.bench_paths import bench_paths
from ulib.eval.timing import CountingForward  # noqa: F401 (the bench's name for it, kept)
from ulib.io.files import atomic_write
from ulib.models import load_run
from ulib.prior.absorbing import AbsorbingDiffusion
from ulib.prior.transformer import Transformer
from ulib.sample import registry
from ulib.sample.absorbing import time_schedule
from ulib.sample.api import sample_tokens
from ulib.sample.autoregressive import sample_ar
from ulib.sample.canvas import sample_canvas, window_offsets
from ulib.sample.speculative import speculative_sample
from ulib.sample.split_linear import split_available


@dataclass
class BenchConfig:
    n_layers: int = 8
    n_emb: int = 256
    n_head: int = 8
    side: int = 16  # latent grid side: L = side**2
    codebook_size: int = 1024
    batch: int = 4
    steps: tuple[int, ...] = (256, 64, 16)
    canvases: tuple[int, ...] = (16, 24, 32)
    strides: tuple[int, ...] = (1, 4)
    ar_plain: bool = True  # the uncached AR path is slow at L = 256 (minutes); --no-ar-plain skips it
    only: tuple[str, ...] = ()  # groups to run (GROUPS, OPT_IN); empty: all of GROUPS
    spec_run: str | None = None  # speculative group: a run with prior_ar.pt and prior.pt; None: random models
    spec_blocks: tuple[int, ...] = (2, 4, 8, 16)  # tokens drafted per AR pass
    spec_draft_steps: tuple[int, ...] = (1, 2)  # draft calls per block
    spec_images: int = 16  # images per timed run (one batch)
    spec_repeats: int = 3  # timed runs of every setting, interleaved; the median is reported
    spec_temperature: float = 1.0  # the AR model's (and the draft's) temperature


GROUPS = ("forward", "absorbing", "ar", "bigimage", "training")
OPT_IN = ("speculative", "paths")  # run only when named in --only


QUICK = BenchConfig(n_layers=2, n_emb=32, n_head=4, side=4, codebook_size=16, batch=2, steps=(16, 4),
                    canvases=(4, 6), strides=(1, 2), spec_blocks=(2, 4), spec_draft_steps=(1, 2), spec_images=2,
                    spec_repeats=1)


@torch.no_grad()
def naive_sample(model, batch: int, length: int, num_timesteps: int, mask_id: int, steps: int,
                 temperature: float, generator: torch.Generator) -> torch.Tensor:
    """The paper's sampler written plainly (as the official code does): every step runs the full network
    and draws a token at every position, then keeps the draws where a token unmasks."""
    times = time_schedule(num_timesteps, steps)
    x = torch.full((batch, length), mask_id, dtype=torch.long, device=next(model.parameters()).device)
    for t, s in zip(times, times[1:]):
        unmask = (x == mask_id) & (torch.rand(x.shape, device=x.device, generator=generator) < (t - s) / t)
        probs = torch.softmax(model(x).float() / temperature, -1)  # (B, L, K)
        draws = torch.multinomial(probs.view(-1, probs.shape[-1]), 1, generator=generator).view(x.shape)
        x = torch.where(unmask, draws, x)
    return x


def check_groups(only) -> None:
    """ValueError naming any of `only` that is not a bench group."""
    bad = [g for g in only if g not in GROUPS + OPT_IN]
    if bad:
        raise ValueError(f"--only {' '.join(bad)}: unknown group; allowed: {', '.join(GROUPS + OPT_IN)}")


def selected_groups(only) -> tuple[str, ...]:
    """The groups a run times, in order: those named in `only`, or every group but the opt-in ones."""
    return tuple(g for g in GROUPS + OPT_IN if (g in only if only else g in GROUPS))


def run(cfg: BenchConfig, device, progress=print) -> list[dict]:
    check_groups(cfg.only)
    conf = {"n_layers": cfg.n_layers, "n_emb": cfg.n_emb, "n_head": cfg.n_head, "latent": f"{cfg.side}x{cfg.side}",
            "codebook_size": cfg.codebook_size, "batch": cfg.batch}
    records = []

    def rec(name, value, unit, **extra):
        records.append({"name": name, "value": value, "unit": unit, "configuration": {**conf, **extra},
                        "device": str(device), "torch": torch.__version__})
        progress(f"{name:<44} {value:>10.4g} {unit:<12} {extra if extra else ''}")

    sections = {"forward": _bench_forward, "absorbing": _bench_absorbing, "ar": _bench_ar,
                "bigimage": _bench_bigimage, "training": _bench_training, "speculative": _bench_speculative,
                "paths": bench_paths}
    for group in selected_groups(cfg.only):
        torch.manual_seed(0)
        sections[group](cfg, device, rec)
    return records


def _bench_forward(cfg: BenchConfig, device, rec) -> None:
    L, K, B = cfg.side**2, cfg.codebook_size, cfg.batch
    net = Transformer(K, L, cfg.n_emb, cfg.n_head, cfg.n_layers).to(device).eval()
    mm = timing.matmul_rate(device)
    rec("matmul float32", mm, "GFLOP/s", n=1024)
    x = torch.randint(0, K + 1, (B, L), device=device)
    with torch.no_grad():
        net(x)
        _, sec = timing.timed(lambda: net(x), device, 3)
    rate = timing.forward_flops(net, B, L) / sec / 1e9
    rec("transformer forward", rate, "GFLOP/s")
    rec("transformer forward / matmul rate", rate / mm, "fraction")


def other_methods() -> tuple[str, ...]:
    """The decoding methods timed beside random order: every other --method choice of the registry."""
    return tuple(m for m in registry.choices() if m != "random")


def _bench_absorbing(cfg: BenchConfig, device, rec) -> None:
    L, K, B = cfg.side**2, cfg.codebook_size, cfg.batch
    net = Transformer(K, L, cfg.n_emb, cfg.n_head, cfg.n_layers).to(device).eval()
    T, few = max(cfg.steps), min(cfg.steps)
    for steps in cfg.steps:
        g = torch.Generator(device=device)
        # best of 2 runs each (both samplers alike): one run swings by ~5-10% on a shared 2-core machine
        _, sec = timing.timed(lambda: naive_sample(net, B, L, T, K, steps, 1.0, g.manual_seed(0)), device, 2)
        rec("absorbing sampling, naive (paper as written)", sec / B, "s/image", steps=steps)

        def counted_run():
            c = CountingForward(net)  # a fresh counter per run: the fastest run's passes and network time
            sample_tokens(c, method="random", n=B, length=L, num_timesteps=T, mask_id=K, steps=steps,
                          generator=g.manual_seed(0), device=device)
            return c

        counted, sec2 = timing.timed(counted_run, device, 2)
        rec("absorbing sampling, random (ulib)", sec2 / B, "s/image", steps=steps, passes=counted.calls)
        rec("  speed-up over naive", sec / sec2, "x", steps=steps)
        rec("  sampler overhead beside forward passes", (sec2 - counted.seconds) / max(counted.seconds, 1e-9),
            "fraction", steps=steps)
    for method in other_methods():
        _, sec = timing.timed(lambda: sample_tokens(net, method=method, n=B, length=L, num_timesteps=T, mask_id=K,
                                              steps=few, generator=torch.Generator(device=device).manual_seed(0),
                                              device=device), device)
        rec(f"absorbing sampling, {method}", sec / B, "s/image", steps=few)


def _bench_ar(cfg: BenchConfig, device, rec) -> None:
    L, K, B = cfg.side**2, cfg.codebook_size, cfg.batch
    ar = Transformer(K, L, cfg.n_emb, cfg.n_head, cfg.n_layers, causal=True).to(device).eval()

    def sample(**kw):
        return sample_ar(ar, B, L, device, generator=torch.Generator(device=device).manual_seed(0), **kw)

    # best of 2 runs each: a single run of the short cached paths (~1.5 s) swings by ~10% on a busy machine
    _, modules = timing.timed(lambda: sample(fast_steps=False), device, 2)
    rec("AR sampling, KV cache, module path", modules / B, "s/image")
    _, cached = timing.timed(lambda: sample(), device, 2)
    rec("AR sampling, KV cache", cached / B, "s/image", fast_steps=split_available(device),
        threads=torch.get_num_threads())
    rec("  lean step speed-up", modules / cached, "x")
    if cfg.ar_plain:
        _, plain = timing.timed(lambda: sample(use_cache=False), device, 2)
        rec("AR sampling, recompute everything", plain / B, "s/image")
        rec("  KV cache speed-up", plain / cached, "x")


def _bench_bigimage(cfg: BenchConfig, device, rec) -> None:
    L, K = cfg.side**2, cfg.codebook_size
    net = Transformer(K, L, cfg.n_emb, cfg.n_head, cfg.n_layers).to(device).eval()
    few = min(cfg.steps)
    for side in cfg.canvases:
        for stride in cfg.strides:
            n_win = len(window_offsets((side, side), (cfg.side, cfg.side), stride))
            _, sec = timing.timed(lambda: sample_canvas(net, (side, side), (cfg.side, cfg.side), num_timesteps=few,
                                                  mask_id=K, steps=few, stride=stride, batch=1,
                                                  generator=torch.Generator(device=device).manual_seed(0),
                                                  device=device), device)
            rec("big-image sampling", sec, "s/image", canvas=f"{side}x{side}", stride=stride, windows=n_win,
                steps=few)


def speculative_models(cfg: BenchConfig, device):
    """(AR prior, draft prior, where they come from): the run's two priors (EMA weights), else random ones of the
    bench's size."""
    if cfg.spec_run is not None:
        ar = load_run(cfg.spec_run, device, kind="autoregressive").prior
        return ar, load_run(cfg.spec_run, device, kind="absorbing").prior, f"run {cfg.spec_run}"
    L, K = cfg.side**2, cfg.codebook_size
    ar = Transformer(K, L, cfg.n_emb, cfg.n_head, cfg.n_layers, causal=True).to(device).eval()
    draft = Transformer(K, L, cfg.n_emb, cfg.n_head, cfg.n_layers).to(device).eval()
    return ar, draft, "random weights (acceptance meaningless)"


def _bench_speculative(cfg: BenchConfig, device, rec) -> None:
    """Every setting and the cached AR sampler timed in turn, `spec_repeats` times (interleaved, so a busy spell
    of a shared machine hits them alike); each figure is the median over the repeats, the counts those of the
    first repeat (seed 0)."""
    ar, draft, source = speculative_models(cfg, device)
    n, L, temp = cfg.spec_images, ar.block_size, cfg.spec_temperature
    settings = [(b, s) for b in cfg.spec_blocks for s in cfg.spec_draft_steps if s <= b]
    seconds = {key: [] for key in [None, *settings]}
    stats = {}

    def plain(seed):
        return sample_ar(ar, n, L, device, temperature=temp, generator=torch.Generator(device=device).manual_seed(seed))

    def spec(b, s, seed):
        return speculative_sample(ar, draft, n, block=b, draft_steps=s, temperature=temp,
                                  generator=torch.Generator(device=device).manual_seed(seed))

    plain(0), spec(*settings[0], 0)  # warm-up: first calls pay for allocations and the lean step's weights
    for r in range(cfg.spec_repeats):
        seconds[None].append(timing.timed(lambda: plain(r), device)[1])
        for b, s in settings:
            (_, st), sec = timing.timed(lambda: spec(b, s, r), device)
            seconds[(b, s)].append(sec)
            stats.setdefault((b, s), st)
    conf = dict(models=source, images=n, length=L, temperature=temp, repeats=cfg.spec_repeats)
    base = statistics.median(seconds[None])
    rec("AR sampling, KV cache (speculative's baseline)", base / n, "s/image", **conf)
    for b, s in settings:
        st, sec = stats[(b, s)], statistics.median(seconds[(b, s)])
        rec("speculative AR sampling", sec / n, "s/image", block=b, draft_steps=s, **conf)
        rec("  tokens per AR pass (batch)", L / st.ar_passes, "tokens", block=b, draft_steps=s, ar_passes=st.ar_passes)
        rec("  tokens per AR pass (per image)", st.tokens_per_pass, "tokens", block=b, draft_steps=s)
        rec("  drafted tokens accepted", st.acceptance_rate, "fraction", block=b, draft_steps=s)
        rec("  speed-up over the cached AR sampler", base / sec, "x", block=b, draft_steps=s)


def _bench_training(cfg: BenchConfig, device, rec) -> None:
    L, K, B = cfg.side**2, cfg.codebook_size, cfg.batch
    train_net = Transformer(K, L, cfg.n_emb, cfg.n_head, cfg.n_layers).to(device)
    opt = torch.optim.AdamW(train_net.parameters(), lr=1e-4)
    diff = AbsorbingDiffusion(max(cfg.steps), K)
    x0 = torch.randint(0, K, (B, L), device=device)

    def train_step():
        loss = diff.training_losses(train_net, x0)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    train_step()
    _, sec = timing.timed(lambda: [train_step() for _ in range(3)], device)
    rec("prior training", 3 / sec, "steps/s")


def run_and_report(cfg: BenchConfig, device, json_path=None, quick: bool = False) -> list[dict]:
    """`python -m ulib bench`: a header line, `run`'s table, and with json_path its records as JSON there."""
    print(f"ulib bench on {device}, torch {torch.__version__}, {torch.get_num_threads()} threads"
          f"{' (quick: tiny model, numbers are meaningless)' if quick else ''}")
    figures = run(cfg, device)
    if json_path:
        text = json.dumps(figures, indent=2)
        atomic_write(Path(json_path), lambda f: f.write(text.encode()))
        print(f"records: {json_path}")
    return figures
