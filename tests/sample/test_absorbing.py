"""The paper's sampler ('random', `ulib.sample.absorbing`): positions revealed with the law of step-by-step
draws from a pre-drawn plan, passes aligned across a batch, inpainting starting at the matching time."""
import pytest
import torch

from ulib.sample.absorbing import AbsorbingSampler, time_schedule
from ulib.sample.api import sample_tokens

from helpers import CountModel, chi2_fits, chi2_same_law, gen, plain_reverse_process


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
