"""The bench's opt-in group `paths` (`python -m ulib bench --only paths`): the sampler's GPU-minded paths against
the default ones, at the bench's model and batch.

- the forward pass with q, k, v as one product against the stacked weights (`ulib.prior.transformer.SelfAttention`,
  the default under no_grad) and as three products;
- method 'random' by passes (the default: only the images still running, the head only where tokens unmask) and
  with fixed_shape=True (every image and position each pass, no host sync; `ulib.sample.absorbing`), at the
  bench's most and fewest steps;
- on CUDA, sampling with the prior cast to bf16 (`ulib.sample.precision`) against fp32.

Every pair is timed in turn, `paths_repeats` times (interleaved, so a busy spell of a shared machine hits both
alike), after one warm-up call each; the figures are medians, and each pair ends with the ratio of the medians.
"""
from __future__ import annotations

import statistics

import torch

from ulib.eval import timing
from ulib.prior.transformer import SelfAttention, Transformer
from ulib.sample.api import sample_tokens

REPEATS = 5  # timed runs of every path


def _set_fused(net: Transformer, fused: bool) -> None:
    for m in net.modules():
        if isinstance(m, SelfAttention):
            m.fused = fused


def interleaved(fns: dict, device, repeats: int) -> dict:
    """{name: median seconds} of each callable, the callables timed in turn `repeats` times after a warm-up."""
    for fn in fns.values():
        fn()
    seconds = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            seconds[name].append(timing.timed(fn, device)[1])
    return {name: statistics.median(s) for name, s in seconds.items()}


def bench_paths(cfg, device, rec, repeats: int = REPEATS) -> None:
    L, K, B = cfg.side**2, cfg.codebook_size, cfg.batch
    net = Transformer(K, L, cfg.n_emb, cfg.n_head, cfg.n_layers).to(device).eval()
    x = torch.randint(0, K + 1, (B, L), device=device)

    def forward(fused):
        def run():
            _set_fused(net, fused)
            with torch.no_grad():
                return net(x)
        return run

    sec = interleaved({"fused": forward(True), "three": forward(False)}, device, repeats)
    _set_fused(net, True)
    rec("forward, q/k/v one product", sec["fused"], "s/forward", repeats=repeats)
    rec("forward, q/k/v three products", sec["three"], "s/forward", repeats=repeats)
    rec("  one product's speed-up", sec["three"] / sec["fused"], "x")
    T = max(cfg.steps)
    for steps in sorted({max(cfg.steps), min(cfg.steps)}, reverse=True):
        def sample(**kw):
            return lambda: sample_tokens(net, B, method="random", length=L, num_timesteps=T, mask_id=K, steps=steps,
                                         generator=torch.Generator(device=device).manual_seed(0), device=device, **kw)
        sec = interleaved({"default": sample(), "fixed": sample(fixed_shape=True)}, device, repeats)
        rec("random sampling, by passes (default)", sec["default"] / B, "s/image", steps=steps, repeats=repeats)
        rec("random sampling, fixed_shape=True", sec["fixed"] / B, "s/image", steps=steps, repeats=repeats)
        rec("  fixed shape's speed-up", sec["default"] / sec["fixed"], "x", steps=steps)
        if torch.device(device).type == "cuda":
            sec = interleaved({"fp32": sample(precision="fp32"), "bf16": sample(precision="bf16")}, device, repeats)
            rec("random sampling, prior in bf16", sec["bf16"] / B, "s/image", steps=steps, repeats=repeats)
            rec("  bf16's speed-up over fp32", sec["fp32"] / sec["bf16"], "x", steps=steps)
