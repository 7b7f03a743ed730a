"""The global batch of a training step: `batch_size` items over all processes (the paper's batch, whatever the
number of GPUs), cut into gradient-accumulation micro-batches, and recorded in RUN/batch.json."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch

from ulib.io.files import atomic_write


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
