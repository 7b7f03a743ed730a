"""The official code's sample_mlm ('remask', `ulib.sample.remask`): its time grid and re-masking each
generated token with probability t/T."""
import torch

from ulib.sample.api import sample_tokens
from ulib.sample.remask import remask_times

from helpers import CountModel, gen


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
