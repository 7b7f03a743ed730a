"""One door for loading trained models: a run's (`load_run`, `load_vqgan`, `load_prior`) or the paper's released
files (`load_official`). Every command, the pipeline, evaluation, gpu-check, the notebooks and training's previews
load through here.

Each call resolves what loading needs, in one place:
- the config: the run's stored config.json, with `overrides` (`section.key=value` strings, as --set, or a dict)
  and `kind` ('absorbing' or 'autoregressive': which of the run's priors) on top; a run without config.json is a
  FileNotFoundError naming the file and the command that makes the run;
- the device: 'auto' is cuda, then mps, then cpu (`ulib.device.resolve_device`), with TF32 matmuls on CUDA;
- the weights: the EMA weights unless use_ema=False; a prior trained on another VQGAN's tokens than the run's
  vqgan.pt is a ValueError (`ulib.trained.check_prior_pairing`).

`SamplingModels` bundles the VQGAN, the prior and the facts sampling needs (T, mask id, token grid, the run's
sampling settings), so `sample_tokens`, `sample_images`, `inpaint` and the widgets treat a run and released files
alike. The builders underneath (`ulib.trained`, `ulib.official`) rebuild a model from a config and a checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ulib import official
from ulib.config import Config
from ulib.device import configure_matmul, resolve_device
from ulib.io.rundir import RunDir
from ulib.official_layout import PAPER_TOTAL_STEPS
from ulib.overrides import apply_overrides
from ulib.trained import load_run_prior, load_run_vqgan

CHECKPOINTS = ("final", "best")  # which of a run's prior checkpoints: the last step, or the best validation score


@dataclass
class SamplingModels:
    """A trained pair and the facts sampling needs."""

    vqgan: torch.nn.Module  # VQAutoEncoder in eval mode
    prior: torch.nn.Module  # Transformer in eval mode
    kind: str  # 'absorbing' or 'autoregressive'
    num_timesteps: int  # T of the absorbing process
    mask_id: int | None  # absorbing state id (= codebook_size); None for the AR prior
    latent_shape: tuple[int, int]  # (h, w) token grid of one training window
    default_steps: int  # reverse steps when none are asked for
    default_temperature: float
    default_n: int
    source: str  # where the weights came from (for messages)


def run_config(run, overrides=(), kind: str | None = None, profile: str | None = None) -> tuple[RunDir, Config]:
    """(the RunDir, its stored config with `overrides` and `kind` applied); `profile`, when given, must be the
    run's (`RunDir.trained_config`)."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    cfg = run.trained_config(profile, overrides)
    if cfg is None:
        raise FileNotFoundError(f"{run.config_file} not found: {run.path} is not a trained run "
                                f"(make one with `python -m ulib pipeline --run {run.path}`)")
    if kind is not None:
        cfg = apply_overrides(cfg, {"prior.kind": kind})
    return run, cfg


def device_for(device="auto") -> torch.device:
    """The torch.device that 'auto' (or a device string) names, with TF32 matmuls switched on for CUDA."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    configure_matmul(dev)
    return dev


def from_modules(vqgan, prior, cfg: Config, source: str = "modules in memory") -> SamplingModels:
    """A pair already in memory (a notebook's, a training loop's) with the sampling facts of its Config."""
    s = cfg.latent_size
    return SamplingModels(vqgan, prior, cfg.prior.kind, cfg.prior.total_steps, cfg.mask_id, (s, s),
                          cfg.sample.steps or cfg.prior.total_steps, cfg.sample.temperature, cfg.sample.n, source)


def load_vqgan(run, device="auto", use_ema: bool = True, overrides=(), cfg: Config | None = None):
    """The run's trained VQGAN autoencoder, in eval mode. cfg: a config to rebuild it with instead of the run's
    stored one (a training in progress, a notebook's session)."""
    if cfg is None:
        run, cfg = run_config(run, overrides)
    run = run if isinstance(run, RunDir) else RunDir(run)
    return load_run_vqgan(cfg, run.vqgan_ckpt, device_for(device), use_ema=use_ema)


def load_prior(run, device="auto", kind: str | None = None, checkpoint: str = "final", use_ema: bool = True,
               overrides=(), cfg: Config | None = None):
    """The run's trained prior of `kind` (default: the config's), in eval mode, checked against the run's VQGAN.
    checkpoint: 'final' (prior.pt, prior_ar.pt) or 'best' (prior_best.pt, ...: kept when prior_train.keep_best)."""
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint={checkpoint!r}; allowed: {CHECKPOINTS}")
    if cfg is None:
        run, cfg = run_config(run, overrides, kind)
    elif kind is not None:
        cfg = apply_overrides(cfg, {"prior.kind": kind})
    run = run if isinstance(run, RunDir) else RunDir(run)
    k = cfg.prior.kind
    path = run.prior_best_for(k) if checkpoint == "best" else run.prior_ckpt_for(k)
    if checkpoint == "best" and not path.exists():
        raise FileNotFoundError(f"{path}: no best-validation checkpoint of the {k} prior; it is written during "
                                f"training when prior_train.keep_best is on (smoke, demo, study, tutorial)")
    return load_run_prior(cfg, path, device_for(device), use_ema=use_ema, vqgan_ckpt=run.vqgan_ckpt)


def load_run(run, device="auto", kind: str | None = None, use_ema: bool | None = True, overrides=(),
             checkpoint: str = "final", cfg: Config | None = None, profile: str | None = None) -> SamplingModels:
    """The trained pair of a run folder (VQGAN + prior, in eval mode on `device`) with its sampling facts.

    run: a path or a `RunDir`; its stored config.json (with `overrides`) rebuilds the models. kind: 'absorbing'
    or 'autoregressive' picks which of the run's priors (default: the config's). use_ema: the EMA weights.
    checkpoint: as in `load_prior`. cfg: a config to use instead of the stored one (the pipeline's, a notebook's).
    device=None and use_ema=None take the run's own settings (config `device`, `sample.use_ema`), as the CLI does;
    profile: the profile the run must have been made with (--profile), None for any."""
    if cfg is None:
        run, cfg = run_config(run, overrides, kind, profile)
    elif kind is not None:
        cfg = apply_overrides(cfg, {"prior.kind": kind})
    run = run if isinstance(run, RunDir) else RunDir(run)
    dev = device_for(cfg.device if device is None else device)
    use_ema = cfg.sample.use_ema if use_ema is None else use_ema
    prior = load_prior(run, dev, checkpoint=checkpoint, use_ema=use_ema, cfg=cfg)  # first: a mismatched pair stops
    return from_modules(load_vqgan(run, dev, use_ema, cfg=cfg), prior, cfg, f"run {run.path}")


def load_official(vqgan_path: str | Path, sampler_path: str | Path, kind: str = "absorbing",
                  device="auto") -> SamplingModels:
    """The released files of the official code (paper configuration; see ulib/official.py)."""
    dev = device_for(device)
    vqgan = official.load_vqgan(vqgan_path, device=dev)
    prior = official.load_sampler(sampler_path, kind, device=dev)
    if prior.codebook_size != vqgan.quantize.codebook_size:
        raise ValueError(f"{sampler_path} predicts {prior.codebook_size} codes but {vqgan_path} has a codebook of "
                         f"{vqgan.quantize.codebook_size}; use files of the same experiment")
    return SamplingModels(vqgan, prior, kind, PAPER_TOTAL_STEPS, prior.mask_id, tuple(vqgan.latent_shape),
                          PAPER_TOTAL_STEPS, 0.9, 16, f"official files {vqgan_path}, {sampler_path}")
