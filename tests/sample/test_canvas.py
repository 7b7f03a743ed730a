"""Larger-than-training canvases (ulib.sample.canvas): windows, Eq. 8 mixing, unmasking orders."""
import math

import pytest
import torch

from ulib.prior.transformer import Transformer
from ulib.sample.absorbing import AbsorbingSampler
from ulib.sample.canvas import (
    CanvasSampler,
    coverage,
    decode_canvas,
    mixture_with_temperature,
    sample_canvas,
    window_offsets,
)
from ulib.vq.model import VQAutoEncoder

K, MASK = 16, 16


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return Transformer(codebook_size=K, block_size=12, n_emb=32, n_head=4, n_layers=2).eval()


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


class WindowProbs(torch.nn.Module):
    """Fake network, no features/head: every position gets [0.9, 0.1] when the window's first token is the
    mask token (id 2), else [0.2, 0.8]; so each window's prediction is known by hand."""

    def forward(self, x):  # (N, L) -> (N, L, 2)
        p = torch.where((x[:, :1] == 2)[..., None], torch.tensor([0.9, 0.1]), torch.tensor([0.2, 0.8]))
        return p.expand(*x.shape, 2).log()


@pytest.mark.parametrize("steps,batch", [(None, 2), (4, 3)])
def test_canvas_equal_to_window_reproduces_absorbing_sampler(net, steps, batch):
    ref = AbsorbingSampler.of(net, num_timesteps=10, mask_id=MASK, length=12, steps=steps, temperature=0.8,
                              generator=gen(3), skip_empty_steps=False).sample(torch.full((batch, 12), MASK))
    ours = sample_canvas(net, (3, 4), (3, 4), num_timesteps=10, mask_id=MASK, steps=steps, temperature=0.8,
                         batch=batch, generator=gen(3))
    assert ours.shape == (batch, 3, 4)
    assert torch.equal(ours.reshape(batch, 12), ref)


@pytest.mark.parametrize("kw", [dict(order="random"), dict(order="random", stride=2, steps=5),
                                dict(order="random", window_subset=2), dict(order="raster", steps=7),
                                dict(order="raster", window_subset=0.3)])
def test_every_position_unmasked_exactly_once(net, kw):
    seen = torch.zeros(2, 5, 7, dtype=torch.long)

    def count(k, res):
        seen.add_(res.unmasked.long())
        assert (res.x[res.unmasked] != MASK).all()

    x = sample_canvas(net, (5, 7), (3, 4), num_timesteps=10, mask_id=MASK, batch=2, generator=gen(1),
                      callback=count, **kw)
    assert x.shape == (2, 5, 7)
    assert (seen == 1).all()
    assert (x != MASK).all() and x.min() >= 0 and x.max() < K


def test_raster_order_goes_row_major_one_token_per_step(net):
    order = []
    sample_canvas(net, (4, 5), (3, 4), num_timesteps=10, mask_id=MASK, order="raster", generator=gen(),
                  callback=lambda k, res: order.append(res.unmasked[0].flatten().nonzero().item()))
    assert order == list(range(20))


def test_seeded_determinism_and_outpainting_keeps_given_tokens(net):
    a = sample_canvas(net, (4, 6), (3, 4), num_timesteps=8, mask_id=MASK, batch=2, generator=gen(5))
    b = sample_canvas(net, (4, 6), (3, 4), num_timesteps=8, mask_id=MASK, batch=2, generator=gen(5))
    assert torch.equal(a, b)
    start = torch.full((2, 4, 6), MASK)
    start[:, :3, :4] = a[:, :3, :4]  # a known corner; the rest is generated around it
    out = sample_canvas(net, (4, 6), (3, 4), num_timesteps=8, mask_id=MASK, generator=gen(6), x_start=start)
    assert torch.equal(out[:, :3, :4], a[:, :3, :4]) and (out != MASK).all()


def test_window_offsets_include_the_last_row_and_column():
    assert window_offsets((5, 4), (3, 4), stride=3).tolist() == [[0, 0], [2, 0]]
    assert window_offsets((3, 4), (3, 4)).tolist() == [[0, 0]]
    assert len(window_offsets((5, 7), (3, 4))) == 3 * 4  # stride 1: every offset
    for stride in (1, 2, 3):
        for canvas in [(5, 7), (8, 8), (3, 10)]:
            offsets = window_offsets(canvas, (3, 4), stride)
            assert (coverage(canvas, (3, 4), offsets) >= 1).all(), (canvas, stride)


def test_coverage_counts_by_hand():
    # 1 x 5 canvas, 1 x 3 windows at stride 1: offsets 0, 1, 2 -> counts 1, 2, 3, 2, 1
    assert coverage((1, 5), (1, 3), window_offsets((1, 5), (1, 3))).tolist() == [[1, 2, 3, 2, 1]]


def test_random_subset_still_covers_every_needed_position(net):
    s = CanvasSampler.of(net, grid=(3, 4), canvas=(9, 11), num_timesteps=10, mask_id=MASK, window_subset=1,
                         generator=gen(2))
    need = torch.zeros(9, 11, dtype=torch.bool)
    need[::2, ::3] = True
    for _ in range(5):
        chosen = s.choose_windows(need)
        cov = coverage((9, 11), (3, 4), chosen)
        assert (cov[need] >= 1).all()
        assert len(chosen) < len(s.offsets)  # fewer windows than all 7 * 8 = 56


def test_only_windows_holding_a_needed_position_run(net):
    s = CanvasSampler.of(net, grid=(3, 4), canvas=(5, 7), num_timesteps=10, mask_id=MASK)
    need = torch.zeros(5, 7, dtype=torch.bool)
    need[0, 0] = True  # only the window at offset (0, 0) holds the corner
    assert s.choose_windows(need).tolist() == [[0, 0]]
    need[2, 3] = True  # the centre lies in all 3 x 4 = 12 windows
    assert len(s.choose_windows(need)) == 12


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_eq8_averages_windows_then_applies_temperature(tau):
    # canvas [0, m, m] with 1 x 2 windows: window (0,0) = [0, m] predicts [.2, .8]; window (0,1) = [m, m]
    # predicts [.9, .1]. Position 1 lies in both: mean [.55, .45]; position 2 in the second only.
    s = CanvasSampler.of(WindowProbs(), grid=(1, 2), canvas=(1, 3), num_timesteps=4, mask_id=2, temperature=tau)
    x = torch.tensor([[[0, 2, 2]]])
    where = torch.tensor([[[False, True, True]]])
    probs = s.mixed_probs(x, where, s.offsets)
    expected = torch.tensor([[0.55, 0.45], [0.9, 0.1]]) ** (1 / tau)
    assert torch.allclose(probs, expected / expected.sum(1, keepdim=True), atol=1e-6)
    assert s.forward_passes == 1  # both windows in one batched pass


def test_mixture_with_temperature_matches_the_official_form():
    p = torch.softmax(torch.randn(5, 7, generator=gen()), -1)
    official = torch.softmax((p.log() + math.log(7)) / 0.8, -1)  # softmax((log pbar + log C) / temp)
    assert torch.allclose(mixture_with_temperature(p.log(), 0.8), official, atol=1e-6)


def test_window_batch_splits_forward_passes_without_changing_the_mixture(net):
    x = torch.randint(0, K, (2, 5, 7), generator=gen())
    where = torch.rand(2, 5, 7, generator=gen(1)) < 0.5
    where[0, 2] = True  # row 2 lies in every 3 x 4 window, so all 12 windows run
    x[where] = MASK
    probs = []
    for wb, passes in [(1, 12), (5, 3), (64, 1)]:
        s = CanvasSampler.of(net, grid=(3, 4), canvas=(5, 7), num_timesteps=10, mask_id=MASK, window_batch=wb)
        probs.append(s.mixed_probs(x, where, s.offsets))
        assert s.forward_passes == passes
    assert all(torch.allclose(probs[0], p, atol=1e-5) for p in probs[1:])


def test_decode_canvas_larger_than_the_training_grid():
    torch.manual_seed(0)
    vq = VQAutoEncoder(img_size=16, nf=32, ch_mult=(1, 2), res_blocks=1, attn_resolutions=(), codebook_size=16,
                       emb_dim=8).eval()
    with torch.no_grad():
        img = decode_canvas(vq, torch.randint(0, 16, (2, 12, 10)))
    assert img.shape == (2, 3, 24, 20)
    with pytest.raises(ValueError, match="mask token"):
        decode_canvas(vq, torch.full((1, 8, 8), 16))


def test_errors_name_what_was_given(net):
    with pytest.raises(ValueError, match="smaller than the window"):
        sample_canvas(net, (2, 4), (3, 4), num_timesteps=4, mask_id=MASK)
    with pytest.raises(ValueError, match="stride=0"):
        sample_canvas(net, (4, 4), (3, 4), num_timesteps=4, mask_id=MASK, stride=0)
    with pytest.raises(ValueError, match="stride=4"):  # longer than the window's 3 rows: gaps
        sample_canvas(net, (8, 8), (3, 4), num_timesteps=4, mask_id=MASK, stride=4)
    with pytest.raises(ValueError, match="order='spiral'"):
        sample_canvas(net, (4, 4), (3, 4), num_timesteps=4, mask_id=MASK, order="spiral")
    with pytest.raises(ValueError, match="window_subset=0"):
        sample_canvas(net, (4, 4), (3, 4), num_timesteps=4, mask_id=MASK, window_subset=0)
    with pytest.raises(ValueError, match="block_size"):
        sample_canvas(net, (8, 8), (4, 4), num_timesteps=4, mask_id=MASK)
    with pytest.raises(ValueError, match="x_start"):
        sample_canvas(net, (4, 4), (3, 4), num_timesteps=4, mask_id=MASK, x_start=torch.zeros(1, 3, 4))
