"""Linear layers with weights packed once for small-batch decoding on the CPU (the AR baseline's KV-cache path).

A cached decoding step multiplies a handful of rows (one per image in the batch) by every weight matrix of
the network, so its time goes into reading ~25 MB of weights per step, not into arithmetic (the bench's
model: 8 layers, width 256, codebook 1024). MKL can store a matrix once in the blocked layout its GEMM
kernel reads (`cblas_sgemm_pack`), so no step re-lays it out; PyTorch exposes this as
`torch.ops.mkl._mkl_reorder_linear_weight` / `torch.ops.mkl._mkl_linear` (what `torch.compile` uses for
float32 linear layers on CPU). Several layers that read the same input (q, k and v) can share one packed
matrix, one call instead of three.

Same maths as `F.linear`: y = x W^T + b, with W the row-wise concatenation of the given weights, so the
result agrees with the unpacked layers to float rounding. `packing_applies(x)` says where it is used
(CPU, float32, MKL built in, no autograd); callers fall back to the plain layers everywhere else.

The packed copy is a snapshot: `stale()` is true once any source weight was changed in place (an optimiser
step, `load_state_dict`), so a holder can repack rather than compute with old weights.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def packing_available(device, dtype: torch.dtype = torch.float32) -> bool:
    """True where this torch can pack weights for `device` and `dtype`: float32 on a CPU with MKL."""
    return (torch.device(device).type == "cpu" and dtype == torch.float32 and torch.backends.mkl.is_available()
            and hasattr(torch.ops.mkl, "_mkl_linear"))


def packing_applies(x: torch.Tensor) -> bool:
    """True where packed weights can serve x: `packing_available` for its device and dtype, outside autograd
    (the packed kernel has no backward)."""
    return not torch.is_grad_enabled() and packing_available(x.device, x.dtype)


class PackedLinear:
    """y = x [W_1; W_2; ...]^T + [b_1; b_2; ...] for inputs of exactly `rows` rows, weights packed once.

    weights: (out_i, in) tensors sharing `in`; biases: one per weight, each (out_i,) or None (zeros).
    Inputs (..., in) whose leading dimensions do not multiply to `rows` take the unpacked F.linear.
    """

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor | None], rows: int):
        if len(weights) != len(biases) or not weights:
            raise ValueError(f"need one bias (or None) per weight; got {len(weights)} weights, {len(biases)} biases")
        self.sources = [t for t in [*weights, *biases] if t is not None]
        self.versions = [t._version for t in self.sources]
        self.rows = rows
        self.weight = torch.cat([w.detach() for w in weights]).contiguous()  # (out, in)
        if all(b is None for b in biases):
            self.bias = None
        else:
            self.bias = torch.cat([(b.detach() if b is not None else w.new_zeros(w.shape[0]))
                                   for w, b in zip(weights, biases)]).contiguous()  # (out,)
        self.packed = torch.ops.mkl._mkl_reorder_linear_weight(self.weight, rows)

    def stale(self) -> bool:
        """True once a source weight or bias was modified in place after packing."""
        return any(t._version != v for t, v in zip(self.sources, self.versions))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and x.shape[0] == self.rows and x.is_contiguous():  # (rows, in): straight to MKL
            return torch.ops.mkl._mkl_linear(x, self.packed, self.weight, self.bias, self.rows)
        lead = x.shape[:-1]
        if lead.numel() != self.rows:
            return F.linear(x, self.weight, self.bias)
        y = torch.ops.mkl._mkl_linear(x.reshape(self.rows, -1), self.packed, self.weight, self.bias, self.rows)
        return y.view(*lead, -1)
