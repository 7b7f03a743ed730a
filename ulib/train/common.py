"""Pieces both training loops share: the 'already trained' signal, the run's lock around a loop, learning-rate
warm-up and the optimiser, the NaN guard, throughput and progress. Starting or resuming a stage is in
`ulib.train.resume`, the global batch and its gradient accumulation in `ulib.train.batch_plan`."""
from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ulib.io.checkpoint import load_checkpoint


class AlreadyTrained(Exception):
    """The run's checkpoint already reached the requested number of steps."""


def holds_run_lock(train):
    """Decorator of a training loop `train(run, cfg, ...)`: the loop runs holding the run's lock (`RunDir.lock`),
    so two trainings (two shells, two notebooks) never write one run at once; the second stops with an error
    naming the first."""
    @functools.wraps(train)
    def locked(run, *args, **kwargs):
        with run.lock():
            return train(run, *args, **kwargs)

    return locked


def warmup_lr(step: int, base_lr: float, warmup_steps: int) -> float:
    """Linear warm-up from base_lr/warmup to base_lr over `warmup_steps` steps, then constant."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return base_lr
    return base_lr * (step + 1) / warmup_steps


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def make_adamw(params, tc, device: torch.device) -> torch.optim.AdamW:
    """AdamW with the section's settings; on CUDA the fused kernel (one launch for every tensor)."""
    return torch.optim.AdamW(params, lr=tc.lr, betas=(tc.beta1, tc.beta2), weight_decay=tc.weight_decay,
                             fused=True if device.type == "cuda" else None)


# ---- the NaN guard -------------------------------------------------------------------------------------
class FiniteGuard:
    """NaN/inf watch on the loss without a host sync per step: the first bad step and its value stay on the
    device (`add`), and `check` reads them (one sync) at log steps and before every checkpoint, so a bad step
    never reaches a saved file."""

    def __init__(self, device):
        self.step = torch.full((), -1, dtype=torch.long, device=device)
        self.value = torch.zeros((), device=device)

    def add(self, loss: torch.Tensor, step: int) -> None:
        v = loss.detach().float().reshape(())
        new = ~torch.isfinite(v) & (self.step < 0)
        self.step = torch.where(new, step, self.step)
        self.value = torch.where(new, v, self.value)

    def check(self, ckpt: Path, what: str) -> None:
        step = int(self.step)
        if step >= 0:
            check_finite(float(self.value), step, ckpt, what)


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

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True,
                mininterval=1.0)
