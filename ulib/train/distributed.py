"""Multi-process training under `torchrun` (DistributedDataParallel; NCCL on GPU, gloo on CPU).

Single-process runs need nothing from here: every helper degrades to rank 0 of 1.
"""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from ulib.device import exact_float

# How long a collective (a barrier, an all-reduce) waits for the slowest process before failing. NCCL's default
# is 10 minutes; rank 0 writing a checkpoint or merging the encoded latents can take longer on LSUN-sized runs.
TIMEOUT_ENV = "ULIB_DIST_TIMEOUT_MIN"
DEFAULT_TIMEOUT_MIN = 60
BUCKET_BYTES = 25 * 2**20  # gradients all-reduced in flat buckets of this size (DDP's default bucket_cap_mb=25)


def process_group_timeout() -> timedelta:
    """$ULIB_DIST_TIMEOUT_MIN minutes (default 60); ValueError on anything but a positive number."""
    text = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_MIN))
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise ValueError(f"${TIMEOUT_ENV}={text!r}; expected a positive number of minutes")
    return timedelta(minutes=minutes)


def init_from_env(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); return (rank, world, device).

    On CUDA each process takes the GPU of its LOCAL_RANK. Collectives time out after
    `process_group_timeout()` (explicit, not the backend's 10-minute default).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", timeout=process_group_timeout())
    return dist.get_rank(), dist.get_world_size(), device


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def rank0_first(fn):
    """fn() on rank 0 first, then, after a barrier, on the other processes; fn() alone without a process group.

    For work that fills a cache the others then only read: an image folder's up-front decode check
    (data/cache/folder-check-*.json; 70k FFHQ files decoded once instead of once per GPU). Every process must call
    it at the same point (a collective). An error on rank 0 still reaches the barrier: the others are not left
    waiting, and meet the same error themselves (a bad-files verdict is cached too)."""
    if not dist.is_initialized() or dist.get_world_size() <= 1:
        return fn()
    if dist.get_rank() == 0:
        try:
            return fn()
        finally:
            dist.barrier()
    dist.barrier()
    return fn()


def all_mean(value: float, device: torch.device) -> float:
    """Mean of a float over all processes (for logging)."""
    return all_mean_dict({"v": value}, device)["v"]


def all_mean_dict(stats: dict, device: torch.device) -> dict[str, float]:
    """{name: mean over processes} of floats or 0-dim tensors, in one all-reduce and one host sync (logging)."""
    names = list(stats)  # the same order on every process: the same code built the dict
    dtype = exact_float(device)  # float64, float32 on MPS
    t = torch.stack([torch.as_tensor(stats[k], device=device).detach().to(dtype).reshape(()) for k in names])
    if dist.is_initialized():
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return dict(zip(names, t.tolist()))


def all_gather_states(state: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
    """Every process's generator state (a byte tensor), indexed by rank, on the CPU."""
    if not dist.is_initialized():
        return [state]
    local = state.to(device) if device.type == "cuda" else state  # NCCL gathers CUDA tensors only
    out = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(out, local)
    return [t.cpu() for t in out]


def all_sum_(t: torch.Tensor) -> None:
    """In-place sum of a tensor over processes."""
    if dist.is_initialized():
        dist.all_reduce(t)


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Give every process rank 0's initial parameters and buffers."""
    if dist.is_initialized():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def gradient_buckets(grads: list[torch.Tensor], bucket_bytes: int = BUCKET_BYTES) -> list[list[torch.Tensor]]:
    """Group gradients into buckets of one dtype and device, each up to `bucket_bytes` (a larger tensor alone)."""
    buckets: list[list[torch.Tensor]] = []
    open_: dict[tuple, tuple[list, int]] = {}
    for g in grads:
        key = (g.dtype, g.device)
        bucket, size = open_.get(key, ([], 0))
        if bucket and size + g.numel() * g.element_size() > bucket_bytes:
            buckets.append(bucket)
            bucket, size = [], 0
        bucket.append(g)
        open_[key] = (bucket, size + g.numel() * g.element_size())
    return buckets + [b for b, _ in open_.values() if b]


def average_gradients(module: torch.nn.Module, bucket_bytes: int = BUCKET_BYTES) -> None:
    """Average .grad over processes (what DistributedDataParallel does after backward), coalesced: the gradients
    are copied into flat ~25 MB buffers, one all-reduce each (a few instead of one per tensor: the paper's VQGAN
    has 346), then copied back."""
    if not dist.is_initialized():
        return
    world = dist.get_world_size()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    for bucket in gradient_buckets(grads, bucket_bytes):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for g in bucket:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
