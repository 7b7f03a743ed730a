"""One-position decoding steps of the causal transformer on CPU: the AR baseline's KV-cache path, made lean.

With a key/value cache, each step of token-by-token sampling runs the network on one new position per
image: B rows (the batch) against every weight matrix. At the bench's model (8 layers, width 256,
codebook 1024, B = 4) a step reads ~25 MB of weights and ~8 MB of cached keys/values for ~50 MFLOP of
arithmetic, and the module-by-module forward adds about forty small tensor operations per layer. So the
step's time is memory traffic and per-operation overhead, and this file cuts both:

- the weights are copied once into slices, one per CPU thread, so that every core streams its own part
  of each matrix (`ulib.sample.split_linear.SplitLinear`), with the query, key and value matrices stacked into
  one (one product instead of three);
- `DecodeWeights.step` writes out the block for a single position with 2-D tensors (B, C): no reshapes
  for a sequence axis, the new key/value written straight into the cache, no dropout modules (inference).

It computes exactly what `Transformer.forward_cached` computes through the modules (pre-LN block:
x + proj(attn(ln1(x))), then x + fc2(gelu(fc1(ln2(x)))), then head(ln_f(x))), to float rounding; tests
compare the two. `CachedForward` is the opt-in accelerator the AR sampler applies (`fast_steps=True`): a
drop-in for `model.forward_cached` that takes this path for one-position steps where `split_applies`
(float32 on a CPU, no autograd) and the model is in eval mode, and the modules otherwise. The network
itself never imports this file.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ulib.sample.split_linear import SplitLinear, split_applies


class DecodeWeights:
    """A causal Transformer's linear layers split across the CPU threads, and the one-position step.

    Per layer: qkv (query, key and value stacked), proj, fc1 (mlp.0), fc2 (mlp.2); then the head. A snapshot
    of the weights: `stale()` tells when the model changed since (the cache then rebuilds it).
    """

    def __init__(self, model):
        self.qkv, self.proj, self.fc1, self.fc2 = [], [], [], []
        for block in model.blocks:
            a = block.attn
            self.qkv.append(SplitLinear([a.query.weight, a.key.weight, a.value.weight],
                                        [a.query.bias, a.key.bias, a.value.bias]))
            self.proj.append(SplitLinear([a.proj.weight], [a.proj.bias]))
            self.fc1.append(SplitLinear([block.mlp[0].weight], [block.mlp[0].bias]))
            self.fc2.append(SplitLinear([block.mlp[2].weight], [block.mlp[2].bias]))
        self.head = SplitLinear([model.head.weight], [model.head.bias])

    def stale(self) -> bool:
        """True once any of the model's weights changed in place (or the thread count changed) since."""
        layers = (p for group in (self.qkv, self.proj, self.fc1, self.fc2) for p in group)
        return any(p.stale() for p in layers) or self.head.stale()

    def step(self, model, cache, x: torch.Tensor, pos: int) -> torch.Tensor:
        """x (B, C): the embedded token (token + position embedding) at sequence position pos, whose
        predecessors 0..pos-1 are in `cache`. Writes its keys/values at pos; returns the logits (B, K).
        For inference: `CachedForward` calls it only with autograd off."""
        B, C = x.shape
        S = pos + 1  # keys/values 0..pos: the new position attends to all of them (causal)
        for layer, block in enumerate(model.blocks):
            nh = block.attn.n_head
            hs = C // nh
            h = F.layer_norm(x, (C,), block.ln1.weight, block.ln1.bias, block.ln1.eps)
            qkv = self.qkv[layer](h)  # (B, 3C): [q | k | v]
            k_all, v_all = cache.k[layer], cache.v[layer]  # (B, nh, max_len, hs)
            k_all[:, :, pos] = qkv[:, C:2 * C].view(B, nh, hs)
            v_all[:, :, pos] = qkv[:, 2 * C:].view(B, nh, hs)
            # softmax(q k^T / sqrt(hs)) v over the S positions so far, per head: (B, nh, 1, hs)
            y = F.scaled_dot_product_attention(qkv[:, :C].view(B, nh, 1, hs), k_all[:, :, :S], v_all[:, :, :S])
            x = x + self.proj[layer](y.view(B, C))
            h = F.layer_norm(x, (C,), block.ln2.weight, block.ln2.bias, block.ln2.eps)
            x = x + self.fc2[layer](F.gelu(self.fc1[layer](h), approximate=block.mlp[1].approximate))
        x = F.layer_norm(x, (C,), model.ln_f.weight, model.ln_f.bias, model.ln_f.eps)
        return self.head(x)  # (B, K)


class CachedForward:
    """`model.forward_cached(idx_new, cache, start)`, with one-position steps on CPU through `DecodeWeights`.

    enabled=False always runs the modules (the bench compares the two). `weights` is the snapshot in use: built
    at the first one-position step it applies to, reused while the model's weights are unchanged, rebuilt
    when `stale()`.
    """

    def __init__(self, model, enabled: bool = True):
        self.model = model
        self.enabled = enabled
        self.weights: DecodeWeights | None = None

    def applies(self, cache, x: torch.Tensor) -> bool:
        """x (B, T, C) embedded: one position, eval mode, float32 on CPU without autograd, cache allocated."""
        if not self.enabled or x.shape[1] != 1 or self.model.training or not split_applies(x):
            return False
        k0 = cache.k[0]  # the step writes into the cache's buffers (allocated by the first, module-path call)
        return k0 is not None and k0.shape[0] == x.shape[0] and k0.dtype == x.dtype and k0.device == x.device

    def __call__(self, idx_new: torch.Tensor, cache, start: int) -> torch.Tensor:
        model = self.model
        x, pos = model.embed_cached(idx_new, cache, start)
        if self.applies(cache, x):  # the same computation: one position, split weights, fewer ops
            if self.weights is None or self.weights.stale():
                self.weights = DecodeWeights(model)
            logits = self.weights.step(model, cache, x[:, 0], pos)[:, None]
        else:
            logits = model.run_cached(x, cache, pos)
        cache.length = pos + x.shape[1]
        return logits
