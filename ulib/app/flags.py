"""What the subcommands of `python -m ulib` share: argument groups (a run, training, sampling), the checks of flags
(each names the flag, the value and what is allowed, and runs before any work), and the run and models a
command's flags name."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import typing
from pathlib import Path

from ulib.io.rundir import RunDir
from ulib.io.weights import OPT_IN_FLAG
from ulib.models import load_official, load_run
from ulib.overrides import convert_value
from ulib.profiles import PROFILES
from ulib.sample import registry


def common(p: argparse.ArgumentParser, data: bool = False, run_required: bool = True) -> None:
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


def training(p: argparse.ArgumentParser) -> None:
    common(p, data=True)
    p.add_argument("--resume", action="store_true", help="continue the run's unfinished checkpoint exactly")
    p.add_argument("--force", action="store_true", help="start again from scratch, replacing the checkpoint")
    p.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="stop after this step (checkpointed; continue later with --resume)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def sampling(p: argparse.ArgumentParser) -> None:
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
                   help="the prior's forward pass while sampling: bf16 (the prior's weights cast to bf16), fp32, or "
                        "auto (default: bf16 on GPUs with native bf16, else fp32)")
    p.add_argument("--official-vqgan", default=None, metavar="PATH",
                   help="a released VQGAN file of the official code (e.g. vqgan_ema_2200000.th), instead of --run")
    p.add_argument("--official-sampler", default=None, metavar="PATH",
                   help="a released sampler file (absorbing_ema_*.th or autoregressive_ema_*.th), instead of --run")
    p.add_argument("--official-kind", choices=("absorbing", "autoregressive"), default="absorbing",
                   help="what --official-sampler holds (default absorbing)")


SEED_LIMIT = 2**63  # torch.Generator.manual_seed takes seeds below 2**64; batch seeds are drawn below 2**62


def at_least(flag: str, value, low: int, note: str = "") -> None:
    if value is not None and value < low:
        raise ValueError(f"{flag}={value}; must be >= {low}{note}")


def check_seed(value: int, flag: str = "--seed") -> None:
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(f"{flag}={value}; allowed: an integer in 0..2**63-1")


def check_temperature(value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"--temperature={value}; must be > 0 and finite")


def check_steps(value: int, num_timesteps: int) -> None:
    """--steps against the prior's T: 1..T reverse steps."""
    if not 1 <= value <= num_timesteps:
        raise ValueError(f"--steps={value}; allowed: 1..T={num_timesteps}")


def method_options(method: str, pairs: list[str]) -> dict:
    """--option KEY=VALUE (repeatable; the last of a key wins) as the method's settings by name: each value
    converted to the type of its field in the method's Options dataclass (int, float, str, bool, X | None), then
    checked by the Options themselves. An unknown key, a badly typed or a bad value is an error naming --option,
    the key, the method and what it allows."""
    entry = registry.get(method)
    hints = typing.get_type_hints(entry.sampler.Options)
    fields = {f.name: f for f in dataclasses.fields(entry.sampler.Options)}
    allowed = ", ".join(f"{k} ({getattr(hints[k], '__name__', None) or hints[k]}, default {f.default!r})"
                        for k, f in fields.items() if k not in entry.from_caller) or "none"
    out = {}
    for pair in pairs:
        key, sep, text = (p.strip() for p in pair.partition("="))
        if not sep or not key:
            raise ValueError(f"--option {pair!r}; expected KEY=VALUE, a setting of --method {method}: {allowed}")
        if key in entry.from_caller:
            raise ValueError(f"--option {key}={text}: --method {method} takes {key} from its inputs, not from "
                             f"--option ({'--top-k' if key == 'top_k' else 'the run'}); allowed: {allowed}")
        if key not in fields:
            raise ValueError(f"--option {key}={text}: --method {method} has no setting {key!r}; allowed: {allowed}")
        try:
            out[key] = convert_value(text, hints[key], f"--option {key}")
        except ValueError as e:
            raise ValueError(f"{e}, for --method {method}; allowed: {allowed}") from None
    try:
        entry.sampler.Options(**out)
    except (ValueError, TypeError) as e:
        raise ValueError(f"--option {e} (a setting of --method {method})") from None
    return out


def writable_above(target: Path, flag: str) -> None:
    """The nearest existing folder at or above `target` is a folder this process may write in."""
    q = target
    while not q.exists() and q != q.parent:
        q = q.parent
    if not q.is_dir():
        raise ValueError(f"{flag} {target}: {q} is not a folder; allowed: a path whose parents are folders")
    if not os.access(q, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {target}: cannot write in {q} (permission denied); allowed: a writable place")


def check_output_file(path, flag: str, suffix: str | None = None) -> None:
    """An output file: not a folder, with `suffix` if given, where it can be written (missing folders are made)."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {p} is a folder; allowed: a file path (missing folders are made)")
    if suffix and p.suffix.lower() != suffix:
        raise ValueError(f"{flag} {p}; allowed: a file name ending in {suffix}")
    writable_above(p.parent, flag)


def check_output_folder(path, flag: str) -> None:
    if path is None:
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{flag} {p} is a file, not a folder; allowed: a folder (made if missing)")
    writable_above(p, flag)


def run_config(args):
    check_output_folder(args.run, "--run")
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


def sampling_models(args, options: dict | None = None):
    """(SamplingModels, device, output folder) from --run or from the --official-* files. For a --method of the
    AR prior (speculative) the run's AR prior, and its absorbing prior put into `options` as the draft."""
    kind = _prior_kind_of(args)
    if args.official_vqgan or args.official_sampler:
        if not (args.official_vqgan and args.official_sampler):
            raise ValueError("give both --official-vqgan and --official-sampler")
        m = load_official(args.official_vqgan, args.official_sampler, args.official_kind, args.device or "auto")
        return m, next(m.prior.parameters()).device, Path(args.run) if args.run else Path(".")
    if not args.run:
        raise ValueError("give --run DIR, or --official-vqgan PATH and --official-sampler PATH")
    check_output_folder(args.run, "--run")
    # the run's stored config with --set on top; --device and --no-ema left out: the run's own settings
    m = load_run(args.run, args.device, kind=kind, use_ema=False if args.no_ema else None, overrides=args.overrides,
                 profile=args.profile)
    if kind is not None:  # the run's absorbing prior drafts for its AR prior (ulib/sample/speculative.py)
        options["draft"] = _draft_prior(args, m)
    return m, next(m.prior.parameters()).device, Path(args.run)


def _prior_kind_of(args) -> str | None:
    """'autoregressive' for a --method of the AR prior (speculative), which needs a --run holding both priors;
    else None (the run's configured prior)."""
    method = getattr(args, "method", "random")
    if method == "random" or registry.get(method).prior != "autoregressive":
        return None
    if args.official_vqgan or args.official_sampler:
        raise ValueError(f"--method {method} needs a run holding both priors (prior_ar.pt, the target, and "
                         f"prior.pt, the draft): give --run DIR, not --official-* files")
    for kind in ("autoregressive", "absorbing") if args.run and Path(args.run).is_dir() else ():
        ckpt = RunDir(args.run).prior_ckpt_for(kind)
        if not ckpt.is_file():
            raise FileNotFoundError(f"--method {method} samples the run's AR prior with its absorbing prior "
                                    f"drafting; {ckpt} is missing (train it: python -m ulib train-prior --run "
                                    f"{args.run}{' --set prior.kind=autoregressive' if kind != 'absorbing' else ''})")
    return "autoregressive"


def _draft_prior(args, target):
    """The draft network of --method speculative: --run's absorbing prior (prior.pt), on the target's device, with
    the same --set/--no-ema/--profile; it must speak the target's codes (the same VQGAN, the run's)."""
    draft = load_run(args.run, next(target.prior.parameters()).device, kind="absorbing",
                     use_ema=False if args.no_ema else None, overrides=args.overrides, profile=args.profile)
    if draft.mask_id != target.vqgan.quantize.codebook_size or draft.latent_shape != target.latent_shape:
        raise ValueError(f"--method {args.method}: the run's absorbing prior ({draft.mask_id} codes, grid "
                         f"{draft.latent_shape}) does not match its AR prior ({target.vqgan.quantize.codebook_size} "
                         f"codes, grid {target.latent_shape})")
    return draft.prior


def output_lock(args):
    """The run's lock when the picture goes into the run (the default --png), else nothing: sampling a run into a
    file elsewhere only reads it, so it may go on while the run trains."""
    if args.run and not args.png and not (args.official_vqgan or args.official_sampler):
        return RunDir(args.run).lock()
    return contextlib.nullcontext()


def allow_unverified(p: argparse.ArgumentParser) -> None:
    p.add_argument(OPT_IN_FLAG, dest="allow_unverified", action="store_true",
                   help="load a third-party weights file (InceptionV3, VGG16) whose SHA-256 is not the released "
                        "file's, as plain tensors (never unpickling code), with a warning and official_weights: "
                        "false in the records (default: such a file is refused)")


def max_reference(text: str):
    try:
        return "all" if text == "all" else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}; allowed: an integer >= 1 or 'all'")
