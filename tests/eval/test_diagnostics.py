"""Sanity views and diversity measures on hand-made cases."""
import math

import pytest
import torch

from ulib.eval.diagnostics import accuracy_by_mask_ratio, marginal_baseline, plot_accuracy_by_mask_ratio
from ulib.eval.diversity import mean_pairwise_distance, temperature_sweep, token_entropy

from helpers import Oracle


class Uniform(torch.nn.Module):
    def __init__(self, K):
        super().__init__()
        self.K = K

    def forward(self, x):
        return torch.zeros(*x.shape, self.K)


def test_accuracy_by_mask_ratio_for_perfect_and_uniform_models(tmp_path):
    K = 4
    x0 = torch.randint(0, K, (32, 20), generator=torch.Generator().manual_seed(0))
    rows = accuracy_by_mask_ratio(Oracle(x0, K, scale=20), x0, K, ratios=(0.25, 1.0),
                                  generator=torch.Generator().manual_seed(0), batch_size=32)
    assert [r["mask_ratio"] for r in rows] == [0.25, 1.0]
    assert all(r["accuracy"] == 1.0 and r["cross_entropy_bits"] < 1e-6 for r in rows)
    assert rows[1]["n_masked"] == 32 * 20 and abs(rows[0]["n_masked"] / 640 - 0.25) < 0.06
    rows = accuracy_by_mask_ratio(Uniform(K), x0, K, ratios=(0.5,), generator=torch.Generator().manual_seed(0))
    assert rows[0]["cross_entropy_bits"] == pytest.approx(2.0)  # log2 4
    with pytest.raises(ValueError, match="mask ratio 0"):
        accuracy_by_mask_ratio(Uniform(K), x0, K, ratios=(0,))
    base = marginal_baseline(torch.tensor([0, 0, 0, 1]), 4)
    assert base["accuracy"] == 0.75
    assert base["cross_entropy_bits"] == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    plot_accuracy_by_mask_ratio(rows, base, path=tmp_path / "acc.png")
    assert (tmp_path / "acc.png").stat().st_size > 1000


def test_token_entropy_and_pairwise_distance():
    assert token_entropy(torch.tensor([0, 1, 2, 3]), 8) == pytest.approx(2.0)
    assert token_entropy(torch.tensor([5, 5, 5]), 8) == pytest.approx(0.0)
    a = torch.zeros(1, 1, 2, 2)
    b = torch.ones(1, 1, 2, 2)
    assert mean_pairwise_distance(torch.cat([a, b])) == pytest.approx(1.0)
    assert mean_pairwise_distance(torch.cat([a, b, a])) == pytest.approx(2 / 3)  # pairs: 1, 0, 1 (each twice)
    assert mean_pairwise_distance(a) == 0.0


def test_temperature_sweep_rows():
    def sample(t):
        torch.manual_seed(0)
        tokens = torch.randint(0, 8, (4, 6)) if t > 0.5 else torch.zeros(4, 6, dtype=torch.long)
        return tokens.float()[:, None, :, None], tokens

    rows = temperature_sweep(sample, [0.3, 1.0], 8)
    assert rows[0]["token_entropy_bits"] == 0.0 and rows[1]["token_entropy_bits"] > 1.5
    assert rows[0]["pairwise_distance"] == 0.0 < rows[1]["pairwise_distance"]
    with pytest.raises(ValueError, match="temperature 0"):
        temperature_sweep(sample, [0], 8)
