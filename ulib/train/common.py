"""Pieces both training loops share: learning-rate warm-up, the resume decision, the global batch and its
gradient accumulation, NaN guard, resuming generators and optimisers on another device, progress."""
from __future__ import annotations

import functools
import hashlib
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ulib.data.datasets import split_record
from ulib.device import configure_matmul, resolve_device, seed_everything
from ulib.io.checkpoint import checkpoint_config, load_checkpoint
from ulib.io.files import atomic_write
from ulib.train import distributed as dist_utils


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


def resume_state(ckpt: Path, *, resume: bool, force: bool, total_steps: int, what: str) -> dict | None:
    """Decide between a fresh start and a resume; never silently overwrite a checkpoint.

    - no checkpoint: fresh start (None);
    - checkpoint and --force: fresh start (the loop deletes the old file before it restarts the log:
      `discard_checkpoints`);
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


# The settings a checkpoint is made of: a run's config may change anything else between commands (more steps, a
# new learning rate, sampling settings), but not these while the checkpoint is kept.
VQGAN_KEYS = ("data.img_size", "vqgan.n_channels", "vqgan.nf", "vqgan.ch_mult", "vqgan.res_blocks",
              "vqgan.attn_resolutions", "vqgan.norm_groups", "vqgan.codebook_size", "vqgan.emb_dim", "vqgan.ndf",
              "vqgan.disc_layers")
PRIOR_KEYS = ("prior.n_emb", "prior.n_head", "prior.n_layers", "prior.total_steps", "vqgan.codebook_size",
              "vqgan.ch_mult", "data.img_size")
RESUME_KEYS = {  # continuing a checkpoint also keeps what its training was (the data it saw, its objective)
    "VQGAN": VQGAN_KEYS + ("data.dataset", "data.path", "data.val_fraction", "data.split_seed", "data.flip",
                        "data.split_by", "data.test_fraction", "data.group_pattern"),
    "prior": PRIOR_KEYS + ("prior.loss_type",),
}


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return list(d) if isinstance(d, tuple) else d


def config_conflicts(saved: dict | None, cfg, keys) -> list[str]:
    """'key: X in the checkpoint, Y now' for each of `keys` where the checkpoint's saved config and `cfg` differ."""
    if not saved:
        return []
    now = cfg.to_dict()
    out = []
    for key in keys:
        a, b = _get(saved, key), _get(now, key)
        if a is not None and a != b:
            out.append(f"{key}={a!r} in the checkpoint, {b!r} now")
    return out


def check_against_checkpoints(run, cfg, ckpt: Path, state: dict | None, what: str) -> None:
    """Every setting (from --set, --data or a profile) against the checkpoints it must agree with, before anything
    is written: the checkpoint being resumed (`RESUME_KEYS`), and for the prior the VQGAN whose tokens it learns
    (`VQGAN_KEYS`). A conflict is a ValueError naming the keys, both values and the way out."""
    if state is not None:
        bad = config_conflicts(state.get("config"), cfg, RESUME_KEYS[what])
        if bad:
            raise ValueError(f"{ckpt} cannot be resumed with these settings: {'; '.join(bad)}. Drop the --set/--data "
                             f"that changes them (the run's config.json is unchanged), or pass --force to train the "
                             f"{what} again from scratch")
    if what == "prior" and run.vqgan_ckpt.exists():
        bad = config_conflicts(checkpoint_config(run.vqgan_ckpt), cfg, VQGAN_KEYS)
        if bad:
            raise ValueError(f"the settings disagree with the run's VQGAN {run.vqgan_ckpt}: {'; '.join(bad)}. Drop "
                             "the --set that changes them (the run's config.json is unchanged), or retrain the VQGAN "
                             "(train-vqgan --force) first")


def discard_checkpoints(*paths: Path) -> None:
    """A fresh start deletes the stage's old checkpoints (`--force`: the user asked to start from scratch) just
    before its metrics log is restarted, so a run stopped before its first save never holds the new log beside
    the old checkpoint, which `--resume` or the 'already trained' check would then take as one run."""
    for path in paths:
        path.unlink(missing_ok=True)


def start_training(run, cfg, ckpt: Path, total_steps: int, what: str, *, resume: bool, force: bool):
    """What both stages do first: pick the device (joining torchrun's process group when launched by it),
    decide fresh start vs resume (`resume_state`), check the settings against the checkpoints
    (`check_against_checkpoints`) and seed this process. Nothing is written to the run yet: the stage writes
    its config when it commits to it (`commit_stage`), just before its first step.

    Returns (rank, world, device, state); state is None for a fresh start.
    """
    rank, world, device = dist_utils.init_from_env(resolve_device(cfg.device))
    configure_matmul(device)  # TF32 matmuls on CUDA
    state = resume_state(ckpt, resume=resume, force=force, total_steps=total_steps, what=what)
    check_against_checkpoints(run, cfg, ckpt, state, what)
    seed_everything(cfg.seed + rank)
    return rank, world, device, state


def commit_stage(run, cfg, stage: str, plan: "BatchPlan") -> None:
    """The stage is set up (data read, models built, checkpoint loaded): write the run's config.json, the
    stage's batch plan and (OpenMoji) the names on each side of the split in split.json. Called by rank 0 just
    before the first step, so a command that fails earlier (a bad --set, a wrong --data, an unreadable
    checkpoint) leaves config.json as it was."""
    run.make()
    run.save_config(cfg)
    record_batch(run, stage, plan)
    record = split_record(cfg.data)
    if record is not None:  # the split is the data's, not the stage's: both stages write the same record
        text = json.dumps(record, indent=1) + "\n"
        atomic_write(run.split_file, lambda f: f.write(text.encode()))


# ---- the global batch -------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchPlan:
    """One optimiser step's batch: global_batch = processes x accumulation x micro_batch items."""

    global_batch: int  # items per optimiser step over all processes (TrainConfig.batch_size: the paper's batch)
    processes: int  # torchrun processes (GPUs)
    micro_batch: int  # items per forward/backward pass of one process
    accumulation: int  # forward/backward passes per process per optimiser step

    @property
    def per_process(self) -> int:
        return self.micro_batch * self.accumulation

    def describe(self) -> str:
        return (f"global batch {self.global_batch} = {self.processes} process(es) x {self.accumulation} "
                f"accumulation step(s) x {self.micro_batch} per pass")


def batch_plan(batch_size: int, micro_batch: int, world: int, what: str) -> BatchPlan:
    """The plan for a global `batch_size` on `world` processes; micro_batch 0 = no accumulation.
    ValueError (naming the `what` section) when the numbers do not divide."""
    if batch_size % world:
        raise ValueError(f"{what}.batch_size={batch_size} is the global batch; it cannot be split over {world} "
                         f"processes: use a multiple of {world}")
    per = batch_size // world
    micro = micro_batch or per
    if micro > per or per % micro:
        raise ValueError(f"{what}.micro_batch={micro_batch} must divide the per-process batch {per} "
                         f"({what}.batch_size={batch_size} / {world} processes)")
    return BatchPlan(batch_size, world, micro, per // micro)


def record_batch(run, stage: str, plan: BatchPlan) -> None:
    """Write the plan of `stage` into RUN/batch.json (one entry per stage), beside the run's config."""
    path = run.batch_file
    record = json.loads(path.read_text()) if path.is_file() else {}
    record[stage] = {**asdict(plan), "per_process": plan.per_process}
    text = json.dumps(record, indent=1) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def micro_batches(idx: torch.Tensor, plan: BatchPlan) -> list[torch.Tensor]:
    """This process's share of the step's batch, cut into `plan.accumulation` micro-batches.

    Each micro-batch's mean loss is divided by the accumulation count before backward, so the summed gradient
    is the gradient of the mean over the per-process batch; DDP (or `average_gradients`) then averages the
    processes: the gradient of the mean over the global batch, the same as one big batch (losses that are means
    over items, with equal micro-batches)."""
    return list(idx.split(plan.micro_batch))


# ---- resuming on another device ------------------------------------------------------------------------
def restore_generator(g: torch.Generator, saved: torch.Tensor, saved_device: str | None) -> None:
    """Continue `g` from a checkpointed state. A state from another device type cannot be loaded (the CPU's
    Mersenne Twister holds 5056 bytes, CUDA's Philox 16), so `g` is then re-seeded from a hash of the saved
    state: deterministic for that checkpoint, with a warning that the draws differ from an uninterrupted run."""
    if saved_device in (None, g.device.type) and saved.numel() == g.get_state().numel():
        g.set_state(saved)
        return
    seed = int.from_bytes(hashlib.sha256(saved.cpu().numpy().tobytes()).digest()[:8], "little") >> 1
    g.manual_seed(seed)
    warnings.warn(f"resuming on {g.device.type} from a checkpoint written on {saved_device or 'another device'}: "
                  "its random generator cannot carry over, so it is re-seeded from the saved state (the "
                  "continuation is deterministic but not the draws of an uninterrupted run)", stacklevel=2)


def rank_generator(device: torch.device, seed: int, rank: int) -> torch.Generator:
    """This process's generator (time steps, masks, flips, DiffAugment), seeded by (seed, rank)."""
    return torch.Generator(device=device).manual_seed(seed * 7919 + rank)


def resume_generator(g: torch.Generator, state: dict, seed: int, rank: int) -> None:
    """Continue this rank's generator from a checkpoint: its saved state, or, where the job has more processes
    than the run that saved it, a new stream for this rank fixed by (seed, rank, step)."""
    gens = state["generators"]
    if rank < len(gens):
        restore_generator(g, gens[rank], state.get("generator_device"))
    else:
        g.manual_seed(seed * 7919 + rank + 1_000_003 * int(state["step"]))


def make_adamw(params, tc, device: torch.device) -> torch.optim.AdamW:
    """AdamW with the section's settings; on CUDA the fused kernel (one launch for every tensor)."""
    return torch.optim.AdamW(params, lr=tc.lr, betas=(tc.beta1, tc.beta2), weight_decay=tc.weight_decay,
                             fused=True if device.type == "cuda" else None)


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict) -> None:
    """`opt.load_state_dict(state)`, keeping this optimiser's own `fused` choice (a checkpoint's saved groups
    would otherwise carry CUDA's fused=True to the CPU), with Adam's step counters where that choice wants
    them: on the parameter's device for fused, on the CPU otherwise."""
    fused = [group.get("fused") for group in opt.param_groups]
    opt.load_state_dict(state)
    for group, f in zip(opt.param_groups, fused):
        if "fused" in group:
            group["fused"] = f
        for p in group["params"]:
            st = opt.state.get(p, {})
            if torch.is_tensor(st.get("step")):
                on = p.device if f or group.get("capturable") else torch.device("cpu")
                st["step"] = st["step"].to(on, torch.float32)


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
