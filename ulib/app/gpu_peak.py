"""The gpu-check's arithmetic: the prior's FLOPs per forward pass, the card's bf16 peak (measured and nominal), and
what fraction of it a timed sampler reached.

FLOPs count a multiply-add as 2. A forward pass of the prior at batch 1 over L positions, width C, codebook K and
n layers (`flops_per_forward`) is the matmuls of the network, nothing else (LayerNorm, softmax, GELU and the
embeddings are O(L C) and left out):

    per layer:  q, k, v projections  3 * 2 L C^2
                attention scores and weighted sum  2 * 2 L^2 C   (Q K^T and A V, over all heads together)
                output projection  2 L C^2
                MLP (C -> 4C -> C)  2 * 2 L C (4C)
    head:       2 L C K   (at every position; the samplers' head runs only where a token is drawn, so slightly less)

The achieved rate of a sampler is flops_per_forward * (rows through the network) / seconds; with the whole batch
through every pass, rows = batch * passes per image.
"""
from __future__ import annotations

import statistics
import time

import torch

from ulib.eval.timing import synchronize

NOMINAL_SOURCE = "vendor datasheet, dense (no sparsity)"
# bf16 tensor-core peak in TFLOP/s, dense, matched on the CUDA device name (first match wins: PCIe before SXM)
NOMINAL_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM5 (e.g. "NVIDIA H100 80GB HBM3")
    ("H200", 989.0),
    ("A100", 312.0),
    ("RTX 2080 Ti", 107.0),  # Turing has no bf16: its fp16 tensor-core peak (fp32 accumulate: half that)
)


def flops_per_forward(n_layers: int, width: int, length: int, codebook: int) -> int:
    """Matmul FLOPs of one prior forward pass at batch 1 (module docstring):
    n * (3*2LC^2 + 2*2L^2C + 2LC^2 + 2*2LC*4C) + 2LCK."""
    for name, v in (("n_layers", n_layers), ("width", width), ("length", length), ("codebook", codebook)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r}; must be an integer >= 1")
    L, C = length, width
    per_layer = 3 * 2 * L * C * C + 2 * 2 * L * L * C + 2 * L * C * C + 2 * 2 * L * C * 4 * C
    return n_layers * per_layer + 2 * L * C * codebook


def nominal_peak(device_name: str) -> tuple[float | None, str]:
    """(bf16 TFLOP/s from the datasheet table, note) for a CUDA device name; (None, why) for anything else."""
    for key, tflops in NOMINAL_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops, f"{key}: {NOMINAL_SOURCE}"
    return None, f"no nominal peak for {device_name!r} in the table ({', '.join(k for k, _ in NOMINAL_BF16_TFLOPS)})"


def sig(x: float, digits: int = 6) -> float:
    """x to `digits` significant figures (rates from CPU smoke sizes to H100s keep their precision)."""
    return float(f"{x:.{digits}g}")


def timed(fn, device: torch.device, repeats: int, warmup: int = 1) -> dict:
    """Run fn warmup times untimed, then `repeats` times between device synchronisations: the seconds of each,
    their median and spread (max - min)."""
    if repeats < 1:
        raise ValueError(f"repeats={repeats}; must be >= 1")
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(sig(time.perf_counter() - t0))  # median and spread of the recorded (rounded) seconds
    return {"repeats": repeats, "warmup": warmup, "seconds": seconds,
            "median_s": sig(statistics.median(seconds)), "spread_s": sig(max(seconds) - min(seconds))}


def matmul_ceiling(device: torch.device, n: int, repeats: int = 5) -> dict:
    """The measured bf16 ceiling: an n x n x n bf16 matmul (2 n^3 FLOPs), warmed up, median of `repeats`."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    t = timed(lambda: a @ b, device, repeats, warmup=2)
    return {"n": n, "dtype": "bfloat16", "flops": 2 * n**3, **t,
            "tflops": sig(2 * n**3 / max(t["median_s"], 1e-12) / 1e12)}


def peak_record(device: torch.device, device_name: str, tiny: bool) -> dict:
    """The two peaks the achieved rates are divided by: measured (8192^3 on CUDA, 256^3 with --tiny or on the CPU)
    and nominal (None off the table, with a note)."""
    n = 8192 if device.type == "cuda" and not tiny else 256
    nominal, note = nominal_peak(device_name) if device.type == "cuda" else (None, f"no nominal peak on {device}")
    return {"measured_bf16_matmul": matmul_ceiling(device, n), "nominal_bf16_tflops": nominal, "nominal_note": note}


def achieved(flops: float, seconds: float, peak: dict | None) -> dict:
    """achieved_tflops = flops / seconds / 1e12 and its fraction_of_peak against the measured and nominal peaks."""
    tflops = flops / max(seconds, 1e-12) / 1e12
    out = {"achieved_tflops": sig(tflops)}
    if peak is not None:
        measured, nominal = peak["measured_bf16_matmul"]["tflops"], peak["nominal_bf16_tflops"]
        out["fraction_of_peak"] = {"measured_matmul": sig(tflops / measured) if measured else None,
                                   "nominal": sig(tflops / nominal) if nominal else None}
    return out
