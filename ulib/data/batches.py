"""Deterministic mini-batches: the batch at step s is a pure function of (seed, s, rank).

Each epoch is a fresh permutation drawn from a generator seeded by (seed, epoch), and process `rank` of
`world` takes its own slice. Because nothing depends on how many steps ran before, a resumed run reads
exactly the batches an uninterrupted run would have read.
"""
from __future__ import annotations

import torch


class StepBatches:
    """Iterable of index lists (a DataLoader `batch_sampler`) from step `start` to `stop` (exclusive)."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0, stop: int | None = None,
                 rank: int = 0, world: int = 1):
        if n < batch_size * world:
            raise ValueError(
                f"the dataset has {n} items, fewer than one batch ({batch_size} x {world} processes); "
                f"lower the batch size or add data"
            )
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world
        self.per_epoch = n // (batch_size * world)  # drop the last incomplete batch
        self._perm_epoch, self._perm = -1, None

    def indices(self, step: int) -> list[int]:
        return self.index_tensor(step).tolist()

    def index_tensor(self, step: int) -> torch.Tensor:
        """`indices(step)` as a (batch_size,) long tensor on the CPU.

        The step's global batch is perm[j*G : (j+1)*G] with G = batch_size * world, and process `rank` takes its
        rank-th slice: so for a fixed G the global batch does not depend on how many processes share it."""
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        lo = (j * self.world + self.rank) * self.batch_size
        return self._perm[lo: lo + self.batch_size]

    def __iter__(self):
        step = self.start
        while self.stop is None or step < self.stop:
            yield self.indices(step)
            step += 1

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("an endless StepBatches has no length")
        return max(0, self.stop - self.start)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image of (B, C, H, W) horizontally with probability 1/2 (generator on x's device)."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)
