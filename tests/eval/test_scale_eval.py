"""Evaluation at the paper's scale, checked on the CPU (issue 14): streamed mean and covariance of reference features,
FID from moments, the evaluate parser's defaults, and bench synchronising the device around every timing (a
reference larger than the kept set: test_reference.py)."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from ulib.app.cli import build_parser
from ulib.eval import bench, timing
from ulib.eval.metrics import FeatureMoments, fid, fid_against, fid_from_moments, fid_method


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


def test_evaluate_parser_takes_max_reference_all_and_a_device_batch_default():
    args = build_parser().parse_args(["evaluate", "--run", "r", "--max-reference", "all"])
    assert args.max_reference == "all" and args.batch_size is None
    assert build_parser().parse_args(["evaluate", "--run", "r", "--max-reference", "7"]).max_reference == 7


# ---- every bench timing waits for the device (ulib.eval.timing) ----------------------------------------------
@pytest.mark.slow
def test_every_bench_timing_goes_through_synchronize(monkeypatch):
    timed, synced = [], []
    real = timing.timed
    monkeypatch.setattr(timing, "timed", lambda fn, device, repeat=1: timed.append(repeat) or real(fn, device, repeat))
    monkeypatch.setattr(timing, "synchronize", lambda device: synced.append(device))
    bench.run(replace(bench.QUICK, only=("forward", "training", "bigimage")), torch.device("cpu"),
              progress=lambda m: None)
    assert timed and len(synced) >= 2 * sum(timed)
