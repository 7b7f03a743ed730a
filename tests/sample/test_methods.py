"""Every registered method through `sample_tokens`: fills every mask, keeps given tokens, deterministic under
a seed, bad arguments named."""
import pytest
import torch

from ulib.sample.api import sample_tokens
from ulib.sample.registry import choices, get

from helpers import gen, tiny_transformer


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
    if method not in ("remask", "remdm"):  # a revealed token never changes (remask, remdm re-mask by design)
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


# steps each method rejects, by what steps means to it (registry.Method.steps): T = 16 here
BAD_STEPS = {"schedule": (0, 17, -1, 2.5), "total": (0, -1, 2.5), "cap": (0, -1, 2.5), "unused": ()}


def test_bad_arguments_are_named():
    net = tiny_transformer()
    kw = dict(n=2, length=12, num_timesteps=16, mask_id=16)
    for method in choices():
        for steps in BAD_STEPS[get(method).steps]:
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
