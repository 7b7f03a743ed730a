"""Multi-process training under `torchrun` (DistributedDataParallel; NCCL on GPU, gloo on CPU).

Single-process runs need nothing from here: every helper degrades to rank 0 of 1.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); return (rank, world, device).

    On CUDA each process takes the GPU of its LOCAL_RANK.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_mean(value: float, device: torch.device) -> float:
    """Mean of a float over all processes (for logging)."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).item()


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


def average_gradients(module: torch.nn.Module) -> None:
    """Average .grad over processes (the all-reduce DistributedDataParallel performs after backward)."""
    if not dist.is_initialized():
        return
    world = dist.get_world_size()
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
