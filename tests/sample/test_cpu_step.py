"""The lean one-position step of the AR baseline's cached decoding (`ulib.sample.cpu_step`) and its weights split
across the CPU threads (`ulib.sample.split_linear`): the same maths as the modules, rebuilt when the weights change."""
import pytest
import torch
import torch.nn.functional as F

from ulib.sample.autoregressive import sample_ar
from ulib.sample.cpu_step import CachedForward, DecodeWeights
from ulib.sample.split_linear import SplitLinear, split_applies

from helpers import AR_L as L
from helpers import ar_tokens as tokens
from helpers import cached_logits, tiny_ar


@pytest.fixture(params=[1, 2, 3], ids=lambda n: f"{n}threads")
def threads(request):
    """Run with 1, 2 and 3 threads (3 does not divide the test layers' widths: one slice)."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def test_split_linear_equals_stacked_plain_layers(threads):
    g = torch.Generator().manual_seed(0)
    w1, w2, w3 = (torch.randn(n, 8, generator=g) for n in (6, 2, 4))
    b1, b3 = torch.randn(6, generator=g), torch.randn(4, generator=g)
    split = SplitLinear([w1, w2, w3], [b1, None, b3])
    assert split.weight.shape[0] == (threads if 12 % threads == 0 else 1)  # slices
    want = lambda x: torch.cat([F.linear(x, w1, b1), F.linear(x, w2), F.linear(x, w3, b3)], dim=-1)  # noqa: E731
    with torch.no_grad():
        for rows in (1, 4, 5):
            x = torch.randn(rows, 8, generator=g)
            torch.testing.assert_close(split(x), want(x), atol=1e-5, rtol=1e-5)


def test_split_linear_notices_weight_and_thread_changes():
    w = torch.randn(4, 6)
    split = SplitLinear([w], [None])
    assert not split.stale()
    x = torch.randn(2, 6)
    with torch.no_grad():
        torch.testing.assert_close(split(x), x @ w.T)
        w.mul_(2.0)  # an in-place update (what an optimiser step does)
    assert split.stale()
    fresh = SplitLinear([w], [None])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(before + 1)
        assert fresh.stale()  # sliced for another thread count
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="one bias"):
        SplitLinear([w], [])


def test_split_applies_only_to_float32_cpu_without_grad():
    x = torch.zeros(2, 3)
    assert not split_applies(x)  # grad mode is on
    with torch.no_grad():
        assert split_applies(x)
        assert not split_applies(x.double())


def test_lean_steps_match_the_modules_logits_and_tokens(threads):
    net, x = tiny_ar(), tokens()
    fast_logits = cached_logits(net, x, CachedForward(net))
    with torch.no_grad():
        plain = net(x[:, :-1])
    torch.testing.assert_close(fast_logits, plain, atol=1e-5, rtol=0)
    a = sample_ar(net, 3, L, "cpu", generator=torch.Generator().manual_seed(4))
    b = sample_ar(net, 3, L, "cpu", generator=torch.Generator().manual_seed(4), fast_steps=False)
    c = sample_ar(net, 3, L, "cpu", generator=torch.Generator().manual_seed(4), use_cache=False)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_accelerator_keeps_its_decode_weights_and_rebuilds_them_after_a_weight_change():
    net, x = tiny_ar(), tokens(B=2)
    fast, plain = CachedForward(net), CachedForward(net, enabled=False)
    cache, plain_cache = net.new_cache(), net.new_cache()
    with torch.no_grad():
        for f, c in ((fast, cache), (plain, plain_cache)):  # start token, then x_0: one position per sequence each
            f(x[:, :0], c, 0)
            f(x[:, :1], c, 0)
        assert isinstance(fast.weights, DecodeWeights)
        assert plain.weights is None
        first = fast.weights
        fast(x[:, 1:2], cache, 1)
        assert fast.weights is first  # reused while the weights are unchanged
        plain(x[:, 1:2], plain_cache, 1)
        net.blocks[0].mlp[0].weight.mul_(1.5)
        out = fast(x[:, 2:3], cache, 2)
        assert fast.weights is not first  # stale weights noticed and rebuilt
        # the step used the new weights, as the plain modules do
        torch.testing.assert_close(out, net.forward_cached(x[:, 2:3], plain_cache, 2), atol=1e-5, rtol=0)


def test_the_network_alone_never_takes_the_lean_path(monkeypatch):
    """The accelerator is the sampler's to apply: Transformer.forward_cached always runs the modules."""
    monkeypatch.setattr(DecodeWeights, "step", lambda *a: pytest.fail("the network called the CPU step"))
    net, x = tiny_ar(), tokens(B=2)
    cache = net.new_cache()
    with torch.no_grad():
        net.forward_cached(x[:, :0], cache, 0)
        net.forward_cached(x[:, :1], cache, 0)
        net.forward_cached(x[:, 1:2], cache, 1)


def test_module_path_when_asked_or_in_training_mode():
    net, x = tiny_ar(), tokens(B=2)
    for training, enabled in ((False, False), (True, True)):
        net.train(training)
        fast, cache = CachedForward(net, enabled=enabled), net.new_cache()
        with torch.no_grad():
            fast(x[:, :0], cache, 0)  # start token
            fast(x[:, :1], cache, 0)  # a one-position step
        assert fast.weights is None
    net.eval()
    fast, cache = CachedForward(net), net.new_cache()
    fast(x[:, :0], cache, 0)
    fast(x[:, :1], cache, 0)  # grad mode on: the split copies have no gradient
    assert fast.weights is None


def test_one_position_steps_take_the_lean_path(monkeypatch):
    calls = []
    real = DecodeWeights.step

    def spy(self, model, cache, x, pos):
        calls.append(pos)
        return real(self, model, cache, x, pos)

    monkeypatch.setattr(DecodeWeights, "step", spy)
    net, x = tiny_ar(), tokens()
    cached_logits(net, x, CachedForward(net))  # the start token (module path), then L - 1 one-position steps
    assert calls == list(range(1, L))
