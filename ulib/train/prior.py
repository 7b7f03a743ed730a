"""Stage 2 training: the absorbing diffusion prior on cached token grids (paper section 3.2).

AdamW (fused on CUDA) with linear warm-up, gradient clipping, EMA of the weights, mixed precision on CUDA, DDP
under torchrun, a global batch (TrainConfig.batch_size) split over processes and gradient-accumulation passes,
an opt-in torch.compile. The token grids sit on the device in their small integer dtype and are widened per
batch; nothing reads a value back to the host between log steps. Every random draw of a step (t, the masks,
dropout, flips) comes from checkpointed generators,
and batches are a function of the step (`ulib.data.batches`), so `--resume` continues exactly where an
uninterrupted run would be.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from ulib.config import Config
from ulib.data.batches import StepBatches
from ulib.device import amp_dtype, autocast, load_scaler_state, make_scaler
from ulib.io.checkpoint import checkpoint_fields, rng_state, save_checkpoint, set_rng_state, unwrap
from ulib.io.logs import MetricsLog, preview_upscale, save_image_grid
from ulib.io.rundir import RunDir
from ulib.models import from_modules, load_vqgan
from ulib.prior.absorbing import AbsorbingDiffusion
from ulib.prior.autoregressive import ar_loss
from ulib.prior.likelihood import absorbing_elbo, ar_nll
from ulib.sample.api import sample_images
from ulib.train import distributed as dist_utils
from ulib.train.batch_plan import batch_plan, micro_batches
from ulib.train.common import FiniteGuard, Throughput, holds_run_lock, make_adamw, progress, set_lr, warmup_lr
from ulib.train.ema import EMA
from ulib.train.latents import latents_fingerprint, load_latents_distributed
from ulib.train.resume import (
    commit_stage,
    discard_checkpoints,
    load_optimizer_state,
    rank_generator,
    resume_generator,
    start_training,
)
from ulib.trained import prior_from_config, retrain_prior_hint, vqgan_digest


def _flatten(tokens: torch.Tensor) -> torch.Tensor:
    return tokens.reshape(tokens.shape[0], -1).long()  # (N, h, w) -> (N, L)


VALIDATION_GRIDS = 256  # the first grids of the validation split scored at every validation point


@torch.no_grad()
def validation_metric(net, cfg: Config, diffusion: AbsorbingDiffusion, val: torch.Tensor, device, seed: int,
                      max_items: int = VALIDATION_GRIDS) -> dict:
    """Validation likelihood in bits/token on up to `max_items` grids: a one-draw negative-ELBO estimate
    (Eq. 6) for the absorbing prior (whatever its training loss: Fig. 5), the exact NLL for the AR prior."""
    data = val[:max_items].to(device)
    if cfg.prior.kind == "autoregressive":
        return {"val_nll_bpt": ar_nll(net, data).bits_per_token}
    g = torch.Generator(device=device).manual_seed(seed)
    return {"val_elbo_bpt": absorbing_elbo(diffusion, net, data, mc=1, generator=g).bits_per_token}


def tokens_changed(run: RunDir, cfg: Config) -> str | None:
    """Why the run's prior checkpoint (of cfg.prior.kind) no longer fits the tokens the run's VQGAN and data
    give now, or None (no checkpoint, or it fits). A prior checkpoint records the latents fingerprint it was
    trained on; one saved before ulib recorded it cannot be checked (a warning, None)."""
    ckpt = run.prior_ckpt_for(cfg.prior.kind)
    saved = checkpoint_fields(ckpt, "latents_fingerprint", "vqgan_digest")
    if saved is None:
        return None
    if saved["latents_fingerprint"] is None:
        warnings.warn(f"{ckpt} does not record the tokens it was trained on (saved before ulib recorded it): "
                      f"whether it fits {run.vqgan_ckpt} and the data config cannot be checked", stacklevel=2)
        return None
    now = latents_fingerprint(cfg, run.vqgan_ckpt)
    if saved["latents_fingerprint"] == now:
        return None
    digest = vqgan_digest(run.vqgan_ckpt)
    changed = (f"{run.vqgan_ckpt} is another VQGAN checkpoint (digest {saved['vqgan_digest']}, now {digest})"
               if saved["vqgan_digest"] != digest else
               f"the data config changed (latents fingerprint {saved['latents_fingerprint']}, now {now})")
    return (f"{ckpt} was trained on tokens of another VQGAN checkpoint or data: {changed}; pass --force to train "
            f"the prior again ({retrain_prior_hint(ckpt, cfg.prior.kind)})")


@holds_run_lock
def train_prior(run: RunDir, cfg: Config, *, resume: bool = False, force: bool = False,
                stop_at: int | None = None, show_progress: bool = True) -> Path:
    """Train the prior of `run` to cfg.prior_train.steps (or stop early at `stop_at`); returns the checkpoint.

    A checkpoint trained on the tokens of another VQGAN checkpoint or data is neither resumed nor reused as
    already trained: ValueError (`tokens_changed`), unless `force`."""
    tc = cfg.prior_train
    ckpt, log_file = run.prior_ckpt_for(cfg.prior.kind), run.prior_log_for(cfg.prior.kind)
    if not force and (why := tokens_changed(run, cfg)):
        raise ValueError(why)
    rank, world, device, state = start_training(run, cfg, ckpt, tc.steps, "prior", resume=resume, force=force)
    main = rank == 0

    plan = batch_plan(tc.batch_size, tc.micro_batch, world, "prior_train")
    if main:
        print(f"{ckpt.stem}: {plan.describe()}")
    # data: token grids encoded once by the trained VQGAN (every process encodes its share when the cache is
    # missing or stale). On the device in their stored uint8/int16 (1.5 GB for LSUN Bedrooms instead of 12 GB
    # of int64), widened per batch.
    latents = load_latents_distributed(cfg, run.vqgan_ckpt, run.latents, device, rank, world, progress=show_progress)
    # what every checkpoint records of the VQGAN whose tokens it models (checked by `tokens_changed` before a
    # resume, by `ulib.trained.load_run_prior` before sampling)
    made_from = {"vqgan_digest": vqgan_digest(run.vqgan_ckpt), "latents_fingerprint": latents["fingerprint"]}
    train = latents["train"].reshape(len(latents["train"]), -1).to(device)  # (N, L)
    train_flipped = (latents["train_flipped"].reshape(len(train), -1).to(device)
                     if "train_flipped" in latents else None)
    val = _flatten(latents["val"])
    del latents

    net = prior_from_config(cfg).to(device)
    ar = cfg.prior.kind == "autoregressive"  # the paper's AR baseline (Table 4), same transformer made causal
    diffusion = AbsorbingDiffusion(cfg.prior.total_steps, cfg.mask_id, cfg.prior.loss_type)
    opt = make_adamw(net.parameters(), tc, device)
    dtype = amp_dtype(device, tc.amp)
    scaler = make_scaler(device, dtype)
    ema = EMA(net, tc.ema_decay) if tc.ema_decay > 0 else None
    g = rank_generator(device, cfg.seed, rank)  # t, masks and flips

    step = 0
    # keep_best: the best validation score so far and its step (restored on resume, so a resumed run keeps
    # the same best checkpoint as an uninterrupted one)
    best = {"val": float("inf"), "step": None}
    if state is not None:
        best = dict(state.get("best") or best)
        net.load_state_dict(state["model"])
        load_optimizer_state(opt, state["optimizer"])
        load_scaler_state(scaler, state["scaler"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        step = int(state["step"])
        resume_generator(g, state, cfg.seed, rank)
    ddp = DDP(net, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else None
    model = ddp or net
    if tc.compile:  # opt-in: compiles on the first step (seconds to minutes), then fewer, fused kernels
        model = torch.compile(model)

    vqgan = load_vqgan(run, device, cfg=cfg) if main else None
    if main:  # set up without an error: the run's config and batch plan are written now, not before
        commit_stage(run, cfg, ckpt.stem, plan)
    if main and state is None:  # --force: the old checkpoints go before their log is restarted
        discard_checkpoints(ckpt, run.prior_best_for(cfg.prior.kind))
    log = MetricsLog(log_file, resume_step=step if state is not None else None) if main else None
    end = tc.steps if stop_at is None else min(stop_at, tc.steps)
    batches = StepBatches(len(train), plan.per_process, cfg.seed, start=step, stop=end, rank=rank, world=world)
    bar = progress(tc.steps, step, "prior", show_progress and main)
    speed = Throughput()
    guard = FiniteGuard(device)

    def save(at: int) -> None:
        gens = dist_utils.all_gather_states(g.get_state(), device)
        if main:
            save_checkpoint(ckpt, {
                "config": cfg.to_dict(), "step": at, "model": unwrap(model).state_dict(),
                "ema": ema.state_dict() if ema is not None else None, "optimizer": opt.state_dict(),
                "scaler": scaler.state_dict(), "rng": rng_state(), "generators": gens,
                "generator_device": device.type, "batch": asdict(plan), "best": dict(best), **made_from,
            })

    def save_best(at: int, score: float, key: str) -> None:
        # weights only (for evaluation; resume always uses the last checkpoint), written atomically
        save_checkpoint(run.prior_best_for(cfg.prior.kind), {
            "config": cfg.to_dict(), "step": at, "model": unwrap(model).state_dict(),
            "ema": ema.state_dict() if ema is not None else None, "best": {"val": score, "step": at, "metric": key},
            **made_from,
        })

    if state is not None:  # last, after everything that draws from the global generators while setting up
        set_rng_state(state["rng"])
    net.train()
    keys = ("loss", "nll_bpt") if ar else ("loss", "elbo_bpt", "ce_masked")
    for s in range(batches.start, end):
        idx = batches.index_tensor(s).to(device, non_blocking=True)
        lr = warmup_lr(step, tc.lr, tc.warmup_steps)
        set_lr(opt, lr)
        opt.zero_grad(set_to_none=True)
        outs = []
        parts = micro_batches(idx, plan)
        for i, part in enumerate(parts):
            x0 = train[part].long()  # (b, L)
            if train_flipped is not None:  # use the mirrored image's tokens with probability 1/2
                use = torch.rand(len(part), generator=g, device=device) < 0.5
                x0 = torch.where(use[:, None], train_flipped[part].long(), x0)
            # DDP all-reduces the gradients after the last pass only
            quiet = ddp.no_sync() if ddp is not None and i < len(parts) - 1 else contextlib.nullcontext()
            with quiet:
                with autocast(device, dtype):
                    out = ar_loss(model, x0) if ar else diffusion.training_losses(model, x0, generator=g)
                scaler.scale(out["loss"] / plan.accumulation).backward()  # mean over the step's batch
            guard.add(out["loss"], step)
            outs.append({k: out[k].detach() for k in keys})
        if tc.grad_clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), tc.grad_clip)
        scaler.step(opt)
        scaler.update()
        if ema is not None:
            ema.update(net)
        step += 1
        speed.add(plan.global_batch)
        bar.update(1)

        row = {}
        logging, imaging = step % tc.log_every == 0 or step == tc.steps, step % tc.image_every == 0 or step == tc.steps
        if logging or imaging or step % tc.ckpt_every == 0 or step == end:
            guard.check(ckpt, "prior")  # the one host sync between log steps' reads, before anything is saved
        if logging:
            stats = dist_utils.all_mean_dict({k: torch.stack([o[k] for o in outs]).float().mean() for k in keys},
                                             device)
            rate = speed.rate()
            row.update(lr=lr, images_per_s=rate, **stats)
            bar.set_postfix(loss=f"{stats['loss']:.3f}", img_s=f"{rate:.0f}")
        if main and imaging:
            eval_net = ema.model if ema is not None else net
            net.eval()
            scores = validation_metric(eval_net, cfg, diffusion, val, device, seed=cfg.seed)
            row.update(scores)
            key, score = next(iter(scores.items()))
            if tc.keep_best and score < best["val"]:
                best = {"val": score, "step": step}
                save_best(step, score, key)
            imgs = sample_images(from_modules(vqgan, eval_net, cfg), min(cfg.sample.n, 16), seed=cfg.seed)
            net.train()
            save_image_grid(imgs, run.images / f"prior_samples_{step:07d}.png",
                            upscale=preview_upscale(cfg.data.img_size))
        if main and row:
            log.log(step, **row)
        if step % tc.ckpt_every == 0 or step == end:
            save(step)
    bar.close()
    dist_utils.barrier()
    return ckpt
