"""Checkpoints that survive crashes: atomic saves, safe loads, RNG state, state-dict checks, and the model a
wrapper holds (what a checkpoint saves).

A training run writes its checkpoint every few hundred steps; a crash (or Ctrl-C, or a full disk) in the
middle of `torch.save` must never destroy the previous good checkpoint. So `save_checkpoint` writes through
`ulib.io.files.atomic_write` (a temporary file beside the target, fsynced, then renamed over the target;
`os.replace` is atomic on POSIX and Windows). Loading uses `weights_only=True`, so a checkpoint holds only tensors and
plain Python values; `rng_state` packs the random generators into exactly that form, so a resumed run
draws the same numbers as an uninterrupted one.
"""
from __future__ import annotations

import os
import random
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from ulib.io.files import atomic_write

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_config",
    "checkpoint_fields",
    "rng_state",
    "set_rng_state",
    "check_state_dict",
    "unwrap",
]


# ---- save / load -------------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Atomically `torch.save(state)` to `path`; the previous file survives any failure."""
    if not isinstance(state, dict):
        raise TypeError(f"save_checkpoint: state must be a dict, got {type(state).__name__}")
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike, map_location="cpu", what: str = "checkpoint", hint: str = "") -> dict:
    """`torch.load(path, map_location, weights_only=True)` with errors that name the file.

    Missing file -> FileNotFoundError naming `what`, listing the files beside it with the same suffix (.pt
    when it has none) if its folder exists, and ending with `hint` (e.g. where released files go).
    Truncated, corrupt or not-a-checkpoint file -> ValueError naming the file and the underlying error.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"{what} {str(path)!r} does not exist"
        suffix = path.suffix or ".pt"
        if path.parent.is_dir():
            present = sorted(p.name for p in path.parent.glob(f"*{suffix}"))
            msg += f"; {suffix} files in {str(path.parent)!r}: {', '.join(present) if present else '(none)'}"
        else:
            msg += f" (folder {str(path.parent)!r} does not exist either)"
        raise FileNotFoundError(f"{msg}. {hint}" if hint else msg)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise  # permissions and the like: the OS error already names the file
    except Exception as e:  # RuntimeError (bad zip), EOFError (empty), UnpicklingError (disallowed type)
        raise ValueError(
            f"checkpoint {str(path)!r} could not be loaded; it is truncated, corrupt or not a torch "
            f"checkpoint ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {str(path)!r} holds a {type(state).__name__}, expected a dict")
    return state


def checkpoint_fields(path: str | os.PathLike, *keys: str) -> dict | None:
    """{key: value or None} of a checkpoint's top-level `keys`, read memory-mapped where the format allows (its
    tensors are not read); None when the file is missing, unreadable or not a dict."""
    path = Path(path)
    if not path.is_file():
        return None
    for mmap in (True, False):  # files of the legacy (non-zip) format cannot be memory-mapped
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception:
            continue
        return {k: state.get(k) for k in keys} if isinstance(state, dict) else None
    return None


def checkpoint_config(path: str | os.PathLike) -> dict | None:
    """The config dict stored in a checkpoint (`checkpoint_fields`), or None."""
    cfg = (checkpoint_fields(path, "config") or {}).get("config")
    return cfg if isinstance(cfg, dict) else None


# ---- random number generators ------------------------------------------------------------------------
def rng_state() -> dict:
    """Python, NumPy (legacy global), torch CPU and every CUDA device's RNG state, as weights_only-safe data.

    Only tensors, ints, floats, str, lists and None appear, so the dict can go inside a checkpoint that
    `torch.load(..., weights_only=True)` reads back.
    """
    version, py_words, gauss_next = random.getstate()  # (3, tuple of 625 uint32 words, None or float)
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()  # ('MT19937', (624,) uint32, ...)
    return {
        "python": {
            "version": int(version),
            "state": torch.tensor(py_words, dtype=torch.int64),  # uint32 words fit in int64
            "gauss_next": gauss_next,
        },
        "numpy": {
            "kind": str(np_kind),
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state()` captured, so all generators continue exactly where they were."""
    expected = {"python", "numpy", "torch", "cuda"}
    if not isinstance(state, dict) or not expected <= set(state):
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"set_rng_state: expected a dict from rng_state() with keys {sorted(expected)}, got {got}")
    py = state["python"]
    random.setstate((py["version"], tuple(int(w) for w in py["state"].tolist()), py["gauss_next"]))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    cuda = list(state["cuda"])
    if cuda:
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if available < len(cuda):
            warnings.warn(
                f"set_rng_state: the state holds {len(cuda)} CUDA generator(s) but {available} CUDA device(s) "
                f"exist; restoring the first {min(available, len(cuda))} only",
                stacklevel=2,
            )
        for i, s in enumerate(cuda[:available]):
            torch.cuda.set_rng_state(s.cpu(), device=i)


# ---- state-dict compatibility ------------------------------------------------------------------------
_MAX_LISTED = 20


def _shape(t) -> str:
    shape = getattr(t, "shape", None)
    return "(not a tensor)" if shape is None else "(" + ", ".join(str(s) for s in shape) + ")"


def _listing(title: str, items: list[str]) -> str:
    lines = [f"  {title} ({len(items)}):"]
    lines += [f"    {item}" for item in items[:_MAX_LISTED]]
    if len(items) > _MAX_LISTED:
        lines.append(f"    ... and {len(items) - _MAX_LISTED} more")
    return "\n".join(lines)


def check_state_dict(
    module: torch.nn.Module, state_dict: dict, what: str, ignore_prefixes: tuple[str, ...] = ()
) -> None:
    """Raise ValueError, headed by `what`, if `state_dict` does not fit `module` key for key and shape for shape.

    Keys starting with any of `ignore_prefixes` are skipped on both sides (e.g. a frozen LPIPS network
    that one side holds and the other does not). Each list shows up to 20 entries and its full count.
    """
    if isinstance(ignore_prefixes, str):
        ignore_prefixes = (ignore_prefixes,)  # a bare string would otherwise be read as its characters
    ignore_prefixes = tuple(ignore_prefixes)

    def kept(keys):
        return {k for k in keys if not (ignore_prefixes and k.startswith(ignore_prefixes))}

    model_sd = module.state_dict()
    model_keys, ckpt_keys = kept(model_sd), kept(state_dict)
    missing = sorted(model_keys - ckpt_keys)
    unexpected = sorted(ckpt_keys - model_keys)
    mismatched = [
        f"{k}: checkpoint {_shape(state_dict[k])} vs model {_shape(model_sd[k])}"
        for k in sorted(model_keys & ckpt_keys)
        if getattr(state_dict[k], "shape", None) != getattr(model_sd[k], "shape", None)
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = [f"{what}:"]
    if missing:
        parts.append(_listing("missing keys (in the model, not in the checkpoint)", missing))
    if unexpected:
        parts.append(_listing("unexpected keys (in the checkpoint, not in the model)", unexpected))
    if mismatched:
        parts.append(_listing("shape mismatches", mismatched))
    raise ValueError("\n".join(parts))


# ---- wrappers ----------------------------------------------------------------------------------------
def unwrap(model):
    """The plain module inside DistributedDataParallel / DataParallel / torch.compile wrappers (nested too).

    Any non-Module object with a `.module` that is a Module (a DDP-like wrapper) is unwrapped as well; an
    ordinary nn.Module is returned as is even if it has a child called `module`.
    """
    # torch.compile's wrapper class; if torch._dynamo was never imported, nothing can be compiled (and
    # importing it here would cost a second), so an empty tuple matches nothing.
    dynamo = sys.modules.get("torch._dynamo.eval_frame")
    compiled = (dynamo.OptimizedModule,) if dynamo is not None else ()
    parallel = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    while True:
        if isinstance(model, parallel):
            model = model.module
        elif isinstance(model, compiled):
            model = model._orig_mod
        elif not isinstance(model, torch.nn.Module) and isinstance(getattr(model, "module", None), torch.nn.Module):
            model = model.module
        else:
            return model
