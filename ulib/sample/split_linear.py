"""A linear layer for a few rows on a multi-core CPU: the weights split into one slice per core.

A cached decoding step of the AR baseline multiplies B rows (one per image) by every weight matrix of the
network, so its time is spent streaming the weights from memory (~25 MB per step at the bench's model),
not on arithmetic. `F.linear` on 4 rows runs on one core here: measured on the 2-core CPU, cycling through
that model's 33 matrices took the same time with 1 or 2 threads (3.3 ms per step; MKL's packed small-batch
GEMM: 2.8 ms). Splitting each matrix by output columns into S = (number of threads) slices and multiplying
all slices at once with a batched matmul lets every core stream its own slice: 1.26 ms per step, 2.6x
faster than `F.linear`.

    y = x W^T + b,  W^T (K, N) = [W_1^T | ... | W_S^T],  y[:, slice s] = x W_s^T + b_s   (one baddbmm)

The maths is `F.linear`'s with W the row-wise concatenation of the given weights (so q, k and v can share
one call), in another summation order: the result agrees to float rounding. `split_applies(x)` says where
it is used (float32 on a CPU, outside autograd); callers keep the plain layers everywhere else.

A `SplitLinear` is a snapshot of the weights: `stale()` is true once a source weight was changed in place
(an optimiser step, `load_state_dict`) or the thread count changed, so a holder can rebuild it.
"""
from __future__ import annotations

import torch


def split_available(device, dtype: torch.dtype = torch.float32) -> bool:
    """True where split weights serve tensors of `device` and `dtype`: float32 on a CPU."""
    return torch.device(device).type == "cpu" and dtype == torch.float32


def split_applies(x: torch.Tensor) -> bool:
    """True where split weights can serve x: `split_available` for its device and dtype, outside autograd
    (the copies are detached from the parameters)."""
    return not torch.is_grad_enabled() and split_available(x.device, x.dtype)


class SplitLinear:
    """y = x [W_1; W_2; ...]^T + [b_1; b_2; ...] for x (M, in), with the weights split across the CPU threads.

    weights: (out_i, in) tensors sharing `in`; biases: one per weight, each (out_i,) or None (zeros).
    """

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor | None]):
        if len(weights) != len(biases) or not weights:
            raise ValueError(f"need one bias (or None) per weight; got {len(weights)} weights, {len(biases)} biases")
        self.sources = [t for t in [*weights, *biases] if t is not None]
        self.versions = [t._version for t in self.sources]
        w = torch.cat([t.detach() for t in weights])  # (N, K)
        b = torch.cat([(bias.detach() if bias is not None else t.new_zeros(t.shape[0]))
                       for t, bias in zip(weights, biases)])  # (N,)
        N, K = w.shape
        self.threads = torch.get_num_threads()
        S = self.threads if N % self.threads == 0 else 1  # slices; one when N does not divide evenly
        self.out_features = N
        self.weight = w.t().reshape(K, S, N // S).permute(1, 0, 2).contiguous()  # (S, K, N/S): slice s = W_s^T
        self.bias = b.view(S, 1, N // S).contiguous()  # (S, 1, N/S)

    def stale(self) -> bool:
        """True once a source weight or bias was modified in place, or the thread count changed."""
        return (torch.get_num_threads() != self.threads
                or any(t._version != v for t, v in zip(self.sources, self.versions)))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        M, K = x.shape
        S = self.weight.shape[0]
        y = torch.baddbmm(self.bias, x.expand(S, M, K), self.weight)  # (S, M, N/S): slice s on its own core
        return y.transpose(0, 1).reshape(M, self.out_features)  # (M, N), slices side by side
