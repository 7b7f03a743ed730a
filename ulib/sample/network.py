"""What a sampler asks of a prior: a callable, tokens -> logits. Nothing else.

Samplers never look inside the network (google-research/maskgit's `parallel_decode(tokens_to_logits)`;
diffusers' schedulers never see the model). Any callable

    net(x) -> logits      x: LongTensor (B, L) token ids (the mask id where masked); logits: (B, L, K)

serves every absorbing sampler of `ulib.sample` ('random', 'confidence', 'remask', a canvas): a trained
`ulib.prior.transformer.Transformer`, a wrapped one, a lambda in a notebook. Two things are optional:

- `logits_at(net, x, where)` asks for the logits at some positions only. When the network offers
  `features(x) -> (B, L, C)` and `head: C -> K` (the Transformer does), the head runs only there: the
  speed-up is the network's to offer and the sampler's to use, never the other way round.
- `network_device(net)`: where start grids are made when neither a device nor x_start says so (the first
  parameter's device; a plain callable has none, so the CPU).

The AR baseline is the one exception: it decodes token by token with a key/value cache
(`forward_cached`, `new_cache`), so it needs the Transformer itself (`ulib.sample.autoregressive`).
"""
from __future__ import annotations

import torch


def logits_at(net, x: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Logits (N, K) at the N positions where `where` (B, L) is True, in row-major order."""
    if hasattr(net, "features") and hasattr(net, "head"):
        return net.head(net.features(x)[where])  # (B, L, C) -> (N, C) -> (N, K)
    return net(x)[where]  # (B, L, K) -> (N, K)


def network_device(net, default="cpu") -> torch.device:
    """The device of the network's first parameter; `default` for a callable without parameters."""
    params = getattr(net, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    return first.device if first is not None else torch.device(default)
