"""The EB-sampler ('eb', `ulib.sample.entropy_bounded`): the entropy bound by hand, reveals per call on a network
of known entropies, the cap, finished images not run again, and the law of the tokens on a stand-in network."""
import itertools
import math

import pytest
import torch

from ulib.sample.api import sample_tokens
from ulib.sample.entropy_bounded import EntropyBoundedOptions, EntropyBoundedSampler, entropy_prefix

from helpers import CountModel, chi2_fits, gen

SUPPORT = [1, 2, 4, 3, 1, 8]  # position i predicts a uniform law over its first SUPPORT[i] codes: H_i = ln SUPPORT[i]
K, L = 8, len(SUPPORT)


class KnownEntropies(torch.nn.Module):
    """Logits that ignore x: position i uniform over codes 0..SUPPORT[i]-1 (0 elsewhere: logit -1e4). Records the
    batch size of every call."""

    def __init__(self):
        super().__init__()
        self.logits = torch.full((L, K), -1e4)
        for i, n in enumerate(SUPPORT):
            self.logits[i, :n] = 0.0
        self.batches = []

    def forward(self, x):
        self.batches.append(x.shape[0])
        return self.logits.expand(x.shape[0], L, K)


def test_the_bound_by_hand():
    h = torch.tensor([[0.5, 0.1, 0.2, 1.0]])  # sorted 0.1, 0.2, 0.5, 1.0; sums before each: 0, 0.1, 0.3, 0.8
    assert [int(entropy_prefix(h, g)) for g in (0.0, 0.05, 0.25, 0.35, 0.79, 0.81, 100.0)] == [1, 1, 2, 3, 3, 4, 4]
    # zero-entropy (certain) positions cost nothing: the two zeros and the one after them
    assert entropy_prefix(torch.tensor([[0.0, 0.7, 0.0, 0.9]]), 0.0).tolist() == [3]
    assert entropy_prefix(torch.tensor([[math.inf, math.inf]]), 1.0).tolist() == [1]


@pytest.mark.parametrize("gamma, per_call", [
    # H sorted: 0 (pos 0), 0 (pos 4), ln 2 = .693 (pos 1), ln 3 = 1.099 (pos 3), ln 4 = 1.386 (pos 2), ln 8 (pos 5)
    (0.0, [[0, 4, 1], [3], [2], [5]]),  # sums before: 0, 0, 0, .693: three, then one at a time
    (0.7, [[0, 4, 1, 3], [2], [5]]),  # .693 <= .7 < 1.792
    (1.8, [[0, 4, 1, 3, 2], [5]]),  # 1.792 <= 1.8 < 3.178
    (100.0, [[0, 4, 1, 3, 2, 5]]),
])
def test_each_call_reveals_the_lowest_entropies_within_the_bound(gamma, per_call):
    net, seen = KnownEntropies(), []
    x = sample_tokens(net, 2, length=L, method="eb", num_timesteps=16, mask_id=K, generator=gen(0), gamma=gamma,
                      callback=lambda c, r: seen.append(r))
    assert [sorted(r.unmasked[0].nonzero().flatten().tolist()) for r in seen] == [sorted(p) for p in per_call]
    assert torch.equal(seen[0].unmasked[0], seen[0].unmasked[1])  # the same entropies give the same choice
    assert net.batches == [2] * len(per_call)  # one call per step, nothing after the last mask is filled
    assert (x < torch.tensor(SUPPORT)).all()  # each token drawn from its position's law
    first = seen[0].extras["entropy"][0]
    assert torch.allclose(first, torch.tensor([math.log(n) for n in SUPPORT], dtype=first.dtype), atol=1e-6)
    if len(seen) > 1:  # later calls score only what is still masked
        assert torch.isnan(seen[1].extras["entropy"][0, per_call[0]]).all()
    assert seen[0].extras["revealed"].tolist() == [len(per_call[0])] * 2


def test_the_entropy_is_that_of_the_tempered_softmax():
    logits = torch.zeros(1, 2, 3)
    logits[0, :, 1] = torch.tensor([2.0, -1.0])
    seen = []
    sample_tokens(lambda x: logits.expand(x.shape[0], 2, 3), 1, length=2, method="eb", num_timesteps=4, mask_id=3,
                  temperature=0.5, gamma=0.0, callback=lambda c, r: seen.append(r), generator=gen(1))
    for i, z in enumerate((2.0, -1.0)):  # softmax([0, z/0.5, 0]): two codes at 1, one at e^{2z}
        p = torch.tensor([1.0, math.exp(2 * z), 1.0], dtype=torch.float64)
        p /= p.sum()
        assert float(seen[0].extras["entropy"][0, i]) == pytest.approx(float(-(p * p.log()).sum()), abs=1e-9)


@pytest.mark.parametrize("steps, per_call", [(2, [3, 3]), (3, [3, 2, 1]), (4, [3, 1, 1, 1]), (10, [3, 1, 1, 1])])
def test_steps_caps_the_calls(steps, per_call):
    # gamma = 0 alone reveals 3, 1, 1, 1; call c reveals at least ceil(m_c / (S - c))
    net, seen = KnownEntropies(), []
    sample_tokens(net, 1, length=L, method="eb", num_timesteps=16, mask_id=K, steps=steps, gamma=0.0,
                  generator=gen(2), callback=lambda c, r: seen.append(r))
    assert [int(r.unmasked.sum()) for r in seen] == per_call
    assert len(net.batches) == len(per_call) <= steps


def test_an_image_that_is_done_is_not_run_again():
    net, seen = KnownEntropies(), []
    x_start = torch.full((3, L), K)
    x_start[0, 1:] = 0  # one masked position: done after one call
    x_start[2] = 0  # nothing masked: never run
    sampler = EntropyBoundedSampler.of(net, num_timesteps=16, mask_id=K, length=L, gamma=0.0, generator=gen(3))
    x = sampler.sample(x_start, callback=lambda c, r: seen.append(r))
    assert (x != K).all() and torch.equal(x[0, 1:], x_start[0, 1:]) and torch.equal(x[2], x_start[2])
    assert net.batches == [2, 1, 1, 1]  # image 1 needs 4 calls (3, 1, 1, 1); image 0 one; image 2 none
    assert sampler.forward_passes == 4
    calls = torch.stack([r.extras["active"] for r in seen]).sum(0)
    assert calls.tolist() == [1, 4, 0]  # the per-image number of calls, a result of the run
    assert sampler.start(x_start) == 6  # the bound the loop is given: it stops once nothing is masked


def _eb_law(model, K, L, gamma, temperature):
    """P(x) over the K^L outcomes of the EB-sampler written plainly: at each state the lowest-entropy prefix
    admitted by the bound is revealed, its tokens drawn independently; recursion over every outcome."""
    law = torch.zeros(K**L, dtype=torch.float64)

    def go(state, p):
        masked = [i for i in range(L) if state[i] == K]
        if not masked:
            law[sum(v * K**i for i, v in enumerate(state))] += p
            return
        q = torch.softmax(model(torch.tensor([state]))[0].double() / temperature, -1)  # (L, K)
        h = {i: float(-(q[i] * q[i].log()).sum()) for i in masked}
        ranked = sorted(masked, key=lambda i: (h[i], i))
        n = 1
        while n < len(ranked) and sum(h[i] for i in ranked[:n]) <= gamma:
            n += 1
        chosen = ranked[:n]
        for values in itertools.product(range(K), repeat=n):
            s, pv = list(state), p
            for i, v in zip(chosen, values):
                s[i], pv = v, pv * float(q[i, v])
            go(s, pv)

    go([K] * L, 1.0)
    return law


@pytest.mark.parametrize("gamma", [0.0, 0.3])  # all-masked entropies .139, .307, .674: one, then two at once
def test_tokens_follow_the_law_of_the_rule(gamma):
    K, L, N, temperature = 2, 3, 20_000, 0.8
    model = CountModel(K, L, a=1.5)
    x = sample_tokens(model, N, length=L, method="eb", num_timesteps=L, mask_id=K, temperature=temperature,
                      generator=gen(4), gamma=gamma)
    counts = torch.bincount(x @ torch.tensor([1, 2, 4]), minlength=K**L)
    law = _eb_law(model, K, L, gamma, temperature)
    assert law.sum().item() == pytest.approx(1.0)
    stat, crit = chi2_fits(counts, law)
    assert stat < crit, (counts, law)
    # the test has power: one token per call, or every token at once from the all-masked logits, is another law
    for other in {0.0, 0.3, 100.0} - {gamma}:
        stat, crit = chi2_fits(counts, _eb_law(model, K, L, other, temperature))
        assert stat > 5 * crit, other


def test_options_and_steps_are_checked():
    for bad in (-0.1, math.nan, math.inf, "1"):
        with pytest.raises(ValueError, match="gamma="):
            EntropyBoundedOptions(gamma=bad)
    for steps in (0, -2, 1.5):
        with pytest.raises(ValueError, match=f"steps={steps}"):
            sample_tokens(KnownEntropies(), 1, length=L, method="eb", num_timesteps=16, mask_id=K, steps=steps)
    # a cap above T is allowed: it bounds calls, not schedule steps
    x = sample_tokens(KnownEntropies(), 1, length=L, method="eb", num_timesteps=4, mask_id=K, steps=50)
    assert (x != K).all()
