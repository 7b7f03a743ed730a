"""Starting a training stage, fresh or resumed: the resume decision (never a silent overwrite), the settings
checked against the checkpoints they must agree with, the run's config committed just before the first step,
and random generators and optimisers continued from a checkpoint, on another device too."""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch

from ulib.data.datasets import split_record
from ulib.device import configure_matmul, resolve_device, seed_everything
from ulib.io.checkpoint import checkpoint_config, load_checkpoint
from ulib.io.files import atomic_write
from ulib.train import distributed as dist_utils
from ulib.train.batch_plan import BatchPlan, record_batch
from ulib.train.common import AlreadyTrained


# ---- fresh start or resume -----------------------------------------------------------------------------
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


def commit_stage(run, cfg, stage: str, plan: BatchPlan) -> None:
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
