"""Evaluation at the paper's scale, checked on the CPU (issue 14): streamed mean and covariance of reference features,
FID from moments, a reference larger than the kept set, the evaluate parser's defaults, and bench synchronising
the device around every timing."""
from dataclasses import replace

import numpy as np
import pytest
import torch

import ulib.eval.evaluate as E
from ulib.app.cli import build_parser
from ulib.eval import bench
from ulib.eval.metrics import FeatureMoments, fid, fid_against, fid_from_moments, fid_method

from helpers import tiny_config as _cfg


# ---- streamed mean and covariance of reference features ----------------------------------------------
def test_streamed_moments_equal_the_batch_formulas():
    x = torch.randn(203, 7, generator=torch.Generator().manual_seed(0)) * 3 + 10  # a large mean: no cancellation
    m = FeatureMoments(7)
    for part in x.split([1, 50, 0, 100, 52]):
        m.update(part)
    assert m.n == 203
    np.testing.assert_allclose(m.mean.numpy(), x.double().mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.cov.numpy(), np.cov(x.double().numpy(), rowvar=False), rtol=1e-10, atol=1e-12)
    again = FeatureMoments.from_state_dict(m.state_dict())
    assert torch.equal(again.cov, m.cov)
    with pytest.raises(ValueError, match="dimension 3"):
        m.update(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="at least 2"):
        FeatureMoments.of(torch.zeros(1, 7)).cov


def test_fid_from_moments_equals_fid_on_the_features():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(300, 16, generator=g), torch.randn(200, 16, generator=g) * 1.3 + 0.2
    assert fid_method(300, 200, 16) == "torch-fidelity"
    want = fid(real, fake)  # torch-fidelity's statistics of float32 features: float32 precision
    assert fid_from_moments(FeatureMoments.of(real), FeatureMoments.of(fake)) == pytest.approx(want, rel=1e-6)
    streamed = FeatureMoments(16)
    for part in real.split(64):
        streamed.update(part)
    assert fid_against(real[:10], streamed, fake) == pytest.approx(want, rel=1e-6)
    assert fid_against(real, None, fake) == want


class FakeInception:
    """Stands in for InceptionV3: 'features' are the images' first pixels (2048 of them)."""
    features, key = "random-inception", "fake"
    layers, pool, logits = ("2048", "logits_unbiased"), "2048", "logits_unbiased"

    def __call__(self, images):
        f = images.flatten(1)[:, :2048].float()
        return {"2048": f, "logits_unbiased": f[:, :8]}


def test_reference_larger_than_the_kept_set_is_streamed(vqgan_run, monkeypatch):
    cfg = _cfg(["data.img_size=32"])  # 3 x 32 x 32 > 2048 values per image
    monkeypatch.setattr(E, "REFERENCE_KEEP", 10)
    feats, key, moments = E.reference_set(vqgan_run, cfg, FakeInception(), "val", "all", 8, False)
    assert key["n"] == key["n_split"] > 10 and len(feats) == 10 and key["limit"] == "all"
    monkeypatch.setattr(E, "REFERENCE_KEEP", 1000)
    full, _, none = E.reference_set(vqgan_run, cfg, FakeInception(), "val", key["n"] + 5, 8, False)
    monkeypatch.setattr(E, "REFERENCE_KEEP", 10)
    assert none is None and len(full) == key["n"]
    exact = FeatureMoments.of(full)
    assert moments.n == key["n"] and torch.allclose(moments.cov, exact.cov, atol=1e-10)
    again = E.reference_set(vqgan_run, cfg, FakeInception(), "val", "all", 8, False)  # from the cache
    assert torch.equal(again[0], feats) and torch.equal(again[2].m2, moments.m2)
    # the default takes every image of a split up to the paper's 50,000, and says so in the record
    _, key, _ = E.reference_set(vqgan_run, cfg, FakeInception(), "val", None, 8, False)
    assert key["n"] == key["n_split"] and key["limit"] == "default: at most 50000"
    assert E.DEFAULT_MAX_REFERENCE == E.PAPER_N_SAMPLES == 50_000
    assert E.reference_indices(3_000_000, E.DEFAULT_MAX_REFERENCE)[:3] == sorted(E.reference_indices(
        3_000_000, 50_000))[:3] and len(E.reference_indices(3_000_000, E.DEFAULT_MAX_REFERENCE)) == 50_000


def test_evaluate_parser_takes_max_reference_all_and_a_device_batch_default():
    args = build_parser().parse_args(["evaluate", "--run", "r", "--max-reference", "all"])
    assert args.max_reference == "all" and args.batch_size is None
    assert build_parser().parse_args(["evaluate", "--run", "r", "--max-reference", "7"]).max_reference == 7


# ---- bench synchronises the device around every timing -----------------------------------------------
def test_bench_synchronises_cuda_around_each_timed_run(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    bench._timed(lambda: None, torch.device("cuda"), repeat=3)
    assert len(calls) == 6, "before and after each of 3 runs"
    calls.clear()
    bench._timed(lambda: None, torch.device("cpu"), repeat=3)
    assert calls == []


@pytest.mark.slow
def test_every_bench_timing_goes_through_synchronize(monkeypatch):
    timed, synced = [], []
    real = bench._timed
    monkeypatch.setattr(bench, "_timed", lambda fn, device, repeat=1: timed.append(repeat) or real(fn, device, repeat))
    monkeypatch.setattr(bench, "synchronize", lambda device: synced.append(device))
    bench.run(replace(bench.QUICK, only=("forward", "training", "bigimage")), torch.device("cpu"),
              progress=lambda m: None)
    assert timed and len(synced) >= 2 * sum(timed)
