"""The Halton order ('halton', `ulib.sample.halton`): the radical inverse and the grid order by hand, the arccos
counts by hand, the random shift, given tokens kept, and the law of the tokens on a stand-in network."""
import itertools
import math

import pytest
import torch

from ulib.sample import halton
from ulib.sample.api import sample_tokens
from ulib.sample.halton import HaltonOptions, HaltonSampler, arccos_revealed, halton_order

from helpers import CountModel, chi2_fits, gen


def test_radical_inverse_by_hand():
    # base 2: 1 = 1 -> .1, 2 = 10 -> .01, 3 = 11 -> .11, 4 = 100 -> .001, 5 = 101 -> .101, 6 = 110 -> .011
    assert [halton.mirrored_digits(k, 2) for k in range(1, 7)] == [(1, 2), (1, 4), (3, 4), (1, 8), (5, 8), (3, 8)]
    # base 3: 1 -> .1, 2 -> .2, 3 = 10 -> .01, 4 = 11 -> .11, 5 = 12 -> .21, 6 = 20 -> .02, 9 = 100 -> .001
    assert [halton.mirrored_digits(k, 3) for k in (1, 2, 3, 4, 5, 6, 9)] == [
        (1, 3), (2, 3), (1, 9), (4, 9), (7, 9), (2, 9), (1, 27)]
    assert halton.radical_inverse(11, 2) == 13 / 16 and halton.radical_inverse(7, 3) == pytest.approx(5 / 9, abs=1e-15)


def test_the_grid_order_by_hand():
    # 2 x 3: (floor(2 phi_2(k)), floor(3 phi_3(k))) for k = 1..6 is (1,1) (0,2) (1,0) (0,1) (1,2) (0,0)
    assert halton_order(2, 3) == (4, 2, 3, 1, 5, 0)
    # 4 x 4: k = 1..10 give (2,1) (1,2) (3,0) (0,1) (2,3) (1,0) (3,2) (0,3) (2,0) (1,1); k = 11 gives
    # (floor(4 * 13/16), floor(4 * 19/27)) = (3, 2), visited at k = 7, so it is skipped; k = 12: (0, 0)
    assert halton_order(4, 4)[:11] == (9, 6, 12, 1, 11, 4, 14, 3, 8, 5, 0)
    assert halton_order(1, 3) == (1, 2, 0)  # no grid: one row, columns by base 3 (1/3, 2/3, 1/9)


@pytest.mark.parametrize("h, w", [(1, 1), (1, 7), (3, 5), (8, 8), (16, 16), (5, 32), (32, 32)])
def test_every_cell_is_visited_exactly_once(h, w):
    assert sorted(halton_order(h, w)) == list(range(h * w))


def test_arccos_counts_by_hand():
    # revealed after j of S steps: floor(m (1 - arccos(j/S) / (pi/2))) = floor(m * 2/pi * arcsin(j/S)), at least j
    # m = 64, S = 4: 64 * 2/pi * arcsin(1/4) = 10.30, arcsin(1/2) = pi/6 -> 21.33, arcsin(3/4) -> 34.55
    assert arccos_revealed(torch.tensor([64]), 4).tolist() == [[0, 10, 21, 34, 64]]
    # m = 12, S = 3: 12 * 2/pi * arcsin(1/3) = 2.60, arcsin(2/3) -> 5.57
    assert arccos_revealed(torch.tensor([12]), 3).tolist() == [[0, 2, 5, 12]]
    # m = 48, S = 2: exactly 48 / 3 = 16 after the first step
    assert arccos_revealed(torch.tensor([48]), 2).tolist() == [[0, 16, 48]]
    # at least one per step while any remain (m = 4: 0.64, 1.33, 2.16 rounded down are below j), then none
    assert arccos_revealed(torch.tensor([4, 2, 0]), 4).tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 2, 2], [0] * 5]
    for j in (1, 2, 3):
        assert math.isclose(64 * 2 / math.pi * math.asin(j / 4), 64 * (1 - math.acos(j / 4) / (math.pi / 2)))
    with pytest.raises(ValueError, match="steps=0"):
        arccos_revealed(torch.tensor([4]), 0)


def test_each_step_reveals_the_next_places_of_the_order_and_keeps_given_tokens():
    K, h, w, S = 8, 4, 4, 5
    L = h * w
    x_start = torch.full((3, L), K)
    x_start[1, ::3] = 2  # image 1: 6 given tokens, 10 masked
    x_start[2, :] = torch.arange(L) % K
    x_start[2, 9] = K  # image 2: one masked
    seen = []
    x = sample_tokens(CountModel(K, L), x_start=x_start, grid=(h, w), method="halton", num_timesteps=16, mask_id=K,
                      steps=S, generator=gen(0), shift=False, callback=lambda j, r: seen.append(r))
    assert x.shape == (3, h, w) and (x != K).all()
    x = x.view(3, L)
    assert torch.equal(x[x_start != K], x_start[x_start != K])
    revealed = arccos_revealed((x_start == K).sum(1), S)
    order = seen[0].extras["order"]
    cells = torch.tensor(halton_order(h, w))
    for b in range(3):
        masked_cells = [c for c in cells.tolist() if x_start[b, c] == K]  # the order restricted to masked cells
        assert order[b, masked_cells].tolist() == list(range(len(masked_cells)))
        assert (order[b, x_start[b] != K] == -1).all()
    assert len(seen) == S
    for j, res in enumerate(seen):
        assert torch.equal(res.unmasked.sum(1), revealed[:, j + 1] - revealed[:, j])
        places = torch.where(res.unmasked, order, torch.full_like(order, -1))
        for b in range(3):
            got = sorted(places[b][places[b] >= 0].tolist())
            assert got == list(range(int(revealed[b, j]), int(revealed[b, j + 1])))
        assert torch.equal(res.unmasked, res.extras["step_of"] == j)
    assert [r.ran_network for r in seen] == [True] * S  # image 0 (16 masked) reveals at every step


def test_the_shift_enters_the_order_at_a_uniform_place_per_image():
    h, w, B = 2, 3, 6000
    L = h * w
    sampler = HaltonSampler.of(CountModel(4, L), num_timesteps=L, mask_id=4, grid=(h, w), steps=L, generator=gen(3))
    order = sampler.visiting_order(torch.full((B, L), 4))  # (B, L) place of each cell
    cells = torch.tensor(halton_order(h, w))
    first = order.argmin(1)  # the cell each image visits first
    shift = (cells.argsort()[first])  # its place in the unshifted order = s_b
    for b in range(20):  # image b visits cells[(i + s_b) mod L] at place i
        s = int(shift[b])
        assert torch.equal(order[b, cells[(torch.arange(L) + s) % L]], torch.arange(L))
    stat, crit = chi2_fits(torch.bincount(shift, minlength=L), torch.full((L,), 1 / L))
    assert stat < crit
    again = HaltonSampler.of(CountModel(4, L), num_timesteps=L, mask_id=4, grid=(h, w), generator=gen(3))
    assert torch.equal(again.visiting_order(torch.full((B, L), 4)), order)  # the shifts come from the generator
    fixed = HaltonSampler.of(CountModel(4, L), num_timesteps=L, mask_id=4, grid=(h, w), shift=False)
    assert (fixed.visiting_order(torch.full((3, L), 4))[:, cells] == torch.arange(L)).all()


def _sequential_law(model, K, L, orders, temperature):
    """P(x) (K^L outcomes, x coded as sum x_i K^i) when one position is revealed at a time along one of `orders`
    (equally likely), each drawn from softmax(logits / temperature) given what is revealed: the exact law."""
    law = torch.zeros(K**L, dtype=torch.float64)
    for order in orders:
        for x in itertools.product(range(K), repeat=L):
            state, p = [K] * L, 1.0
            for i in order:
                probs = torch.softmax(model(torch.tensor([state]))[0, i].double() / temperature, -1)
                p *= float(probs[x[i]])
                state[i] = x[i]
            law[sum(v * K**i for i, v in enumerate(x))] += p / len(orders)
    return law


def test_tokens_follow_the_sequential_law_along_the_shifted_order():
    K, L, N, temperature = 2, 3, 20_000, 0.7
    model = CountModel(K, L, a=1.5)
    code = torch.tensor([1, 2, 4])  # the whole sequence as one of 8 outcomes
    base = halton_order(1, L)  # (1, 2, 0); 3 steps of 3 positions: one per step
    rotations = [base[s:] + base[:s] for s in range(L)]
    for shift, orders in ((False, [base]), (True, rotations)):
        x = sample_tokens(model, N, length=L, method="halton", num_timesteps=L, mask_id=K, steps=L,
                          temperature=temperature, generator=gen(5), shift=shift)
        counts = torch.bincount(x @ code, minlength=K**L)
        law = _sequential_law(model, K, L, orders, temperature)
        stat, crit = chi2_fits(counts, law)
        assert stat < crit, (shift, counts, law)
    # the test has power: the shifted samples do not follow the unshifted order's law
    stat, crit = chi2_fits(counts, _sequential_law(model, K, L, [base], temperature))
    assert stat > 5 * crit, stat


def test_same_seed_same_tokens_and_the_options_are_checked():
    kw = dict(n=4, grid=(3, 4), num_timesteps=12, mask_id=8, steps=5, method="halton")
    a = sample_tokens(CountModel(8, 12), generator=gen(1), **kw)
    b = sample_tokens(CountModel(8, 12), generator=gen(1), **kw)
    assert torch.equal(a, b)
    fewer = sample_tokens(CountModel(8, 12), generator=gen(1), **{**kw, "steps": 1})  # one step reveals all
    assert fewer.shape == (4, 3, 4) and (fewer != 8).all()
    with pytest.raises(ValueError, match="shift='yes'"):
        HaltonOptions(shift="yes")
    with pytest.raises(ValueError, match="length=12"):
        HaltonSampler.of(CountModel(8, 12), num_timesteps=12, mask_id=8, length=12, grid=(3, 5))
