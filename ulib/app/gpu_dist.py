"""The gpu-check's distributed phase: a one-process group (NCCL on CUDA, gloo elsewhere) exercising the collectives
multi-GPU training uses, and DDP's `no_sync()` gradient accumulation against plain accumulation.

With world_size = 1 every collective returns its input (sum over one rank; broadcast from rank 0; gather of one),
so each result is checked exactly; what the phase proves is that the backend initialises, runs the kernels and
tears down on this machine. DDP accumulates over micro-batches with `no_sync()` on all but the last (gradients
all-reduced once, on the last backward); the gradients must equal those of the same model accumulated without DDP
(max abs difference recorded, ~0 up to float rounding). The group is destroyed after, even when a step fails.
"""
from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from ulib.eval.timing import synchronize


def cuda_index(device: torch.device) -> int:
    """The index of a CUDA device; 'cuda' without one is the current device."""
    return device.index if device.index is not None else torch.cuda.current_device()


def _ms(device, fn) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return round((time.perf_counter() - t0) * 1e3, 3)


def collectives(device: torch.device, numel: int) -> dict:
    """all_reduce, broadcast and all_gather of `numel` floats on the group: each result checked, each timed (ms)."""
    x = torch.arange(numel, device=device, dtype=torch.float32)
    out = {}
    y = x.clone()
    out["all_reduce_ms"] = _ms(device, lambda: dist.all_reduce(y))
    out["all_reduce_ok"] = bool(torch.equal(y, x * dist.get_world_size()))
    z = x.clone() if dist.get_rank() == 0 else torch.zeros_like(x)
    out["broadcast_ms"] = _ms(device, lambda: dist.broadcast(z, src=0))
    out["broadcast_ok"] = bool(torch.equal(z, x))
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    out["all_gather_ms"] = _ms(device, lambda: dist.all_gather(parts, x))
    out["all_gather_ok"] = all(bool(torch.equal(p, x)) for p in parts)
    return out


def ddp_no_sync(device: torch.device, width: int, micro: int, batch: int, seed: int = 0) -> dict:
    """Gradients of `micro` accumulated micro-batches: DDP with no_sync() on all but the last against the same
    model without DDP; their max abs difference and both timings (ms)."""
    g = torch.Generator().manual_seed(seed)
    plain = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)).to(device)
    ids = [cuda_index(device)] if device.type == "cuda" else None
    ddp = DistributedDataParallel(copy.deepcopy(plain), device_ids=ids)
    xs = [torch.randn(batch, width, generator=g).to(device) for _ in range(micro)]

    def accumulate_plain():
        for x in xs:
            (plain(x).square().mean() / micro).backward()

    def accumulate_ddp():
        for i, x in enumerate(xs):
            if i < micro - 1:
                with ddp.no_sync():  # gradients stay local: no all-reduce for this backward
                    (ddp(x).square().mean() / micro).backward()
            else:
                (ddp(x).square().mean() / micro).backward()  # the all-reduce of the summed gradients

    out = {"micro_batches": micro, "plain_ms": _ms(device, accumulate_plain), "ddp_no_sync_ms": _ms(device,
                                                                                                    accumulate_ddp)}
    diffs = [(a.grad - b.grad).abs().max().item() for a, b in zip(plain.parameters(), ddp.module.parameters())]
    out["grad_max_abs_diff"] = max(diffs)
    out["grad_max_abs"] = max(a.grad.abs().max().item() for a in plain.parameters())
    return out


def agrees(out: dict, rtol: float = 1e-3) -> bool:
    """Every collective returned its exact result, and DDP's gradients equal plain accumulation's within rtol of
    the largest gradient (float rounding, TF32 kernels; a lost or doubled micro-batch is off by ~50 %)."""
    ddp = out["ddp"]
    return (all(out[f"{c}_ok"] for c in ("all_reduce", "broadcast", "all_gather"))
            and ddp["grad_max_abs_diff"] <= rtol * ddp["grad_max_abs"] + 1e-8)


def distributed_check(device: torch.device, tiny: bool) -> dict:
    """The whole phase in a fresh one-process group (file:// rendezvous in a temporary folder: no port to find)."""
    if dist.is_initialized():
        raise RuntimeError("a process group is already initialised (run gpu-check without torchrun)")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(cuda_index(device))  # NCCL binds the group to the current device
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        dist.init_process_group(backend, init_method=(Path(tmp) / "rendezvous").as_uri(), world_size=1, rank=0)
        try:
            out = {"backend": backend, "world_size": dist.get_world_size(),
                   "init_ms": round((time.perf_counter() - t0) * 1e3, 3)}
            out.update(collectives(device, 1024 if tiny else 64 * 2**20))  # 64 Mi floats: 256 MB
            out["ddp"] = ddp_no_sync(device, 16 if tiny else 1024, micro=2 if tiny else 4, batch=4 if tiny else 64)
        finally:
            dist.destroy_process_group()
    return out
