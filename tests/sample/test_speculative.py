"""Speculative sampling of the AR model (ulib/sample/speculative.py): the accept/residual rule on hand-computed
distributions, the law of the tokens against the AR model's exact joint (enumerated on a 4-code, 4-token model) by
chi-square on every position and every adjacent pair, a power check (a wrong temperature is caught), a draft equal
to the target accepting everything, the draft seeing only a raster prefix, and cached against uncached scoring."""
import itertools

import pytest
import torch

from ulib.sample import registry
from ulib.sample.api import sample_tokens
from ulib.sample.autoregressive import tempered_probs
from ulib.sample.base import SamplingContext
from ulib.sample.speculative import SpeculativeOptions, SpeculativeSampler, acceptance, residual, speculative_sample

from helpers import chi2_fits, gen, scaled_transformer

K, L = 4, 4  # codes, tokens: K^L = 256 sequences to enumerate


def _models():
    """The target (causal) and the draft (absorbing), random and far from uniform, unrelated to each other."""
    ar = scaled_transformer(K, L, causal=True, seed=0, std=0.5, n_emb=16, n_head=2)
    ab = scaled_transformer(K, L, causal=False, seed=1, std=0.5, n_emb=16, n_head=2)
    return ar, ab


class NeighbourDraft(torch.nn.Module):
    """A draft whose guesses lean hard on the tokens beside them: logits[b, j, c] = bias[j, c] + a * (number of
    revealed neighbours j - 1, j + 1 holding c). A draft that revealed a later position first would copy it."""

    def __init__(self, a=3.0, seed=0):
        super().__init__()
        self.mask_id, self.a = K, a
        self.bias = torch.randn(L, K, generator=gen(seed))

    def forward(self, x):
        shown = torch.nn.functional.one_hot(x, K + 1)[..., :K].float()  # (B, L, K), a mask shows nothing
        near = torch.zeros_like(shown)
        near[:, 1:] += shown[:, :-1]
        near[:, :-1] += shown[:, 1:]
        return self.bias + self.a * near


# ---- the rule on fixed distributions ----------------------------------------------------------------------
def test_acceptance_and_residual_by_hand():
    p = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    q = torch.tensor([0.9, 0.1, 0.0], dtype=torch.float64)
    torch.testing.assert_close(acceptance(p, q), torch.tensor([5 / 9, 1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(residual(p, q), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    # one position's law: kept draft + rejection mass (1 - sum min(p, q) = 0.4) times the residual = p
    kept = q * acceptance(p, q)
    torch.testing.assert_close(kept.sum(), torch.tensor(0.6, dtype=torch.float64))
    torch.testing.assert_close(kept + (1 - kept.sum()) * residual(p, q), p)


def test_residual_spreads_over_every_code_p_exceeds_q_and_is_p_when_q_equals_p():
    p = torch.tensor([[0.2, 0.3, 0.5], [0.1, 0.6, 0.3]], dtype=torch.float64)
    q = torch.tensor([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2]], dtype=torch.float64)
    torch.testing.assert_close(acceptance(p, q), torch.tensor([[0.4, 1.0, 1.0], [0.25, 1.0, 1.0]],
                                                              dtype=torch.float64))
    # row 2: p - q = [-0.3, 0.2, 0.1] -> [0, 2/3, 1/3]
    torch.testing.assert_close(residual(p, q), torch.tensor([[0.0, 0.0, 1.0], [0.0, 2 / 3, 1 / 3]],
                                                            dtype=torch.float64))
    torch.testing.assert_close(residual(p, p), p)


# ---- the law ---------------------------------------------------------------------------------------------
def exact_joint(ar, temperature=1.0, top_k=None):
    """Every sequence X (K^L, L) and its probability under the AR model at this temperature and top_k."""
    X = torch.tensor(list(itertools.product(range(K), repeat=L)))
    with torch.no_grad():
        p = tempered_probs(ar(X[:, :-1]), temperature, top_k, dtype=torch.float64)  # (K^L, L, K): p(x_j | x_<j)
    return X, p.gather(-1, X[..., None]).squeeze(-1).prod(1)


def pooled_fit(counts, probs, min_expected=10.0):
    """chi2_fits with the cells whose expected count is under min_expected pooled into one; (statistic, critical
    value at p = 1e-5). A token drawn where the law says 0 fails at once."""
    assert counts[probs == 0].sum() == 0, "a token of probability 0 was drawn"
    small = counts.sum() * probs < min_expected
    c = torch.cat([counts[~small], counts[small].sum(0, keepdim=True)])
    p = torch.cat([probs[~small], probs[small].sum(0, keepdim=True)])
    return chi2_fits(c[p > 0], p[p > 0], z=4.265)


def worst_fit(tokens, X, P):
    """max over positions (marginals, K cells) and adjacent pairs (K^2 cells) of statistic / critical value: below
    1 when every one of the 2L - 1 = 7 tests accepts at p = 1e-5 (family-wise < 1e-4: a chi-square with cells of
    expected count ~10 has a heavier tail than its approximation, and the power checks below keep a wide margin)."""
    worst = 0.0
    cells = [(X[:, j], tokens[:, j], K) for j in range(L)]
    cells += [(X[:, j] * K + X[:, j + 1], tokens[:, j] * K + tokens[:, j + 1], K * K) for j in range(L - 1)]
    for exact_cell, drawn_cell, n in cells:
        probs = torch.zeros(n, dtype=torch.float64).index_add_(0, exact_cell, P)
        stat, critical = pooled_fit(torch.bincount(drawn_cell, minlength=n), probs)
        worst = max(worst, stat / critical)
    return worst


N = 4000  # samples per law test: ~1 s each on 2 shared cores


@pytest.mark.parametrize("draft, block, draft_steps, temperature, draft_temperature, top_k, use_cache", [
    ("absorbing", 2, 1, 1.0, None, None, True),
    ("absorbing", 3, 2, 1.0, 0.5, None, True),  # a non-dividing chunk split and a colder draft
    ("absorbing", 4, 4, 0.8, 2.0, None, False),  # one token per draft call, a hot draft, uncached scoring
    ("absorbing", 4, 1, 1.3, None, 3, True),  # the whole block in one draft call; top-k on the target
    ("absorbing", 1, 1, 1.0, None, None, True),
    ("neighbour", 4, 4, 1.0, None, None, True),
])
def test_tokens_follow_the_ar_models_law(draft, block, draft_steps, temperature, draft_temperature, top_k,
                                         use_cache):
    ar, ab = _models()
    tokens, stats = speculative_sample(ar, ab if draft == "absorbing" else NeighbourDraft(), N, block=block,
                                       draft_steps=draft_steps, temperature=temperature,
                                       draft_temperature=draft_temperature, top_k=top_k, use_cache=use_cache,
                                       generator=gen(0))
    X, P = exact_joint(ar, temperature, top_k)
    assert worst_fit(tokens, X, P) < 1.0
    assert 0 < stats.accepted < stats.drafted, "the test should see both acceptances and rejections"


def test_the_statistic_catches_a_wrong_temperature():
    """Power: the same test at the same sample size rejects samples drawn at temperature 1.3 as draws of the
    model at 1.0 (by a wide margin), so a bug of that size in the rule could not pass."""
    ar, ab = _models()
    hot, _ = speculative_sample(ar, ab, N, block=2, temperature=1.3, generator=gen(0))
    assert worst_fit(hot, *exact_joint(ar, 1.0)) > 5.0
    assert worst_fit(hot, *exact_joint(ar, 1.3)) < 1.0


class ReversedOrder(SpeculativeSampler):
    """The mistake the module docstring warns of: the block drafted last position first, so a draft token is
    drawn given the later ones."""

    def chunks(self, n, todo):
        raster = super().chunks(n, todo)
        return torch.where(todo, self.options.draft_steps - 1 - raster, raster)


def test_the_statistic_catches_a_draft_revealed_out_of_raster_order():
    ar, _ = _models()
    ctx = SamplingContext(ar, 0, None, L, generator=gen(0))
    wrong = ReversedOrder(ctx, options=SpeculativeOptions(NeighbourDraft(), block=4, draft_steps=4))
    assert worst_fit(wrong.sample(wrong.initial_state(N, "cpu")), *exact_joint(ar)) > 1.3


class ARDraft(torch.nn.Module):
    """A 'draft' that is the AR model itself: at position j the causal model's p(x_j | x_<j), masked positions
    read as code 0 (they come after j, so a causal model never sees them)."""

    def __init__(self, ar):
        super().__init__()
        self.ar, self.mask_id = ar, K

    def forward(self, x):
        return self.ar(x.clamp(max=K - 1)[:, :-1])  # (B, L, K): the start token predicts x_0


def test_a_draft_equal_to_the_target_is_always_accepted():
    ar, _ = _models()
    seen = []
    tokens, stats = speculative_sample(ar, ARDraft(ar), 64, block=2, draft_steps=2, temperature=0.9,
                                       draft_temperature=0.9, generator=gen(1), callback=lambda k, r: seen.append(r))
    assert stats.accepted == stats.drafted > 0
    # rounds: positions 0-1 drafted + bonus 2, then 3 drafted (the last): L = 4 tokens in 2 AR passes
    assert stats.ar_passes == 2 and stats.tokens_per_pass == L / 2
    assert [r.extras["window"] for r in seen] == [(0, 2), (3, 3)]
    assert all(torch.equal(r.extras["accepted"], r.extras["drafted"]) for r in seen)
    assert tokens.shape == (64, L) and tokens.max() < K


class RecordingDraft(torch.nn.Module):
    """Wraps a draft network and records every token grid it is shown."""

    def __init__(self, net):
        super().__init__()
        self.net, self.mask_id, self.seen = net, net.mask_id, []

    def forward(self, x):
        self.seen.append(x.clone())
        return self.net(x)


@pytest.mark.parametrize("draft_steps", [1, 2, 3])
def test_the_draft_sees_a_raster_prefix_only(draft_steps):
    """q_j may depend on positions before j only: every grid the draft is shown is a prefix, then masks."""
    ar, ab = _models()
    draft = RecordingDraft(ab)
    speculative_sample(ar, draft, 32, block=3, draft_steps=draft_steps, generator=gen(2))
    assert draft.seen
    for x in draft.seen:
        given = (x != K).long()
        assert torch.equal(given.cumprod(1), given)


# ---- the cache ---------------------------------------------------------------------------------------------
def test_cached_scoring_with_rollback_matches_a_full_pass():
    ar, ab = _models()
    sampler = SpeculativeSampler(SamplingContext(ar, 0, None, L), options=SpeculativeOptions(ab))
    x, y = torch.randint(0, K, (5, L), generator=gen(3)), torch.randint(0, K, (5, L), generator=gen(4))
    y[:, :2] = x[:, :2]  # a rejection at position 2: y keeps x's first two tokens only
    with torch.no_grad():
        full_x, full_y = ar(x[:, :-1]), ar(y[:, :-1])  # (5, L, K): logits of x_0..x_{L-1}
        torch.testing.assert_close(sampler.score(x, 0, 3, fresh=True), full_x, atol=1e-5, rtol=0)
        torch.testing.assert_close(sampler.score(y, 2, 3, fresh=False), full_y[:, 2:], atol=1e-5, rtol=0)
        torch.testing.assert_close(sampler.score(y, 1, 2, fresh=False), full_y[:, 1:3], atol=1e-5, rtol=0)


def test_cached_and_uncached_sampling_draw_the_same_tokens():
    ar, ab = _models()
    kw = dict(block=3, draft_steps=2, temperature=0.9)
    a, sa = speculative_sample(ar, ab, 200, generator=gen(5), **kw)
    b, sb = speculative_sample(ar, ab, 200, generator=gen(5), use_cache=False, **kw)
    assert torch.equal(a, b) and sa == sb


# ---- the protocol, the stats, the front door ------------------------------------------------------------
def test_stats_and_steps_add_up_and_a_given_prefix_is_kept():
    ar, ab = _models()
    sampler = SpeculativeSampler(SamplingContext(ar, 0, None, L, generator=gen(6)),
                                 options=SpeculativeOptions(ab, block=2))
    x = sampler.initial_state(6, "cpu")
    x[:3, :2] = torch.tensor([1, 2])
    x[3, :3] = torch.tensor([3, 0, 1])
    seen = []
    out = sampler.sample(x, callback=lambda k, r: seen.append(r))
    st = sampler.stats
    assert torch.equal(out[:3, :2], x[:3, :2]) and torch.equal(out[3, :3], x[3, :3]) and (out < K).all()
    assert st.tokens == sum(st.per_round) == int((x == K).sum())
    assert st.ar_passes == len(seen) == len(st.per_round)
    assert st.drafted == sum(int(r.extras["drafted"].sum()) for r in seen)
    assert st.accepted == sum(int(r.extras["accepted"].sum()) for r in seen) <= st.drafted
    for before, r in zip([x] + [r.x for r in seen], seen):
        assert torch.equal(r.unmasked, (before == K) & (r.x != K))  # wrote: exactly the newly drawn positions
        drafted = r.extras["draft"] != K
        assert torch.equal(drafted.sum(1), r.extras["drafted"]) and (before[drafted] == K).all()


def test_seeded_determinism_and_the_front_door():
    ar, ab = _models()
    a, _ = speculative_sample(ar, ab, 8, block=2, generator=gen(7))
    b = sample_tokens(ar, 8, method="speculative", draft=ab, block=2, generator=gen(7))
    c, _ = speculative_sample(ar, ab, 8, block=2, generator=gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    entry = registry.get("speculative")
    assert entry.prior == "autoregressive" and "speculative" not in registry.choices()
    assert registry.choices("autoregressive") == ("speculative",)  # a --method choice for an AR run
    assert torch.equal(sample_tokens(ar, 8, method="speculative", draft=ab, top_k=2, generator=gen(7)),
                       speculative_sample(ar, ab, 8, top_k=2, generator=gen(7))[0])


def test_bad_settings_are_named():
    ar, ab = _models()
    ctx = SamplingContext(ar, 0, None, L)
    with pytest.raises(ValueError, match="draft=None; speculative sampling needs the draft network"):
        SpeculativeSampler(ctx, options=SpeculativeOptions())  # the options may wait for it, the sampler not
    for kw, match in [(dict(draft=3), "draft=3"), (dict(draft=ab, block=0), "block=0"),
                      (dict(draft=ab, block=2, draft_steps=3), "draft_steps=3; allowed: 1..block=2"),
                      (dict(draft=ab, draft_temperature=0.0), "draft_temperature=0.0"),
                      (dict(draft=ab, top_k=0), "top_k=0")]:
        with pytest.raises(ValueError, match=match):
            SpeculativeOptions(**kw)
    with pytest.raises(ValueError, match="top_k=5"):
        SpeculativeSampler(ctx, options=SpeculativeOptions(ab, top_k=5))
    with pytest.raises(ValueError, match="mask_id=2 is one of the AR model's codes 0..3"):
        SpeculativeSampler(SamplingContext(ar, 0, 2, L), options=SpeculativeOptions(lambda x: ab(x)))
    with pytest.raises(ValueError, match="no mask_id attribute"):
        SpeculativeSampler(ctx, options=SpeculativeOptions(lambda x: ab(x)))
    with pytest.raises(ValueError, match="suffix"):
        SpeculativeSampler(ctx, options=SpeculativeOptions(ab)).sample(torch.tensor([[K, 1, K, K]]))
    wide = scaled_transformer(K + 1, L, causal=False, seed=1, n_emb=16, n_head=2)
    wide.mask_id = K  # a mask id that agrees, a codebook that does not
    with pytest.raises(ValueError, match="the draft predicts 5 codes; the AR model 4"):
        speculative_sample(ar, wide, 2)
    with pytest.raises(ValueError, match="method='confidence'"):
        sample_tokens(ar, 2, method="confidence")
