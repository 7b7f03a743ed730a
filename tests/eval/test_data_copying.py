"""ulib.eval.data_copying: Meehan et al.'s C_T on hand cases (the Mann-Whitney z with and without ties, cells
weighted by their test share, tau) and its seeded k-means, fitted once for the same rows."""
import math

import pytest
import torch

from ulib.eval import data_copying as DC
from ulib.eval import neighbours as NB


def test_mann_whitney_z_hand_cases():
    # x below y everywhere: U = 0, E U = mn/2 = 2, Var U = mn(m + n + 1)/12 = 5/3
    assert DC.mann_whitney_z([1, 2], [3, 4]) == pytest.approx(-2 / math.sqrt(5 / 3))
    assert DC.mann_whitney_z([3, 4], [1, 2]) == pytest.approx(2 / math.sqrt(5 / 3))  # sign: x farther -> z > 0
    assert DC.mann_whitney_z([1, 1], [1, 1]) == 0.0  # all tied: no evidence
    # ties: x = [1, 2], y = [2, 3]: U = 0 + 1/2 = 0.5; one tie pair (t = 2): Var = 4/12 (5 - 6/12) = 1.5
    assert DC.mann_whitney_z([1, 2], [2, 3]) == pytest.approx((0.5 - 2) / math.sqrt(1.5))


def test_data_copying_statistic_weights_cells_by_their_test_share():
    """Two far-apart blobs, so k-means (k = 2) finds them: in blob A samples copy training rows (z_A << 0), in blob
    B they are fresh; C_T is the test-share-weighted mean of the cells' z, and a cell with too few samples is out."""
    g = torch.Generator().manual_seed(3)
    blob = lambda n, x: torch.randn(n, 2, generator=g, dtype=torch.float64) + torch.tensor([x, 0.0])
    train = torch.cat([blob(200, -100), blob(200, 100)])
    test = torch.cat([blob(150, -100), blob(50, 100)])  # P_n(A) = 0.75, P_n(B) = 0.25
    samples = torch.cat([train[:60], blob(40, 100)])
    out = DC.data_copying_statistic(samples, train, test, cells=2, min_cell_samples=20)
    cells = {round(c["test_share"], 2): c for c in out["per_cell"]}
    a, b = cells[0.75], cells[0.25]
    assert (a["n_samples"], a["n_test"], b["n_samples"], b["n_test"]) == (60, 150, 40, 50)
    assert a["z"] < -8 and abs(b["z"]) < 3 and out["cells_used"] == 2 and out["test_share_used"] == 1.0
    assert out["c_t"] == pytest.approx(0.75 * a["z"] + 0.25 * b["z"])
    # one cell: C_T is the Mann-Whitney z of all samples' distances against all test images'
    one = DC.data_copying_statistic(samples, train, test, cells=1)
    ds, dp = NB.nearest(samples, train)[0], NB.nearest(test, train)[0]
    assert one["c_t"] == pytest.approx(DC.mann_whitney_z(ds, dp))
    # tau: with at least 50 samples a cell, blob B's 40 samples leave it out; C_T is then blob A's z alone
    strict = DC.data_copying_statistic(samples, train, test, cells=2, min_cell_samples=50)
    assert strict["cells_used"] == 1 and strict["c_t"] == pytest.approx(a["z"])
    assert strict["test_share_used"] == pytest.approx(0.75)
    assert math.isnan(DC.data_copying_statistic(samples, train, test, cells=2, min_cell_samples=100)["c_t"])


def test_kmeans_is_seeded_and_finds_separated_blobs():
    g = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randn(50, 3, generator=g, dtype=torch.float64) + 20 * c for c in range(3)])
    centres = DC.kmeans(x, 3, seed=5)
    assert torch.equal(centres, DC.kmeans(x, 3, seed=5))
    assert sorted(centres.mean(1).round().tolist()) == [0.0, 20.0, 40.0]
    assert DC.kmeans(torch.ones(4, 2), 3).shape == (3, 2)  # fewer distinct rows than cells: no crash


def test_kmeans_fit_is_kept_for_the_same_rows(monkeypatch):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(200, 5, generator=g, dtype=torch.float64)
    first = DC.kmeans(x, 4, seed=1)
    calls = []
    real = torch.cdist
    monkeypatch.setattr(torch, "cdist", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = DC.kmeans(x.clone(), 4, seed=1)  # other tensor, same rows: no new fit
    assert torch.equal(first, again) and calls == []
    again += 1  # the caller's copy: the kept fit does not change
    assert torch.equal(DC.kmeans(x, 4, seed=1), first)
    assert not torch.equal(DC.kmeans(x, 4, seed=2), first) and calls, "another seed fits again"
    x[0, 0] += 1e-9  # other rows: fitted again
    calls.clear()
    DC.kmeans(x, 4, seed=1)
    assert calls
