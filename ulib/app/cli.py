"""Command line: `python -m ulib SUBCOMMAND --run DIR [--profile NAME] [--set key=value ...]`.

A table of subcommands (`COMMANDS`): for each, the function that adds its flags (`ulib.app.arguments`) and its
body, `run_<subcommand>(args)`: the checks of its flags (`ulib.app.flags`), then one call of the library that does
the work (training, sampling through `ulib.sample.api`, `ulib.eval.evaluate`, `ulib.eval.compare`, the notebook
runner, the benches). Subcommands follow the method's stages: train-vqgan -> encode -> train-prior -> sample, and
`pipeline` runs them all (the `make demo` job). A run directory keeps its config (config.json), so later stages
and sampling never need the training flags repeated.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ulib.app import arguments as A
from ulib.app import flags as F
from ulib.app import gpu_check, pipeline, reproduce
from ulib.app.commands import MAX_GRID, check_sample_flags, inpaint_to_png, parse_canvas, sample_to_png
from ulib.device import configure_matmul, resolve_device
from ulib.eval import bench, compare, evaluate, features
from ulib.eval.elbo import validation_likelihood
from ulib.io.rundir import RunDir
from ulib.train import pretrained
from ulib.train.common import AlreadyTrained
from ulib.train.latents import load_latents
from ulib.train.prior import train_prior
from ulib.train.vqgan import train_vqgan

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


# ---- the stages -----------------------------------------------------------------------------------
def run_train_vqgan(args) -> int:
    F.at_least("--stop-at", args.stop_at, 1)
    run, cfg = F.run_config(args)
    path = train_vqgan(run, cfg, resume=args.resume, force=args.force, stop_at=args.stop_at,
                       show_progress=not args.no_progress)
    print(f"VQGAN checkpoint: {path}")
    return 0


def run_encode(args) -> int:
    run, cfg = F.run_config(args)
    device = resolve_device(cfg.device)
    # TF32 as train-prior has when it encodes a missing cache (`ulib.train.resume.setup`): the encoder then runs
    # the same kernels on either path, and the codebook's argmin is at full fp32 precision on both
    # (`VectorQuantizer.nearest`), so `encode` and train-prior write the same tokens.
    configure_matmul(device)
    with run.lock():  # one writer per run
        cache = load_latents(cfg, run.vqgan_ckpt, run.latents, device, rebuild="force" if args.force else "auto")
    print(f"latents: {run.latents} (train {tuple(cache['train'].shape)}, val {tuple(cache['val'].shape)}, "
          f"dtype {cache['train'].dtype})")
    return 0


def run_train_prior(args) -> int:
    F.at_least("--stop-at", args.stop_at, 1)
    run, cfg = F.run_config(args)
    path = train_prior(run, cfg, resume=args.resume, force=args.force, stop_at=args.stop_at,
                       show_progress=not args.no_progress)
    print(f"prior checkpoint: {path}")
    return 0


def run_pipeline(args) -> int:
    run, cfg = F.run_config(args)
    if cfg.sample.n > MAX_GRID:  # the pipeline writes the samples as one PNG grid
        raise ValueError(f"sample.n={cfg.sample.n}; the pipeline's grid holds at most {MAX_GRID} images "
                         f"(draw more with `python -m ulib sample --run {run.path} --n N --npz FILE`)")
    with run.lock():  # every stage writes to the run
        pipeline.run_pipeline(run, cfg, resume=args.resume, force=args.force, show_progress=not args.no_progress)
    return 0


# ---- sampling and editing -------------------------------------------------------------------------
def run_sample(args) -> int:
    canvas = parse_canvas(args.canvas) if args.canvas else None
    npz = Path(args.npz) if args.npz else None
    check_sample_flags(args.n, args.batch_size, args.temperature, args.top_k, npz)
    options = F.method_options(args.method, args.options)
    F.check_seed(args.seed)
    F.check_output_file(args.png, "--png", ".png")
    F.check_output_file(npz, "--npz", ".npz")
    with F.output_lock(args):
        m, _, folder = F.sampling_models(args, options)  # --method speculative: the AR prior, its draft in options
        n = args.n if args.n is not None else m.default_n
        if args.n is None:  # n is the run's sample.n
            check_sample_flags(n, args.batch_size, None, None, npz, n_flag="sample.n (the default of --n)")
        out = Path(args.png) if args.png else folder / "samples.png"
        F.check_output_file(out, "--png", ".png")
        print(sample_to_png(m, out, n=n, steps=args.steps,
                            temperature=args.temperature if args.temperature is not None else m.default_temperature,
                            seed=args.seed, method=args.method, canvas=canvas, stride=args.stride, top_k=args.top_k,
                            precision=args.precision, batch_size=args.batch_size, npz=npz, options=options,
                            compile=args.compile))
    return 0


def run_inpaint(args) -> int:
    F.check_temperature(args.temperature)
    F.at_least("--dilate", args.dilate, 0, " (latent cells)")
    F.check_seed(args.seed)
    F.check_output_file(args.png, "--png", ".png")
    for flag, path in (("--image", args.image), ("--mask", args.mask)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{flag} {path} does not exist (or is not a file); allowed: an image file")
    with F.output_lock(args):
        m, device, folder = F.sampling_models(args)
        print(inpaint_to_png(m, args.image, args.mask, Path(args.png) if args.png else folder / "inpainted.png",
                             steps=args.steps if args.steps is not None else m.default_steps,
                             temperature=args.temperature if args.temperature is not None else m.default_temperature,
                             seed=args.seed, device=device, dilate=args.dilate, paste_back=args.paste_back,
                             precision=args.precision))
    return 0


# ---- measuring ------------------------------------------------------------------------------------
def run_elbo(args) -> int:
    F.at_least("--mc", args.mc, 1, " (or left out: the full sum over t)")
    F.at_least("--max-items", args.max_items, 1, " (or left out: every validation grid)")
    F.at_least("--batch-size", args.batch_size, 1)
    F.check_seed(args.seed)
    run, cfg = F.run_config(args)
    with run.lock():  # writes RUN/likelihood.json
        validation_likelihood(run, cfg, mc=args.mc, max_items=args.max_items, batch_size=args.batch_size,
                              seed=args.seed, use_ema=not args.no_ema, precision=args.precision)
    return 0


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
    F.at_least("--neighbours", args.neighbours, 0, " (0 = off)")
    if args.steps is not None and cfg.prior.kind == "absorbing":
        F.check_steps(args.steps, cfg.prior.total_steps)
    F.check_temperature(args.temperature)
    F.check_seed(args.seed)
    if not args.vqgan and args.samples is not None and args.samples <= args.prdc_k + 1:
        raise ValueError(f"--samples={args.samples}; PRDC with --prdc-k={args.prdc_k} needs at least "
                         f"{args.prdc_k + 2} samples (each one's k-th neighbour other than itself)")
    with run.lock():  # appends to RUN/evaluation.jsonl
        evaluate.evaluate_and_record(
            run, cfg, vqgan=args.vqgan, samples=args.samples, steps=args.steps, temperature=args.temperature,
            features=args.features, weights_dir=args.weights_dir, allow_unverified=args.allow_unverified,
            batch_size=args.batch_size, use_ema=cfg.sample.use_ema and not args.no_ema,
            max_reference=args.max_reference, device=args.device, reference=args.reference, seed=args.seed,
            prdc_k=args.prdc_k, neighbours=args.neighbours, neighbours_k=args.neighbours_k,
            memorisation=args.memorisation, show_progress=not args.no_progress)
    return 0


def run_compare(args) -> int:
    F.at_least("--bootstrap", args.bootstrap, 0, " (0 = off)")
    F.at_least("--prdc-k", args.prdc_k, 1)
    F.at_least("--limit", args.limit, 1, " (or left out: every image)")
    F.check_seed(args.seed)
    F.check_output_file(args.json, "--json")
    resolve_device(args.device)
    compare.compare_files(args.real, args.fake, features=args.features, weights_dir=args.weights_dir,
                          allow_unverified=args.allow_unverified, device=args.device, bootstrap=args.bootstrap,
                          seed=args.seed, prdc_k=args.prdc_k, limit=args.limit, json_path=args.json)
    return 0


def run_train_features(args) -> int:
    F.at_least("--epochs", args.epochs, 1)
    F.at_least("--limit", args.limit, 0, " (0 = every emoji)")
    F.check_output_file(args.out, "--out")
    features.train_and_save(args.out, epochs=args.epochs, limit=args.limit, cache_dir=args.cache_dir,
                            show_progress=not args.no_progress)
    return 0


# ---- the machine: benches and the GPU check ------------------------------------------------------
def run_bench(args) -> int:
    cfg = dataclasses.replace(bench.QUICK if args.quick else bench.BenchConfig(), ar_plain=not args.no_ar_plain,
                              only=tuple(args.only or ()), spec_run=args.spec_run)
    bench.check_groups(cfg.only)
    if args.spec_run is not None and "speculative" not in cfg.only:
        raise ValueError(f"--spec-run {args.spec_run} times the speculative group, which runs only when named: "
                         f"add --only speculative")
    device = resolve_device(args.device)
    F.check_output_file(args.json, "--json")
    bench.run_and_report(cfg, device, args.json, quick=args.quick)
    return 0


def run_gpu_check(args) -> int:
    device = resolve_device(args.device)
    F.check_output_file(args.json, "--json")
    F.check_output_folder(args.workdir, "--workdir")
    return gpu_check.check_to_json(device, args.tiny, args.json, args.workdir)


# ---- the notebooks and the ready-trained models ---------------------------------------------------
def run_reproduce(args) -> int:
    if args.list:
        for nb in reproduce.list_notebooks():
            print(nb.stem)
        return 0
    return reproduce.command_line(args.profile, args.run, only=args.only, force=args.force, device=args.device,
                                  seed=args.seed, overrides=args.overrides, kernel=args.kernel, export=args.export,
                                  pretrained_model=args.pretrained)


def run_pretrained(args) -> int:
    if args.action == "install":
        F.check_output_folder(args.run or str(Path("runs") / args.name), "--run")
    print(pretrained.command(args.action, args.name, args.run))
    return 0


# ---- the table ------------------------------------------------------------------------------------
COMMANDS = {  # name: (adds its flags, runs it), in the order --help lists them
    "train-vqgan": (A.add_train_vqgan, run_train_vqgan), "encode": (A.add_encode, run_encode),
    "train-prior": (A.add_train_prior, run_train_prior), "sample": (A.add_sample, run_sample),
    "inpaint": (A.add_inpaint, run_inpaint), "elbo": (A.add_elbo, run_elbo), "bench": (A.add_bench, run_bench),
    "gpu-check": (A.add_gpu_check, run_gpu_check), "pipeline": (A.add_pipeline, run_pipeline),
    "evaluate": (A.add_evaluate, run_evaluate), "compare": (A.add_compare, run_compare),
    "train-features": (A.add_train_features, run_train_features), "pretrained": (A.add_pretrained, run_pretrained),
    "reproduce": (A.add_reproduce, run_reproduce),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ulib", description="Unleashing Transformers: VQGAN + absorbing diffusion prior.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except AlreadyTrained as e:
        print(f"{e}; nothing to do (pass --force to train again)")
        return 0
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
