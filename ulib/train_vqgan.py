"""Stage 1 training: the VQGAN (paper section 3.1, Eq. 4, 5, 9).

Autoencoder step: L = L_rec + L_VQ + lambda * L_G (Eq. 9) with the adaptive weight clamped at lambda_max
(Eq. 9c) once the discriminator is switched on; discriminator step: hinge loss on DiffAugment-ed real and
reconstructed images. Adam for both players, EMA of the autoencoder, mixed precision on CUDA.

Under torchrun, gradients are averaged across processes with an explicit all-reduce after each backward
(what DistributedDataParallel does), because the adaptive weight differentiates through the
autoencoder a second time (torch.autograd.grad) and the discriminator runs several forward passes per
backward, two things DDP's hooks do not allow.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from . import distributed as dist_utils
from .batches import StepBatches, random_flip
from .checkpoint import atomic_write, rng_state, save_checkpoint, set_rng_state
from .config import Config
from .data import build_dataset, skipped_files
from .device import amp_dtype, autocast, make_scaler
from .discriminator import PatchDiscriminator
from .ema import EMA
from .loading import build_vqgan
from .logs import MetricsLog, save_image_grid
from .rundir import RunDir
from .training import Throughput, check_finite, progress, set_lr, start_training, warmup_lr


def _perceptual(cfg: Config, device):
    if cfg.vqgan.perceptual_weight <= 0:
        return None
    from .perceptual import load_lpips

    return load_lpips(device=device)


def record_data_check(run: RunDir, ds) -> None:
    """With data.skip_bad, name the files the up-front check left out in RUN/data_check.json (and say so)."""
    skipped = skipped_files(ds)
    if not skipped:
        run.data_check.unlink(missing_ok=True)
        return
    text = json.dumps({"skipped": len(skipped), "files": skipped}, indent=1) + "\n"
    atomic_write(run.data_check, lambda f: f.write(text.encode()))
    print(f"data: {len(skipped)} unreadable image files left out (data.skip_bad=true); listed in {run.data_check}")


def train_vqgan(run: RunDir, cfg: Config, *, resume: bool = False, force: bool = False,
                stop_at: int | None = None, show_progress: bool = True) -> Path:
    """Train the VQGAN of `run` to cfg.vqgan_train.steps (or stop early at `stop_at`); returns the checkpoint."""
    from .vqgan_loss import VQGANLoss

    tc = cfg.vqgan_train
    rank, world, device, state = start_training(run, cfg, run.vqgan_ckpt, tc.steps, "VQGAN", resume=resume,
                                                force=force)
    main = rank == 0

    train = build_dataset(cfg.data, "train", train_transforms=False)  # flips happen below, seeded
    val = build_dataset(cfg.data, "val", train_transforms=False)
    if main:
        record_data_check(run, train)
    ae = build_vqgan(cfg).to(device)
    disc = PatchDiscriminator.from_config(cfg.vqgan).to(device)
    dist_utils.broadcast_parameters(ae)
    dist_utils.broadcast_parameters(disc)
    losses = VQGANLoss(cfg.vqgan, disc, _perceptual(cfg, device))
    betas = (tc.beta1, tc.beta2)
    opt_ae = torch.optim.Adam(ae.parameters(), lr=tc.lr, betas=betas, weight_decay=tc.weight_decay)
    opt_d = torch.optim.Adam(disc.parameters(), lr=tc.lr, betas=betas, weight_decay=tc.weight_decay)
    dtype = amp_dtype(device, tc.amp)
    scaler, scaler_d = make_scaler(device, dtype), make_scaler(device, dtype)
    g = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + rank)  # flips and DiffAugment
    if state is None and cfg.vqgan.code_init == "data":  # codebook starts on encoder outputs of batch 0
        first = StepBatches(len(train), tc.batch_size, cfg.seed).indices(0)
        with torch.no_grad():
            z = ae.encoder(torch.stack([train[i] for i in first]).to(device))
        ae.quantize.init_from_latents(z, torch.Generator(device=device).manual_seed(cfg.seed))
        dist_utils.broadcast_parameters(ae)
    ema = EMA(ae, tc.ema_decay) if tc.ema_decay > 0 else None

    usage = torch.zeros(cfg.vqgan.codebook_size, device=device)  # code counts since the last restart check
    step = 0
    if state is not None:
        usage = state["code_usage"].to(device)
        ae.load_state_dict(state["model"])
        disc.load_state_dict(state["disc"])
        opt_ae.load_state_dict(state["optimizer"])
        opt_d.load_state_dict(state["disc_optimizer"])
        scaler.load_state_dict(state["scaler"])
        scaler_d.load_state_dict(state["disc_scaler"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        g.set_state(state["generators"][rank])
        step = int(state["step"])

    log = MetricsLog(run.vqgan_log, resume_step=step if state is not None else None) if main else None
    end = tc.steps if stop_at is None else min(stop_at, tc.steps)
    batches = StepBatches(len(train), tc.batch_size, cfg.seed, start=step, stop=end, rank=rank, world=world)
    loader = DataLoader(train, batch_sampler=batches, num_workers=tc.num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=False,
                        generator=torch.Generator().manual_seed(cfg.seed))  # leaves the global RNG alone
    x_val = torch.stack([val[i] for i in range(min(16, len(val)))]).to(device)
    bar = progress(tc.steps, step, "vqgan", show_progress and main)
    speed = Throughput()

    def save(at: int) -> None:
        gens = dist_utils.all_gather_states(g.get_state(), device)
        if main:
            save_checkpoint(run.vqgan_ckpt, {
                "config": cfg.to_dict(), "step": at, "model": ae.state_dict(),
                "ema": ema.state_dict() if ema is not None else None, "disc": disc.state_dict(),
                "optimizer": opt_ae.state_dict(), "disc_optimizer": opt_d.state_dict(),
                "scaler": scaler.state_dict(), "disc_scaler": scaler_d.state_dict(),
                "rng": rng_state(), "generators": gens, "code_usage": usage.cpu(),
            })

    if state is not None:  # last, after everything that draws from the global generators while setting up
        set_rng_state(state["rng"])
    ae.train()
    disc.train()
    for x in loader:
        x = x.to(device, non_blocking=True)
        if cfg.data.flip:
            x = random_flip(x, g)
        lr = warmup_lr(step, tc.lr, tc.warmup_steps)
        set_lr(opt_ae, lr)
        set_lr(opt_d, lr)

        # autoencoder step (Eq. 9)
        with autocast(device, dtype):
            x_hat, vq_loss, q_stats = ae(x)
            loss, stats = losses.generator_loss(x, x_hat, vq_loss, ae.last_layer, step, generator=g)
        check_finite(loss.item(), step, run.vqgan_ckpt, "VQGAN")
        opt_ae.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        dist_utils.average_gradients(ae)
        if tc.grad_clip > 0:
            scaler.unscale_(opt_ae)
            torch.nn.utils.clip_grad_norm_(ae.parameters(), tc.grad_clip)
        scaler.step(opt_ae)
        scaler.update()

        # discriminator step (hinge loss), once the GAN is switched on
        with autocast(device, dtype):
            d_loss, d_stats = losses.discriminator_loss(x, x_hat, step, generator=g)
        opt_d.zero_grad(set_to_none=True)  # also clears the gradients the generator loss left in D
        if d_loss is not None:
            check_finite(d_loss.item(), step, run.vqgan_ckpt, "discriminator")
            scaler_d.scale(d_loss).backward()
            dist_utils.average_gradients(disc)
            scaler_d.step(opt_d)
            scaler_d.update()
        usage += torch.bincount(q_stats["indices"].flatten(), minlength=usage.numel())
        every = cfg.vqgan.code_restart_every
        if every > 0 and (step + 1) % every == 0:  # recycle dead codes onto this batch's encoder outputs
            dist_utils.all_sum_(usage)
            with torch.no_grad():
                z = ae.encoder(x)
            stats["codes_restarted"] = float(ae.quantize.restart_codes(usage == 0, z, g))
            dist_utils.broadcast_parameters(ae.quantize)
            usage.zero_()
        if ema is not None:
            ema.update(ae)
        step += 1
        speed.add(x.shape[0] * world)
        bar.update(1)

        if step % tc.log_every == 0 or step == tc.steps:
            stats.update(d_stats)
            stats["perplexity"] = float(q_stats["perplexity"])
            stats["codes_used"] = float(q_stats["codes_used"])
            stats = {k: dist_utils.all_mean(v, device) for k, v in stats.items()}
            rate = speed.rate()
            if main:
                bar.set_postfix(l1=f"{stats['l1']:.3f}", codes=f"{stats['codes_used']:.0f}", img_s=f"{rate:.0f}")
                log.log(step, lr=lr, images_per_s=rate, **stats)
        if main and (step % tc.image_every == 0 or step == tc.steps):
            model = ema.model if ema is not None else ae
            with torch.no_grad():
                x_rec = model.decode(model.encode(x_val)).clamp(-1, 1)
            save_image_grid(torch.cat([x_val, x_rec]), run.images / f"vqgan_recon_{step:07d}.png",
                            nrow=len(x_val), upscale=max(1, 128 // cfg.data.img_size))
        if step % tc.ckpt_every == 0 or step == end:
            save(step)
    bar.close()
    dist_utils.barrier()
    return run.vqgan_ckpt
