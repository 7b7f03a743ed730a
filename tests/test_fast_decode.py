"""MKL-packed weights and the lean one-position step of the AR baseline's cached decoding: the same maths as
the modules, repacked when the weights change."""
import pytest
import torch
import torch.nn.functional as F

from ulib.autoregressive import sample_ar
from ulib.packed_linear import PackedLinear, packing_applies
from ulib.fast_decode import DecodeWeights

from test_autoregressive import L, cached_logits, tiny_ar, tokens

needs_mkl = pytest.mark.skipif(not torch.backends.mkl.is_available(),
                               reason="this torch has no MKL")


@needs_mkl
def test_packed_linear_equals_stacked_plain_layers():
    g = torch.Generator().manual_seed(0)
    w1, w2, w3 = (torch.randn(n, 8, generator=g) for n in (5, 3, 4))
    b1, b3 = torch.randn(5, generator=g), torch.randn(4, generator=g)
    packed = PackedLinear([w1, w2, w3], [b1, None, b3], rows=6)
    x = torch.randn(2, 3, 8, generator=g)  # 2 x 3 = 6 rows: the packed kernel
    with torch.no_grad():
        y = packed(x)
        want = torch.cat([F.linear(x, w1, b1), F.linear(x, w2), F.linear(x, w3, b3)], dim=-1)
        torch.testing.assert_close(y, want, atol=1e-5, rtol=1e-5)
        assert y.shape == (2, 3, 12)
        # any other row count takes plain F.linear with the stacked weights
        x5 = torch.randn(5, 8, generator=g)
        torch.testing.assert_close(packed(x5), torch.cat([F.linear(x5, w1, b1), F.linear(x5, w2),
                                                          F.linear(x5, w3, b3)], dim=-1))


@needs_mkl
def test_packed_linear_without_biases_and_staleness():
    w = torch.randn(4, 6)
    packed = PackedLinear([w], [None], rows=2)
    assert packed.bias is None and not packed.stale()
    x = torch.randn(2, 6)
    with torch.no_grad():
        torch.testing.assert_close(packed(x), x @ w.T)
        w.mul_(2.0)  # an in-place update (what an optimiser step does)
    assert packed.stale()


def test_packing_applies_only_to_float32_cpu_without_grad():
    x = torch.zeros(2, 3)
    assert not packing_applies(x)  # grad mode is on
    with torch.no_grad():
        assert packing_applies(x) == torch.backends.mkl.is_available()
        assert not packing_applies(x.double())


@needs_mkl
def test_packed_decoding_matches_unpacked_logits_and_tokens():
    net, x = tiny_ar(), tokens()
    packed_cache_logits = cached_logits(net, x)
    with torch.no_grad():
        plain = net(x[:, :-1])
    torch.testing.assert_close(packed_cache_logits, plain, atol=1e-5, rtol=0)
    a = sample_ar(net, 3, L, "cpu", generator=torch.Generator().manual_seed(4))
    b = sample_ar(net, 3, L, "cpu", generator=torch.Generator().manual_seed(4), pack_weights=False)
    c = sample_ar(net, 3, L, "cpu", generator=torch.Generator().manual_seed(4), use_cache=False)
    assert torch.equal(a, b) and torch.equal(a, c)


@needs_mkl
def test_cache_uses_packed_weights_and_repacks_after_a_weight_change():
    net, x = tiny_ar(), tokens(B=2)
    cache, plain = net.new_cache(), net.new_cache(pack_weights=False)
    with torch.no_grad():
        for c in (cache, plain):  # start token, then x_0: one position per sequence each
            net.forward_cached(x[:, :0], c, 0)
            net.forward_cached(x[:, :1], c, 0)
        assert isinstance(cache.packed, DecodeWeights) and cache.packed.rows == 2
        assert plain.packed is None
        first = cache.packed
        net.forward_cached(x[:, 1:2], cache, 1)
        assert cache.packed is first  # reused while the weights are unchanged
        net.forward_cached(x[:, 1:2], plain, 1)
        net.blocks[0].mlp[0].weight.mul_(1.5)
        out = net.forward_cached(x[:, 2:3], cache, 2)
        assert cache.packed is not first  # stale weights noticed and repacked
        # the step used the new weights, as the plain modules do
        torch.testing.assert_close(out, net.forward_cached(x[:, 2:3], plain, 2), atol=1e-5, rtol=0)


def test_no_packing_when_asked_not_to_or_in_training_mode():
    net, x = tiny_ar(), tokens(B=2)
    cache = net.new_cache(pack_weights=False)
    with torch.no_grad():
        net.forward_cached(x[:, :0], cache, 0)
    assert cache.packed is None
    net.train()
    cache = net.new_cache()
    with torch.no_grad():
        net.forward_cached(x[:, :0], cache, 0)
    assert cache.packed is None


@needs_mkl
def test_one_position_steps_take_the_lean_path(monkeypatch):
    calls = []
    real = DecodeWeights.step

    def spy(self, model, cache, x, pos):
        calls.append(pos)
        return real(self, model, cache, x, pos)

    monkeypatch.setattr(DecodeWeights, "step", spy)
    net, x = tiny_ar(), tokens()
    cached_logits(net, x)  # the start token (module path), then L - 1 one-position steps
    assert calls == list(range(1, L))
