"""ReMDM ('remdm', `ulib.sample.remdm`): the reverse step of Eq. 6 counted against hand-computed probabilities,
eta = 0 is the random-order process, the loop's plan, given tokens never re-masked, no mask left."""
import pytest
import torch

from ulib.sample.api import sample_tokens
from ulib.sample.remdm import ReMDMSampler, sigma

from helpers import CountModel, chi2_fits, chi2_same_law, gen, plain_reverse_process, tiny_transformer

K, L = 4, 8  # codebook, positions of the counting tests


def fixed_logits(x):
    """A stand-in network: the same logits at every position, whatever x holds."""
    return torch.tensor([2.0, 1.0, 0.0, -1.0]).expand(*x.shape, K)


def half_revealed(B, given=2, seed=0):
    """x0 (B, L) with `given` given tokens then masks, and x: x0 with the next half of the positions revealed."""
    x0 = torch.full((B, L), K)
    x0[:, :given] = 3  # given tokens
    x = x0.clone()
    x[:, given:given + (L - given) // 2] = torch.randint(0, K, (B, (L - given) // 2), generator=gen(seed))
    return x0, x


@pytest.mark.parametrize("options,k,want_sigma,want_reveal", [
    (dict(schedule="cap", eta=0.2), 2, 0.2, 7 / 15),  # t 6 -> 4: alpha 0.4 -> 0.6; (0.6 - 0.8 * 0.4) / 0.6
    (dict(schedule="rescale", eta=0.5), 3, 1 / 6, 3 / 4),  # t 4 -> 2: sigma_max = 0.2 / 0.6; (0.8 - 5/6 * 0.6) / 0.4
    (dict(schedule="cap", eta=0.5), 3, 1 / 3, 1.0),  # capped by (1 - alpha_s) / alpha_t: every mask revealed
    (dict(schedule="cap", eta=0.1, loop_steps=2, loop_time=0.2), 4, 0.1, 0.4),  # loop at t = 2: 0.1 * 0.8 / 0.2
])
def test_one_step_reveals_and_remasks_with_the_probabilities_of_eq_6(options, k, want_sigma, want_reveal):
    T, S, B = 10, 5, 20_000  # schedule [10, 8, 6, 4, 2, 0]
    sampler = ReMDMSampler.of(fixed_logits, num_timesteps=T, mask_id=K, length=L, steps=S, temperature=0.5,
                              generator=gen(1), **options)
    x0, x = half_revealed(B)
    sampler.start(x0)
    res = sampler.step(x, k)
    assert res.extras["sigma"] == pytest.approx(want_sigma, abs=1e-12)
    revealed, masked = (x != K) & (x0 == K), x == K
    remasked = res.extras["remasked"]
    assert torch.equal(remasked, revealed & (res.x == K)) and not (remasked & ~revealed).any()
    assert torch.equal(res.unmasked, masked & (res.x != K))
    for hits, pool, p in ((remasked, revealed, want_sigma), (res.unmasked, masked, want_reveal)):
        n, c = int(pool.sum()), int(hits.sum())
        if p in (0.0, 1.0):
            assert c == n * p
            continue
        stat, crit = chi2_fits(torch.tensor([c, n - c]), torch.tensor([p, 1 - p]))
        assert stat < crit, (c, n, p)
    assert torch.equal(res.x[:, :2], x[:, :2])  # given tokens stay
    kept = revealed & ~remasked
    assert torch.equal(res.x[kept], x[kept])  # a revealed token is kept or masked, never re-drawn
    # revealed tokens follow softmax(logits / temperature)
    stat, crit = chi2_fits(torch.bincount(res.x[res.unmasked], minlength=K),
                           torch.softmax(torch.tensor([2.0, 1.0, 0.0, -1.0]) / 0.5, -1))
    assert stat < crit


@pytest.mark.parametrize("T,steps,options", [(3, 3, {}), (6, 3, {}), (6, 3, dict(loop_steps=2))])
def test_eta_zero_is_the_random_order_process(T, steps, options):
    """sigma = 0 turns Eq. 6 into MDLM's Eq. 2: the tokens have the law of the paper's reverse process (the loop's
    steps then reveal nothing); eta > 0 changes it on a network whose prediction depends on the revealed tokens."""
    n, length = 20_000, 3
    model = CountModel(2, length, a=1.5)
    kw = dict(n=n, length=length, num_timesteps=T, mask_id=2, steps=steps, temperature=0.7, method="remdm")
    ours = sample_tokens(model, eta=0.0, generator=gen(0), **options, **kw)
    plain, _ = plain_reverse_process(model, T, steps, 2, n, length, 0.7, gen(1))
    code = torch.tensor([1, 2, 4])  # the whole sequence as one of 8 outcomes: the joint law
    stat, crit = chi2_same_law(torch.bincount(ours @ code, minlength=8), torch.bincount(plain @ code, minlength=8))
    assert stat < crit
    remasking = sample_tokens(model, schedule="rescale", eta=1.0, generator=gen(2), **options, **kw)
    stat, crit = chi2_same_law(torch.bincount(remasking @ code, minlength=8),
                               torch.bincount(plain @ code, minlength=8))
    assert stat > 3 * crit


def test_the_loop_sits_at_the_schedule_time_nearest_loop_time():
    s = ReMDMSampler.of(fixed_logits, num_timesteps=10, mask_id=K, length=L, steps=5, eta=0.1, loop_steps=3,
                        loop_time=0.25)  # 2.5 -> t_on = 2 (the first of the nearest), alpha 0.8
    assert [(p.t, p.s, p.loop) for p in s.plan] == [(10, 8, False), (8, 6, False), (6, 4, False), (4, 2, False),
                                                    (2, 2, True), (2, 2, True), (2, 2, True), (2, 0, False)]
    assert [p.sigma for p in s.plan] == [0.0] * 4 + [0.1] * 3 + [0.0]  # remasking only in the loop (Eq. 10)
    # without the loop, 'cap' at every step: min(0.35, s / (T - t)); at t = T nothing generated is revealed yet
    no_loop = ReMDMSampler.of(fixed_logits, num_timesteps=10, mask_id=K, length=L, steps=5, eta=0.35)
    assert [p.sigma for p in no_loop.plan] == pytest.approx([0.35, 0.35, 0.35, 2 / 6, 0.0], abs=1e-12)
    assert sigma("cap", 0.3, 0.0, 0.2) == 0.3 and sigma("rescale", 0.3, 0.0, 0.2) == 0.3  # alpha_t = 0: all masked


def test_given_tokens_are_never_remasked_and_no_mask_is_left():
    net, Kt, Lt, B = tiny_transformer(), 16, 12, 6
    x_start = torch.randint(0, Kt, (B, Lt), generator=gen(3))
    free = torch.rand(B, Lt, generator=gen(4)) < 0.6
    free[0] = True
    x_start[free] = Kt
    for options in (dict(schedule="rescale", eta=1.0), dict(eta=0.5, loop_steps=6, loop_time=0.5)):
        history = []
        x = sample_tokens(net, method="remdm", x_start=x_start, num_timesteps=16, mask_id=Kt, steps=8,
                          generator=gen(5), callback=lambda k, r: history.append(r), **options)
        assert (x != Kt).all() and x.min() >= 0 and x.max() < Kt
        assert all(torch.equal(r.x[~free], x_start[~free]) for r in history)
        assert not any(r.extras["remasked"][~free].any() for r in history)
        assert any(r.extras["remasked"].any() for r in history), "the test has remasking to check"
        calls = sum(r.ran_network for r in history)
        assert len(history) == 8 + options.get("loop_steps", 0) and calls <= len(history)


def test_forward_passes_skip_steps_that_reveal_nothing():
    model = CountModel(3, 5)
    sampler = ReMDMSampler.of(model, num_timesteps=40, mask_id=3, length=5, eta=0.0, generator=gen(6))
    history = []
    sampler.sample(torch.full((2, 5), 3), callback=lambda k, r: history.append(r))
    assert len(history) == 40 and model.calls == sampler.forward_passes == sum(r.ran_network for r in history)
    assert sampler.forward_passes < 40  # 2 images of 5 tokens over 40 steps: most steps reveal nothing


def test_bad_options_are_named():
    kw = dict(num_timesteps=10, mask_id=K, length=L)
    for bad, match in ((dict(schedule="loop"), "schedule"), (dict(eta=1.5), "eta"), (dict(eta=-0.1), "eta"),
                       (dict(loop_steps=-1), "loop_steps"), (dict(loop_steps=2.0), "loop_steps"),
                       (dict(loop_time=0.0), "loop_time"), (dict(loop_time=1.0), "loop_time")):
        with pytest.raises(ValueError, match=match):
            ReMDMSampler.of(fixed_logits, **kw, **bad)
    with pytest.raises(ValueError, match="steps >= 2"):
        ReMDMSampler.of(fixed_logits, steps=1, loop_steps=3, **kw)
