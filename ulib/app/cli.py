"""Command line: `python -m ulib SUBCOMMAND --run DIR [--profile NAME] [--set key=value ...]`.

The one CLI layer: every subcommand's parser is built here (`build_parser`) and each has one body,
`run_<subcommand>(args)`, that turns the parsed flags into a call of the library (training, sampling through
`ulib.sample.api`, evaluation, the notebook runner, the benches); no other module parses arguments.
Subcommands follow the method's stages: train-vqgan -> encode -> train-prior -> sample, and `pipeline` runs
them all (the `make demo` job). A run directory keeps its config (config.json), so later stages and sampling
never need the training flags repeated.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import torch

from ulib.app import gpu_check, pipeline, reproduce
from ulib.app.commands import BATCH_SIZE, MAX_GRID, check_sample_flags, inpaint_to_png, parse_canvas, sample_to_png
from ulib.config import apply_overrides
from ulib.device import configure_matmul, resolve_device
from ulib.eval import bench, compare, evaluate, extractors, records
from ulib.eval.features import FeatureRecipe, save_feature_net, train_feature_net
from ulib.io.files import atomic_write
from ulib.io.rundir import RunDir
from ulib.io.weights import OPT_IN_FLAG
from ulib.prior.absorbing import AbsorbingDiffusion
from ulib.prior.likelihood import absorbing_elbo, ar_nll
from ulib.profiles import PROFILES
from ulib.sample.models import from_official, from_run
from ulib.train import pretrained
from ulib.train.common import AlreadyTrained
from ulib.train.latents import load_latents
from ulib.train.prior import train_prior
from ulib.train.vqgan import train_vqgan
from ulib.trained import load_run_prior

EPILOG = """examples:
  python -m ulib pipeline --profile demo --run runs/demo
  python -m ulib train-vqgan --profile smoke --run runs/smoke --set vqgan_train.steps=50
  python -m ulib train-prior --run runs/demo --resume
  python -m ulib sample --run runs/demo --n 16 --steps 32 --temperature 0.8 --seed 1 --png out.png
  python -m ulib sample --run runs/demo --canvas 16x24 --n 4          # larger than the training grid
  python -m ulib inpaint --run runs/demo --image face.png --mask mask.png --png edited.png
  python -m ulib sample --official-vqgan logs/.../vqgan_ema_2200000.th \
                        --official-sampler logs/.../absorbing_ema_2000000.th --n 4
config keys for --set: data.*, vqgan.*, vqgan_train.*, prior.*, prior_train.*, sample.*, seed, device
(see ulib/config.py; an unknown key or a wrongly typed value is an error)."""


def _common(p: argparse.ArgumentParser, data: bool = False, run_required: bool = True) -> None:
    p.add_argument("--run", "--run-dir", dest="run", required=run_required, metavar="DIR",
                   help="run directory holding this run's config, checkpoints, latents, logs and pictures "
                        "(--run-dir is the same; use it under torchrun, whose own options make --run ambiguous)")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="named profile for a new run (default: the run's stored config, else 'demo')")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set prior.n_layers=4 (repeatable)")
    if data:
        p.add_argument("--data", metavar="PATH", default=None,
                       help="train on this folder of images (or LSUN LMDB folder) instead of the profile's dataset, "
                            "with a plain seeded train/validation split (--set data.split_by=group with "
                            "data.group_pattern=REGEX keeps groups of files on one side; data.test_fraction adds a "
                            "test split)")


def _training(p: argparse.ArgumentParser) -> None:
    _common(p, data=True)
    p.add_argument("--resume", action="store_true", help="continue the run's unfinished checkpoint exactly")
    p.add_argument("--force", action="store_true", help="start again from scratch, replacing the checkpoint")
    p.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="stop after this step (checkpointed; continue later with --resume)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=None,
                   help="reverse steps, 1..T (evenly spaced step skipping; default: sample.steps or T)")
    p.add_argument("--temperature", type=float, default=None,
                   help="softmax temperature > 0 (default: sample.temperature; 0.9 for official files)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the sampler (default 0)")
    p.add_argument("--png", default=None, metavar="FILE",
                   help="where to write the image grid (default: RUN/samples.png or RUN/inpainted.png)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    p.add_argument("--device", default=None, help="'auto', 'cpu', 'cuda', 'mps', ... (default: the run's device)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="the prior's forward pass while sampling: bf16 autocast, fp32, or auto (default: bf16 on "
                        "GPUs with native bf16, else fp32)")
    p.add_argument("--official-vqgan", default=None, metavar="PATH",
                   help="a released VQGAN file of the official code (e.g. vqgan_ema_2200000.th), instead of --run")
    p.add_argument("--official-sampler", default=None, metavar="PATH",
                   help="a released sampler file (absorbing_ema_*.th or autoregressive_ema_*.th), instead of --run")
    p.add_argument("--official-kind", choices=("absorbing", "autoregressive"), default="absorbing",
                   help="what --official-sampler holds (default absorbing)")


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
                       description="Sample token grids with the reverse absorbing process and decode them. "
                                   "Models come from --run DIR, or from the paper's released files "
                                   "(--official-vqgan and --official-sampler).")
    _common(p, run_required=False)
    _sampling(p)
    p.add_argument("--n", type=int, default=None, help="number of images (default: sample.n)")
    p.add_argument("--method", choices=("random", "confidence", "remask"), default="random",
                   help="decoding method: the paper's random-order reverse process (default), MaskGIT-style "
                        "confidence, or the official code's re-masking ('mlm') sampler")
    p.add_argument("--canvas", default=None, metavar="HxW",
                   help="sample a latent canvas larger than the training grid, e.g. 24x32 (Eq. 8: predictions "
                        "averaged over every window)")
    p.add_argument("--stride", type=int, default=1, help="window stride for --canvas (default 1)")
    p.add_argument("--top-k", type=int, default=None, help="top-k filtering (autoregressive prior only)")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                   help=f"images per call of the sampler (default {BATCH_SIZE}); the same seed gives the same images "
                        "for the same batch size")
    p.add_argument("--npz", default=None, metavar="FILE",
                   help=f"also write all images as uint8 (n, H, W, 3) under 'images' (what `compare` reads); needed "
                        f"for --n above {MAX_GRID}, the most one PNG grid shows")

    p = sub.add_parser("inpaint", help="regenerate the masked region of an image (paper Fig. 7)",
                       description="Encode an image, mask the tokens under the white part of --mask, regenerate "
                                   "them with the absorbing prior and decode. Writes input | masked | result.")
    _common(p, run_required=False)
    _sampling(p)
    p.add_argument("--image", required=True, metavar="FILE",
                   help="the image to edit (resized/cropped to the model's size)")
    p.add_argument("--mask", required=True, metavar="FILE", help="a mask image: white (> 50%% grey) = regenerate")
    p.add_argument("--dilate", type=int, default=0, help="grow the latent mask by this many cells (default 0)")
    p.add_argument("--paste-back", action="store_true", help="keep the original pixels outside the mask")

    p = sub.add_parser("elbo", help="validation likelihood in bits per token (ELBO, or the AR model's exact NLL)",
                       description="Negative ELBO (Eq. 6) of the run's prior on the validation token grids, in bits "
                                   "per token: the full sum over t = 1..T, or a Monte-Carlo estimate with --mc N "
                                   "(with its standard error). For an autoregressive run, the exact NLL. The figure "
                                   "is also written to RUN/likelihood.json.")
    _common(p)
    p.add_argument("--mc", type=int, default=None, metavar="N",
                   help="draw N random t per grid instead of summing all T terms (T/N times cheaper)")
    p.add_argument("--max-items", type=int, default=None, help="evaluate at most this many validation grids")
    p.add_argument("--batch-size", type=int, default=64, help="grids per forward pass (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the x_t (and t) draws (default 0)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")

    p = sub.add_parser("bench", help="speed figures of the prior's samplers and training, as a table (and JSON)",
                       description="Time per image of absorbing sampling (several step counts and methods, "
                                   "against the paper's sampler written plainly), AR sampling with and without "
                                   "the KV cache, big-image sampling, training steps/s, and the machine's matmul "
                                   "rate, at a mid-size model (8 layers, width 256, 16x16 latents, codebook 1024).")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the figures as a list of records")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', ... (default auto)")
    p.add_argument("--quick", action="store_true", help="a tiny model: checks the bench runs (numbers meaningless)")
    p.add_argument("--only", nargs="+", metavar="GROUP",
                   help="run only these groups: forward (matmul rate, forward pass), absorbing (samplers vs the "
                        "paper's), ar (KV cache), bigimage (Eq. 8 canvases), training (default: all)")
    p.add_argument("--no-ar-plain", action="store_true",
                   help="skip the uncached AR sampler (minutes on a CPU at L=256)")

    p = sub.add_parser("gpu-check", help="every CUDA path once at the paper's sizes, with throughput and memory "
                                         "as JSON (make gpu-check)",
                       description="Train both stages a few steps (GAN on, stop and resume), encode, sample with "
                                   "each method in fp32 and bf16, the AR cache, a big canvas, inpainting and "
                                   "evaluation features, on synthetic 256x256 images at the paper's model sizes; "
                                   "prints images/s, tokens/s, samples/s and peak memory per phase as JSON "
                                   "(about 5 minutes on one H200). --tiny: smoke sizes, for CPUs and tests.")

    _gpu_check_arguments(p)

    p = sub.add_parser("pipeline", help="run every stage: train-vqgan, encode, train-prior, sample (make demo)",
                       description="Run the whole method; stages whose outputs exist are reused.")
    _common(p, data=True)
    p.add_argument("--resume", action="store_true", help="continue unfinished checkpoints")
    p.add_argument("--force", action="store_true", help="retrain every stage from scratch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _evaluate_arguments(sub.add_parser("evaluate", help=evaluate.HELP))
    _compare_arguments(sub.add_parser("compare", help=compare.HELP))

    p = sub.add_parser("train-features", help="train the OpenMoji feature network of --features openmoji",
                       description="Train the OpenMoji feature network (ulib.eval.features) by its fixed recipe "
                                   "and write its weights; the defaults made the file that ships in ulib/assets/.")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the weights (.pt)")
    p.add_argument("--epochs", type=int, default=None, help="passes over the emoji (default: the recipe's)")
    p.add_argument("--limit", type=int, default=0, metavar="N", help="train on the first N emoji only (tests)")
    p.add_argument("--cache-dir", default="data/cache", help="OpenMoji render cache (default data/cache)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("pretrained", help="the ready-trained models that ship with the kit: list, install, pack",
                       description="Models trained once by a recorded recipe and shipped in ulib/assets/pretrained/ "
                                   "(float16 EMA weights with their SHA-256): `list` them, `install` one into a run "
                                   "directory (then every command and notebook reuses it instead of training), or "
                                   "`pack` a finished run into one (what `make tutorial` does).")
    p.add_argument("action", choices=("list", "install", "pack"), help="what to do")
    p.add_argument("name", nargs="?", default="tutorial", help="the model's name (default tutorial)")
    p.add_argument("--run", default=None, metavar="DIR",
                   help="install: the run directory to put it in (default runs/NAME); pack: the finished run")

    p = sub.add_parser("reproduce", help="run the numbered notebooks with papermill and gather tables and figures",
                       description="Execute notebooks/NN_*.ipynb in order with papermill into RUN/notebooks/ "
                                   "(parameters injected), skip finished ones, and write RUN/results/ "
                                   "(tables as CSV + Markdown beside the paper's values, figures as PNG).")

    _reproduce_arguments(p)
    return parser


# ---- checks of flags (each names the flag, the value and what is allowed; run before any work) -------------
SEED_LIMIT = 2**63  # torch.Generator.manual_seed takes seeds below 2**64; batch seeds are drawn below 2**62


def _at_least(flag: str, value, low: int, note: str = "") -> None:
    if value is not None and value < low:
        raise ValueError(f"{flag}={value}; must be >= {low}{note}")


def _check_seed(value: int, flag: str = "--seed") -> None:
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(f"{flag}={value}; allowed: an integer in 0..2**63-1")


def _check_temperature(value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"--temperature={value}; must be > 0 and finite")


def _writable_above(target: Path, flag: str) -> None:
    """The nearest existing folder at or above `target` is a folder this process may write in."""
    q = target
    while not q.exists() and q != q.parent:
        q = q.parent
    if not q.is_dir():
        raise ValueError(f"{flag} {target}: {q} is not a folder; allowed: a path whose parents are folders")
    if not os.access(q, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {target}: cannot write in {q} (permission denied); allowed: a writable place")


def _check_output_file(path, flag: str, suffix: str | None = None) -> None:
    """An output file: not a folder, with `suffix` if given, where it can be written (missing folders are made)."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {p} is a folder; allowed: a file path (missing folders are made)")
    if suffix and p.suffix.lower() != suffix:
        raise ValueError(f"{flag} {p}; allowed: a file name ending in {suffix}")
    _writable_above(p.parent, flag)


def _check_output_folder(path, flag: str) -> None:
    if path is None:
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{flag} {p} is a file, not a folder; allowed: a folder (made if missing)")
    _writable_above(p, flag)


def _config(args):
    _check_output_folder(args.run, "--run")
    run = RunDir(args.run)
    overrides = list(args.overrides)
    if getattr(args, "data", None):
        data = Path(args.data)
        if not data.exists():
            raise FileNotFoundError(f"--data {data} does not exist; allowed: a folder of images or an LSUN LMDB folder")
        kind = "lsun" if (data / "data.mdb").exists() else "folder"
        # the built-in profiles split OpenMoji by design family into train/val/test; a folder or LMDB of the
        # user's gets a plain seeded train/val split unless --set says otherwise (e.g. data.split_by=group)
        overrides = [f"data.dataset={kind}", f"data.path={data}", "data.split_by=random", "data.test_fraction=0"
                     ] + overrides
    cfg = run.resolve_config(args.profile, overrides)
    return run, cfg


def run_train_vqgan(args) -> int:
    _at_least("--stop-at", args.stop_at, 1)
    run, cfg = _config(args)
    path = train_vqgan(run, cfg, resume=args.resume, force=args.force, stop_at=args.stop_at,
                       show_progress=not args.no_progress)
    print(f"VQGAN checkpoint: {path}")
    return 0


def run_encode(args) -> int:
    run, cfg = _config(args)
    with run.lock():  # one writer per run
        cache = load_latents(cfg, run.vqgan_ckpt, run.latents, resolve_device(cfg.device),
                             rebuild="force" if args.force else "auto")
    print(f"latents: {run.latents} (train {tuple(cache['train'].shape)}, val {tuple(cache['val'].shape)}, "
          f"dtype {cache['train'].dtype})")
    return 0


def run_train_prior(args) -> int:
    _at_least("--stop-at", args.stop_at, 1)
    run, cfg = _config(args)
    path = train_prior(run, cfg, resume=args.resume, force=args.force, stop_at=args.stop_at,
                       show_progress=not args.no_progress)
    print(f"prior checkpoint: {path}")
    return 0


def _sampling_models(args):
    """(SamplingModels, device, output folder) from --run or from the --official-* files."""
    if args.official_vqgan or args.official_sampler:
        if not (args.official_vqgan and args.official_sampler):
            raise ValueError("give both --official-vqgan and --official-sampler")
        device = resolve_device(args.device or "auto")
        configure_matmul(device)  # TF32 on CUDA
        m = from_official(args.official_vqgan, args.official_sampler, args.official_kind, device)
        return m, device, Path(args.run) if args.run else Path(".")
    if not args.run:
        raise ValueError("give --run DIR, or --official-vqgan PATH and --official-sampler PATH")
    run, cfg = _config(args)
    device = resolve_device(args.device or cfg.device)
    configure_matmul(device)  # TF32 on CUDA
    return from_run(run, cfg, device, use_ema=cfg.sample.use_ema and not args.no_ema), device, run.path


def _output_lock(args):
    """The run's lock when the picture goes into the run (the default --png), else nothing: sampling a run into a
    file elsewhere only reads it, so it may go on while the run trains."""
    if args.run and not args.png and not (args.official_vqgan or args.official_sampler):
        return RunDir(args.run).lock()
    return contextlib.nullcontext()


def run_sample(args) -> int:
    canvas = parse_canvas(args.canvas) if args.canvas else None
    npz = Path(args.npz) if args.npz else None
    check_sample_flags(args.n, args.batch_size, args.temperature, args.top_k, npz)
    _check_seed(args.seed)
    _check_output_file(args.png, "--png", ".png")
    _check_output_file(npz, "--npz", ".npz")
    with _output_lock(args):
        return _run_sample(args, canvas, npz)


def _run_sample(args, canvas, npz) -> int:
    m, device, folder = _sampling_models(args)
    n = args.n if args.n is not None else m.default_n
    if args.n is None:  # n is the run's sample.n
        check_sample_flags(n, args.batch_size, None, None, npz, n_flag="sample.n (the default of --n)")
    out = Path(args.png) if args.png else folder / "samples.png"
    _check_output_file(out, "--png", ".png")
    print(sample_to_png(m, out, n=n,
                     steps=args.steps if args.steps is not None else m.default_steps,
                     temperature=args.temperature if args.temperature is not None else m.default_temperature,
                     seed=args.seed, method=args.method, canvas=canvas, stride=args.stride,
                     top_k=args.top_k, precision=args.precision, batch_size=args.batch_size, npz=npz))
    return 0


def run_inpaint(args) -> int:
    _check_temperature(args.temperature)
    _at_least("--dilate", args.dilate, 0, " (latent cells)")
    _check_seed(args.seed)
    _check_output_file(args.png, "--png", ".png")
    for flag, path in (("--image", args.image), ("--mask", args.mask)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{flag} {path} does not exist (or is not a file); allowed: an image file")
    with _output_lock(args):
        return _run_inpaint(args)


def _run_inpaint(args) -> int:
    m, device, folder = _sampling_models(args)
    print(inpaint_to_png(m, args.image, args.mask, Path(args.png) if args.png else folder / "inpainted.png",
                      steps=args.steps if args.steps is not None else m.default_steps,
                      temperature=args.temperature if args.temperature is not None else m.default_temperature,
                      seed=args.seed, device=device, dilate=args.dilate, paste_back=args.paste_back))
    return 0


def run_elbo(args) -> int:
    _at_least("--mc", args.mc, 1, " (or left out: the full sum over t)")
    _at_least("--max-items", args.max_items, 1, " (or left out: every validation grid)")
    _at_least("--batch-size", args.batch_size, 1)
    _check_seed(args.seed)
    run, cfg = _config(args)
    with run.lock():  # writes RUN/likelihood.json
        return _run_elbo(args, run, cfg)


def _run_elbo(args, run, cfg) -> int:
    device = resolve_device(cfg.device)
    kinds = [k for k in ("absorbing", "autoregressive") if run.prior_ckpt_for(k).exists()]
    if not kinds:
        raise ValueError(f"{run.path} has no trained prior ({run.prior_ckpt.name} or {run.prior_ckpt_for('x').name}); "
                         f"run `python -m ulib train-prior --run {run.path}` first")
    # the priors first: one trained on another VQGAN's tokens stops here, before any encoding
    nets = {kind: load_run_prior(apply_overrides(cfg, {"prior.kind": kind}), run.prior_ckpt_for(kind), device,
                                 use_ema=not args.no_ema, vqgan_ckpt=run.vqgan_ckpt) for kind in kinds}
    val = load_latents(cfg, run.vqgan_ckpt, run.latents, device)["val"]
    val = val.reshape(val.shape[0], -1)[: args.max_items].to(device)
    estimates = []
    for kind, net in nets.items():
        if kind == "autoregressive":
            est, what = ar_nll(net, val, args.batch_size), "exact NLL (autoregressive)"
        else:
            diffusion = AbsorbingDiffusion(cfg.prior.total_steps, cfg.mask_id, cfg.prior.loss_type)
            g = torch.Generator(device=device).manual_seed(args.seed)
            est = absorbing_elbo(diffusion, net, val, mc=args.mc, batch_size=args.batch_size, generator=g,
                                 progress=True)
            what = "negative ELBO, " + (f"Monte-Carlo over {args.mc} t per grid" if args.mc
                                        else f"full sum over t=1..{diffusion.T}")
        estimates.append({"kind": kind, "estimate": what, "bits_per_token": est.bits_per_token, "stderr": est.stderr,
                        "n_items": est.n_items, "n_passes": est.n_passes, "ema": not args.no_ema, "seed": args.seed})
        se = f" ± {est.stderr:.4f}" if est.stderr else ""
        print(f"validation {what}: {est.bits_per_token:.4f}{se} bits/token "
              f"({est.n_items} grids, {est.n_passes} passes)")
    text = json.dumps(estimates, indent=2) + "\n"
    atomic_write(run.path / "likelihood.json", lambda f: f.write(text.encode()))
    return 0


def run_pipeline(args) -> int:
    run, cfg = _config(args)
    if cfg.sample.n > MAX_GRID:  # the pipeline writes the samples as one PNG grid
        raise ValueError(f"sample.n={cfg.sample.n}; the pipeline's grid holds at most {MAX_GRID} images "
                         f"(draw more with `python -m ulib sample --run {run.path} --n N --npz FILE`)")
    with run.lock():  # every stage writes to the run
        pipeline.run_pipeline(run, cfg, resume=args.resume, force=args.force, show_progress=not args.no_progress)
    return 0


def run_train_features(args) -> int:
    _at_least("--epochs", args.epochs, 1)
    _at_least("--limit", args.limit, 0, " (0 = every emoji)")
    _check_output_file(args.out, "--out")
    recipe = FeatureRecipe(limit=args.limit)
    if args.epochs is not None:
        recipe = dataclasses.replace(recipe, epochs=args.epochs)
    net, report = train_feature_net(recipe, args.cache_dir, show_progress=not args.no_progress)
    save_feature_net(net, report, args.out)
    print(f"wrote {args.out}: {report['n_emoji']} emoji, {recipe.epochs} epochs; exemplar accuracy on augmented "
          f"views {report['exemplar_accuracy_augmented']:.3f}, category accuracy {report['category_accuracy']:.3f}")
    return 0


# ---- evaluate (ulib/eval/evaluate.py) -------------------------------------------------------------
def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.description = evaluate.DESCRIPTION
    p.add_argument("--run", "--run-dir", dest="run", required=True, metavar="DIR", help="the run to evaluate")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set prior.kind=autoregressive (repeatable)")
    p.add_argument("--vqgan", action="store_true", help="reconstruction metrics of the VQGAN instead of samples")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help=f"samples to draw (default {evaluate.PAPER_N_SAMPLES:,}, the paper's); with --vqgan, images of "
                        "the split to reconstruct (default all)")
    p.add_argument("--steps", type=int, default=None, help="reverse steps (default: sample.steps, else T)")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default: sample.temperature; the paper's tables use 0.9)")
    p.add_argument("--features", choices=tuple(extractors.SPACES), default="inception",
                   help="standard InceptionV3 weights (default), a fixed-seed random InceptionV3 for machines "
                        "without the weights file, or 'openmoji': the kit's own OpenMoji feature network, "
                        "shipped with it (the offline metric for the built-in dataset); each labelled, never mixed")
    p.add_argument("--reference", choices=("train", "val"), default=None,
                   help="reference split (default: train for samples, as the paper; val for --vqgan)")
    p.add_argument("--max-reference", type=_max_reference, default=None, metavar="N",
                   help=f"use a fixed random subset of N reference images, or 'all' (default: the whole split, at "
                        f"most {evaluate.DEFAULT_MAX_REFERENCE:,}, the paper's; larger sets stream their FID "
                        "statistics)")
    p.add_argument("--weights-dir", default=None, metavar="DIR",
                   help="folder holding weights-inception-2015-12-05-6726825d.pth and vgg16-397923af.pth "
                        "(default: $ULIB_WEIGHTS_DIR, then the torch hub cache)")
    _allow_unverified_argument(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the samples (default 0)")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"images per sampling / feature batch (default 32; {evaluate.CUDA_BATCH_SIZE} on a GPU)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    p.add_argument("--prdc-k", type=int, default=evaluate.PRDC_K,
                   help=f"k of the PRDC nearest-neighbour balls (default {evaluate.PRDC_K}, Naeem et al.; the official "
                        f"script used {records.PAPER_PRDC_K})")
    p.add_argument("--neighbours", type=int, default=0, metavar="N",
                   help="also write RUN/nearest_neighbours.png: N samples and their nearest reference images "
                        "by LPIPS (needs vgg16-397923af.pth, checked before sampling; default 0 = off)")
    p.add_argument("--neighbours-k", type=int, default=10, metavar="K", help="neighbours per sample (default 10)")
    p.add_argument("--memorisation", action="store_true",
                   help="also measure memorisation: each sample's distance to its nearest training image against "
                        "the validation images' (near-copy share, distance ratio, Meehan et al.'s C_T) and the FID "
                        "against the validation split (FID alone does not see a model that copies its training set)")
    p.add_argument("--device", default=None, help="'auto', 'cpu', 'cuda', ... (default: the run's device)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _allow_unverified_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(OPT_IN_FLAG, dest="allow_unverified", action="store_true",
                   help="load a third-party weights file (InceptionV3, VGG16) whose SHA-256 is not the released "
                        "file's, as plain tensors (never unpickling code), with a warning and official_weights: "
                        "false in the records (default: such a file is refused)")


def _max_reference(text: str):
    try:
        return "all" if text == "all" else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}; allowed: an integer >= 1 or 'all'")


def run_evaluate(args) -> int:
    run = RunDir(args.run)
    if run.stored_config() is None:
        raise FileNotFoundError(f"{run.config_file} does not exist; train the run first "
                                f"(python -m ulib train-vqgan --run {run.path} --profile ...)")
    cfg = run.resolve_config(None, args.overrides)
    for name in ("samples", "batch_size", "max_reference", "prdc_k", "neighbours_k"):
        v = getattr(args, name)
        if v is not None and v != "all" and v < 1:
            raise ValueError(f"--{name.replace('_', '-')}={v}; must be >= 1")
    _at_least("--neighbours", args.neighbours, 0, " (0 = off)")
    if args.steps is not None and cfg.prior.kind == "absorbing" and not 1 <= args.steps <= cfg.prior.total_steps:
        raise ValueError(f"--steps={args.steps}; allowed: 1..T={cfg.prior.total_steps}")
    _check_temperature(args.temperature)
    _check_seed(args.seed)
    if not args.vqgan and args.samples is not None and args.samples <= args.prdc_k + 1:
        raise ValueError(f"--samples={args.samples}; PRDC with --prdc-k={args.prdc_k} needs at least "
                         f"{args.prdc_k + 2} samples (each one's k-th neighbour other than itself)")
    with run.lock():  # appends to RUN/evaluation.jsonl
        return _run_evaluate(args, run, cfg)


def _run_evaluate(args, run, cfg) -> int:
    device = resolve_device(args.device or cfg.device)
    configure_matmul(device)  # TF32 on CUDA
    batch_size = args.batch_size or (evaluate.CUDA_BATCH_SIZE if device.type == "cuda" else 32)
    common = dict(features=args.features, weights_dir=args.weights_dir, allow_unverified=args.allow_unverified,
                  batch_size=batch_size,
                  use_ema=cfg.sample.use_ema and not args.no_ema, max_reference=args.max_reference, device=device,
                  show_progress=not args.no_progress)
    if args.vqgan and args.memorisation:
        raise ValueError("--memorisation measures samples; with --vqgan there are none (drop one of them)")
    if args.vqgan:
        record = evaluate.evaluate_vqgan(run, cfg, n=args.samples, reference=args.reference or "val", **common)
    else:
        record = evaluate.evaluate_samples(run, cfg, n=args.samples or evaluate.PAPER_N_SAMPLES, steps=args.steps,
                                  temperature=args.temperature, reference=args.reference or "train", seed=args.seed,
                                  prdc_k=args.prdc_k, neighbours=args.neighbours, neighbours_k=args.neighbours_k,
                                  memorisation=args.memorisation, **common)
    jsonl, md = records.record_evaluation(run.path, record)
    print(records.summary(record))
    if "memorisation_c_t" in record:
        print(records.memorisation_summary(record))
    for note in record["notes"]:
        print(f"note: {note}")
    print(f"records: {jsonl}; table: {md}")
    return 0


# ---- compare (ulib/eval/compare.py) ---------------------------------------------------------------
def _compare_arguments(p: argparse.ArgumentParser) -> None:
    p.description = compare.__doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("real", metavar="REAL", help="folder of images or .npz of uint8 images: the reference set")
    p.add_argument("fake", metavar="FAKE", help="folder of images or .npz of uint8 images: the set to judge")
    p.add_argument("--features", choices=tuple(extractors.SPACES), default="openmoji",
                   help="feature space (default openmoji: the kit's OpenMoji network, for emoji; inception needs "
                        "its weights file; see `python -m ulib evaluate --help`)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write every figure as JSON here")
    p.add_argument("--bootstrap", type=int, default=10, metavar="B",
                   help="bootstrap resamples for the ± column (default 10; 0 turns it off)")
    p.add_argument("--prdc-k", type=int, default=5, help="k of PRDC's nearest-neighbour balls (default 5)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N images of each set")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the noise-floor split")
    p.add_argument("--weights-dir", default=None, metavar="DIR",
                   help="folder holding the feature network's weights file (default: the usual places)")
    _allow_unverified_argument(p)
    p.add_argument("--device", default="cpu", help="device for the feature network (default cpu)")


def run_compare(args) -> int:
    _at_least("--bootstrap", args.bootstrap, 0, " (0 = off)")
    _at_least("--prdc-k", args.prdc_k, 1)
    _at_least("--limit", args.limit, 1, " (or left out: every image)")
    _check_seed(args.seed)
    _check_output_file(args.json, "--json")
    device = resolve_device(args.device)
    real = compare.load_image_set(args.real, limit=args.limit)
    fake = compare.load_image_set(args.fake, limit=args.limit)
    for name, x in (("REAL", real), ("FAKE", fake)):
        if len(x) <= args.prdc_k + 1:  # the k-th neighbour of each image other than itself
            raise ValueError(f"{name} has {len(x)} images; PRDC with k={args.prdc_k} needs at least {args.prdc_k + 2} "
                             f"(--prdc-k)")
    space = extractors.load_inception(args.features, args.weights_dir, device, allow_unverified=args.allow_unverified)
    r = compare.compare_images(real, fake, space, draws=args.bootstrap, seed=args.seed, k=args.prdc_k)
    r.update(real=str(args.real), fake=str(args.fake), seed=args.seed)
    print(compare.format_report(r, args.real, args.fake))
    if args.json:
        text = json.dumps(r, indent=2, default=lambda v: None if isinstance(v, float) and math.isnan(v) else str(v))
        atomic_write(Path(args.json), lambda f: f.write((text + "\n").encode()))
        print(f"wrote {args.json}")
    return 0


# ---- reproduce (ulib/app/reproduce.py) ------------------------------------------------------------
def _reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help="profile the notebooks run with (smoke: CI-sized, demo: CPU, ffhq/churches/bedrooms: GPU)")
    parser.add_argument("--run", "--run-dir", dest="run", default=None, metavar="DIR",
                        help="run directory shared by all notebooks (default runs/PROFILE); executed notebooks go "
                             "to DIR/notebooks, figures and tables to DIR/results")
    parser.add_argument("--only", nargs="+", default=None, metavar="NN",
                        help="run only these notebooks, e.g. --only 04 05 (their inputs must exist or be trainable)")
    parser.add_argument("--force", action="store_true",
                        help="execute notebooks again even if they finished before (checkpoints are still reused)")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', ... (default auto)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the notebooks' sampling and figures (default 0)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override passed to every notebook, e.g. --set prior_train.steps=50 (repeatable)")
    parser.add_argument("--kernel", default=reproduce.KERNEL, help=f"Jupyter kernel name (default {reproduce.KERNEL})")
    parser.add_argument("--export", default=None, metavar="DIR",
                        help="afterwards copy the executed notebooks (paths made relative) and the results to DIR "
                             "(make docs-notebooks: docs/notebooks)")
    parser.add_argument("--pretrained", default=None, metavar="NAME",
                        help="first install the ready-trained model NAME (python -m ulib pretrained list) in the run "
                             "directory (default runs/NAME), so the notebooks reuse it; --profile defaults to its own")
    parser.add_argument("--list", action="store_true", help="list the notebooks and exit")


def run_reproduce(args: argparse.Namespace) -> int:
    if args.list:
        for nb in reproduce.list_notebooks():
            print(nb.stem)
        return 0
    if args.pretrained:
        try:
            args.profile = args.profile or pretrained.config_of(args.pretrained).profile
            args.run = args.run or str(Path("runs") / args.pretrained)
            _check_output_folder(args.run, "--run")
            print(pretrained.describe_install(args.pretrained, RunDir(args.run)))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if args.profile is None:
        print("error: --profile is required (one of " + ", ".join(sorted(PROFILES)) + ")", file=sys.stderr)
        return 2
    try:
        _check_reproduce_flags(args)
        # the notebooks' kernels are this command's children: they write the run under its lock (RunDir.lock)
        with RunDir(args.run or Path("runs") / args.profile).lock():
            reproduce.run_notebooks(args.profile, args.run, only=args.only, force=args.force, device=args.device,
                                    seed=args.seed, overrides=args.overrides, kernel=args.kernel)
        if args.export:
            reproduce.export_docs(Path(args.run or Path("runs") / args.profile), Path(args.export))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # papermill's execution error: name the notebook copy that holds the traceback
        if type(e).__name__ != "PapermillExecutionError":
            raise
        print(f"error: a notebook failed ({e.ename}: {e.evalue}); the executed copy under "
              f"{Path(args.run or Path('runs') / args.profile) / 'notebooks'} shows the failing cell",
              file=sys.stderr)
        return 1
    return 0


def run_pretrained(args) -> int:
    if args.action == "list":
        print(pretrained.listing())
    elif args.action == "install":
        run = RunDir(args.run or Path("runs") / args.name)
        _check_output_folder(str(run.path), "--run")
        print(pretrained.describe_install(args.name, run))
    else:
        if args.run is None:
            raise ValueError("pretrained pack needs --run DIR, the finished run to pack")
        folder = pretrained.pack_run(RunDir(args.run), args.name, recipe=pretrained.RECIPES.get(
            args.name, f"python -m ulib pretrained pack {args.name} --run {args.run}"))
        print(pretrained.listing(folder.parent, only=args.name))
    return 0


def _check_reproduce_flags(args) -> None:
    """Everything the notebooks would trip over, before the first one starts."""
    _check_seed(args.seed)
    _check_output_folder(args.run, "--run")
    _check_output_folder(args.export, "--export")
    resolve_device(args.device)
    # the settings every notebook will use: the run's stored config (or the profile's) with the overrides
    RunDir(args.run or Path("runs") / args.profile).resolve_config(args.profile, args.overrides)
    kernels = reproduce.installed_kernels()
    if kernels is not None and args.kernel not in kernels:
        raise ValueError(f"--kernel {args.kernel!r} is not an installed Jupyter kernel; allowed: {sorted(kernels)}")


# ---- gpu-check (ulib/app/gpu_check.py) ------------------------------------------------------------
def _gpu_check_arguments(p) -> None:
    p.add_argument("--tiny", action="store_true", help="smoke sizes (CPU, seconds): checks the script runs")
    p.add_argument("--device", default="auto", help="'auto', 'cuda', 'cpu', ... (default auto)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the record to FILE")
    p.add_argument("--workdir", default=None, metavar="DIR",
                   help="where the synthetic images and the run go (default: a temporary folder, removed)")


def run_gpu_check(args) -> int:
    device = resolve_device(args.device)
    _check_output_file(args.json, "--json")
    _check_output_folder(args.workdir, "--workdir")
    if device.type != "cuda" and not args.tiny:
        print(f"note: gpu-check at the paper's sizes on {device} takes a long time; --tiny is meant for CPUs",
              file=sys.stderr)
    with contextlib.ExitStack() as stack:
        workdir = Path(args.workdir) if args.workdir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        with contextlib.redirect_stdout(sys.stderr):  # training's messages; stdout carries the JSON only
            record = gpu_check.run_check(device, args.tiny, workdir, log=lambda m: print(m, file=sys.stderr))
    text = json.dumps(record, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0 if record["ok"] else 1


# ---- bench (ulib/eval/bench.py) -------------------------------------------------------------------
def run_bench(args) -> int:
    cfg = dataclasses.replace(bench.QUICK if args.quick else bench.BenchConfig(), ar_plain=not args.no_ar_plain,
                              only=tuple(args.only or ()))
    try:
        bench.check_groups(cfg.only)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    _check_output_file(args.json, "--json")
    print(f"ulib bench on {device}, torch {torch.__version__}, {torch.get_num_threads()} threads"
          f"{' (quick: tiny model, numbers are meaningless)' if args.quick else ''}")
    figures = bench.run(cfg, device)
    if args.json:
        text = json.dumps(figures, indent=2)
        atomic_write(Path(args.json), lambda f: f.write(text.encode()))
        print(f"records: {args.json}")
    return 0


COMMANDS = {"train-vqgan": run_train_vqgan, "encode": run_encode, "train-prior": run_train_prior,
            "sample": run_sample, "inpaint": run_inpaint, "elbo": run_elbo,
            "bench": run_bench, "evaluate": run_evaluate, "reproduce": run_reproduce, "gpu-check": run_gpu_check,
            "pipeline": run_pipeline, "compare": run_compare, "train-features": run_train_features,
            "pretrained": run_pretrained}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except AlreadyTrained as e:
        print(f"{e}; nothing to do (pass --force to train again)")
        return 0
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
