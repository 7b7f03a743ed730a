"""The models a sampling command works with: a run's trained pair, or the paper's released checkpoints.

`SamplingModels` bundles the VQGAN, the prior and the facts sampling needs (T, mask id, latent grid), so
`sample` and `inpaint` treat both sources alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ulib import official
from ulib.trained import load_run_prior, load_run_vqgan


@dataclass
class SamplingModels:
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


def from_modules(vqgan, prior, cfg, source: str = "modules in memory") -> SamplingModels:
    """A pair already in memory (a notebook's, a training loop's) with the sampling facts of its Config."""
    s = cfg.latent_size
    return SamplingModels(vqgan, prior, cfg.prior.kind, cfg.prior.total_steps, cfg.mask_id, (s, s),
                          cfg.sample.steps or cfg.prior.total_steps, cfg.sample.temperature, cfg.sample.n, source)


def from_run(run, cfg, device, use_ema: bool = True) -> SamplingModels:
    """A run's trained pair from its checkpoints (cfg: the run's config; prior.kind picks the prior). A prior
    trained on another VQGAN's tokens than the run's vqgan.pt is a ValueError (`load_run_prior`)."""
    prior = load_run_prior(cfg, run.prior_ckpt_for(cfg.prior.kind), device, use_ema=use_ema,
                           vqgan_ckpt=run.vqgan_ckpt)
    vqgan = load_run_vqgan(cfg, run.vqgan_ckpt, device, use_ema=use_ema)
    return from_modules(vqgan, prior, cfg, f"run {run.path}")


def from_official(vqgan_path: str | Path, sampler_path: str | Path, kind: str, device) -> SamplingModels:
    """The released files of the official code (paper configuration); see ulib/official.py."""
    vqgan = official.load_vqgan(vqgan_path, device=device)
    prior = official.load_sampler(sampler_path, kind, device=device)
    if prior.codebook_size != vqgan.quantize.codebook_size:
        raise ValueError(f"{sampler_path} predicts {prior.codebook_size} codes but {vqgan_path} has a codebook of "
                         f"{vqgan.quantize.codebook_size}; use files of the same experiment")
    return SamplingModels(vqgan, prior, kind, official.PAPER_TOTAL_STEPS, prior.mask_id, tuple(vqgan.latent_shape),
                          official.PAPER_TOTAL_STEPS, 0.9, 16, f"official files {vqgan_path}, {sampler_path}")
