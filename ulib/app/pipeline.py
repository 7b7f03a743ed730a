"""The whole method in one call (`python -m ulib pipeline`, `make demo`): both stages, then pictures.

Each stage reuses its output when the run already has it (load if present, else train); a prior trained on the
tokens of another VQGAN checkpoint is an error, not reused (`ulib.train.prior.tokens_changed`): --force trains
every stage again.

Under torchrun (`torchrun --nproc_per_node=8 -m ulib pipeline ...`) every process joins the group first; the
training stages and the encode (each process encodes its share, `load_latents_distributed`) run on all of them,
the pictures on rank 0 only.
"""
from __future__ import annotations

import time

import torch

from ulib.app.commands import sample_uint8
from ulib.config import Config
from ulib.data.datasets import build_dataset
from ulib.device import resolve_device
from ulib.io.logs import preview_upscale, save_image_grid
from ulib.io.rundir import RunDir
from ulib.models import load_run, load_vqgan
from ulib.train import distributed as dist_utils
from ulib.train.common import AlreadyTrained
from ulib.train.latents import load_latents_distributed
from ulib.train.prior import tokens_changed, train_prior
from ulib.train.vqgan import train_vqgan


@torch.no_grad()
def save_reconstructions(run: RunDir, cfg: Config, device, n: int = 32) -> None:
    """Validation images (odd rows) above their VQGAN reconstructions (even rows)."""
    vqgan = load_vqgan(run, device, cfg=cfg)
    ds = build_dataset(cfg.data, "val", train_transforms=False)
    x = torch.stack([ds[i] for i in range(min(n, len(ds)))]).to(device)
    x_hat = vqgan.decode(vqgan.encode(x)).clamp(-1, 1)
    per_row = 8
    rows = []
    for i in range(0, len(x), per_row):
        rows += [x[i: i + per_row], x_hat[i: i + per_row]]
    save_image_grid(torch.cat(rows), run.reconstructions, nrow=per_row, upscale=preview_upscale(cfg.data.img_size))


def _stage(name: str, fn) -> float:
    t0 = time.perf_counter()
    try:
        fn()
    except AlreadyTrained as e:
        print(f"[{name}] {e}: reusing it")
    return time.perf_counter() - t0


def run_pipeline(run: RunDir, cfg: Config, *, resume: bool = False, force: bool = False,
                 show_progress: bool = True) -> dict:
    rank, world, device = dist_utils.init_from_env(resolve_device(cfg.device))  # (0, 1, device) without torchrun
    main = rank == 0
    if main:
        print(f"run {run.path} | profile {cfg.profile} | device {device} | dataset {cfg.data.dataset} "
              f"{cfg.data.img_size}px | latents {cfg.latent_size}x{cfg.latent_size}, codebook {cfg.vqgan.codebook_size}"
              + (f" | {world} processes" if world > 1 else ""))
    times = {}
    times["train-vqgan"] = _stage("train-vqgan", lambda: train_vqgan(
        run, cfg, resume=resume, force=force, show_progress=show_progress))
    if not force and (why := tokens_changed(run, cfg)):  # before anything is encoded: that prior is not reused
        raise ValueError(why)
    if main:
        times["reconstructions"] = _stage("reconstructions", lambda: save_reconstructions(run, cfg, device))
    times["encode"] = _stage("encode", lambda: load_latents_distributed(cfg, run.vqgan_ckpt, run.latents, device,
                                                                        rank, world, progress=show_progress))
    times["train-prior"] = _stage("train-prior", lambda: train_prior(
        run, cfg, resume=resume, force=force, show_progress=show_progress))

    def samples():
        images = sample_uint8(load_run(run, device, cfg=cfg), cfg.sample.n, seed=cfg.seed)  # in batches of 64
        save_image_grid(images, run.samples, upscale=preview_upscale(cfg.data.img_size))

    if not main:
        return times
    times["sample"] = _stage("sample", samples)
    print("\n".join([
        "", "done. " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items()),
        f"  reconstructions: {run.reconstructions}",
        f"  samples:         {run.samples}",
        f"  metrics:         {run.vqgan_log}, {run.prior_log}",
        f"  checkpoints:     {run.vqgan_ckpt}, {run.prior_ckpt}",
        f"  config:          {run.config_file}",
        "Images from OpenMoji (CC BY-SA 4.0)." if cfg.data.dataset == "openmoji" else "",
    ]))
    return times
