"""Behaviour lock for the sampling redesign (#13): the tokens every sampling path draws for a fixed seed.

tests/fixtures/sampled_tokens.json holds, for small seeded priors, the tokens each path returns (every decoding
method, step skipping, inpainting via x_start, the AR baseline with and without its cache, a canvas wider than
the window). A refactor must give the same tokens; a deliberate change of sampling behaviour regenerates the
file with `ULIB_WRITE_SAMPLED_TOKENS=1 python -m pytest tests/sample/test_sampled_tokens_fixed.py` and says so in
its commit. The priors are tiny and random (no training), with logits scaled up so that a sampled token
never sits within float32 rounding of a choice boundary on another CPU.
"""
import json
import os
from pathlib import Path

import pytest
import torch

from ulib import sample_tokens
from ulib.prior.transformer import Transformer
from ulib.sample.autoregressive import sample_ar

FILE = Path(__file__).parents[1] / "fixtures" / "sampled_tokens.json"
K, SIDE, T = 16, 4, 8  # codebook, grid side (L = 16 tokens), diffusion steps
MASK = K


def _prior(causal: bool) -> Transformer:
    torch.manual_seed(1234 + causal)
    net = Transformer(codebook_size=K, block_size=SIDE * SIDE, n_emb=32, n_head=2, n_layers=2, dropout=0.0,
                      causal=causal)
    with torch.no_grad():
        net.head.weight.mul_(4.0)  # confident logits: far from ties
    return net.eval()


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def sampled() -> dict[str, list]:
    absorbing, ar = _prior(False), _prior(True)
    common = dict(num_timesteps=T, mask_id=MASK, generator=None)
    out = {}
    with torch.no_grad():
        for method, steps in (("random", T), ("random", 2), ("confidence", 4), ("remask", 4)):
            out[f"{method}_{steps}"] = sample_tokens(absorbing, method=method, n=3, length=SIDE * SIDE,
                                                     steps=steps, temperature=0.9, **{**common, "generator": _g()})
        x_start = torch.arange(SIDE * SIDE).remainder(K).repeat(2, 1)
        x_start[:, 4:12] = MASK  # inpaint the middle half
        out["inpaint_random_8"] = sample_tokens(absorbing, method="random", x_start=x_start, steps=T,
                                                **{**common, "generator": _g(1)})
        out["ar_cached"] = sample_tokens(ar, 3, temperature=0.9, generator=_g(2))  # the AR sampler, by the kind
        out["ar_uncached"] = sample_ar(ar, 3, SIDE * SIDE, "cpu", temperature=0.9, generator=_g(2), use_cache=False)
        out["canvas_4x6"] = sample_tokens(absorbing, 1, canvas=(SIDE, SIDE + 2), grid=(SIDE, SIDE), steps=4,
                                          **{**common, "generator": _g(3)})
    return {k: v.tolist() for k, v in out.items()}


def test_sampled_tokens_are_those_recorded():
    got = sampled()
    if os.environ.get("ULIB_WRITE_SAMPLED_TOKENS") == "1":
        FILE.write_text("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in got.items()) + "\n}\n")
        pytest.skip(f"wrote {FILE}")
    assert FILE.exists(), f"{FILE} missing: run with ULIB_WRITE_SAMPLED_TOKENS=1 once"
    want = json.loads(FILE.read_text())
    assert sorted(got) == sorted(want), "the set of sampling paths changed"
    for name in want:
        assert got[name] == want[name], f"{name}: the tokens for a fixed seed changed"
    assert got["ar_cached"] == got["ar_uncached"], "the AR cache must not change what is sampled"
    inpainted = torch.tensor(got["inpaint_random_8"])
    kept = torch.arange(SIDE * SIDE).remainder(K)
    assert torch.equal(inpainted[:, :4], kept[:4].repeat(2, 1)) and torch.equal(
        inpainted[:, 12:], kept[12:].repeat(2, 1))
    assert all(0 <= t < K for row in got["random_8"] for t in row), "no mask token left"
