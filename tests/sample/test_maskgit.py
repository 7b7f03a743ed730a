"""MaskGIT's confidence decoding ('confidence', `ulib.sample.maskgit`): the reveal schedule, exact counts per
step, the most confident kept."""
import math

import pytest
import torch

from ulib.sample.api import sample_tokens
from ulib.sample.maskgit import ConfidenceSampler, confidence_schedule

from helpers import CountModel, gen


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
