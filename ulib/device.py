"""Devices, mixed precision and seeding. Nothing else in ulib names a device: callers pass one in."""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; anything else is passed to torch.device (checked)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"device={name!r} is not a torch device ({e}); use 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was asked for but CUDA is not available here; use 'auto' or 'cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ValueError(f"device={name!r}: this machine has {n} CUDA device(s); allowed: 'cuda', 'cuda:0'.."
                         f"'cuda:{n - 1}', 'cpu'")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device={name!r} was asked for but MPS is not available here; use 'auto' or 'cpu'")
    return dev


def native_bf16(device: torch.device) -> bool:
    """True on a CUDA device whose tensor cores do bf16 (Ampere and later). `including_emulation=False`:
    T4 and V100 "support" bf16 only by emulating it in fp32 units, slower than fp16 or plain fp32."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """Reduced precision for autocast, or None. Only CUDA: CPUs without bf16 units run it far slower.
    bf16 where the GPU has it natively, else fp16 (with a GradScaler, `make_scaler`)."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if native_bf16(device) else torch.float16


def decoder_dtype(dtype: torch.dtype | None) -> torch.dtype | None:
    """Autocast dtype for the VQGAN's generator (decoder): fp16's range (max 65504) is too small for its
    full-resolution activations at 256 px and for the adaptive weight's gradients (Eq. 9c), so under fp16 it
    runs in fp32; bf16 has fp32's range and keeps it."""
    return None if dtype == torch.float16 else dtype


def sampling_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Autocast dtype of the prior's forward pass while sampling: 'fp32' -> None, 'bf16' -> bfloat16, 'auto' ->
    bf16 on a GPU with native bf16, else None (CPUs and older GPUs: fp32). The samplers' softmax and draws
    stay in fp32/fp64 either way (they call .float() on the logits)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; allowed: {', '.join(PRECISIONS)}")
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and native_bf16(device):
        return torch.bfloat16
    return None


PRECISIONS = ("auto", "fp32", "bf16")


def exact_float(device) -> torch.dtype:
    """float64 for sums and CDFs that want it, except on MPS, which has no float64 (float32 there)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def configure_matmul(device: torch.device) -> None:
    """On CUDA, let float32 matmuls and convolutions use TF32 tensor cores ("high": 10-bit mantissa inputs,
    fp32 accumulation; ~8x the fp32 rate on A100/H100); elsewhere nothing changes."""
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True


def _matmul_backends() -> list:
    """torch's per-backend float32 matmul settings (`torch.backends.cuda.matmul`, `torch.backends.mkldnn.matmul`,
    each with an `fp32_precision`), where this torch has them; [] on older versions."""
    mkldnn = getattr(torch.backends, "mkldnn", None)
    spaces = (getattr(torch.backends.cuda, "matmul", None), getattr(mkldnn, "matmul", None))
    return [ns for ns in spaces if ns is not None and hasattr(ns, "fp32_precision")]


@contextlib.contextmanager
def full_precision_matmul():
    """float32 matmuls at full fp32 precision inside the block ("highest": no TF32 on CUDA, no TF32/bf16 in
    oneDNN on CPUs), whatever the process set (`configure_matmul` sets "high" for all of it); the previous
    settings come back on exit, also after an exception. For results that must not depend on the path taken,
    such as the codebook's argmin (`VectorQuantizer.nearest`). Convolutions (cuDNN's own TF32 switch) are left
    as they are. The setting is process-wide: another thread's matmuls meanwhile run at "highest" too.

    torch keeps the legacy setting (`set_float32_matmul_precision`) beside per-backend ones (`fp32_precision`,
    newer versions); both are saved and put back, the legacy one first, as setting it rewrites the others. A mix
    set through the per-backend API alone, which the legacy getter refuses to read (RuntimeError), comes back
    per backend."""
    spaces = _matmul_backends()
    try:
        legacy = torch.get_float32_matmul_precision()
    except RuntimeError:  # per-backend values that disagree with the legacy one
        legacy = None
    per_backend = [ns.fp32_precision for ns in spaces]
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        if legacy is not None:
            torch.set_float32_matmul_precision(legacy)
        for ns, value in zip(spaces, per_backend):
            ns.fp32_precision = value


def autocast(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast for `dtype`, or a no-op context when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A GradScaler that is active only for float16 (bfloat16 needs none)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def load_scaler_state(scaler: torch.amp.GradScaler, state: dict) -> None:
    """Restore a GradScaler across devices: a disabled scaler (CPU, bf16) saves {}, which an enabled one (CUDA
    fp16) cannot load; it then starts from its initial scale. An enabled one's state is ignored by a disabled one."""
    if state or not scaler.is_enabled():
        scaler.load_state_dict(state)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
