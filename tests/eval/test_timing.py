"""Timing work on a device (ulib/eval/timing.py): every timed run sits between two waits for the device's queued
kernels (CUDA runs them asynchronously), none on the CPU; the rates are counted by hand on small cases."""
import torch

from ulib.eval import timing
from ulib.prior.transformer import Transformer


def test_timed_synchronises_cuda_around_each_run(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    timing.timed(lambda: None, torch.device("cuda"), repeat=3)
    assert len(calls) == 6, "before and after each of 3 runs"
    calls.clear()
    timing.timed(lambda: None, torch.device("cpu"), repeat=3)
    assert calls == []


def test_timed_returns_the_fastest_runs_result(monkeypatch):
    clock = iter([0.0, 5.0, 10.0, 11.0, 20.0, 23.0])  # runs of 5, 1 and 3 seconds
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    results = iter(["slow", "fast", "middle"])
    assert timing.timed(lambda: next(results), torch.device("cpu"), repeat=3) == ("fast", 1.0)


def test_forward_flops_counts_the_linear_layers_and_attention():
    net = Transformer(codebook_size=16, block_size=4, n_emb=8, n_head=2, n_layers=3)
    C, nl, K, B, L = 8, 3, 16, 2, 4
    assert timing.forward_flops(net, B, L) == 2 * B * (L * (nl * 12 * C * C + C * K) + nl * 2 * L * L * C)
