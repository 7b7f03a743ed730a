"""A notebook's session: one setup call, and the stages it loads if present, else trains.

Every notebook starts the same way (`setup`): the run directory and its config, the device, the seeds, RUN/results/
and one banner. Then it reuses whatever the run already holds (`vqgan`, `prior`, `models`: load if present, else
train), and trains extra priors in child runs that share the run's VQGAN and tokens (`child_run`,
`train_child_prior`). Anything two notebooks need lives in ulib, never in a notebook; an idea's full
implementation is shown once, in the notebook that teaches it.

Paths. A notebook's `run_dir` parameter is relative to the folder the kernel starts in (notebooks/ under
JupyterLab and papermill); `setup` makes it absolute and then moves the kernel to the project root, so the
paths inside a config (`data/cache`, `data/ffhq`, ...) mean what they mean on the command line.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ulib.app.results import PROJECT_ROOT
from ulib.config import Config
from ulib.device import resolve_device, seed_everything
from ulib.io.checkpoint import load_checkpoint
from ulib.io.rundir import RunDir
from ulib.models import SamplingModels, from_modules, load_prior, load_vqgan
from ulib.overrides import apply_overrides
from ulib.train.common import AlreadyTrained
from ulib.train.latents import load_latents
from ulib.train.pretrained import config_of as pretrained_config
from ulib.train.pretrained import describe_install
from ulib.train.prior import tokens_changed, train_prior
from ulib.train.vqgan import train_vqgan

START_DIR = Path.cwd()  # where the kernel started (notebooks/): relative run_dir parameters are read from here


@dataclass
class Session:
    """What every notebook cell after the setup works with."""

    run: RunDir  # the run directory (checkpoints, latents, logs)
    cfg: Config  # the run's config (stored config.json, else the profile), with the notebook's overrides
    device: torch.device  # where models and samples live
    seed: int  # seed of the notebook's own random draws (sampling, figures); training uses cfg.seed
    results: Path  # RUN/results: the notebook's figures (PNG) and tables (CSV)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A fresh torch.Generator on the session's device, seeded with seed + offset."""
        return torch.Generator(device=self.device).manual_seed(self.seed + offset)


def setup(profile: str, run_dir: str, device: str = "auto", seed: int = 0, overrides=(), pretrained: str = "",
          banner: bool = True) -> Session:
    """Resolve the run directory and config, seed everything, create RUN/results and print `setup_banner`.

    profile: a name of `ulib.profiles` (must match the run's stored config, if it has one);
    overrides: `section.key=value` strings, as `--set` on the command line;
    pretrained: the name of a model that ships with the kit (`ulib.io.pretrained`, e.g. 'tutorial'), installed
    into the run directory (verified by SHA-256) before anything else, so the notebook loads it instead of
    training; the profile is then the model's own. '' (the default): train what the run lacks.
    """
    path = (START_DIR / Path(run_dir).expanduser()).resolve()  # relative to the notebook's folder
    docs = (PROJECT_ROOT / "docs").resolve()
    if path == docs or docs in path.parents:
        raise ValueError(f"run_dir={run_dir!r} resolves to {path}, inside the project's docs/ (its executed copies "
                         f"and the site); runs never go there: pass a run directory of your own, e.g. "
                         f"run_dir='{Path(os.path.relpath(PROJECT_ROOT / 'runs' / 'demo', START_DIR)).as_posix()}'")
    if (PROJECT_ROOT / "pyproject.toml").exists():
        os.chdir(PROJECT_ROOT)
    run = RunDir(path)
    if pretrained:
        model_profile = pretrained_config(pretrained).profile
        if profile != model_profile:
            print(f"pretrained={pretrained!r}: profile {model_profile!r} (the model's own), not {profile!r}")
        profile = model_profile
        print(describe_install(pretrained, run))
    cfg = run.resolve_config(profile, [*overrides, f"device={device}"])
    dev = resolve_device(cfg.device)
    seed_everything(seed)
    results = path / "results"
    results.mkdir(parents=True, exist_ok=True)
    s = Session(run, cfg, dev, seed, results)
    if banner:
        print(setup_banner(s))
    return s


def setup_banner(s: Session) -> str:
    """The lines every notebook prints after its setup: the profile, device and token grid, the run directory
    and how the notebooks chain (each reuses what the run holds and trains only what is missing), and the data's
    credit where it is OpenMoji."""
    cfg, h = s.cfg, s.cfg.latent_size
    lines = [f"profile {cfg.profile} | device {s.device} | {cfg.data.dataset} {cfg.data.img_size}px -> "
             f"{h}x{h} = {h * h} tokens, K = {cfg.vqgan.codebook_size} codes, T = {cfg.prior.total_steps}",
             f"run directory {s.run.path}: load if present, else train (what the run holds is reused, only what "
             f"is missing is trained, so the notebooks chain in order; `python -m ulib reproduce` runs them all)"]
    if cfg.data.dataset == "openmoji":
        lines.append("images derived from OpenMoji (openmoji.org, CC BY-SA 4.0)")
    return "\n".join(lines)


# ---- stages: load if present, else train -------------------------------------------------------------
def train_or_reuse(what: str, train, quiet: bool = False) -> None:
    t0 = time.perf_counter()
    try:
        train()
    except AlreadyTrained:
        if not quiet:
            print(f"{what}: found a finished checkpoint, reusing it")
        return
    print(f"{what}: trained ({time.perf_counter() - t0:.0f}s)")


def ensure_vqgan(s: Session, quiet: bool = True, show_progress: bool = False) -> None:
    # resume=True: a stage interrupted mid-training continues from its last checkpoint (load if present, else train)
    train_or_reuse("VQGAN", lambda: train_vqgan(s.run, s.cfg, resume=True, show_progress=show_progress), quiet)


def vqgan(s: Session, show_progress: bool = False):
    """The run's trained VQGAN (EMA weights), training it first when the run has none."""
    ensure_vqgan(s, quiet=False, show_progress=show_progress)
    return load_vqgan(s.run, s.device, cfg=s.cfg)


def latents(s: Session) -> dict:
    """The run's cached token grids {'train', 'val', ...} (N, h, w), encoded first when missing or stale
    (and the VQGAN trained first when the run has none)."""
    ensure_vqgan(s)
    return load_latents(s.cfg, s.run.vqgan_ckpt, s.run.latents, s.device)


def val_tokens(s: Session, max_items: int | None = None) -> torch.Tensor:
    """Validation token grids flattened to (N, L) long, on the session's device."""
    val = latents(s)["val"]
    return val.reshape(val.shape[0], -1)[:max_items].long().to(s.device)


def prior(s: Session, kind: str = "absorbing", show_progress: bool = False, checkpoint: str = "final"):
    """The run's trained prior of `kind` ('absorbing' -> prior.pt, 'autoregressive' -> prior_ar.pt), EMA
    weights, training it (and the VQGAN and latents before it) when missing.

    checkpoint: 'final' (the last step), 'best' (the best validation score, kept when prior_train.keep_best
    is on: the smoke, demo and study profiles), or 'auto' ('best' when the run's config keeps it, else 'final')."""
    if checkpoint not in ("final", "best", "auto"):
        raise ValueError(f"checkpoint={checkpoint!r}; allowed: 'final', 'best', 'auto'")
    cfg = kind_config(s, kind)
    latents(s)
    train_or_reuse(f"prior ({kind})", lambda: train_prior(s.run, cfg, resume=True, show_progress=show_progress))
    if checkpoint == "auto":
        checkpoint = "best" if cfg.prior_train.keep_best else "final"
    return load_prior(s.run, s.device, checkpoint=checkpoint, cfg=cfg)


def models(s: Session, kind: str = "absorbing", checkpoint: str = "final") -> SamplingModels:
    """The run's VQGAN and prior of `kind` with the session's sampling settings, for `ulib.sample_images` and
    `ulib.sample_tokens` (each trained first where the run has none; checkpoint as in `prior`)."""
    return from_modules(vqgan(s), prior(s, kind, checkpoint=checkpoint), kind_config(s, kind), f"run {s.run.path}")


def checkpoint_step(path: Path) -> int:
    """The training step a checkpoint was saved at."""
    return int(load_checkpoint(path)["step"])


def kind_config(s: Session, kind: str) -> Config:
    """The session's config with prior.kind set (both priors of a run share every other setting)."""
    return s.cfg if s.cfg.prior.kind == kind else apply_overrides(s.cfg, {"prior.kind": kind})


def child_run(s: Session, name: str) -> RunDir:
    """RUN/name: a run that shares the parent's VQGAN and token cache (hard links, else copies), for extra
    prior trainings (Fig. 5's two losses) that must not replace the parent's prior.pt."""
    latents(s)
    child = RunDir(s.run.path / name)
    child.path.mkdir(parents=True, exist_ok=True)
    for src, dst in ((s.run.vqgan_ckpt, child.vqgan_ckpt), (s.run.latents, child.latents)):
        if dst.exists() and dst.stat().st_size == src.stat().st_size and dst.stat().st_mtime >= src.stat().st_mtime:
            continue
        dst.unlink(missing_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    return child


def train_child_prior(s: Session, name: str, cfg: Config, show_progress: bool = False) -> RunDir:
    """Train an absorbing prior with `cfg` in the child run RUN/name (load if present, else train); returns
    the child run. A child trained with another config, or on the tokens of the parent's earlier VQGAN, is
    trained again from scratch; an interrupted one is resumed."""
    child = child_run(s, name)
    stored = child.stored_config()
    changed = stored is not None and child.prior_ckpt.exists() and (stored.to_dict() != cfg.to_dict()
                                                                     or tokens_changed(child, cfg) is not None)
    train_or_reuse(f"prior in {name}", lambda: train_prior(child, cfg, resume=not changed, force=changed,
                                                            show_progress=show_progress))
    return child
