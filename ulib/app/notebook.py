"""What the numbered notebooks share: one setup call, load-if-present stages, timing, and results as files.

Every notebook starts the same way (`setup`), reuses whatever its run directory already holds (`vqgan`,
`prior`: load if present, else train) and leaves its figures and tables in `RUN/results/` as PNG and CSV,
so that `python -m ulib reproduce` can gather them without reading notebook outputs: results leave a
notebook as data files, not as cell outputs someone has to parse. Anything two notebooks need lives here or
elsewhere in ulib, never in a
notebook; an idea's full implementation is shown once, in the notebook that teaches it.

Paths. A notebook's `run_dir` parameter is relative to the folder the kernel starts in (notebooks/ under
JupyterLab and papermill); `setup` makes it absolute and then moves the kernel to the project root, so the
paths inside a config (`data/cache`, `data/ffhq`, ...) mean what they mean on the command line.
"""
from __future__ import annotations

import csv
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ulib.app.reproduce import PROJECT_ROOT, read_table  # noqa: F401 (re-exported for notebooks)
from ulib.app.verdicts import write_notebook_rows
from ulib.config import Config, apply_overrides
from ulib.data.datasets import build_dataset, split_sides
from ulib.data.openmoji import load_openmoji
from ulib.device import resolve_device, seed_everything
from ulib.eval import extractors as X
from ulib.eval import features as EF
from ulib.eval.extractors import to_uint8
from ulib.eval.memorisation import memorisation_report
from ulib.eval.quality import QualityMeter, extract, with_floor
from ulib.eval.stats import DEFAULT_DRAWS
from ulib.io.checkpoint import load_checkpoint
from ulib.io.logs import (
    markdown_table,  # noqa: F401 (re-exported for notebooks)
    preview_upscale,
    save_image_grid,
)
from ulib.io.rundir import RunDir
from ulib.models import SamplingModels, from_modules, load_prior, load_vqgan
from ulib.profiles import get_profile
from ulib.sample.api import sample_tokens
from ulib.train.common import AlreadyTrained
from ulib.train.latents import load_latents
from ulib.train.pretrained import config_of as pretrained_config
from ulib.train.pretrained import describe_install
from ulib.train.prior import tokens_changed, train_prior
from ulib.train.vqgan import start_continuation, train_vqgan
from ulib.trained import prior_from_config

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
def _train_or_reuse(what: str, train, quiet: bool = False) -> None:
    t0 = time.perf_counter()
    try:
        train()
    except AlreadyTrained:
        if not quiet:
            print(f"{what}: found a finished checkpoint, reusing it")
        return
    print(f"{what}: trained ({time.perf_counter() - t0:.0f}s)")


def _ensure_vqgan(s: Session, quiet: bool = True, show_progress: bool = False) -> None:
    # resume=True: a stage interrupted mid-training continues from its last checkpoint (load if present, else train)
    _train_or_reuse("VQGAN", lambda: train_vqgan(s.run, s.cfg, resume=True, show_progress=show_progress), quiet)


def vqgan(s: Session, show_progress: bool = False):
    """The run's trained VQGAN (EMA weights), training it first when the run has none."""
    _ensure_vqgan(s, quiet=False, show_progress=show_progress)
    return load_vqgan(s.run, s.device, cfg=s.cfg)


def latents(s: Session) -> dict:
    """The run's cached token grids {'train', 'val', ...} (N, h, w), encoded first when missing or stale
    (and the VQGAN trained first when the run has none)."""
    _ensure_vqgan(s)
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
    _train_or_reuse(f"prior ({kind})", lambda: train_prior(s.run, cfg, resume=True, show_progress=show_progress))
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
    _train_or_reuse(f"prior in {name}", lambda: train_prior(child, cfg, resume=not changed, force=changed,
                                                            show_progress=show_progress))
    return child


# ---- Table 5: the VQGAN's GAN phase under four settings ------------------------------------------------
# The paper's four VQGANs differ only in the GAN term of Eq. 9: "default" is taming's recipe (the adaptive
# weight of Eq. 9c clamped only at 1e4, no augmentation), then lambda_max = 1, DiffAug, and both. The GAN
# term starts after a reconstruction-only phase (the paper's disc_start_step = 30,001), so the variants
# share that phase: each continues the run's trained VQGAN with the discriminator switched on.
TAMING_DISC_WEIGHT_MAX = 1e4  # taming-transformers' clamp of the adaptive weight (its "default")
VQGAN_VARIANTS = {  # name: (vqgan.disc_weight_max, vqgan.diff_aug), as in Table 5's rows
    "default": (TAMING_DISC_WEIGHT_MAX, False),
    "lambda_max=1": (1.0, False),
    "DiffAug": (TAMING_DISC_WEIGHT_MAX, True),
    "both": (1.0, True),
}


GAN_PHASE_STEPS = {"smoke": 4, "demo": 100, "study": 400, "tutorial": 100}  # any other profile: 20,000 (GPU)
GAN_PHASE_LR = {"demo": 1e-4, "study": 1e-4, "tutorial": 1e-4}  # any other profile: its own vqgan_train.lr


def gan_phase(cfg: Config, steps: int = 0, lr: float = 0.0) -> tuple[int, float]:
    """(steps, lr) of a GAN-phase continuation of the run's VQGAN (notebooks 02 and 13): the given values, or
    where 0 the profile's (smoke 4, demo and study 100 and 400 steps at lr 1e-4, else 20,000 at the profile's lr).
    The demo's VQGAN trains fast at lr 1e-3; a GAN phase at that rate made its L1 rise from 0.09 to 0.46-0.78
    within 250 steps, so demo and study continue ten times lower."""
    if steps < 0 or lr < 0:
        raise ValueError(f"gan_phase(steps={steps}, lr={lr}); both must be >= 0 (0: by profile)")
    return (steps or GAN_PHASE_STEPS.get(cfg.profile, 20_000),
            lr or GAN_PHASE_LR.get(cfg.profile, cfg.vqgan_train.lr))


def vqgan_variant_configs(cfg: Config, gan_steps: int, with_control: bool = True,
                          lr: float | None = None) -> dict[str, Config]:
    """{variant: config} for Table 5: each continues cfg's trained VQGAN (cfg.vqgan_train.steps) for
    gan_steps more steps with the GAN on from the first of them. with_control adds "no GAN": the same extra
    steps without the discriminator, so that "what the GAN phase changed" is measured against more training
    alone. lr: the learning rate of the continuation (both players; every variant and the control); None
    keeps cfg's."""
    if gan_steps < 1:
        raise ValueError(f"gan_steps={gan_steps}; must be >= 1")
    if lr is not None and not lr > 0:
        raise ValueError(f"lr={lr}; must be > 0")
    base = cfg.vqgan_train.steps
    common = {"vqgan_train.steps": base + gan_steps, **({"vqgan_train.lr": lr} if lr is not None else {})}
    out = {}
    for name, (weight_max, diff_aug) in VQGAN_VARIANTS.items():
        out[name] = apply_overrides(cfg, {**common, "vqgan.disc_start_step": base,
                                          "vqgan.disc_weight_max": weight_max, "vqgan.diff_aug": diff_aug})
    if with_control:
        out["no GAN"] = apply_overrides(cfg, {**common, "vqgan.disc_start_step": 1_000_000_000})
    return out


def train_child_vqgan(s: Session, name: str, cfg: Config, show_progress: bool = False) -> RunDir:
    """Continue the run's trained VQGAN in the child run RUN/name with `cfg` (load if present, else train):
    the parent's vqgan.pt is set up once for the continuation (`ulib.train.vqgan.start_continuation`: its EMA
    restarted from the raw weights, a fresh discriminator and the random streams drawn from cfg.seed, so cfg.seed
    is the continuation's seed) and resumed to cfg.vqgan_train.steps. A child trained with another config starts
    again from the parent's checkpoint; an interrupted one is resumed."""
    _ensure_vqgan(s)
    child = RunDir(s.run.path / name)
    child.path.mkdir(parents=True, exist_ok=True)
    stored = child.stored_config()
    if not child.vqgan_ckpt.exists() or (stored is not None and stored.to_dict() != cfg.to_dict()):
        start_continuation(s.run.vqgan_ckpt, child.vqgan_ckpt, cfg)
        child.vqgan_log.unlink(missing_ok=True)  # a continuation made with another config: its log goes too
    _train_or_reuse(f"VQGAN in {name}", lambda: train_vqgan(child, cfg, resume=True, show_progress=show_progress))
    return child


@torch.no_grad()
def reconstruct(vq, images: torch.Tensor, device, batch_size: int = 100) -> torch.Tensor:
    """VQGAN reconstructions (encode, quantise, decode) of uint8 images (N, 3, H, W), as uint8 on the CPU."""
    out = [vq(images[i: i + batch_size].float().div(127.5).sub(1).to(device))[0].clamp(-1, 1).float().cpu()
           for i in range(0, len(images), batch_size)]
    return to_uint8(torch.cat(out))


# ---- sample quality (ulib.eval.quality) ---------------------------------------------------------------
# Samples per setting, reference images and bootstrap draws of the quality notebooks (04, 05, 07, 12), by
# profile: smoke keeps CI in seconds; demo fits the CPU (a few minutes per notebook on 2 cores); the paper
# profiles, on a GPU, use more (the paper's own figures use 50,000 samples: `python -m ulib evaluate`).
# n_half: images in each half of the real set for notebook 12's metric checks.
# draws: bootstrap resamples behind every ± and p (features are computed once, so a draw costs about one FID;
# smoke keeps CI fast, every other profile uses ulib.eval.stats.DEFAULT_DRAWS = 200).
QUALITY_SIZES = {"smoke": dict(n_samples=40, n_reference=400, draws=20, n_half=200),
                 "demo": dict(n_samples=300, n_reference=2000, draws=DEFAULT_DRAWS, n_half=500),
                 "study": dict(n_samples=300, n_reference=2000, draws=DEFAULT_DRAWS, n_half=500)}
QUALITY_SIZES_GPU = dict(n_samples=2000, n_reference=10_000, draws=DEFAULT_DRAWS, n_half=800)
# Samples per temperature in Fig. 6 (notebook 07), more than n_samples where the CPU allows: its bias figures are
# shares, whose 95 % Wilson interval near 55 % is about ±3.4 points at n = 800 (±5.6 at 300); the demo's test
# split (1,108 images) holds a floor of that n. Demo: 6 temperatures x 800 samples at 64 steps cost about 5.5 min
# of sampling on 2 cores (94 ms per image measured on one core, about 70 ms on two: an estimate); 1,000 would
# take about 7 min of sampling and keep the notebook near 10 min.
TEMPERATURE_SAMPLES = {"smoke": 40, "demo": 800, "study": 800}


def quality_sizes(s: Session, n_samples: int = 0) -> dict:
    """{'n_samples', 'n_reference', 'draws', 'n_half', 'n_temperature'} for the session's profile; n_samples > 0
    overrides the profile's n_samples and n_temperature."""
    sizes = dict(QUALITY_SIZES.get(s.cfg.profile, QUALITY_SIZES_GPU))
    sizes["n_temperature"] = TEMPERATURE_SAMPLES.get(s.cfg.profile, sizes["n_samples"])
    if n_samples:
        sizes["n_samples"] = sizes["n_temperature"] = n_samples
    return sizes


@torch.no_grad()
def sample_set(s: Session, vq, net, n: int, *, steps: int, temperature: float, method: str = "random",
               seed_offset: int = 0, batch_size: int = 250) -> tuple[torch.Tensor, torch.Tensor, float]:
    """n samples of the prior `net` decoded by `vq`: (images (n, 3, H, W) in [-1, 1] on the CPU, tokens (n, L),
    seconds per image), drawn in batches with `ulib.sample.api.sample_tokens`, seeded by the session's seed +
    seed_offset (one generator for the whole set). An autoregressive prior samples token by token (its kind
    decides; steps and method do not apply to it), so the same seed_offset gives two priors common seeds."""
    cfg, g = s.cfg, s.generator(seed_offset)
    images, tokens = [], []
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        tok = sample_tokens(net, method=method, n=b, length=cfg.latent_size ** 2,
                            num_timesteps=cfg.prior.total_steps,
                            mask_id=cfg.mask_id, steps=steps, temperature=temperature, generator=g, device=s.device)
        images.append(vq.decode(tok).clamp(-1, 1).float().cpu())
        tokens.append(tok.cpu())
    if s.device.type == "cuda":
        torch.cuda.synchronize(s.device)
    return torch.cat(images), torch.cat(tokens), (time.perf_counter() - t0) / n


def run_quality(s: Session, vq, net, meter, n: int, draws: int) -> tuple[list[dict], dict]:
    """The run's quality in one table (notebooks 01 and 12): n held-out real images (the noise floor: the first
    n of `meter.holdout`, the test split when the run has one), their VQGAN reconstructions, and n prior samples
    at the profile's sampling settings, each scored by `meter` (a `ulib.eval.quality.QualityMeter`) with `draws`
    bootstrap draws and the floor's figures beside. Each row names its images exactly ('images', from
    `meter.holdout_name`) and the reference they are scored against ('reference', `meter.reference_name`).
    Returns (rows, {set: uint8 images}) in the rows' order: floor, reconstructions, samples."""
    real = meter.holdout[:n]  # uint8
    recon = reconstruct(vq, real, s.device)
    temp, steps = s.cfg.sample.temperature, s.cfg.sample.steps or s.cfg.prior.total_steps
    samples, _, _ = sample_set(s, vq, net, n, steps=steps, temperature=temp)
    floor = meter.floor(n, draws=draws, seed=s.seed)
    held = getattr(meter, "holdout_name", "held-out real images")
    real_set = "test images (the floor)" if has_test_split(s) else "held-out real images (the floor)"
    sets = ((real_set, f"the first {n} of {held}", real),
            ("VQGAN reconstructions", f"the VQGAN's reconstructions of those {n} images", recon),
            (f"prior samples (t = {temp}, {steps} steps)",
             f"{n} samples of the prior (seed {s.seed}), decoded by the VQGAN", to_uint8(samples)))
    reference = getattr(meter, "reference_name", f"{meter.n_reference} reference images")
    scored = [floor] + [meter.score(x, draws=draws, seed=s.seed) for _, _, x in sets[1:]]  # the floor: row 0
    rows = [with_floor({"set": name, "images": what, "reference": reference, **score}, floor)
            for (name, what, _), score in zip(sets, scored)]
    for r in rows:  # the samples' row: how much the prior loses on top of the decoder
        r["fid_over_reconstructions"] = r["fid"] / rows[1]["fid"]
    return rows, {name: x for name, _, x in sets}


SET_COLUMNS = ("set", "n", "fid", "fid_std", "floor_fid", "precision", "recall", "density", "coverage")


def score_sets(s: Session, meter, sets: dict, draws: int, table: str, picture: str, **fields) -> list[dict]:
    """Score image sets of one size n side by side (notebooks 08 and 09): each of `sets` {name: uint8 images
    (n, 3, H, W)} by `meter` with `draws` bootstrap draws, beside the noise floor at n; `fields` are copied into
    every row. Writes RUN/results/TABLE.csv and shows it, and RUN/results/PICTURE.png: the first 8 images of each
    set, one row per set."""
    sizes = {name: len(x) for name, x in sets.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"score_sets: sets of different sizes {sizes}; the floor is scored at one n")
    floor = meter.floor(next(iter(sizes.values())), draws=draws, seed=s.seed)
    rows = [with_floor({"set": name, **fields, **meter.score(x, draws=draws, seed=s.seed)}, floor)
            for name, x in sets.items()]
    write_table(s, rows, table)
    show_table(rows, [*SET_COLUMNS[:1], *fields, *SET_COLUMNS[1:]])
    show(save_grid(s, torch.cat([x[:8] for x in sets.values()]).float().div(127.5).sub(1), picture, nrow=8))
    print("picture rows: " + "; ".join(sets))
    return rows


def feature_space_name(s: Session, features: str = "auto") -> str:
    """'auto': the kit's offline 'openmoji' space for the built-in dataset, else standard 'inception'."""
    if features != "auto":
        return features
    return "openmoji" if s.cfg.data.dataset == "openmoji" else "inception"


def split_images(s: Session, split: str, n: int | None = None, seed_offset: int = 0) -> torch.Tensor:
    """uint8 images (N, 3, H, W) of the run's `split` ('train', 'val', 'test'), in a fixed random order seeded by
    the session's seed + seed_offset; the first n of them (all when n is None)."""
    ds = build_dataset(s.cfg.data, split, train_transforms=False)
    if n is not None and n > len(ds):
        raise ValueError(f"{n} images of the {split!r} split asked for; it has {len(ds)}")
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(s.seed + seed_offset)).tolist()
    return X.to_uint8(torch.stack([ds[i] for i in perm[:n]]))


def varied_images(s: Session, split: str, categories: tuple[str, ...] = ("Smileys & Emotion", "Animals & Nature",
                  "Food & Drink", "Objects"), per_category: int = 1) -> tuple[torch.Tensor, list[str]]:
    """uint8 images (N, 3, H, W) of the run's OpenMoji `split`, `per_category` of each CLDR category in turn
    (smileys & emotion, animals, food, objects by default), each the first of its category in `split_images`'
    seeded order, and their categories. For pictures that show a method on varied subjects rather than on the
    first few images (which at random are mostly people and flags)."""
    if s.cfg.data.dataset != "openmoji":
        raise ValueError(f"varied_images: data.dataset={s.cfg.data.dataset!r}; only OpenMoji items have categories")
    unknown = [c for c in categories if c not in EF.CATEGORIES]
    if unknown:
        raise ValueError(f"categories {unknown}; allowed: {EF.CATEGORIES}")
    ds = build_dataset(s.cfg.data, "all", train_transforms=False)
    indices = split_sides(s.cfg.data, ds)[split]
    perm = torch.randperm(len(indices), generator=torch.Generator().manual_seed(s.seed)).tolist()
    category_of = EF.emoji_categories([ds.names[i] for i in indices])  # (len(indices),) index in CATEGORIES
    picked, names = [], []
    for category in categories:
        want = EF.CATEGORIES.index(category)
        found = [indices[j] for j in perm if category_of[j] == want][:per_category]
        if len(found) < per_category:
            raise ValueError(f"the {split!r} split holds {len(found)} {category!r} emoji; {per_category} asked for")
        picked += found
        names += [category] * len(found)
    return X.to_uint8(torch.stack([ds[i] for i in picked])), names


def has_test_split(s: Session) -> bool:
    """True when the run's data has a test split (data.test_fraction > 0): images no model ever saw."""
    return s.cfg.data.test_fraction > 0


SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}  # split -> the word tables use


def split_name(s: Session, split: str, n: int | None = None) -> str:
    """The exact name of the run's `split` images for tables and prose: '241 validation images (whole design
    families, none of them in the training or test split)'; with n below the split's size, 'the first n of
    the N validation images (...)'. A random split (data.split_by='random') says that variants of one emoji
    can sit on both sides."""
    if split not in SPLIT_WORDS:
        raise ValueError(f"split={split!r}; allowed: {', '.join(SPLIT_WORDS)}")
    total = len(build_dataset(s.cfg.data, split, train_transforms=False))
    count = f"the first {n} of the {total}" if n is not None and n < total else f"{total}"
    if s.cfg.data.split_by == "family":
        others = [SPLIT_WORDS[o] for o in SPLIT_WORDS if o != split and (o != "test" or has_test_split(s))]
        how = f"whole design families, none of them in the {' or '.join(others)} split"
    else:
        how = "a random split by image: variants of one emoji can sit on both sides"
    return f"{count} {SPLIT_WORDS[split]} images ({how})"


def quality_meter(s: Session, n_reference: int = 2000, features: str = "auto", *, space=None):
    """A `ulib.eval.quality.QualityMeter` for the run's data. The reference is a fixed random subset of
    n_reference training images (the paper scores samples against the training set). The held-out images of
    the noise floor (`meter.floor(n)`) are the test split, in a seeded order: families of emoji no model (VQGAN or
    prior) ever saw and that no checkpoint was chosen on. A run without a test split (data.test_fraction = 0,
    runs made before #22) falls back to the training images outside the reference, then the validation
    images, which the VQGAN saw: `meter.holdout_name` says which it is. Seeded by the session's seed.
    space: a `ulib.eval.extractors.FeatureSpace` to measure in instead of `features` (e.g. `openmoji_space`)."""
    train = build_dataset(s.cfg.data, "train", train_transforms=False)
    if n_reference >= len(train):
        raise ValueError(f"n_reference={n_reference}: the training split has only {len(train)} images; "
                         f"leave some out")
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(s.seed)).tolist()
    images = lambda ds, idx: X.to_uint8(torch.stack([ds[i] for i in idx]))
    reference = images(train, perm[:n_reference])
    if has_test_split(s):
        holdout = split_images(s, "test")
        name = f"the test split ({len(holdout)} images of families no model saw)"
    else:
        val = build_dataset(s.cfg.data, "val", train_transforms=False)
        holdout = torch.cat([images(train, perm[n_reference:]), images(val, range(len(val)))])
        name = (f"{len(train) - n_reference} training images outside the reference, then {len(val)} validation "
                "images (no test split in this run: the VQGAN saw them, so the floor is optimistic)")
    space = space if space is not None else X.load_inception(feature_space_name(s, features), device=s.device)
    meter = QualityMeter(space, reference, holdout)
    meter.holdout_name = name
    meter.reference_index = perm[:n_reference]  # indices into the training split
    meter.outside_reference_index = perm[n_reference:]  # `outside_reference`: the reference's mix, not in it
    meter.reference_name = f"{n_reference} training images (a fixed random subset, seed {s.seed})"
    return meter


def outside_reference(s: Session, meter, n: int) -> torch.Tensor:
    """n training images outside `meter`'s reference (uint8, the seeded order `quality_meter` drew the reference
    from): real images of the reference's own category mix at the same n. The floor for a bias figure (a share
    of categories): test images are whole families, so their mix may differ from the training split's by
    more than sampling noise, which a bias read against them would count. (The models saw these images: use
    them for category shares, never for FID.)"""
    index = getattr(meter, "outside_reference_index", None)
    if index is None:
        raise ValueError("outside_reference: this meter was not made by nbu.quality_meter (it has no "
                         "outside_reference_index)")
    if n > len(index):
        raise ValueError(f"outside_reference: n={n}, but only {len(index)} training images lie outside the "
                         f"reference of {meter.n_reference}; lower n or n_reference")
    train = build_dataset(s.cfg.data, "train", train_transforms=False)
    return X.to_uint8(torch.stack([train[i] for i in index[:n]]))


def _memorisation_sets(s: Session, meter) -> tuple[torch.Tensor, torch.Tensor]:
    """(every training image, every test image (or, without a test split, every validation image)), uint8, loaded
    once per meter: the same two splits for every sample set of a notebook."""
    cached = getattr(meter, "_memorisation_sets", None)
    if cached is None:
        cached = meter._memorisation_sets = (split_images(s, "train"),
                                             split_images(s, "test" if has_test_split(s) else "val"))
    return cached


def split_names(s: Session, split: str) -> list[str]:
    """The OpenMoji names of the run's `split` ('train', 'val', 'test'), in load order."""
    if s.cfg.data.dataset != "openmoji":
        raise ValueError(f"split_names: data.dataset={s.cfg.data.dataset!r}; only 'openmoji' items have names")
    ds = build_dataset(s.cfg.data, "all", train_transforms=False)
    return [ds.names[i] for i in split_sides(s.cfg.data, ds)[split]]


def openmoji_space(s: Session, recipe: EF.FeatureRecipe, without: tuple[str, ...] = ("test",),
                   show_progress: bool = False):
    """The OpenMoji feature space trained by `recipe` on every emoji except those of the run's `without` splits
    (() : every emoji, test families included, as the shipped weights), in RUN/features/<all | without_test>/, and
    trained once: again only when the recipe or the emoji it would train on differ. Returns (FeatureSpace, the
    training report, with 'train_seconds': how long the training took, where it was trained)."""
    _, all_names = load_openmoji(recipe.size, s.cfg.data.cache_dir)
    left_out = {n for split in without for n in split_names(s, split)}
    names = [n for n in all_names if n not in left_out] if without else None
    digest = EF.names_digest([all_names[i] for i in EF.training_items(all_names, names, recipe.limit)])
    folder = s.run.path / "features" / ("without_" + "_".join(without) if without else "all")
    path = folder / EF.WEIGHTS_FILE
    report = EF.load_feature_net(path)[1] if path.exists() else None
    if report is None or report.get("recipe") != recipe.to_dict() or report.get("names_sha256") != digest:
        t0 = time.perf_counter()
        net, report = EF.train_feature_net(recipe, s.cfg.data.cache_dir, show_progress=show_progress, names=names)
        report["train_seconds"] = time.perf_counter() - t0
        EF.save_feature_net(net, report, path)
        print(f"feature net in {folder.name}: trained on {report['n_emoji']} emoji ({report['train_seconds']:.0f}s)")
    return X.load_inception("openmoji", weights_dir=folder, device=s.device), report


def memorisation(s: Session, meter, images: torch.Tensor, *, seed: int = 0):
    """`ulib.eval.memorisation.memorisation_report` of a sample set: every sample's nearest training image (all
    of the run's training split) in the meter's feature space and in pixels, against the same distances of the
    test images (or, without a test split, the validation images), with FID against train and against that
    held-out split. Returns (report, training images) so that `nearest_pairs_grid` can show the pairs. The two
    splits, their features, the test-to-train distances and the k-means cells of C_T are cached on the meter: a
    further sample set costs its own features and distances only."""
    train, held = _memorisation_sets(s, meter)
    feats = getattr(meter, "_memorisation_features", None)  # extracted once, for every sample set scored
    if feats is None:
        feats = meter._memorisation_features = (extract(meter.space, train)[0], extract(meter.space, held)[0], {})
    report = memorisation_report(meter.space, images, train, held, seed=seed, train_features=feats[0],
                                 test_features=feats[1], cache=feats[2])
    return report, train


def quality_meter_on_test(s: Session, meter) -> QualityMeter:
    """A second `QualityMeter` in `meter`'s feature space whose reference is every test image (families no model
    saw; without a test split, every validation image): FID against images no model trained on, where a sample
    earns nothing for matching one particular training image, only for resembling the distribution (as a copy
    also does: read it beside `memorisation`). Its `reference_name` names the set.
    Differences between sample sets (`difference`) are read within one meter: FID falls as the reference grows,
    so figures of this meter and of `meter` (another reference size) are not compared with each other."""
    test = QualityMeter(meter.space, _memorisation_sets(s, meter)[1])
    test.reference_name = split_name(s, "test" if has_test_split(s) else "val")
    return test


@torch.no_grad()
def split_tokens(s: Session, vq, split: str, n: int | None = None, batch_size: int = 100) -> torch.Tensor:
    """Token grids, flattened to (N, L) long on the session's device, of the first n images of `split` in
    `split_images`' seeded order (all when n is None or larger than the split), encoded by the VQGAN `vq`. For
    likelihoods on images no checkpoint was chosen on: the test split (the run's token cache holds train and
    validation only)."""
    size = len(build_dataset(s.cfg.data, split, train_transforms=False))
    images = split_images(s, split, None if n is None else min(n, size))
    tokens = [vq.encode(images[i: i + batch_size].float().div(127.5).sub(1).to(s.device))
              for i in range(0, len(images), batch_size)]
    return torch.cat(tokens).reshape(len(images), -1).long()


# ---- verdicts: the paper's claims, judged by the numbers (ulib.app.verdicts) -----------------------------
def claim(s: Session, notebook: str, key: str, claim: str, paper: str, result, *, show: bool = True) -> dict:
    """Record the verdict on one of the paper's claims and print its sentence (prose generated from numbers).

    notebook: the notebook's stem ('04_step_skipping'); key: a short id unique in the notebook; claim: what the
    paper says, one line; paper: the paper's figure/table and value; result: a `ulib.eval.stats.Verdict`, or a
    (verdict word, statistic sentence) pair for claims judged otherwise (a proportion, a trend test). Every
    call rewrites RUN/results/verdicts_<notebook>.json with the rows recorded so far in this kernel for that
    notebook (the first call of a kernel starts the file afresh), so a re-run replaces its rows."""
    if isinstance(result, tuple):
        word, statistic = result
    else:
        word = result.verdict.replace("±margin", f"±{result.margin:g}") if result.margin is not None else result.verdict
        statistic = result.sentence
    row = {"notebook": notebook, "key": key, "claim": claim, "paper": paper, "verdict": word, "statistic": statistic}
    rows = _CLAIMS.setdefault((str(s.results), notebook), {})
    rows[key] = row
    write_notebook_rows(s.results, notebook, list(rows.values()))
    if show:
        show_markdown(f"**{claim}** ({paper}): **{word}**. {statistic}")
    return row


_CLAIMS: dict[tuple[str, str], dict[str, dict]] = {}

READING_COLUMNS = ("what", "paper", "this run", "verdict")


def reading(s: Session, notebook: str, rows=()) -> list[dict]:
    """The table a notebook's reading ends with: every verdict `claim` recorded in this kernel for `notebook`
    (the claim, the paper's value, the measured sentence, the verdict), then `rows`, figures without a claimed
    direction given as dicts with the keys READING_COLUMNS ('verdict' may be left out). Shown as Markdown and
    returned."""
    table = [{"what": r["claim"], "paper": r["paper"], "this run": r["statistic"], "verdict": r["verdict"]}
             for r in _CLAIMS.get((str(s.results), notebook), {}).values()]
    for r in rows:
        unknown = set(r) - set(READING_COLUMNS)
        if unknown or not {"what", "paper", "this run"} <= set(r):
            raise ValueError(f"reading row {r}: keys must be {READING_COLUMNS} ('verdict' optional)")
        table.append({"verdict": "measured", **r})
    if not table:
        raise ValueError(f"no verdicts recorded for {notebook!r} in this kernel and no rows given")
    show_markdown(markdown_table(table, list(READING_COLUMNS)))
    return table


def scale_rows(s: Session, paper_profile: str = "ffhq") -> list[dict]:
    """`reading` rows that set this run's scale beside the paper's (its `paper_profile` settings: 256 px images,
    16x16 tokens, K = 1024, an 80M-parameter transformer trained 2M steps): why numbers differ at this scale."""
    ours, paper = s.cfg, get_profile(paper_profile)
    count = lambda c: sum(p.numel() for p in prior_from_config(c).parameters())  # noqa: E731
    pair = lambda c: {  # noqa: E731
        "images": f"{c.data.img_size}x{c.data.img_size} px -> {c.latent_size}x{c.latent_size} = "
                  f"{c.latent_size ** 2} tokens",
        "codebook and T": f"K = {c.vqgan.codebook_size}, T = {c.prior.total_steps}",
        "prior": f"{c.prior.n_layers} layers x width {c.prior.n_emb}, {count(c) / 1e6:.1f}M parameters",
        "training": f"VQGAN {c.vqgan_train.steps:,} steps x batch {c.vqgan_train.batch_size}; prior "
                    f"{c.prior_train.steps:,} steps x batch {c.prior_train.batch_size}"}
    return [{"what": what, "paper": theirs, "this run": pair(ours)[what], "verdict": "scale"}
            for what, theirs in pair(paper).items()]


# ---- timing -----------------------------------------------------------------------------------------
def timed(fn, device):
    """(fn(), seconds), waiting for the device's queued work so GPU timings are real."""
    def sync():
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)

    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


# ---- simple sample statistics (quality/diversity proxies on CPU-sized runs) -----------------------------
def code_histogram(tokens: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Normalised histogram (K,) float64 of the codes in `tokens` (any shape)."""
    counts = torch.bincount(tokens.flatten().long().cpu(), minlength=codebook_size).double()
    return counts / counts.sum().clamp(min=1)


def unigram_js(tokens: torch.Tensor, reference: torch.Tensor, codebook_size: int) -> float:
    """Jensen-Shannon divergence (bits, 0..1) between the code histograms of samples and of reference data.

    A cheap stand-in for FID on runs too small for Inception features: 0 when the samples use the codes as
    often as the data does; it rises when sampling collapses onto a few codes or spreads onto rare ones.
    It sees code frequencies only, not how codes are arranged, so it is a proxy, not a quality measure.
    """
    p, q = code_histogram(tokens, codebook_size), code_histogram(reference, codebook_size)
    m = (p + q) / 2

    def kl(a, b):
        return (torch.special.xlogy(a, a) - torch.special.xlogy(a, b)).sum().item() / math.log(2)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


# ---- pictures -------------------------------------------------------------------------------------------
def token_picture(tokens: torch.Tensor, codebook_size: int, mask_id: int | None = None, cell: int = 12):
    """A token grid (h, w) as an RGB uint8 picture: one colour per code, masked cells black.

    Codes get colours from a fixed colour map (code k -> k / (K - 1)), so the same code has the same colour
    in every picture of a notebook.
    """
    import matplotlib

    t = tokens.detach().long().cpu()
    masked = (t == mask_id) if mask_id is not None else torch.zeros_like(t, dtype=torch.bool)
    cmap = matplotlib.colormaps["tab20b"] if codebook_size <= 20 else matplotlib.colormaps["viridis"]
    rgb = cmap((t.clamp(max=codebook_size - 1).float() / max(codebook_size - 1, 1)).numpy())[..., :3]
    rgb[masked.numpy()] = 0.0
    img = (rgb * 255).round().astype(np.uint8)
    return img.repeat(cell, axis=0).repeat(cell, axis=1)


def upscale_for(img_size: int) -> int:
    """Nearest-neighbour enlargement that shows small images at about 128 pixels."""
    return preview_upscale(img_size)


def save_grid(s: Session, images: torch.Tensor, name: str, nrow: int | None = None) -> Path:
    """Save images (B, 3, H, W) in [-1, 1] as RUN/results/NAME.png, enlarged by nearest neighbours so that the
    shorter side shows at about 128 pixels (a 32-px emoji 4x, a 32x64 canvas too), and return the path."""
    path = s.results / f"{name}.png"
    save_image_grid(images.detach().clamp(-1, 1).cpu(), path, nrow=nrow, upscale=upscale_for(min(images.shape[-2:])))
    return path


def save_figure(s: Session, fig, name: str) -> Path:
    """Save a matplotlib figure as RUN/results/NAME.png and return the path."""
    path = s.results / f"{name}.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def show(path) -> None:
    """Display a PNG inline (in a notebook), or print its path elsewhere."""
    try:
        from IPython.display import Image, display

        display(Image(filename=str(path)))
    except ImportError:
        print(path)


# ---- tables ------------------------------------------------------------------------------------------------
def write_table(s: Session, rows: list[dict], name: str) -> Path:
    """Write rows (dicts) as RUN/results/NAME.csv; floats with 6 significant digits. Columns: every key of
    any row, in first-seen order; a row without one of them gets an empty cell."""
    if not rows:
        raise ValueError(f"table {name!r} has no rows")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    path = s.results / f"{name}.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([format(v, ".6g") if isinstance(v, float) else v for v in (r.get(c) for c in columns)])
    return path


def show_table(rows: list[dict], columns: list[str] | None = None) -> None:
    """Display rows as a Markdown table in a notebook (plain text elsewhere)."""
    show_markdown(markdown_table(rows, columns))


def show_markdown(text: str) -> None:
    """Display Markdown text rendered in a notebook (or any IPython kernel); print it elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        print(text)
        return
    if get_ipython() is None:
        print(text)
    else:
        display(Markdown(text))
