"""The token draw of `ulib.sample.base` (`uniforms`, `categorical`, `draw`): exact to float64 resolution, where
float32 noise truncates the rare categories (Zheng et al. 2025, section 5)."""
import torch

from ulib.sample.base import categorical, draw, uniforms

from helpers import chi2_fits, gen

TOP32 = 1 - 2**-24  # the largest float32 below 1: torch.rand's float32 uniforms never exceed it


def test_a_category_below_2_pow_minus_24_is_reached_by_float64_uniforms_only():
    probs = torch.tensor([[1.0, 2**-30]])  # category 1 holds 2**-30 / (1 + 2**-30) of the mass: u >= ~1 - 2**-30
    assert categorical(probs, torch.tensor([1 - 2**-31], dtype=torch.float64)).item() == 1
    assert categorical(probs, torch.tensor([1 - 2**-29], dtype=torch.float64)).item() == 0
    # the float32 grid stops short of it: even its largest uniform draws category 0
    assert categorical(probs, torch.tensor([TOP32], dtype=torch.float32)).item() == 0
    assert torch.rand(100_000, generator=gen(0)).max().item() <= TOP32


def test_uniforms_have_random_bits_below_2_pow_minus_24():
    u = uniforms(200_000, gen(1), "cpu")
    assert u.dtype == torch.float64 and 0 <= u.min() and u.max() < 1
    low = (u * 2**24).frac()  # what lies below the float32 grid: all 0 for torch.rand's float32 uniforms
    stat, crit = chi2_fits(torch.histc(low, bins=16, min=0, max=1).long(), torch.full((16,), 1 / 16))
    assert stat < crit
    assert ((torch.rand(200_000, generator=gen(1)).double() * 2**24).frac() == 0).all()
    assert uniforms((3, 4), gen(1), "cpu").shape == (3, 4)


def test_cpu_multinomial_draws_its_exponentials_from_float64_uniforms():
    """`draw` keeps torch.multinomial on the CPU because it is exact there: argmax p / E with E ~ Exp(1) rounded
    from float64. A float32 uniform would put the small E (those that pick rare categories) on a 2**-24 grid."""
    probs = torch.softmax(torch.randn(64, 50, generator=gen(2)), -1)
    e = torch.empty_like(probs).exponential_(generator=gen(3))
    assert torch.equal(draw(probs, gen(3)), (probs / e).argmax(1))  # the race, from the same generator
    small = torch.cat([torch.empty(4_000_000).exponential_(generator=gen(4 + i)) for i in range(4)])
    small = small[small < 2**-18].double()  # ~61 expected
    assert len(small) > 20
    frac = (small * 2**24).frac()  # float32 uniforms near 1 would give E within ~1e-4 of k * 2**-24
    assert ((frac > 0.05) & (frac < 0.95)).float().mean() > 0.5


def test_draw_and_categorical_follow_the_probabilities():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    N = 40_000
    rows = probs.expand(N, 4)
    for got in (draw(rows, gen(5)), categorical(rows, uniforms(N, gen(6), "cpu"))):
        stat, crit = chi2_fits(torch.bincount(got, minlength=4), probs)
        assert stat < crit
    # unnormalised rows and zero-probability categories (first and last) are handled
    u = torch.tensor([0.0, 0.5, 1 - 2**-53], dtype=torch.float64)
    assert categorical(torch.tensor([[0.0, 2.0, 2.0, 0.0]]).expand(3, 4), u).tolist() == [1, 2, 2]


def test_rare_categories_keep_their_share_in_the_draw():
    """A heavy tail: 1 common category and 2**14 rare ones, each 2**-30 of the total. The exact draw reaches
    distinct rare categories at the rate of their mass; float32 uniforms reach only every 64th of them."""
    K = 2**14
    probs = torch.full((1, K + 1), 2**-30, dtype=torch.float64)
    probs[0, 0] = 1 - K * 2**-30  # the rare ones share 2**-16 of the mass
    u = 1 - uniforms(4000, gen(7), "cpu") * 2**-16  # uniforms of the top 2**-16 of [0, 1), where the tail sits
    hits = categorical(probs.expand(len(u), -1), u)
    assert (hits >= 1).all() and len(set(hits.tolist())) > 3000  # ~3.5k distinct of 4000 draws over 16k
    grid = (1 - torch.arange(1, 2**10 + 1, dtype=torch.float64) * 2**-24).float()  # the top float32 uniforms
    reached = set(categorical(probs.expand(len(grid), -1), grid).tolist()) - {0}
    assert len(reached) == K // 64  # 2**-24 / 2**-30: one rare category in 64
