"""Stage 1 training: the VQGAN (paper section 3.1, Eq. 4, 5, 9).

Autoencoder step: L = L_rec + L_VQ + lambda * L_G (Eq. 9) with the adaptive weight clamped at lambda_max
(Eq. 9c) once the discriminator is switched on; discriminator step: hinge loss on DiffAugment-ed real and
reconstructed images. Adam for both players, EMA of the autoencoder, mixed precision on CUDA (under fp16 the
generator runs in fp32: `ulib.device.decoder_dtype`), a global batch (TrainConfig.batch_size) split over
processes and gradient-accumulation passes (the adaptive weight is computed per pass, as it is per process).
Statistics stay on the device until a log step reads them all at once.

Under torchrun, gradients are averaged across processes with an explicit all-reduce after each backward
(coalesced into ~25 MB buffers, as DistributedDataParallel's buckets), because the adaptive weight differentiates
through the
autoencoder a second time (torch.autograd.grad) and the discriminator runs several forward passes per
backward, two things DDP's hooks do not allow.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ulib.config import Config
from ulib.data.batches import StepBatches, random_flip
from ulib.data.datasets import build_dataset, skipped_files
from ulib.device import amp_dtype, autocast, decoder_dtype, load_scaler_state, make_scaler, seed_everything
from ulib.io.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ulib.io.files import atomic_write
from ulib.io.logs import MetricsLog, preview_upscale, save_image_grid
from ulib.io.rundir import RunDir
from ulib.train import distributed as dist_utils
from ulib.train.batch_plan import batch_plan
from ulib.train.common import FiniteGuard, Throughput, holds_run_lock, progress, set_lr, warmup_lr
from ulib.train.ema import EMA
from ulib.train.resume import (
    commit_stage,
    discard_checkpoints,
    load_optimizer_state,
    rank_generator,
    resume_generator,
    start_training,
)
from ulib.trained import vqgan_from_config
from ulib.vq.discriminator import PatchDiscriminator
from ulib.vq.loss import VQGANLoss
from ulib.vq.perceptual import load_lpips


def _perceptual(cfg: Config, device):
    if cfg.vqgan.perceptual_weight <= 0:
        return None

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


def autoencode(ae, x: torch.Tensor, device, dtype: torch.dtype | None):
    """ae(x) without usage statistics: encoder and quantiser under autocast(dtype), the generator under
    autocast(decoder_dtype(dtype)), i.e. in fp32 when dtype is fp16. Returns (x_hat, L_VQ, {'indices'})."""
    with autocast(device, dtype):
        z_q, vq_loss, q = ae.quantize(ae.encoder(x), stats=False)
    dec = decoder_dtype(dtype)
    with autocast(device, dec):
        x_hat = ae.generator(z_q if dec == dtype else z_q.float())
    return x_hat, vq_loss, q


def _mean_stats(parts: list[dict]) -> dict:
    """Mean over the accumulation passes of each statistic (0-dim tensors), still on the device."""
    return {k: torch.stack([p[k].float() for p in parts]).mean() for k in parts[0]}


def start_continuation(parent_ckpt: Path, child_ckpt: Path, cfg: Config) -> Path:
    """Write child_ckpt: the parent's VQGAN checkpoint made ready for a continuation with `cfg` (Table 5's GAN
    phase), which `train_vqgan(child, cfg, resume=True)` then trains.

    - kept: the autoencoder, its optimiser and grad scaler, the step and the code-usage counts (the shared phase);
      a parent that holds weights only (a pretrained model's `vqgan.pt`) starts a fresh Adam and usage count;
    - the EMA restarted from the autoencoder's weights: the parent's EMA is not carried over (after n steps the
      child's EMA holds decay^n of the continuation's start, never the parent's average);
    - a fresh discriminator, with a fresh optimiser and scaler, drawn from cfg.seed: the GAN term starts with an
      untrained discriminator (taming's disc_start weights it 0 before, so it is never updated);
    - the per-rank generators (flips, DiffAugment) and the global RNGs seeded from cfg.seed, as is the batch
      order (StepBatches(seed=cfg.seed)): continuations that differ only in cfg.seed are independent seeds."""
    state = load_checkpoint(parent_ckpt, what="parent VQGAN checkpoint")
    tc = cfg.vqgan_train
    if state.get("optimizer") is None:  # a pretrained model's weights-only file (ulib.io.pretrained): fresh Adam
        ae = vqgan_from_config(cfg)
        state["optimizer"] = torch.optim.Adam(ae.parameters(), lr=tc.lr, betas=(tc.beta1, tc.beta2),
                                              weight_decay=tc.weight_decay).state_dict()
        state["scaler"] = {}
        state["code_usage"] = torch.zeros(cfg.vqgan.codebook_size)
        state["model"] = {k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()}
    state["ema"] = {k: v.clone() for k, v in state["model"].items()} if tc.ema_decay > 0 else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        disc = PatchDiscriminator.from_config(cfg.vqgan)
    state["disc"] = disc.state_dict()
    state["disc_optimizer"] = torch.optim.Adam(disc.parameters(), lr=tc.lr, betas=(tc.beta1, tc.beta2),
                                               weight_decay=tc.weight_decay).state_dict()
    state["disc_scaler"] = {}  # load_scaler_state: an enabled scaler then starts from its initial scale
    state["generators"] = []  # resume_generator: a stream fixed by (cfg.seed, rank, step)
    saved = rng_state()
    seed_everything(cfg.seed)
    state["rng"] = rng_state()
    set_rng_state(saved)  # the caller's generators are left as they were
    save_checkpoint(child_ckpt, state)
    return Path(child_ckpt)


@holds_run_lock
def train_vqgan(run: RunDir, cfg: Config, *, resume: bool = False, force: bool = False,
                stop_at: int | None = None, show_progress: bool = True) -> Path:
    """Train the VQGAN of `run` to cfg.vqgan_train.steps (or stop early at `stop_at`); returns the checkpoint."""
    tc = cfg.vqgan_train
    rank, world, device, state = start_training(run, cfg, run.vqgan_ckpt, tc.steps, "VQGAN", resume=resume,
                                                force=force)
    main = rank == 0
    plan = batch_plan(tc.batch_size, tc.micro_batch, world, "vqgan_train")
    if main:
        print(f"vqgan: {plan.describe()}")

    # flips happen below, seeded. Rank 0 builds first: an image folder is decoded once up front, by rank 0 only;
    # the others read its cached verdict
    train = dist_utils.rank0_first(lambda: build_dataset(cfg.data, "train", train_transforms=False))
    val = build_dataset(cfg.data, "val", train_transforms=False)
    if main:
        record_data_check(run, train)
    ae = vqgan_from_config(cfg).to(device)
    disc = PatchDiscriminator.from_config(cfg.vqgan).to(device)
    dist_utils.broadcast_parameters(ae)
    dist_utils.broadcast_parameters(disc)
    losses = VQGANLoss(cfg.vqgan, disc, _perceptual(cfg, device))
    betas = (tc.beta1, tc.beta2)
    fused = True if device.type == "cuda" else None  # one kernel for every tensor, no host reads of the step
    opt_ae = torch.optim.Adam(ae.parameters(), lr=tc.lr, betas=betas, weight_decay=tc.weight_decay, fused=fused)
    opt_d = torch.optim.Adam(disc.parameters(), lr=tc.lr, betas=betas, weight_decay=tc.weight_decay, fused=fused)
    dtype = amp_dtype(device, tc.amp)
    scaler, scaler_d = make_scaler(device, dtype), make_scaler(device, dtype)
    g = rank_generator(device, cfg.seed, rank)  # flips and DiffAugment
    if state is None and cfg.vqgan.code_init == "data":  # codebook starts on encoder outputs of batch 0
        first = StepBatches(len(train), plan.per_process, cfg.seed).indices(0)
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
        load_optimizer_state(opt_ae, state["optimizer"])
        load_optimizer_state(opt_d, state["disc_optimizer"])
        load_scaler_state(scaler, state["scaler"])
        load_scaler_state(scaler_d, state["disc_scaler"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        step = int(state["step"])
        resume_generator(g, state, cfg.seed, rank)

    if main:  # set up without an error: the run's config and batch plan are written now, not before
        commit_stage(run, cfg, "vqgan", plan)
    if main and state is None:
        discard_checkpoints(run.vqgan_ckpt)  # --force: the old checkpoint goes before its log is restarted
    log = MetricsLog(run.vqgan_log, resume_step=step if state is not None else None) if main else None
    end = tc.steps if stop_at is None else min(stop_at, tc.steps)
    batches = StepBatches(len(train), plan.per_process, cfg.seed, start=step, stop=end, rank=rank, world=world)
    loader = DataLoader(train, batch_sampler=batches, num_workers=tc.num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=False,
                        generator=torch.Generator().manual_seed(cfg.seed))  # leaves the global RNG alone
    x_val = torch.stack([val[i] for i in range(min(16, len(val)))]).to(device)
    bar = progress(tc.steps, step, "vqgan", show_progress and main)
    speed = Throughput()
    guard, guard_d = FiniteGuard(device), FiniteGuard(device)

    def save(at: int) -> None:
        gens = dist_utils.all_gather_states(g.get_state(), device)
        if main:
            save_checkpoint(run.vqgan_ckpt, {
                "config": cfg.to_dict(), "step": at, "model": ae.state_dict(),
                "ema": ema.state_dict() if ema is not None else None, "disc": disc.state_dict(),
                "optimizer": opt_ae.state_dict(), "disc_optimizer": opt_d.state_dict(),
                "scaler": scaler.state_dict(), "disc_scaler": scaler_d.state_dict(),
                "rng": rng_state(), "generators": gens, "generator_device": device.type,
                "code_usage": usage.cpu(), "batch": asdict(plan),
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
        parts = list(x.split(plan.micro_batch))  # the accumulation passes of this process

        # autoencoder step (Eq. 9): each pass adds the gradient of its loss / accumulation
        opt_ae.zero_grad(set_to_none=True)
        fakes, g_stats, indices = [], [], []
        for xm in parts:
            x_hat, vq_loss, q = autoencode(ae, xm, device, dtype)
            with autocast(device, dtype):
                loss, st = losses.generator_loss(xm, x_hat, vq_loss, ae.last_layer, step, generator=g, sync=False,
                                                 grad_scale=scaler.get_scale() if scaler.is_enabled() else 1.0)
            guard.add(loss, step)
            scaler.scale(loss / plan.accumulation).backward()
            fakes.append(x_hat.detach())
            g_stats.append(st)
            indices.append(q["indices"])
        dist_utils.average_gradients(ae)
        if tc.grad_clip > 0:
            scaler.unscale_(opt_ae)
            torch.nn.utils.clip_grad_norm_(ae.parameters(), tc.grad_clip)
        scaler.step(opt_ae)
        scaler.update()

        # discriminator step (hinge loss), once the GAN is switched on
        opt_d.zero_grad(set_to_none=True)  # also clears the gradients the generator loss left in D
        d_stats = []
        for xm, x_hat in zip(parts, fakes):
            with autocast(device, dtype):
                d_loss, st = losses.discriminator_loss(xm, x_hat, step, generator=g, sync=False)
            if d_loss is None:
                break
            guard_d.add(d_loss, step)
            scaler_d.scale(d_loss / plan.accumulation).backward()
            d_stats.append(st)
        if d_stats:
            dist_utils.average_gradients(disc)
            scaler_d.step(opt_d)
            scaler_d.update()
        for idx in indices:  # index_add_, not bincount: bincount on CUDA reads the maximum back to the host
            usage.index_add_(0, idx.flatten(), torch.ones(idx.numel(), device=device))
        every = cfg.vqgan.code_restart_every
        restarted = None
        if every > 0 and (step + 1) % every == 0:  # recycle dead codes onto encoder outputs of the last pass
            dist_utils.all_sum_(usage)
            with torch.no_grad():
                z = ae.encoder(parts[-1])
            restarted = float(ae.quantize.restart_codes(usage == 0, z, g))
            dist_utils.broadcast_parameters(ae.quantize)
            usage.zero_()
        if ema is not None:
            ema.update(ae)
        step += 1
        speed.add(plan.global_batch)
        bar.update(1)

        logging = step % tc.log_every == 0 or step == tc.steps
        if logging or step % tc.image_every == 0 or step % tc.ckpt_every == 0 or step == end:
            guard.check(run.vqgan_ckpt, "VQGAN")  # one host sync, before anything is logged or saved
            guard_d.check(run.vqgan_ckpt, "discriminator")
        if logging:
            stats = _mean_stats(g_stats)
            if d_stats:
                stats.update(_mean_stats(d_stats))
            q_stats = ae.quantize.usage_stats(torch.cat(indices))
            stats["perplexity"] = q_stats["perplexity"]
            stats["codes_used"] = float(q_stats["codes_used"])
            if restarted is not None:
                stats["codes_restarted"] = restarted
            stats = dist_utils.all_mean_dict(stats, device)  # one all-reduce and one host read for all of them
            rate = speed.rate()
            if main:
                bar.set_postfix(l1=f"{stats['l1']:.3f}", codes=f"{stats['codes_used']:.0f}", img_s=f"{rate:.0f}")
                log.log(step, lr=lr, images_per_s=rate, **stats)
        if main and (step % tc.image_every == 0 or step == tc.steps):
            model = ema.model if ema is not None else ae
            with torch.no_grad():
                x_rec = model.decode(model.encode(x_val)).clamp(-1, 1)
            save_image_grid(torch.cat([x_val, x_rec]), run.images / f"vqgan_recon_{step:07d}.png",
                            nrow=len(x_val), upscale=preview_upscale(cfg.data.img_size))
        if step % tc.ckpt_every == 0 or step == end:
            save(step)
    bar.close()
    dist_utils.barrier()
    return run.vqgan_ckpt
