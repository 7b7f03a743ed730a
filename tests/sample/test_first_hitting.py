"""First-hitting sampling ('first_hitting', `ulib.sample.first_hitting`): one uniformly chosen position per call,
the exact law of revealing one token at a time in a random order, first-hitting times t * u^(1/m); and what stays
different from 'random' at steps = T."""
import itertools
import math

import torch

from ulib.sample.absorbing import AbsorbingSampler
from ulib.sample.api import sample_tokens
from ulib.sample.first_hitting import FirstHittingSampler

from helpers import CountModel, chi2_fits, gen

K, L, N, TAU = 2, 3, 20_000, 0.7
CODE = torch.tensor([1, 2, 4])  # a sequence of 3 binary tokens as one of 8 outcomes: the joint law


def one_at_a_time_law(model, temperature):
    """P(x) over the 8 sequences when the positions are revealed one by one in a uniformly random order, each
    token drawn from softmax(logits / temperature) of the state before it: the average over the L! orders."""
    p = torch.zeros(2**L, dtype=torch.float64)
    for order in itertools.permutations(range(L)):
        for tokens in itertools.product(range(K), repeat=L):
            x, prob = torch.full((1, L), K), 1.0
            for pos in order:
                prob *= torch.softmax(model(x)[0].double() / temperature, -1)[pos, tokens[pos]].item()
                x[0, pos] = tokens[pos]
            p[int(torch.tensor(tokens) @ CODE)] += prob / math.factorial(L)
    return p


def test_tokens_follow_the_one_at_a_time_law_which_random_at_steps_T_does_not():
    model = CountModel(K, L, a=1.5)
    law = one_at_a_time_law(model, TAU)
    kw = dict(n=N, length=L, num_timesteps=L, mask_id=K, temperature=TAU)
    ours = sample_tokens(model, method="first_hitting", generator=gen(0), **kw)
    stat, crit = chi2_fits(torch.bincount(ours @ CODE, minlength=8), law)
    assert stat < crit
    # the kit's T-step process at steps = T = L reveals positions that share a step from the same state: another law
    rnd = sample_tokens(model, method="random", generator=gen(1), **kw)
    stat, crit = chi2_fits(torch.bincount(rnd @ CODE, minlength=8), law)
    assert stat > 10 * crit


def test_each_call_reveals_one_position_per_image_in_a_uniformly_random_order():
    model = CountModel(K, L)
    sampler = FirstHittingSampler.of(model, num_timesteps=L, mask_id=K, length=L, temperature=TAU, generator=gen(2))
    positions = []
    x = sampler.sample(torch.full((N, L), K), callback=lambda j, r: positions.append(r.extras["position"]))
    assert (x != K).all() and sampler.forward_passes == model.calls == L  # L calls, where 'random' skips ties
    order = torch.stack(positions, 1)  # (N, L): the positions in the order revealed
    assert (order.sort(1).values == torch.arange(L)).all()  # each position exactly once
    perms = list(itertools.permutations(range(L)))
    index = {p: i for i, p in enumerate(perms)}
    counts = torch.bincount(torch.tensor([index[tuple(r)] for r in order.tolist()]), minlength=len(perms))
    stat, crit = chi2_fits(counts, torch.full((len(perms),), 1 / len(perms)))
    assert stat < crit
    passes = AbsorbingSampler.of(model, num_timesteps=L, mask_id=K, length=L, generator=gen(3)).plan(
        torch.full((N, L), K)).nonempty_steps.float().mean().item()
    assert abs(passes - L * (1 - (1 - 1 / L) ** L)) < 0.05  # 'random' at T = L: ~2.11 calls per image here


def test_first_hitting_times_are_t_times_u_to_the_one_over_m():
    T, Lt, B = 50, 6, 20_000
    sampler = FirstHittingSampler.of(CountModel(K, Lt), num_timesteps=T, mask_id=K, length=Lt, generator=gen(4))
    plan = sampler.plan(torch.full((B, Lt), K))
    t = plan.times  # (B, Lt + 1): t_0 = T, then each call's reveal time
    assert (t[:, 0] == T).all() and (t[:, 1:] > 0).all() and (t[:, 1:] < t[:, :-1]).all()
    # P(t_{j+1} <= s | t_j) = (s / t_j)^m with m = Lt - j masked: (t_{j+1} / t_j)^m is uniform on (0, 1)
    for j in (0, 3, Lt - 1):
        v = (t[:, j + 1] / t[:, j]) ** (Lt - j)
        stat, crit = chi2_fits(torch.histc(v, bins=10, min=0, max=1).long(), torch.full((10,), 0.1))
        assert stat < crit, j


def test_given_tokens_are_kept_and_each_image_makes_its_masked_count_of_calls():
    T, Lt = 16, 8
    model = CountModel(5, Lt)
    x_start = torch.zeros(4, Lt, dtype=torch.long)
    for b, m in enumerate((0, 1, 3, 8)):
        x_start[b, Lt - m:] = 5
    history = []
    x = sample_tokens(model, method="first_hitting", x_start=x_start, num_timesteps=T, mask_id=5, generator=gen(5),
                      callback=lambda j, r: history.append(r))
    assert (x != 5).all() and torch.equal(x[x_start != 5], x_start[x_start != 5])
    assert len(history) == model.calls == 8  # max_b m_b calls ...
    assert len(model.rows) == 0 + 1 + 3 + 8  # ... each on the images that still reveal something
    reveals = torch.stack([r.unmasked.sum(1) for r in history], 1)  # (B, calls)
    assert reveals.sum(1).tolist() == [0, 1, 3, 8] and reveals.max() == 1
    t = torch.stack([r.extras["t"] for r in history], 1)
    assert (t[0] == -1).all() and (t[1, 1:] == -1).all() and (t[3] > 0).all()
    assert FirstHittingSampler.of(model, num_timesteps=T, mask_id=5, length=Lt).plan(x_start).times[:, 0].tolist() \
        == [1, 2, 6, 16]  # round(T m / L), at least 1: the start times of 'random'
