"""Decoding methods of the absorbing prior: 'random' (paper, with aligned passes), 'confidence' (MaskGIT),
'remask' (the official sample_mlm); one entry point `sample_tokens`."""
import math

import pytest
import torch

from ulib.prior.transformer import Transformer
from ulib.sample.absorbing import AbsorbingSampler, time_schedule
from ulib.sample.api import sample_tokens
from ulib.sample.maskgit import ConfidenceSampler, confidence_schedule
from ulib.sample.registry import choices
from ulib.sample.remask import remask_times


def gen(seed):
    return torch.Generator().manual_seed(seed)


def tiny_transformer(K=16, L=12):
    torch.manual_seed(0)
    return Transformer(codebook_size=K, block_size=L, n_emb=32, n_head=4, n_layers=2).eval()


class CountModel(torch.nn.Module):
    """A deterministic 'network' whose logits depend on x_t, so the order of reveals matters:
    logits[b, i, c] = bias[i, c] + a * (number of tokens c already in row b). Row-wise and exact, so a row
    gets the same logits whatever else is in the batch. Records every row it is shown."""

    def __init__(self, K, L, a=1.5, seed=0):
        super().__init__()
        self.K, self.a = K, a
        self.bias = torch.randn(L, K, generator=gen(seed))
        self.calls, self.rows = 0, []

    def forward(self, x):
        self.calls += 1
        self.rows += [tuple(r) for r in x.tolist()]
        counts = (x[:, :, None] == torch.arange(self.K)).sum(1)  # (B, K), mask id never counted
        return self.bias[: x.shape[1]] + self.a * counts[:, None, :].float()  # (B, L, K)


def plain_reverse_process(model, T, steps, mask_id, B, L, temperature=1.0, generator=None):
    """The paper's sampler written plainly (like the official code): the full network and a categorical
    draw at every position at every step, then each masked position unmasks with probability (t - s)/t.
    Returns the tokens (B, L) and the step (B, L) at which each position was revealed."""
    x = torch.full((B, L), mask_id, dtype=torch.long)
    step_of = torch.full((B, L), -1, dtype=torch.long)
    times = time_schedule(T, steps)
    for k, (t, s) in enumerate(zip(times, times[1:])):
        probs = torch.softmax(model(x).float() / temperature, dim=-1)  # (B, L, K)
        draws = torch.multinomial(probs.view(B * L, -1), 1, generator=generator).view(B, L)
        unmask = (x == mask_id) & (torch.rand(B, L, generator=generator) < (t - s) / t)
        x = torch.where(unmask, draws, x)
        step_of[unmask] = k
    return x, step_of


def chi2_same_law(a, b):
    """Two-sample chi-square statistic on counts a, b (n,) and its critical value at p = 0.001
    (Wilson-Hilferty approximation of the chi-square quantile)."""
    table = torch.stack([a, b]).double()
    table = table[:, table.sum(0) > 0]
    expected = table.sum(1, keepdim=True) * table.sum(0, keepdim=True) / table.sum()
    stat = ((table - expected) ** 2 / expected).sum().item()
    return stat, _chi2_critical(table.shape[1] - 1)


def chi2_fits(counts, p):
    """Goodness-of-fit chi-square of counts (n,) against probabilities p (n,), and the p = 0.001 critical value."""
    expected = counts.sum().double() * p.double()
    return ((counts.double() - expected) ** 2 / expected).sum().item(), _chi2_critical(len(p) - 1)


def _chi2_critical(dof, z=3.090):
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


# ---- 'random': the pre-drawn schedule and aligned passes ------------------------------------------
def test_plan_reveals_positions_with_the_law_of_step_by_step_draws():
    T, S, K, B, L = 10, 4, 3, 4000, 8
    times = time_schedule(T, S)  # [10, 8, 5, 2, 0]: uneven gaps
    model = CountModel(K, L)
    plan = AbsorbingSampler.of(model, num_timesteps=T, mask_id=K, length=L, steps=S, generator=gen(0)).plan(
        torch.full((B, L), K))
    _, plain_step_of = plain_reverse_process(model, T, S, K, B, L, generator=gen(1))
    ours = torch.bincount(plan.step_of.flatten(), minlength=S)
    plain = torch.bincount(plain_step_of.flatten(), minlength=S)
    p = torch.tensor([(t - s) / T for t, s in zip(times, times[1:])])  # P(revealed at step k) from x_T
    for counts in (ours, plain):
        stat, crit = chi2_fits(counts, p)
        assert stat < crit, (counts, p)
    stat, crit = chi2_same_law(ours, plain)
    assert stat < crit
    # per image: how many positions each step reveals, and how many steps are non-empty
    plain_hits = torch.zeros(B, S, dtype=torch.long).scatter_add_(1, plain_step_of, torch.ones(B, L, dtype=torch.long))
    our_hits = torch.zeros(B, S, dtype=torch.long).scatter_add_(1, plan.step_of, torch.ones(B, L, dtype=torch.long))
    for k in range(S):
        stat, crit = chi2_same_law(torch.bincount(our_hits[:, k], minlength=L + 1),
                                   torch.bincount(plain_hits[:, k], minlength=L + 1))
        assert stat < crit, k
    stat, crit = chi2_same_law(torch.bincount(plan.nonempty_steps, minlength=S + 1),
                               torch.bincount((plain_hits > 0).sum(1), minlength=S + 1))
    assert stat < crit
    assert torch.equal(plan.nonempty_steps, (our_hits > 0).sum(1))


@pytest.mark.parametrize("T,steps,temperature", [(3, 3, 1.0), (6, 3, 0.7)])
def test_random_tokens_follow_the_plain_sampler(T, steps, temperature):
    K, L, N = 2, 3, 20_000
    model = CountModel(K, L, a=1.5)
    ours = sample_tokens(model, n=N, length=L, num_timesteps=T, mask_id=K, steps=steps,
                         temperature=temperature, generator=gen(0))
    plain, _ = plain_reverse_process(model, T, steps, K, N, L, temperature, gen(1))
    code = torch.tensor([1, 2, 4])  # the whole sequence as one of 8 outcomes: the joint law
    ours_counts = torch.bincount(ours @ code, minlength=8)
    plain_counts = torch.bincount(plain @ code, minlength=8)
    stat, crit = chi2_same_law(ours_counts, plain_counts)
    assert stat < crit, (ours_counts, plain_counts)
    # the test has power: drawing every token from x_T's logits at once (order ignored) is rejected
    probs = torch.softmax(model(torch.full((N, L), K)) / temperature, -1)
    at_once = torch.multinomial(probs.view(-1, K), 1, generator=gen(2)).view(N, L)
    stat, crit = chi2_same_law(torch.bincount(at_once @ code, minlength=8), plain_counts)
    assert stat > 10 * crit


@pytest.mark.parametrize("steps", [16, 7])
def test_pass_by_pass_equals_step_by_step_given_one_plan(steps):
    K, L, B, T = 5, 10, 12, 16
    x_T = torch.full((B, L), K)
    by_step = AbsorbingSampler.of(CountModel(K, L), num_timesteps=T, mask_id=K, length=L, steps=steps,
                                  generator=gen(3))
    plan = by_step.plan(x_T)
    x = x_T
    for k in range(by_step.steps):
        x = by_step.schedule_step(x, k, plan).x
    by_pass = AbsorbingSampler.of(CountModel(K, L), num_timesteps=T, mask_id=K, length=L, steps=steps)
    y = x_T
    for p in range(plan.num_passes):
        res = by_pass.step_pass(y, plan, p)
        assert torch.equal(res.extras["step"], plan.order[:, p])
        assert torch.equal(res.unmasked.sum(1) > 0, res.extras["step"] >= 0)  # a pass never runs an empty step
        y = res.x
    assert torch.equal(x, y) and (x != K).all()
    assert by_pass.forward_passes == plan.num_passes == int(plan.nonempty_steps.max())
    assert by_pass.forward_passes <= by_step.forward_passes <= steps


def test_forward_passes_equal_distinct_states_evaluated():
    K, L, B, T = 16, 12, 8, 12
    model = CountModel(K, L)
    x_start = torch.full((B, L), K)
    x_start[:, 0] = torch.arange(B)  # a fixed token per image, so every row names its image
    plans = []
    x = sample_tokens(model, x_start=x_start, num_timesteps=T, mask_id=K, generator=gen(4),
                      callback=lambda p, res: plans.append(res.extras["step"]))
    steps_taken = torch.stack(plans, 1)  # (B, P)
    n = (steps_taken >= 0).sum(1)  # non-empty steps per image
    assert model.calls == len(plans) == int(n.max())
    assert len(model.rows) == int(n.sum())  # each image evaluated once per non-empty step ...
    assert len(set(model.rows)) == len(model.rows)  # ... and never twice on the same state
    assert torch.equal(x[:, 0], torch.arange(B)) and (x != K).all()
    # the step-by-step sampler evaluates some states again (an image's empty step inside a batch)
    model.calls, model.rows = 0, []
    AbsorbingSampler.of(model, num_timesteps=T, mask_id=K, length=L, generator=gen(4),
                        skip_empty_steps=False).sample(x_start)
    assert len(set(model.rows)) < len(model.rows)


def test_passes_per_image_about_0_63_T_when_T_equals_L():
    T = L = 64
    B = 400
    plan = AbsorbingSampler.of(CountModel(2, L), num_timesteps=T, mask_id=2, length=L, generator=gen(5)).plan(
        torch.full((B, L), 2))
    expected = T * (1 - (1 - 1 / T) ** L)  # each of T steps is non-empty w.p. 1 - (1 - 1/T)^L; ~0.63 T
    assert abs(plan.nonempty_steps.float().mean().item() - expected) < 1.0
    assert expected < plan.num_passes < T


def test_random_inpainting_starts_at_the_matching_time():
    T, L, K = 10, 8, 4
    x = torch.zeros(4, L, dtype=torch.long)
    for b, m in enumerate((0, 1, 3, 8)):
        x[b, :m] = K
    sampler = AbsorbingSampler.of(CountModel(K, L), num_timesteps=T, mask_id=K, length=L, steps=5, generator=gen(6))
    assert sampler.start_time(x).tolist() == [1, 1, 4, 10]  # round(T m / L), at least 1
    xs = x.repeat(500, 1)
    plan = sampler.plan(xs)
    t0 = plan.start_time
    assert (plan.step_of[xs != K] == -1).all() and (plan.step_of[xs == K] >= 0).all()
    # no position is revealed at a step that ends at or above the image's start time
    for k, s in enumerate(sampler.times[1:]):
        assert not ((plan.step_of == k) & (s >= t0)[:, None]).any()
    # rows with m = 3 start at t = 4: times [10, 8, 6, 4, 2, 0], so 4 -> 2 reveals half, 2 -> 0 the rest
    third = plan.step_of[2::4, :3]
    assert abs((third == 3).float().mean().item() - 0.5) < 0.05 and ((third == 3) | (third == 4)).all()


# ---- 'confidence' (MaskGIT) -----------------------------------------------------------------------
def test_confidence_schedule_values():
    assert confidence_schedule(torch.tensor([16]), 4, "cosine").tolist() == [[16, 14, 11, 6, 0]]
    assert confidence_schedule(torch.tensor([16]), 4, "linear").tolist() == [[16, 12, 8, 4, 0]]
    # at least one revealed per step while any remain
    assert confidence_schedule(torch.tensor([2, 0]), 4).tolist() == [[2, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    r = confidence_schedule(torch.tensor([256]), 12)
    assert r[0, 0] == 256 and r[0, -1] == 0 and (r[0, 1:] < r[0, :-1]).all()


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_confidence_reveals_exactly_the_scheduled_counts(schedule):
    K, L, S = 16, 12, 5
    x_start = torch.full((6, L), K)
    x_start[3:, :4] = torch.arange(4)  # three images with 8 masked, three with 12
    sampler = ConfidenceSampler.of(CountModel(K, L), mask_id=K, length=L, steps=S, schedule=schedule, generator=gen(7))
    remaining = sampler.remaining(x_start)
    seen = []
    x = sample_tokens(CountModel(K, L), method="confidence", x_start=x_start, num_timesteps=16, mask_id=K,
                      steps=S, generator=gen(7), schedule=schedule, callback=lambda j, r: seen.append(r))
    assert len(seen) == S and (x != K).all()
    for j, res in enumerate(seen):
        assert torch.equal(res.unmasked.sum(1), remaining[:, j] - remaining[:, j + 1])
        assert torch.equal((res.x == K).sum(1), remaining[:, j + 1])


def test_confidence_keeps_the_most_confident_without_choice_noise():
    K, L = 8, 12
    seen = []
    sample_tokens(CountModel(K, L, a=0.5), method="confidence", n=20, length=L, num_timesteps=12,
                  mask_id=K, steps=4, generator=gen(8), choice_temperature=0.0,
                  callback=lambda j, r: seen.append(r))
    for res in seen:
        conf = res.extras["confidence"]
        kept = torch.where(res.unmasked, conf, torch.full_like(conf, math.inf))
        scored = conf > -math.inf
        dropped = torch.where(scored & ~res.unmasked, conf, torch.full_like(conf, -math.inf))
        assert (kept.min(1).values >= dropped.max(1).values).all()


# ---- 'remask' (official sample_mlm) ---------------------------------------------------------------
def test_remask_times_follow_the_official_grid():
    assert remask_times(8, 4) == [8, 5, 3, 1]  # floor(linspace(1, 8, 4)) = [1, 3, 5, 8], descending
    assert remask_times(5, 5) == [5, 4, 3, 2, 1]
    assert remask_times(256, 1) == [1]


def test_remask_masks_each_generated_token_with_probability_t_over_T():
    K, L, B, T, S = 8, 20, 200, 10, 4
    model = CountModel(K, L)
    x_start = torch.full((B, L), K)
    x_start[:, :5] = 3  # given tokens: never re-masked
    seen = []
    x = sample_tokens(model, method="remask", x_start=x_start, num_timesteps=T, mask_id=K, steps=S,
                      generator=gen(9), callback=lambda j, r: seen.append(r))
    assert model.calls == S and (x != K).all() and (x[:, :5] == 3).all()
    for res in seen:
        x_t, t = res.extras["x_t"], res.extras["t"]
        assert not res.unmasked[:, :5].any() and (x_t[:, :5] == 3).all()
        assert torch.equal(x_t == K, res.unmasked)
        frac = res.unmasked[:, 5:].float().mean().item()
        assert abs(frac - t / T) < 0.03, (t, frac)
    assert seen[0].extras["t"] == T and seen[0].unmasked[:, 5:].all()  # the first step masks every generated token


# ---- every method --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", choices())
def test_every_method_fills_every_mask_and_keeps_given_tokens(method):
    K, L, B = 16, 12, 6
    net = tiny_transformer(K, L)
    x_start = torch.randint(0, K, (B, L), generator=gen(10))
    free = torch.rand(B, L, generator=gen(11)) < 0.6
    free[0] = True  # one all-masked image
    x_start[free] = K
    history = []
    x = sample_tokens(net, method=method, x_start=x_start, num_timesteps=16, mask_id=K, steps=8,
                      generator=gen(12), callback=lambda k, r: history.append(r.x))
    assert x.shape == (B, L) and x.dtype == torch.long
    assert (x != K).all() and x.min() >= 0 and x.max() < K
    for h in history:
        assert torch.equal(h[~free], x_start[~free])
    if method != "remask":  # a revealed token never changes (remask re-predicts by design)
        for a, b in zip(history, history[1:]):
            assert torch.equal(b[a != K], a[a != K])


@pytest.mark.parametrize("method", choices())
def test_every_method_is_deterministic_under_a_seed(method):
    net = tiny_transformer()
    kw = dict(method=method, n=3, length=12, num_timesteps=16, mask_id=16, steps=6)
    a = sample_tokens(net, generator=gen(7), **kw)
    b = sample_tokens(net, generator=gen(7), **kw)
    c = sample_tokens(net, generator=gen(8), **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_arguments_are_named():
    net = tiny_transformer()
    kw = dict(n=2, length=12, num_timesteps=16, mask_id=16)
    for method in choices():
        for steps in (0, 17, -1, 2.5):
            with pytest.raises(ValueError, match="steps"):
                sample_tokens(net, method=method, steps=steps, **kw)
        for temp in (0.0, -1.0, float("nan")):
            with pytest.raises(ValueError, match="temperature"):
                sample_tokens(net, method=method, temperature=temp, **kw)
        with pytest.raises(ValueError, match="x_start"):
            sample_tokens(net, method=method, x_start=torch.full((2, 11), 16), **kw)
        with pytest.raises(ValueError, match="x_start"):
            sample_tokens(net, method=method, x_start=torch.full((12,), 16), num_timesteps=16, mask_id=16)
    with pytest.raises(ValueError, match="'random', 'confidence', 'remask'"):
        sample_tokens(net, method="maskgit", **kw)
    with pytest.raises(ValueError, match="schedule"):
        sample_tokens(net, method="random", schedule="cosine", **kw)
    with pytest.raises(ValueError, match="schedule"):
        sample_tokens(net, method="confidence", schedule="square", **kw)
    with pytest.raises(ValueError, match="choice_temperature"):
        sample_tokens(net, method="confidence", choice_temperature=-1.0, **kw)
    with pytest.raises(ValueError, match="n=None"):
        sample_tokens(net, length=12, num_timesteps=16, mask_id=16)
