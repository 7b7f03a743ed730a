"""Pieces both training loops share: learning-rate warm-up, the resume decision, NaN guard, progress."""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from .checkpoint import load_checkpoint


class AlreadyTrained(Exception):
    """The run's checkpoint already reached the requested number of steps."""


def warmup_lr(step: int, base_lr: float, warmup_steps: int) -> float:
    """Linear warm-up from base_lr/warmup to base_lr over `warmup_steps` steps, then constant."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return base_lr
    return base_lr * (step + 1) / warmup_steps


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def resume_state(ckpt: Path, *, resume: bool, force: bool, total_steps: int, what: str) -> dict | None:
    """Decide between a fresh start and a resume; never silently overwrite a checkpoint.

    - no checkpoint: fresh start (None);
    - checkpoint and --force: fresh start (the old file is replaced at the first save);
    - checkpoint and --resume: its state (AlreadyTrained when it is at total_steps already);
    - checkpoint at total_steps without flags: AlreadyTrained (load-if-present);
    - unfinished checkpoint without flags: ValueError asking for --resume or --force.
    """
    if not ckpt.exists() or force:
        return None
    state = load_checkpoint(ckpt)
    step = int(state["step"])
    if step >= total_steps:
        raise AlreadyTrained(f"{what} in {ckpt} is already trained ({step}/{total_steps} steps)")
    if not resume:
        raise ValueError(
            f"{ckpt} holds an unfinished {what} run at step {step}/{total_steps}; pass --resume to continue "
            f"it or --force to start again from scratch"
        )
    return state


def start_training(run, cfg, ckpt: Path, total_steps: int, what: str, *, resume: bool, force: bool):
    """What both stages do first: pick the device (joining torchrun's process group when launched by it),
    decide fresh start vs resume (`resume_state`), write the run's config (rank 0) and seed this process.

    Returns (rank, world, device, state); state is None for a fresh start.
    """
    from . import distributed as dist_utils
    from .device import resolve_device, seed_everything

    rank, world, device = dist_utils.init_from_env(resolve_device(cfg.device))
    state = resume_state(ckpt, resume=resume, force=force, total_steps=total_steps, what=what)
    if rank == 0:
        run.make()
        run.save_config(cfg)
    seed_everything(cfg.seed + rank)
    return rank, world, device, state


def check_finite(value: float, step: int, ckpt: Path, what: str) -> None:
    """Stop training on a NaN/inf loss, naming the step and the last good checkpoint."""
    if math.isfinite(value):
        return
    last = "none was written yet"
    if ckpt.exists():
        try:
            last = f"{ckpt} (step {int(load_checkpoint(ckpt)['step'])})"
        except (ValueError, KeyError):
            last = str(ckpt)
    raise FloatingPointError(
        f"{what} loss became {value} at step {step}; training stopped. The last good checkpoint is {last}: "
        f"lower the learning rate (or switch off amp) and continue with --resume"
    )


class Throughput:
    """Items per second over the recent interval."""

    def __init__(self):
        self.t, self.n = time.perf_counter(), 0

    def add(self, n: int) -> None:
        self.n += n

    def rate(self) -> float:
        now = time.perf_counter()
        r = self.n / max(now - self.t, 1e-9)
        self.t, self.n = now, 0
        return r


def progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True,
                mininterval=1.0)
