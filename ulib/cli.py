"""Command line: `python -m ulib SUBCOMMAND --run DIR [--profile NAME] [--set key=value ...]`.

Subcommands follow the method's stages: train-vqgan -> encode -> train-prior -> sample, and `pipeline`
runs them all (the `make demo` job). A run directory keeps its config (config.json), so later stages and
sampling never need the training flags repeated.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .profiles import PROFILES

EPILOG = """examples:
  python -m ulib pipeline --profile demo --run runs/demo
  python -m ulib train-vqgan --profile smoke --run runs/smoke --set vqgan_train.steps=50
  python -m ulib train-prior --run runs/demo --resume
  python -m ulib sample --run runs/demo --n 16 --steps 32 --temperature 0.8 --seed 1 --png out.png
config keys for --set: data.*, vqgan.*, vqgan_train.*, prior.*, prior_train.*, sample.*, seed, device
(see ulib/config.py; an unknown key or a wrongly typed value is an error)."""


def _common(p: argparse.ArgumentParser, data: bool = False) -> None:
    p.add_argument("--run", "--run-dir", dest="run", required=True, metavar="DIR",
                   help="run directory holding this run's config, checkpoints, latents, logs and pictures (--run-dir is the same; use it under torchrun, whose own options make --run ambiguous)")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="named profile for a new run (default: the run's stored config, else 'demo')")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set prior.n_layers=4 (repeatable)")
    if data:
        p.add_argument("--data", metavar="PATH", default=None,
                       help="train on this folder of images (or LSUN LMDB folder) instead of the profile's dataset")


def _training(p: argparse.ArgumentParser) -> None:
    _common(p, data=True)
    p.add_argument("--resume", action="store_true", help="continue the run's unfinished checkpoint exactly")
    p.add_argument("--force", action="store_true", help="start again from scratch, replacing the checkpoint")
    p.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="stop after this step (checkpointed; continue later with --resume)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ulib", description="Unleashing Transformers: VQGAN + absorbing diffusion prior.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train-vqgan", help="stage 1: train the VQGAN (codebook, encoder, decoder)",
                       description="Stage 1: train the VQGAN of a run (paper section 3.1).")
    _training(p)

    p = sub.add_parser("encode", help="encode the dataset into token grids with the trained VQGAN",
                       description="Encode train/validation images into cached token grids (run/latents.pt).")
    _common(p, data=True)
    p.add_argument("--force", action="store_true", help="re-encode even if the cache is up to date")

    p = sub.add_parser("train-prior", help="stage 2: train the absorbing diffusion prior",
                       description="Stage 2: train the absorbing diffusion prior on the run's token grids.")
    _training(p)

    p = sub.add_parser("sample", help="draw images from the trained prior and decode them",
                       description="Sample token grids with the reverse absorbing process and decode them.")
    _common(p)
    p.add_argument("--n", type=int, default=None, help="number of images (default: sample.n)")
    p.add_argument("--steps", type=int, default=None,
                   help="reverse steps, 1..T (evenly spaced step skipping; default: sample.steps or T)")
    p.add_argument("--temperature", type=float, default=None, help="softmax temperature > 0 (default: sample.temperature)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the sampler (default 0)")
    p.add_argument("--png", default=None, metavar="FILE", help="where to write the image grid (default: RUN/samples.png)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")

    p = sub.add_parser("pipeline", help="run every stage: train-vqgan, encode, train-prior, sample (make demo)",
                       description="Run the whole method; stages whose outputs exist are reused.")
    _common(p, data=True)
    p.add_argument("--resume", action="store_true", help="continue unfinished checkpoints")
    p.add_argument("--force", action="store_true", help="retrain every stage from scratch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _config(args):
    from .rundir import RunDir

    run = RunDir(args.run)
    overrides = list(args.overrides)
    if getattr(args, "data", None):
        data = Path(args.data)
        kind = "lsun" if (data / "data.mdb").exists() else "folder"
        overrides = [f"data.dataset={kind}", f"data.path={data}"] + overrides
    cfg = run.resolve_config(args.profile, overrides)
    return run, cfg


def cmd_train_vqgan(args) -> int:
    from .train_vqgan import train_vqgan

    run, cfg = _config(args)
    path = train_vqgan(run, cfg, resume=args.resume, force=args.force, stop_at=args.stop_at,
                       show_progress=not args.no_progress)
    print(f"VQGAN checkpoint: {path}")
    return 0


def cmd_encode(args) -> int:
    from .device import resolve_device
    from .latents import load_latents

    run, cfg = _config(args)
    cache = load_latents(cfg, run.vqgan_ckpt, run.latents, resolve_device(cfg.device),
                         rebuild="force" if args.force else "auto")
    print(f"latents: {run.latents} (train {tuple(cache['train'].shape)}, val {tuple(cache['val'].shape)}, "
          f"dtype {cache['train'].dtype})")
    return 0


def cmd_train_prior(args) -> int:
    from .train_prior import train_prior

    run, cfg = _config(args)
    path = train_prior(run, cfg, resume=args.resume, force=args.force, stop_at=args.stop_at,
                       show_progress=not args.no_progress)
    print(f"prior checkpoint: {path}")
    return 0


def cmd_sample(args) -> int:
    from .device import resolve_device
    from .loading import load_prior, load_vqgan
    from .logs import save_image_grid
    from .train_prior import sample_images

    run, cfg = _config(args)
    n = args.n if args.n is not None else cfg.sample.n
    if n < 1:
        raise ValueError(f"--n={n}; must be >= 1")
    steps = args.steps if args.steps is not None else (cfg.sample.steps or cfg.prior.total_steps)
    if not 1 <= steps <= cfg.prior.total_steps:
        raise ValueError(f"--steps={steps}; allowed: 1..T={cfg.prior.total_steps}")
    temperature = args.temperature if args.temperature is not None else cfg.sample.temperature
    if temperature <= 0:
        raise ValueError(f"--temperature={temperature}; must be > 0")
    device = resolve_device(cfg.device)
    use_ema = cfg.sample.use_ema and not args.no_ema
    vqgan = load_vqgan(cfg, run.vqgan_ckpt, device, use_ema=use_ema)
    net = load_prior(cfg, run.prior_ckpt, device, use_ema=use_ema)
    t0 = time.perf_counter()
    images, _ = sample_images(net, vqgan, cfg, n, device, args.seed, steps=steps, temperature=temperature)
    dt = time.perf_counter() - t0
    out = Path(args.png) if args.png else run.samples
    save_image_grid(images, out, upscale=max(1, 128 // cfg.data.img_size))
    print(f"{n} samples ({steps} steps, temperature {temperature}, seed {args.seed}) in {dt:.1f}s "
          f"({dt / n * 1000:.0f} ms/image): {out}")
    return 0


def cmd_pipeline(args) -> int:
    from .pipeline import run_pipeline

    run, cfg = _config(args)
    run_pipeline(run, cfg, resume=args.resume, force=args.force, show_progress=not args.no_progress)
    return 0


COMMANDS = {"train-vqgan": cmd_train_vqgan, "encode": cmd_encode, "train-prior": cmd_train_prior,
            "sample": cmd_sample, "pipeline": cmd_pipeline}


def main(argv: list[str] | None = None) -> int:
    from .training import AlreadyTrained

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except AlreadyTrained as e:
        print(f"{e}; nothing to do (pass --force to train again)")
        return 0
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
