"""ulib.eval.neighbours: rows of features or PNG pixel values and each query row's nearest reference row (hand
cases, leave-one-out, exact copies at distance 0, batches that agree)."""
import math

import pytest
import torch

from ulib.eval import neighbours as NB


def test_nearest_hand_case_and_leave_one_out():
    ref = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    d, i = NB.nearest(torch.tensor([[1.0, 0.0], [0.0, 5.0], [3.0, 4.0]]), ref)
    assert i.tolist() == [0, 2, 2]  # (3, 4) is 3 from (0, 4), 4 from (3, 0), 5 from (0, 0)
    assert d.tolist() == [1.0, 1.0, 3.0] and d.dtype == torch.float64
    d, i = NB.nearest(ref, ref)  # each row finds itself
    assert i.tolist() == [0, 1, 2] and d.tolist() == [0.0, 0.0, 0.0]
    d, i = NB.nearest(ref, ref, exclude_self=True, batch_size=2)  # leave-one-out, across a batch boundary
    assert i.tolist() == [1, 0, 0] and d.tolist() == [3.0, 3.0, 4.0]
    dup = torch.tensor([[1.0, 1.0], [1.0, 1.0], [5.0, 1.0]])  # a duplicate elsewhere in the set still counts
    d, i = NB.nearest(dup, dup, exclude_self=True)
    assert i.tolist() == [1, 0, 0] and d.tolist() == [0.0, 0.0, 4.0]


def test_nearest_exact_copies_are_at_zero_and_batches_agree():
    """cdist's ||q||^2 + ||r||^2 - 2 q.r path (large sets) loses digits near 0; the pair's distance is recomputed."""
    g = torch.Generator().manual_seed(0)
    ref = 1000 + torch.randn(300, 64, generator=g, dtype=torch.float64)
    d, i = NB.nearest(ref[100:200], ref)
    assert i.tolist() == list(range(100, 200)) and (d == 0).all()
    query = torch.randn(70, 64, generator=g, dtype=torch.float64) + 1000
    full, one = NB.nearest(query, ref), NB.nearest(query, ref, batch_size=7)
    assert torch.equal(full[1], one[1]) and torch.allclose(full[0], one[0], rtol=0, atol=1e-9)
    assert torch.allclose(full[0], torch.cdist(query, ref).min(1).values, rtol=1e-9)


def test_pixels_are_png_values_over_255():
    white, black = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8), torch.zeros((1, 3, 2, 2), dtype=torch.uint8)
    d, _ = NB.nearest(white, black)
    assert d.item() == pytest.approx(math.sqrt(12))  # 12 values, each 1 apart on [0, 1]
    d, _ = NB.nearest(torch.ones(1, 3, 2, 2), -torch.ones(1, 3, 2, 2))  # [-1, 1] floats: the same images
    assert d.item() == pytest.approx(math.sqrt(12))
    x = torch.rand(4, 3, 2, 2) * 2 - 1
    assert torch.equal(NB.rows(x), NB.rows(((x + 1) * 127.5).round().to(torch.uint8)))  # as saved in a PNG
