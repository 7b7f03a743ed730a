"""Validation likelihoods: full vs Monte-Carlo ELBO (Eq. 6), a perfect model's ELBO, the AR model's NLL."""
import math

import pytest
import torch

from ulib.eval.quality import paired_difference
from ulib.prior.absorbing import AbsorbingDiffusion
from ulib.prior.likelihood import absorbing_elbo, ar_nll
from ulib.prior.transformer import Transformer

from helpers import Oracle


def test_perfect_model_has_zero_elbo_both_ways():
    K, T, L = 5, 8, 10
    x0 = torch.randint(0, K, (6, L), generator=torch.Generator().manual_seed(0))
    diff = AbsorbingDiffusion(T, K)
    assert absorbing_elbo(diff, Oracle(x0, K), x0, batch_size=6).bits_per_token == pytest.approx(0, abs=1e-6)
    est = absorbing_elbo(diff, Oracle(x0, K), x0, mc=4, batch_size=6)
    assert est.bits_per_token == pytest.approx(0, abs=1e-6) and est.n_passes == 4


def test_monte_carlo_agrees_with_full_sum_within_its_error():
    torch.manual_seed(0)
    K, T, L = 16, 12, 12
    net = Transformer(K, L, n_emb=32, n_head=4, n_layers=2).eval()
    diff = AbsorbingDiffusion(T, K)
    data = torch.randint(0, K, (64, L), generator=torch.Generator().manual_seed(1))
    full = absorbing_elbo(diff, net, data, generator=torch.Generator().manual_seed(2))
    assert full.n_passes == T and full.stderr == 0.0
    mc = absorbing_elbo(diff, net, data, mc=8, generator=torch.Generator().manual_seed(3))
    assert mc.n_passes == 8 and mc.stderr > 0
    # the full sum also has x_t noise: allow a few standard errors of the MC estimate
    assert abs(mc.bits_per_token - full.bits_per_token) < 4 * mc.stderr, (mc, full)
    # an untrained model predicts ~uniformly: the ELBO is close to log2 K
    assert full.bits_per_token == pytest.approx(math.log2(K), rel=0.1)


def test_mc_must_be_positive():
    with pytest.raises(ValueError, match="mc=0"):
        absorbing_elbo(AbsorbingDiffusion(4, 3), None, torch.zeros(1, 2, dtype=torch.long), mc=0)


def test_ar_nll_of_a_uniform_model_is_log2_K():
    K, L = 8, 6
    net = Transformer(K, L, n_emb=16, n_head=2, n_layers=1, causal=True).eval()
    torch.nn.init.zeros_(net.head.weight)
    est = ar_nll(net, torch.randint(0, K, (10, L)))
    assert est.bits_per_token == pytest.approx(3.0, abs=1e-5) and est.stderr == pytest.approx(0, abs=1e-6)
    assert est.per_item.shape == (10,) and torch.allclose(est.per_item, torch.full((10,), 3.0), atol=1e-5)


def test_per_item_values_pair_two_models_on_the_same_grids():
    """Both estimates keep each grid's value, in data order, so models can be compared per grid (Table 4)."""
    torch.manual_seed(0)
    K, T, L = 8, 6, 6
    data = torch.randint(0, K, (20, L), generator=torch.Generator().manual_seed(1))
    ar = Transformer(K, L, n_emb=16, n_head=2, n_layers=1, causal=True).eval()
    ab = Transformer(K, L, n_emb=16, n_head=2, n_layers=1).eval()
    nll = ar_nll(ar, data, batch_size=7)
    elbo = absorbing_elbo(AbsorbingDiffusion(T, K), ab, data, batch_size=7, generator=torch.Generator().manual_seed(2))
    assert nll.per_item.shape == elbo.per_item.shape == (20,)
    assert nll.per_item.mean().item() == pytest.approx(nll.bits_per_token)
    assert elbo.per_item.mean().item() == pytest.approx(elbo.bits_per_token)
    one = ar_nll(ar, data[3:4])  # the same grid alone gives the same value: per_item is in data order
    assert nll.per_item[3].item() == pytest.approx(one.bits_per_token, abs=1e-5)
    d = paired_difference(elbo.per_item, nll.per_item)
    assert d["mean_difference"] == pytest.approx(elbo.bits_per_token - nll.bits_per_token, abs=1e-5)
