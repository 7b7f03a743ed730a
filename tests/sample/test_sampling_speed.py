"""The sampler's GPU-minded paths, checked on the CPU: the prior cast to bf16 for sampling (not autocast), q/k/v as
one product, a compiled forward, and the random-order sampler's fixed-shape pass (the same tokens, one shape)."""
import copy

import pytest
import torch
import torch.nn as nn

import ulib.sample.base as base
from ulib import sample_images, sample_tokens
from ulib.app import flags as F
from ulib.models import SamplingModels
from ulib.prior.transformer import SelfAttention, Transformer
from ulib.sample import precision as P
from ulib.sample.absorbing import AbsorbingSampler
from ulib.sample.precision import prior_for_sampling

K, SIDE, T = 16, 4, 8
L = SIDE * SIDE


def _prior(causal=False, seed=1234) -> Transformer:
    torch.manual_seed(seed)
    net = Transformer(codebook_size=K, block_size=L, n_emb=32, n_head=2, n_layers=2, causal=causal)
    with torch.no_grad():
        net.head.weight.mul_(4.0)  # confident logits, as the sampled-token lock's priors
    return net.eval()


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


class _Decoder(nn.Module):
    def decode(self, tokens):
        return torch.zeros(tokens.shape[0], 3, 8, 8)


def _models(net):
    return SamplingModels(_Decoder(), net, "absorbing", T, K, (SIDE, SIDE), 4, 1.0, 2, "test")


def _spy_logits(monkeypatch):
    """Record (network, logits dtype) of every logits_at call the samplers make."""
    seen, real = [], base.logits_at

    def spy(net, x, where):
        out = real(net, x, where)
        seen.append((net, out.dtype))
        return out
    monkeypatch.setattr(base, "logits_at", spy)
    return seen


# ---- bf16: a cast copy, not autocast ------------------------------------------------------------------
def test_bf16_samples_with_a_bf16_copy_and_leaves_the_model_as_it_was(monkeypatch):
    net = _prior()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    inside = []  # (weight dtype, input dtype, output dtype) of the first block's attention and of ln_f
    net.blocks[0].attn.register_forward_hook(lambda m, i, o: inside.append((m.query.weight.dtype, i[0].dtype, o.dtype)))
    net.ln_f.register_forward_hook(lambda m, i, o: inside.append((m.weight.dtype, i[0].dtype, o.dtype)))
    seen = _spy_logits(monkeypatch)
    images, tokens = sample_images(_models(net), 3, steps=4, seed=0, precision="bf16", return_tokens=True)
    assert inside and all(d == (torch.bfloat16,) * 3 for d in inside)  # weights, activations, LayerNorm: bf16
    assert seen and all(n is not net and d == torch.float32 for n, d in seen)  # a copy; logits back in fp32
    assert tokens.shape == (3, SIDE, SIDE) and int(tokens.max()) < K
    after = net.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], v) for k, v in before.items())
    assert not net.head._forward_hooks  # the float32 hook sits on the copy only


def test_fp32_and_auto_on_a_cpu_copy_nothing_and_draw_the_same_tokens(monkeypatch):
    net = _prior()
    assert prior_for_sampling(net, None) is net and prior_for_sampling(net, torch.float32) is net
    seen = _spy_logits(monkeypatch)
    want = sample_tokens(net, 3, steps=4, temperature=0.9, generator=_g(), num_timesteps=T)
    assert seen and all(n is net for n, _ in seen)
    for precision in ("fp32", "auto"):  # auto: fp32 on a CPU
        seen.clear()
        got = sample_tokens(net, 3, steps=4, temperature=0.9, generator=_g(), num_timesteps=T, precision=precision)
        assert torch.equal(got, want) and all(n is net for n, _ in seen)
    with pytest.raises(ValueError, match="precision='half'; allowed"):
        sample_tokens(net, 3, num_timesteps=T, precision="half")


def test_bf16_keeps_the_ar_prior_and_its_cache_working_and_refuses_a_plain_callable():
    ar = _prior(causal=True)
    tokens = sample_tokens(ar, 2, temperature=0.9, generator=_g(), precision="bf16")
    assert tokens.shape == (2, L) and 0 <= int(tokens.min()) and int(tokens.max()) < K
    assert next(ar.parameters()).dtype == torch.float32
    net = _prior()
    with pytest.raises(ValueError, match="needs an nn.Module"):
        sample_tokens(lambda x: net(x), 2, num_timesteps=T, mask_id=K, length=L, precision="bf16")


# ---- q, k, v in one product ---------------------------------------------------------------------------
def test_fused_qkv_equals_the_three_products_and_follows_the_weights():
    torch.manual_seed(0)
    attn = SelfAttention(32, 4).eval()
    x = torch.randn(3, 5, 32)
    calls = []
    for name in ("query", "key", "value"):
        getattr(attn, name).register_forward_hook(lambda m, i, o: calls.append(1))
    three = attn.qkv(x)  # gradients on: the three modules
    assert len(calls) == 3
    with torch.no_grad():
        fused = attn.qkv(x)
        assert len(calls) == 3  # one product against the stacked weights, the modules not called
        assert all(torch.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(three, fused))
        assert torch.allclose(attn(x), SelfAttention.forward(attn, x), atol=0)
        attn.key.weight.add_(1.0)  # an in-place update: the stack is rebuilt
        assert torch.allclose(attn.qkv(x)[1], attn.key(x).view(3, 5, 4, 8).transpose(1, 2), atol=1e-6)
        attn.value.bias = nn.Parameter(torch.ones(32))  # another tensor: rebuilt too
        assert torch.allclose(attn.qkv(x)[2], attn.value(x).view(3, 5, 4, 8).transpose(1, 2), atol=1e-6)
    assert copy.deepcopy(attn)._stack is None  # a copy does not carry the cache of the original's tensors
    assert sorted(attn.state_dict()) == sorted(f"{m}.{p}" for m in ("key", "query", "value", "proj")
                                               for p in ("weight", "bias"))
    attn.train()
    attn(x).sum().backward()  # training: every weight gets its gradient
    assert all(getattr(attn, m).weight.grad.abs().sum() > 0 for m in ("query", "key", "value"))


# ---- the fixed-shape pass ------------------------------------------------------------------------------
def test_the_fixed_shape_pass_draws_the_same_tokens_at_one_shape():
    net = _prior()
    shapes = []

    def whole(x):  # a plain callable: the fixed-shape pass calls the network on the whole batch
        shapes.append(tuple(x.shape))
        return net(x)
    x_start = torch.arange(L).remainder(K).repeat(4, 1)
    x_start[:2, 4:12] = K  # two images inpainted, two all masked: they finish at different passes
    x_start[2:] = K
    for seed, steps in ((0, T), (1, 3), (2, 1)):
        want = AbsorbingSampler.of(net, num_timesteps=T, mask_id=K, length=L, steps=steps, temperature=0.9,
                                   generator=_g(seed)).sample(x_start)
        shapes.clear()
        sampler = AbsorbingSampler.of(whole, num_timesteps=T, mask_id=K, length=L, steps=steps, temperature=0.9,
                                      generator=_g(seed), fixed_shape=True)
        got = sampler.sample(x_start)
        assert torch.equal(got, want), (seed, steps)
        assert shapes and set(shapes) == {(4, L)} and sampler.forward_passes == len(shapes)
    got = sample_tokens(net, 3, steps=4, generator=_g(5), num_timesteps=T, fixed_shape=True)
    assert torch.equal(got, sample_tokens(net, 3, steps=4, generator=_g(5), num_timesteps=T))


def test_the_fixed_shape_option_is_checked_and_reachable_from_the_command_line():
    with pytest.raises(ValueError, match="needs skip_empty_steps=True"):
        AbsorbingSampler.Options(skip_empty_steps=False, fixed_shape=True)
    with pytest.raises(ValueError, match="fixed_shape=1; allowed: True or False"):
        AbsorbingSampler.Options(fixed_shape=1)
    assert F.method_options("random", ["fixed_shape=true"]) == {"fixed_shape": True}


# ---- a compiled forward --------------------------------------------------------------------------------
def test_compile_wraps_the_forward_the_sampler_calls(monkeypatch):
    net = _prior()
    compiled = []

    def fake_compile(fn, dynamic=None, backend=None):
        assert dynamic is False
        calls = []
        compiled.append((fn, backend, calls))
        return lambda *a: calls.append(1) or fn(*a)
    monkeypatch.setattr(torch, "compile", fake_compile)
    kw = dict(steps=4, temperature=0.9, num_timesteps=T)
    got = sample_tokens(net, 3, generator=_g(), compile=True, fixed_shape=True, **kw)
    assert torch.equal(got, sample_tokens(net, 3, generator=_g(), **kw))
    assert compiled[0][0] is net and compiled[0][1] == "inductor" and compiled[0][2]  # forward, called each pass
    monkeypatch.delattr(torch, "compile")
    with pytest.raises(RuntimeError, match="needs torch.compile"):
        sample_tokens(net, 3, generator=_g(), compile=True, **kw)


def test_compile_really_compiles_with_the_eager_backend(monkeypatch):
    monkeypatch.setattr(P, "COMPILE_BACKEND", "eager")  # dynamo traces; no C compiler needed
    net = _prior()
    kw = dict(steps=2, temperature=0.9, num_timesteps=T, fixed_shape=True)
    got = sample_tokens(net, 2, generator=_g(), compile=True, **kw)
    assert torch.equal(got, sample_tokens(net, 2, generator=_g(), **kw))
