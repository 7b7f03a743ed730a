"""Stage 2 training: the absorbing diffusion prior on cached token grids (paper section 3.2).

AdamW with linear warm-up, gradient clipping, EMA of the weights, mixed precision on CUDA, DDP under
torchrun. Every random draw of a step (t, the masks, dropout, flips) comes from checkpointed generators,
and batches are a function of the step (`ulib.batches`), so `--resume` continues exactly where an
uninterrupted run would be.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from . import distributed as dist_utils
from .absorbing import AbsorbingDiffusion
from .batches import StepBatches
from .checkpoint import rng_state, save_checkpoint, set_rng_state, unwrap
from .config import Config
from .device import amp_dtype, autocast, make_scaler
from .ema import EMA
from .latents import load_latents
from .loading import build_prior, load_vqgan
from .logs import MetricsLog, save_image_grid
from .rundir import RunDir
from .autoregressive import ar_loss, sample_ar
from .decoding import decode_tokens
from .likelihood import absorbing_elbo, ar_nll
from .training import Throughput, check_finite, progress, set_lr, start_training, warmup_lr


def _flatten(tokens: torch.Tensor) -> torch.Tensor:
    return tokens.reshape(tokens.shape[0], -1).long()  # (N, h, w) -> (N, L)


@torch.no_grad()
def validation_metric(net, cfg: Config, diffusion: AbsorbingDiffusion, val: torch.Tensor, device, seed: int,
                      max_items: int = 256) -> dict:
    """Validation likelihood in bits/token on up to `max_items` grids: a one-draw negative-ELBO estimate
    (Eq. 6) for the absorbing prior (whatever its training loss: Fig. 5), the exact NLL for the AR prior."""
    data = val[:max_items].to(device)
    if cfg.prior.kind == "autoregressive":
        return {"val_nll_bpt": ar_nll(net, data).bits_per_token}
    g = torch.Generator(device=device).manual_seed(seed)
    return {"val_elbo_bpt": absorbing_elbo(diffusion, net, data, mc=1, generator=g).bits_per_token}


@torch.no_grad()
def sample_images(net, vqgan, cfg: Config, n: int, device, seed: int, steps: int | None = None,
                  temperature: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw n token grids from the prior and decode them: (images (n,3,H,W) in [-1,1], tokens (n,h,w))."""
    g = torch.Generator(device=device).manual_seed(seed)
    s = cfg.latent_size
    temperature = temperature or cfg.sample.temperature
    if cfg.prior.kind == "autoregressive":
        tokens = sample_ar(net, n, s * s, device, temperature=temperature, generator=g).view(n, s, s)
        return vqgan.decode(tokens).clamp(-1, 1), tokens
    tokens = decode_tokens(net, method="random", batch=n, length=s * s, num_timesteps=cfg.prior.total_steps,
                           mask_id=cfg.mask_id, steps=steps or cfg.sample.steps or None,
                           temperature=temperature, generator=g, device=device)
    tokens = tokens.view(n, s, s)
    return vqgan.decode(tokens).clamp(-1, 1), tokens


def train_prior(run: RunDir, cfg: Config, *, resume: bool = False, force: bool = False,
                stop_at: int | None = None, show_progress: bool = True) -> Path:
    """Train the prior of `run` to cfg.prior_train.steps (or stop early at `stop_at`); returns the checkpoint."""
    tc = cfg.prior_train
    ckpt, log_file = run.prior_ckpt_for(cfg.prior.kind), run.prior_log_for(cfg.prior.kind)
    rank, world, device, state = start_training(run, cfg, ckpt, tc.steps, "prior", resume=resume, force=force)
    main = rank == 0

    # data: token grids encoded once by the trained VQGAN (rank 0 builds the cache, others wait)
    if main:
        latents = load_latents(cfg, run.vqgan_ckpt, run.latents, device, progress=show_progress)
    dist_utils.barrier()
    if not main:
        latents = load_latents(cfg, run.vqgan_ckpt, run.latents, device, rebuild="never")
    train = _flatten(latents["train"])
    train_flipped = _flatten(latents["train_flipped"]) if "train_flipped" in latents else None
    val = _flatten(latents["val"])

    net = build_prior(cfg).to(device)
    ar = cfg.prior.kind == "autoregressive"  # the paper's AR baseline (Table 4), same transformer made causal
    diffusion = AbsorbingDiffusion(cfg.prior.total_steps, cfg.mask_id, cfg.prior.loss_type)
    opt = torch.optim.AdamW(net.parameters(), lr=tc.lr, betas=(tc.beta1, tc.beta2), weight_decay=tc.weight_decay)
    dtype = amp_dtype(device, tc.amp)
    scaler = make_scaler(device, dtype)
    ema = EMA(net, tc.ema_decay) if tc.ema_decay > 0 else None
    g = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + rank)  # t, masks and flips

    step = 0
    if state is not None:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        g.set_state(state["generators"][rank])
        step = int(state["step"])
    model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else net

    log = MetricsLog(log_file, resume_step=step if state is not None else None) if main else None
    vqgan = load_vqgan(cfg, run.vqgan_ckpt, device) if main else None
    end = tc.steps if stop_at is None else min(stop_at, tc.steps)
    batches = StepBatches(len(train), tc.batch_size, cfg.seed, start=step, stop=end, rank=rank, world=world)
    bar = progress(tc.steps, step, "prior", show_progress and main)
    speed = Throughput()

    def save(at: int) -> None:
        gens = dist_utils.all_gather_states(g.get_state(), device)
        if main:
            save_checkpoint(ckpt, {
                "config": cfg.to_dict(), "step": at, "model": unwrap(model).state_dict(),
                "ema": ema.state_dict() if ema is not None else None, "optimizer": opt.state_dict(),
                "scaler": scaler.state_dict(), "rng": rng_state(), "generators": gens,
            })

    if state is not None:  # last, after everything that draws from the global generators while setting up
        set_rng_state(state["rng"])
    net.train()
    for idx in batches:
        x0 = train[idx]
        if train_flipped is not None:  # use the mirrored image's tokens with probability 1/2
            use = torch.rand(len(idx), generator=g, device=device).cpu() < 0.5
            x0 = torch.where(use[:, None], train_flipped[idx], x0)
        x0 = x0.to(device, non_blocking=True)
        lr = warmup_lr(step, tc.lr, tc.warmup_steps)
        set_lr(opt, lr)
        with autocast(device, dtype):
            out = ar_loss(model, x0) if ar else diffusion.training_losses(model, x0, generator=g)
        loss = out["loss"]
        check_finite(loss.item(), step, ckpt, "prior")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if tc.grad_clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), tc.grad_clip)
        scaler.step(opt)
        scaler.update()
        if ema is not None:
            ema.update(net)
        step += 1
        speed.add(x0.shape[0] * world)
        bar.update(1)

        row = {}
        if step % tc.log_every == 0 or step == tc.steps:
            keys = ("loss", "nll_bpt") if ar else ("loss", "elbo_bpt", "ce_masked")
            stats = {k: dist_utils.all_mean(out[k].item(), device) for k in keys}
            rate = speed.rate()
            row.update(lr=lr, images_per_s=rate, **stats)
            bar.set_postfix(loss=f"{stats['loss']:.3f}", img_s=f"{rate:.0f}")
        if main and (step % tc.image_every == 0 or step == tc.steps):
            eval_net = ema.model if ema is not None else net
            net.eval()
            row.update(validation_metric(eval_net, cfg, diffusion, val, device, seed=cfg.seed))
            imgs, _ = sample_images(eval_net, vqgan, cfg, min(cfg.sample.n, 16), device, seed=cfg.seed)
            net.train()
            save_image_grid(imgs, run.images / f"prior_samples_{step:07d}.png", upscale=max(1, 128 // cfg.data.img_size))
        if main and row:
            log.log(step, **row)
        if step % tc.ckpt_every == 0 or step == end:
            save(step)
    bar.close()
    dist_utils.barrier()
    return ckpt
