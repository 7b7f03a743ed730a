"""The AR baseline: kv-cached vs plain decoding, exact likelihood, loss, sampler settings."""
import math

import pytest
import torch

from ulib.prior.autoregressive import ar_loss, nll_bits_per_token
from ulib.prior.transformer import Transformer
from ulib.sample.autoregressive import ARSampler, sample_ar

from helpers import AR_K, AR_L, ar_tokens, cached_logits, tiny_ar

K, L = AR_K, AR_L
tokens = ar_tokens


def greedy(net, B, length):
    """Argmax decoding with the plain forward pass, written out by hand."""
    x = torch.zeros(B, 0, dtype=torch.long)
    with torch.no_grad():
        for _ in range(length):
            x = torch.cat([x, net(x)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return x


# ---- kv cache ------------------------------------------------------------------------------------
def test_model_logits_are_not_trivial():
    # guards the tests below against a model whose predictions ignore the context
    net, x = tiny_ar(), tokens()
    with torch.no_grad():
        logits = net(x[:, :-1])
    assert logits.softmax(-1).max() > 0.3
    assert (logits[:, 1:] - logits[:, :1]).abs().max() > 1.0


def test_cached_logits_match_plain_at_every_position():
    net, x = tiny_ar(), tokens()
    with torch.no_grad():
        plain = net(x[:, :-1])  # (B, L, K)
    cached = cached_logits(net, x)
    assert cached.shape == plain.shape == (3, L, K)
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=0)


def test_cached_prefill_continue_and_rewind():
    net, x = tiny_ar(), tokens()
    with torch.no_grad():
        plain = net(x[:, :-1])
        cache = net.new_cache()
        torch.testing.assert_close(net.forward_cached(x[:, :5], cache, 0), plain[:, :6], atol=1e-5, rtol=0)
        assert cache.length == 6  # start token + 5 tokens
        torch.testing.assert_close(net.forward_cached(x[:, 5:11], cache, 5), plain[:, 6:], atol=1e-5, rtol=0)
        # rewind to 3 tokens with different continuations: matches the plain pass on the new sequence
        y = x.clone()
        y[:, 3:] = (y[:, 3:] + 1) % K
        out = net.forward_cached(y[:, 3:7], cache, 3)
        torch.testing.assert_close(out, net(y[:, :7])[:, 4:], atol=1e-5, rtol=0)
        assert cache.length == 8


def test_forward_cached_rejects_bad_use():
    net = tiny_ar()
    cache = net.new_cache()
    with pytest.raises(ValueError, match="start=2"):
        net.forward_cached(torch.zeros(1, 1, dtype=torch.long), cache, 2)  # nothing cached yet
    with pytest.raises(ValueError, match="block_size"):
        net.forward_cached(torch.zeros(1, L, dtype=torch.long), cache, 0)  # start token + L > L
    bi = Transformer(K, L, n_emb=32, n_head=4, n_layers=2, causal=False)
    with pytest.raises(ValueError, match="causal"):
        bi.forward_cached(torch.zeros(1, 1, dtype=torch.long), bi.new_cache(), 0)


def test_causal_masking_later_tokens_do_not_change_earlier_logits():
    net, x = tiny_ar(), tokens(B=1)
    with torch.no_grad():
        base = net(x[:, :-1])
        for j in range(L - 1):
            y = x.clone()
            y[:, j:] = (y[:, j:] + 1 + torch.arange(L - j)) % K  # change every token >= j
            out = net(y[:, :-1])
            # position i predicts x_i from x_<i: positions 0..j are blind to tokens >= j
            torch.testing.assert_close(out[:, :j + 1], base[:, :j + 1], atol=1e-6, rtol=0)
            assert (out[:, j + 1] - base[:, j + 1]).abs().max() > 1e-3
            torch.testing.assert_close(cached_logits(net, y)[:, :j + 1], base[:, :j + 1], atol=1e-5, rtol=0)


# ---- sampling ------------------------------------------------------------------------------------
@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("top_k", [None, 4])
def test_cached_and_plain_sampling_give_identical_tokens(temperature, top_k):
    net = tiny_ar()
    for seed in range(4):
        runs = [sample_ar(net, 5, L, "cpu", temperature=temperature, top_k=top_k,
                          generator=torch.Generator().manual_seed(seed), use_cache=c) for c in (True, False)]
        assert torch.equal(runs[0], runs[1]), seed
        assert runs[0].shape == (5, L) and runs[0].dtype == torch.long
        assert 0 <= runs[0].min() and runs[0].max() < K


def test_cached_and_plain_step_logits_agree():
    net = tiny_ar()
    logs = {}
    for c in (True, False):
        logs[c] = []
        sample_ar(net, 3, L, "cpu", generator=torch.Generator().manual_seed(0), use_cache=c,
                  callback=lambda i, r: logs[c].append((i, r.extras["logits"])))
    assert [i for i, _ in logs[True]] == list(range(L))
    for (_, a), (_, b) in zip(logs[True], logs[False]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_cached_path_makes_L_single_token_calls():
    net = tiny_ar()
    calls = []
    real = net.embed_cached  # every cached call embeds its new tokens, through the CPU accelerator or not

    def spy(idx_new, cache, start):
        calls.append((idx_new.shape[1], start))
        return real(idx_new, cache, start)

    net.embed_cached = spy
    net.features = lambda *a: pytest.fail("the cached path must not run the plain forward")
    sampler = ARSampler.of(net, length=L, generator=torch.Generator().manual_seed(0))
    sampler.sample(sampler.initial_state(2, "cpu"))
    # call 0 feeds the start token alone; call i feeds x_{i-1} only
    assert calls == [(0, 0)] + [(1, i - 1) for i in range(1, L)]
    assert sampler.forward_passes == L


def test_sampler_continues_a_prefix():
    net = tiny_ar()
    prefix = tokens(B=2)[:, :5]
    for c in (True, False):
        x = ARSampler.of(net, length=L, generator=torch.Generator().manual_seed(0), use_cache=c).sample(prefix)
        assert torch.equal(x[:, :5], prefix) and x.shape == (2, L)
    a, b = (ARSampler.of(net, length=L, generator=torch.Generator().manual_seed(3), use_cache=c).sample(prefix)
            for c in (True, False))
    assert torch.equal(a, b)


def test_top_k_1_is_greedy_decoding():
    net = tiny_ar()
    expected = greedy(net, 3, L)
    for seed in range(3):
        for c in (True, False):
            x = sample_ar(net, 3, L, "cpu", top_k=1, generator=torch.Generator().manual_seed(seed), use_cache=c)
            assert torch.equal(x, expected)


def test_top_k_restricts_draws_to_the_k_largest_logits():
    net = tiny_ar()
    sampler = ARSampler.of(net, length=L, top_k=3, generator=torch.Generator().manual_seed(0))
    x = sampler.initial_state(500, "cpu")
    res = sampler.step(x)
    token = res.extras["token"]
    allowed = res.extras["logits"].topk(3, dim=-1).indices  # (B, 3)
    assert (token[:, None] == allowed).any(1).all()
    assert len(token.unique()) == 3  # 500 draws over 3 codes hit all three


@pytest.mark.parametrize("temperature, top_k", [(1.0, None), (0.5, None), (2.0, 4)])
def test_draw_follows_the_tempered_softmax(temperature, top_k):
    # frequencies of 40,000 draws from fixed logits vs softmax(top_k(logits) / temperature), within 5 s.e.
    logits = torch.linspace(-2.0, 2.0, K)[torch.randperm(K, generator=torch.Generator().manual_seed(1))]
    sampler = ARSampler.of(tiny_ar(), length=L, temperature=temperature, top_k=top_k,
                           generator=torch.Generator().manual_seed(0))
    n = 40_000
    draws = sampler.draw(logits.expand(n, K))
    freq = torch.bincount(draws, minlength=K).double() / n
    want = logits.double() / temperature
    if top_k is not None:
        want = want.masked_fill(logits < logits.topk(top_k).values[-1], float("-inf"))
    p = want.softmax(-1)
    se = (p * (1 - p) / n).sqrt()
    assert ((freq - p).abs() <= 5 * se + 1e-12).all(), (freq, p)


def test_seeded_sampling_is_deterministic():
    net = tiny_ar()
    a, b, c = (sample_ar(net, 4, L, "cpu", generator=torch.Generator().manual_seed(s)) for s in (7, 7, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sampler_rejects_bad_settings():
    net = tiny_ar()
    for t in (0.0, -1.0):
        with pytest.raises(ValueError, match="temperature"):
            sample_ar(net, 1, L, "cpu", temperature=t)
    for k in (0, K + 1, 2.5, True):
        with pytest.raises(ValueError, match="top_k"):
            sample_ar(net, 1, L, "cpu", top_k=k)
    for length in (0, L + 1):
        with pytest.raises(ValueError, match="length"):
            sample_ar(net, 1, length, "cpu")
    sample_ar(net, 1, L, "cpu", top_k=K)  # K itself is allowed


# ---- likelihood and loss -------------------------------------------------------------------------
def test_uniform_model_has_nll_log2_K():
    net = tiny_ar()
    with torch.no_grad():
        net.head.weight.zero_()  # every logit 0: p(x_i | x_<i) = 1/K
    nll = nll_bits_per_token(net, tokens(B=4))
    assert nll.shape == (4,)
    torch.testing.assert_close(nll, torch.full((4,), math.log2(K)))  # 4 bits per token


def test_nll_is_the_chain_rule_sum_of_step_log_probs():
    # sum_i -log2 p(x_i | x_<i) / L from L cached calls equals the one teacher-forced pass
    net, x = tiny_ar(), tokens()
    logp = cached_logits(net, x).log_softmax(-1).gather(2, x[..., None]).squeeze(2)  # (B, L)
    expected = -logp.sum(1) / (L * math.log(2))
    torch.testing.assert_close(nll_bits_per_token(net, x), expected, atol=1e-5, rtol=0)


def test_ar_loss_equals_nll_and_has_gradients():
    net, x = tiny_ar(), tokens()
    out = ar_loss(net, x)
    torch.testing.assert_close(out["loss"].detach(), nll_bits_per_token(net, x).mean())
    assert out["loss"].requires_grad and not out["nll_bpt"].requires_grad
    assert out["nll_bpt"].item() == out["loss"].item()
    out["loss"].backward()
    assert net.head.weight.grad.abs().sum() > 0 and net.start_tok.grad.abs().sum() > 0


def test_likelihood_rejects_a_bidirectional_model():
    bi = Transformer(K, L, n_emb=32, n_head=4, n_layers=2, causal=False)
    with pytest.raises(ValueError, match="causal"):
        ar_loss(bi, tokens())
