"""Timing work on a device, for the bench and gpu-check: wait for a device's queued kernels before reading the clock,
the fastest of a few runs, the machine's matmul rate, the transformer forward's multiply-adds, and a wrapper that
times a network's forward passes inside a sampler."""
from __future__ import annotations

import time

import torch

from ulib.prior.transformer import Transformer


def synchronize(device) -> None:
    """Wait for the device's queued kernels: CUDA runs them asynchronously, so a clock read right after a call
    times its launches, not its work. A no-op on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeat: int = 1):
    """(result, seconds) of the fastest of `repeat` runs, each between two `synchronize(device)`."""
    best, out = float("inf"), None
    for _ in range(repeat):
        synchronize(device)
        t0 = time.perf_counter()
        result = fn()
        synchronize(device)
        seconds = time.perf_counter() - t0
        if seconds < best:
            best, out = seconds, result
    return out, best


def matmul_rate(device, n: int = 1024, repeat: int = 5) -> float:
    """float32 GFLOP/s of an n x n x n matmul (best of `repeat`)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    _, sec = timed(lambda: a @ b, device, repeat)
    return 2 * n**3 / sec / 1e9


def forward_flops(net: Transformer, batch: int, length: int) -> float:
    """Multiply-adds x 2 of one forward: the linear layers (12 C^2 per token per block, plus the head)
    and attention's two (L x L x C) products per block."""
    C, nl, K = net.tok_emb.embedding_dim, len(net.blocks), net.codebook_size
    per_token = nl * 12 * C * C + C * K
    attention = nl * 2 * length * length * C
    return 2 * batch * (length * per_token + attention)


class CountingForward(torch.nn.Module):
    """Wraps a Transformer and times its `features` calls, to split sampler time into network + overhead."""

    def __init__(self, net):
        super().__init__()
        self.net, self.seconds, self.calls = net, 0.0, 0
        self.head, self.codebook_size, self.block_size = net.head, net.codebook_size, net.block_size

    def features(self, x):
        synchronize(x.device)
        t0 = time.perf_counter()
        out = self.net.features(x)
        synchronize(x.device)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out

    def forward(self, x):
        return self.head(self.features(x))
