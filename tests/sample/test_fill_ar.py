"""`fill_ar`: the AR baseline's inpainting (notebook 09). Kept tokens stay, filled ones follow p(x_i | x_<i) in
raster order, and what lies after a position never reaches it."""
import pytest
import torch

from ulib.sample.autoregressive import fill_ar
from ulib.sample.base import categorical, uniforms

from helpers import AR_L, ar_tokens, tiny_ar


def test_kept_tokens_stay_and_filled_ones_are_drawn():
    net, x = tiny_ar(), ar_tokens(B=4)
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, 3:7] = True
    mask[1, 9] = True  # one image fills one more position
    out = fill_ar(net, x, mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[~mask], x[~mask])
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out[mask], x[mask]), "a draw from a far-from-uniform model should differ somewhere"
    assert torch.equal(fill_ar(net, x, torch.zeros_like(mask)), x), "nothing to fill: the tokens as given"


def test_a_filled_token_never_sees_what_comes_after_it():
    """A kept token after the hole changed: the fill is unchanged under one seed; one before it: the fill moves."""
    net, x = tiny_ar(), ar_tokens(B=3)
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, 2:5] = True
    fill = lambda tokens: fill_ar(net, tokens, mask, generator=torch.Generator().manual_seed(1))[:, 2:5]
    later, earlier = x.clone(), x.clone()
    later[:, AR_L - 1] = (later[:, AR_L - 1] + 1) % 16
    earlier[:, 0] = (earlier[:, 0] + 1) % 16
    assert torch.equal(fill(later), fill(x))
    assert not torch.equal(fill(earlier), fill(x))


def test_the_draw_is_the_tempered_conditional_by_inverse_cdf():
    """Position i is drawn from softmax(logits_i / temperature) of the prefix with one uniform per image."""
    net, x = tiny_ar(), ar_tokens(B=2)
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, 5] = True
    out = fill_ar(net, x, mask, temperature=0.7, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        probs = torch.softmax(net(x[:, :5])[:, -1].float() / 0.7, dim=-1)
    u = uniforms(2, torch.Generator().manual_seed(3), "cpu")  # float64, as fill_ar draws them
    assert torch.equal(out[:, 5], categorical(probs, u))


def test_bad_inputs_are_named():
    net, x = tiny_ar(), ar_tokens(B=2)
    with pytest.raises(ValueError, match="expected both"):
        fill_ar(net, x, torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="temperature"):
        fill_ar(net, x, torch.zeros_like(x, dtype=torch.bool), temperature=0)
