"""`python -m ulib elbo`: the validation likelihood of a run's priors in bits per token, written to
RUN/likelihood.json: the negative ELBO of the absorbing prior (Eq. 6; the full sum over t = 1..T, or a Monte-Carlo
estimate over `mc` random t per grid with its standard error) and the exact NLL of an autoregressive one.

`precision` is the prior's forward passes, as when sampling (`ulib.device.sampling_dtype`): 'auto' is bf16 autocast
on a GPU with native bf16 and fp32 elsewhere (a CPU's figures are those of 'fp32'); fp32 matmuls use TF32 on CUDA,
as in training (`configure_matmul`). The cross-entropies are taken in fp32 from the logits either way
(`AbsorbingDiffusion.masked_cross_entropy` and the AR NLL call .float() before the log-softmax)."""
from __future__ import annotations

import json

import torch

from ulib.config import Config
from ulib.device import autocast, configure_matmul, resolve_device, sampling_dtype
from ulib.io.files import atomic_write
from ulib.io.rundir import RunDir
from ulib.models import load_prior
from ulib.prior.absorbing import AbsorbingDiffusion
from ulib.prior.likelihood import absorbing_elbo, ar_nll
from ulib.train.latents import load_latents


def validation_likelihood(run: RunDir, cfg: Config, *, mc: int | None = None, max_items: int | None = None,
                          batch_size: int = 64, seed: int = 0, use_ema: bool = True, precision: str = "auto",
                          log=print) -> list[dict]:
    """One estimate per prior the run holds (absorbing, autoregressive), each said by `log` and all written to
    RUN/likelihood.json with the precision it ran in; a run without a trained prior is a ValueError naming the
    command that trains one, a precision other than auto/fp32/bf16 a ValueError naming the allowed ones."""
    device = resolve_device(cfg.device)
    dtype = sampling_dtype(device, precision)
    used = "bf16" if dtype == torch.bfloat16 else "fp32"
    configure_matmul(device)  # TF32 on CUDA, also for the encode of a missing cache (the same tokens as training's)
    kinds = [k for k in ("absorbing", "autoregressive") if run.prior_ckpt_for(k).exists()]
    if not kinds:
        raise ValueError(f"{run.path} has no trained prior ({run.prior_ckpt.name} or {run.prior_ckpt_for('x').name}); "
                         f"run `python -m ulib train-prior --run {run.path}` first")
    # the priors first: one trained on another VQGAN's tokens stops here, before any encoding
    nets = {kind: load_prior(run, device, kind, use_ema=use_ema, cfg=cfg) for kind in kinds}
    val = load_latents(cfg, run.vqgan_ckpt, run.latents, device)["val"]
    val = val.reshape(val.shape[0], -1)[:max_items].to(device)
    estimates = []
    for kind, net in nets.items():
        with autocast(device, dtype):  # the prior's forward passes; the cross-entropies are fp32
            if kind == "autoregressive":
                est, what = ar_nll(net, val, batch_size), "exact NLL (autoregressive)"
            else:
                diffusion = AbsorbingDiffusion(cfg.prior.total_steps, cfg.mask_id, cfg.prior.loss_type)
                g = torch.Generator(device=device).manual_seed(seed)
                est = absorbing_elbo(diffusion, net, val, mc=mc, batch_size=batch_size, generator=g, progress=True)
                what = "negative ELBO, " + (f"Monte-Carlo over {mc} t per grid" if mc
                                            else f"full sum over t=1..{diffusion.T}")
        estimates.append({"kind": kind, "estimate": what, "bits_per_token": est.bits_per_token, "stderr": est.stderr,
                          "n_items": est.n_items, "n_passes": est.n_passes, "ema": use_ema, "seed": seed,
                          "precision": used})
        se = f" ± {est.stderr:.4f}" if est.stderr else ""
        log(f"validation {what}: {est.bits_per_token:.4f}{se} bits/token ({est.n_items} grids, {est.n_passes} "
            f"passes), prior in {used}")
    text = json.dumps(estimates, indent=2) + "\n"
    atomic_write(run.path / "likelihood.json", lambda f: f.write(text.encode()))
    return estimates
