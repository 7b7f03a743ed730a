"""The prior as the sampler runs it: in bf16 weights rather than under autocast, and optionally compiled.

Autocast keeps the weights, the residual stream and LayerNorm in fp32 and casts each matmul's inputs to bf16 on
the fly, so the same LayerNorm output is cast three times (for q, k and v) and every linear layer reads its fp32
weight and writes a bf16 copy of it per call. Sampling needs no fp32 master weights (no gradients, no
optimiser), so `prior_for_sampling` runs a copy of the network whose floating-point parameters and buffers are
bf16: every activation stays bf16 end to end (LayerNorm included, which is fine for drawing tokens). The logits
come back as float32 (a hook on `head`), so the samplers' softmax and draws see what they saw before (they call
.float() on the logits anyway). The caller's model is never touched: the copy is built parameter by parameter
straight into bf16 (no second fp32 copy), and with fp32 sampling nothing is copied or cast at all.

compile=True wraps the network's `forward` and `features` in torch.compile(dynamic=False): one graph per input
shape, so it pays off with a sampler that calls the network at one fixed shape (method 'random' with
fixed_shape=True, `ulib.sample.absorbing`); the default pass-by-pass path gives each pass a new batch of active
rows, hence new shapes and recompiles.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

COMPILE_BACKEND = "inductor"  # torch.compile's backend (tests use 'eager': no C compiler needed)


def prior_for_sampling(net, dtype: torch.dtype | None, compile: bool = False, backend: str | None = None):
    """The network to sample with: `net` itself when dtype is None or float32 (and compile is False), else a bf16
    copy of it (dtype: `ulib.device.sampling_dtype`), wrapped in torch.compile when compile is True. `net` is
    left as it was. A plain callable (not an nn.Module) takes only dtype None/float32."""
    if dtype not in (None, torch.float32):
        if not isinstance(net, nn.Module):
            raise ValueError(f"precision with dtype {dtype} casts the prior's weights, so it needs an nn.Module; got "
                             f"{type(net).__name__} (run a plain callable under torch.autocast yourself)")
        net = cast_copy(net, dtype)
    if compile:
        net = CompiledPrior(net, backend or COMPILE_BACKEND)
    return net


def cast_copy(net: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of `net` for inference whose floating-point parameters and buffers are `dtype`, made without a
    second full-precision copy (deepcopy's memo is seeded with the cast tensors), and whose `head` (if any)
    returns float32."""
    memo = {}
    for p in net.parameters():
        if id(p) not in memo:
            memo[id(p)] = nn.Parameter(p.detach().to(dtype) if p.is_floating_point() else p.detach().clone(),
                                       requires_grad=False)
    for b in net.buffers():
        if id(b) not in memo:
            memo[id(b)] = b.detach().to(dtype) if b.is_floating_point() else b.detach().clone()
    out = copy.deepcopy(net, memo)
    head = getattr(out, "head", None)
    if isinstance(head, nn.Module):
        head.register_forward_hook(_as_float32)
    return out


def _as_float32(module, inputs, output):
    return output.float()  # logits in float32 for the samplers' softmax and draws


class CompiledPrior:
    """`net` with `forward` (and `features`, which the samplers call to run the head at a few positions) compiled
    by torch.compile(dynamic=False); every other attribute (mask_id, head, forward_cached, parameters, ...) is
    read from `net`."""

    def __init__(self, net, backend: str):
        if not hasattr(torch, "compile"):
            raise RuntimeError(f"compile=True needs torch.compile (PyTorch >= 2.0); this is torch {torch.__version__}")
        self.net = net
        self._forward = _guarded(torch.compile(net, dynamic=False, backend=backend))
        if hasattr(net, "features"):
            self.features = _guarded(torch.compile(net.features, dynamic=False, backend=backend))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)

    def __getattr__(self, name):
        if name == "net":  # not set yet (during __init__ or unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.net, name)


def _guarded(compiled):
    """compiled(x), with a backend's failure (no C compiler, an unsupported op) said in the kit's words."""
    def call(x):
        try:
            return compiled(x)
        except torch._dynamo.exc.BackendCompilerFailed as e:
            raise RuntimeError(f"compile=True: torch.compile could not build the prior's forward ({e}); sample "
                               f"without compile (drop --compile)") from e
    return call
