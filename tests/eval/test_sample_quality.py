"""ulib.eval.quality: scores against one reference, bias as category-histogram KL/entropy, floors, paired errors."""
import math

import numpy as np
import pytest
import torch

from ulib.data.openmoji import load_openmoji
from ulib.eval import extractors as X
from ulib.eval import metric_checks as MC
from ulib.eval import stats
from ulib.eval.intervals import DEFAULT_DRAWS
from ulib.eval.quality import FIGURES, QualityMeter, extract, paired_difference, with_floor, within_noise

from helpers import CACHE


class StubSpace:
    """Features: the first 6 pixel values; category logits: one-hot of the image's first pixel value mod 4."""

    features, pool, logits, layers = "stub", "f", "l", ("f", "l")

    def __call__(self, images):
        x = images.float().flatten(1)
        return {"f": x[:, :6], "l": torch.nn.functional.one_hot(images.flatten(1)[:, 0].long() % 4, 4).float()}


def stub_images(categories, seed=0):
    """uint8 (N, 3, 4, 4) random images whose first pixel is the given category (0..3)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (len(categories), 3, 4, 4), generator=g, dtype=torch.uint8)
    x[:, 0, 0, 0] = torch.tensor(categories, dtype=torch.uint8)
    return x


def test_paired_difference_hand_case():
    r = paired_difference([1, 2, 3], [0, 0, 1])  # differences 1, 2, 2: mean 5/3, sd sqrt(1/3)
    assert r["n"] == 3 and r["mean_difference"] == pytest.approx(5 / 3)
    assert r["se"] == pytest.approx(math.sqrt(1 / 3) / math.sqrt(3)) and r["mean_a"] == 2 and (
        r["mean_b"] == pytest.approx(1 / 3))
    # t = (5/3) / (1/3) = 5 on 2 df: p = 1 - 5 / sqrt(5^2 + 2) = 0.0377; interval 5/3 ± 4.3027 / 3
    assert r["t"] == pytest.approx(5) and r["df"] == 2 and r["p"] == pytest.approx(1 - 5 / math.sqrt(27))
    assert (r["lo"], r["hi"]) == pytest.approx((5 / 3 - 4.302653 / 3, 5 / 3 + 4.302653 / 3), abs=1e-6)
    with pytest.raises(ValueError, match="same items"):
        paired_difference([1, 2, 3], [1, 2])


def test_category_bias_hand_case():
    ref = stub_images([0, 1, 2, 3] * 10)  # uniform over 4 categories: entropy 2 bits
    meter = QualityMeter(StubSpace(), ref, holdout=stub_images([0, 1, 2, 3] * 5, seed=1), k=3)
    one = meter.score(stub_images([2] * 20, seed=2), draws=0)  # all one category
    assert one["reference_entropy_bits"] == pytest.approx(2.0)
    assert one["category_entropy_bits"] == pytest.approx(0.0)
    assert one["category_kl_bits"] == pytest.approx(2.0, abs=1e-4)  # KL(delta || uniform(4)) = log2 4
    assert one["reference_top_category_share"] == 0.25 and meter.top_category == 0  # ties: the first
    assert one["top_category_share"] == 0.0  # all in category 2, none in the reference's top (0)
    half = meter.score(stub_images([0, 1] * 10, seed=3), draws=0)  # two of four: entropy 1, KL 1
    assert half["top_category_share"] == 0.5
    assert half["category_entropy_bits"] == pytest.approx(1.0) and half["category_kl_bits"] == pytest.approx(
        1.0, abs=1e-4)
    same = meter.score(ref, draws=0)
    assert same["fid"] == pytest.approx(0.0, abs=1e-3) and same["category_kl_bits"] == pytest.approx(0.0, abs=1e-6)
    assert "fid_std" not in same and same["bootstrap_draws"] == 0


def test_bootstrap_and_floor():
    ref, hold = stub_images([0, 1, 2, 3] * 10), stub_images([0, 1, 2, 3] * 5, seed=1)
    meter = QualityMeter(StubSpace(), ref, holdout=hold, k=3)
    row = meter.score(stub_images([0, 1, 2, 3] * 5, seed=4), draws=4, seed=0)
    assert row["n"] == 20 and row["n_reference"] == 40 and row["features"] == "stub" and row["bootstrap_draws"] == 4
    assert row["fid_std"] > 0 and row["coverage_std"] >= 0 and row["category_kl_bits_std"] >= 0
    again = meter.score(stub_images([0, 1, 2, 3] * 5, seed=4), draws=4, seed=0)
    assert again == row, "seeded: the same draws"
    floor = meter.floor(20, draws=0)
    assert floor["n"] == 20 and meter.floor(20, draws=0) is floor, "cached per n"
    shown = with_floor(row, floor)
    assert shown["floor_fid"] == floor["fid"] and shown["fid"] == row["fid"]
    with pytest.raises(ValueError, match="same n"):
        with_floor(row, meter.floor(10, draws=0))
    with pytest.raises(ValueError, match="held-out"):
        meter.floor(21)
    with pytest.raises(ValueError, match="too small"):
        meter.score(stub_images([0, 1, 2]))
    with pytest.raises(ValueError, match="no holdout"):
        QualityMeter(StubSpace(), ref).floor(5)


def test_openmoji_meter_ranks_floor_blur_and_collapse():
    """Real emoji: held-out images sit at the floor; blurred ones score worse; a collapsed set loses coverage
    and over-represents its few categories (a lower entropy than the data's, a larger KL)."""
    images, _ = load_openmoji(32, CACHE)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    ref, hold = x[perm[:1000]], x[perm[1000:1400]]
    meter = QualityMeter(X.load_inception("openmoji"), ref, holdout=hold)
    floor = meter.floor(400, draws=0)
    blurred = meter.score(MC.corrupt(hold, "blur", 1.5), draws=0)
    collapsed = meter.score(MC.collapse(hold, 5, torch.Generator().manual_seed(0)), draws=0)
    assert floor["fid"] < blurred["fid"] / 5
    assert collapsed["coverage"] < floor["coverage"] / 2
    assert collapsed["category_entropy_bits"] < floor["category_entropy_bits"] - 0.5
    assert collapsed["category_kl_bits"] > floor["category_kl_bits"] + 0.5
    assert floor["category_kl_bits"] < 0.1, "held-out real images have the data's category mix"
    feats, logits = extract(meter.space, hold[:10])
    assert feats.shape == (10, 256) and logits.shape[1] == 11 and np.isfinite(feats.numpy()).all()


def test_within_noise_hand_cases():
    base = {"fid": 10.0, "fid_std": 3.0}
    assert within_noise({"fid": 19.9, "fid_std": 4.0}, base)  # 9.9 <= 2 * 5
    assert not within_noise({"fid": 20.1, "fid_std": 4.0}, base)
    assert within_noise({"fid": 5.0, "fid_std": 0.0}, base), "better is always within"
    assert within_noise({"fid": 12.0, "fid_std": 4.0}, base, z=0.5) and not within_noise(
        {"fid": 13.0, "fid_std": 4.0}, base, z=0.5)


def test_difference_shares_the_reference_resamples():
    ref, hold = stub_images([0, 1, 2, 3] * 10), stub_images([0, 1, 2, 3] * 5, seed=1)
    meter = QualityMeter(StubSpace(), ref, holdout=hold, k=3)
    a, b = stub_images([0, 1, 2, 3] * 5, seed=4), stub_images([2] * 20, seed=5)
    d = meter.difference(a, b, draws=4, seed=0)
    ra, rb = meter.score(a, draws=0), meter.score(b, draws=0)
    assert d["fid"] == pytest.approx(ra["fid"] - rb["fid"]) and d["n_a"] == d["n_b"] == 20
    assert d["category_kl_bits"] == pytest.approx(ra["category_kl_bits"] - rb["category_kl_bits"])
    assert d["fid_std"] > 0 and d["bootstrap_draws"] == 4
    same = meter.difference(a, a, draws=0)
    assert same["fid"] == 0 and "fid_std" not in same


def test_paired_difference_of_a_set_with_itself_has_no_spread():
    """paired=True resamples the same items of both sets: a set against itself differs by exactly 0 in every
    draw (std 0), where unpaired resampling gives a positive std; unequal sizes cannot be paired."""
    ref, hold = stub_images([0, 1, 2, 3] * 10), stub_images([0, 1, 2, 3] * 5, seed=1)
    meter = QualityMeter(StubSpace(), ref, holdout=hold, k=3)
    a = stub_images([0, 1, 2, 3] * 5, seed=4)
    paired = meter.difference(a, a, draws=4, seed=0, paired=True)
    unpaired = meter.difference(a, a, draws=4, seed=0)
    assert paired["paired"] and paired["fid"] == 0 and paired["fid_std"] == 0 and paired["coverage_std"] == 0
    assert unpaired["fid_std"] > 0 and not unpaired["paired"]
    with pytest.raises(ValueError, match="paired"):
        meter.difference(a, a[:10], paired=True)


def test_draws_default_to_200_with_intervals_and_the_fast_path_matches_the_slow_one():
    """Each bootstrap draw (PRDC from distances computed once, `ulib.eval.resampling`; FID from the drawn items'
    counts, `ulib.eval.metrics.fid_resampled`) gives the figures
    `_figures` computes on the resampled features; rows carry std, 95 % percentile interval, and, for
    differences, a bootstrap p; the default is DEFAULT_DRAWS = 200."""
    ref, hold = stub_images([0, 1, 2, 3] * 10), stub_images([0, 1, 2, 3] * 5, seed=1)
    meter = QualityMeter(StubSpace(), ref, holdout=hold, k=3)
    a = stub_images([0, 1, 2, 3] * 5, seed=4)
    fa, la = extract(meter.space, a)
    g = torch.Generator().manual_seed(3)
    ri, fi = torch.randint(40, (40,), generator=g), torch.randint(20, (20,), generator=g)
    fast = meter._draw(ri, fi, fa, la, meter._resampler(fa))
    slow = meter._figures(meter.ref_features[ri], np.bincount(meter.ref_logits[ri].argmax(1), minlength=4) / 40,
                          fa[fi], la[fi])
    assert fast["fid"] == pytest.approx(slow["fid"], rel=1e-6), "FID from the drawn counts (M.fid_resampled)"
    assert {k: v for k, v in fast.items() if k != "fid"} == pytest.approx(
        {k: v for k, v in slow.items() if k != "fid"}, abs=1e-9)

    row = meter.score(a)
    assert row["bootstrap_draws"] == DEFAULT_DRAWS == 200
    for name in FIGURES:
        assert row[f"{name}_lo"] <= row[f"{name}_hi"] and row[f"{name}_std"] >= 0
    assert row["fid_hi"] > row["fid_lo"] and "fid_p" not in row
    for name in FIGURES:  # a single set: estimate -/+ 1.96 std, so the interval holds the estimate
        assert row[f"{name}_lo"] + row[f"{name}_hi"] == pytest.approx(2 * row[name])
        assert row[f"{name}_hi"] - row[f"{name}_lo"] == pytest.approx(2 * 1.959964 * row[f"{name}_std"], rel=1e-5)
    d = meter.difference(a, stub_images([2] * 20, seed=5), draws=50, seed=0)
    assert d["bootstrap_draws"] == 50 and 1 / 50 <= d["fid_p"] <= 1 and d["coverage_lo"] <= d["coverage_hi"]
    assert d["category_kl_bits_p"] == pytest.approx(1 / 50), "a set of one category: KL larger in every draw"
    assert d["category_kl_bits_hi"] < 0
    assert stats.verdict_of_difference(d, "category_kl_bits", better="lower").verdict == "reproduced"
    same = meter.difference(a, a, draws=20, seed=0, paired=True)
    assert same["fid_p"] == 1 and same["fid_lo"] == same["fid_hi"] == 0, "no difference in any draw"


def test_figures_limit_what_the_draws_resample():
    """figures= names the figures the bootstrap draws (KID is most of a draw's time); the values of every figure
    are computed either way, and a drawn figure's spread is the same as when all are drawn (same resamples)."""
    ref, hold = stub_images([0, 1, 2, 3] * 10), stub_images([0, 1, 2, 3] * 5, seed=1)
    meter = QualityMeter(StubSpace(), ref, holdout=hold, k=3)
    a, b = stub_images([0, 1, 2, 3] * 5, seed=4), stub_images([2] * 20, seed=5)
    full, some = meter.score(a, draws=6), meter.score(a, draws=6, figures=("fid", "top_category_share"))
    assert all(some[name] == full[name] for name in FIGURES)
    assert some["fid_std"] == full["fid_std"] and some["top_category_share_hi"] == full["top_category_share_hi"]
    assert "kid_std" not in some and "precision_std" not in some and "category_kl_bits_std" not in some
    d_full, d_some = meter.difference(a, b, draws=6), meter.difference(a, b, draws=6, figures=["precision"])
    assert d_some["precision_p"] == d_full["precision_p"] and d_some["precision_std"] == d_full["precision_std"]
    assert "fid_std" not in d_some and d_some["fid"] == d_full["fid"]
    cats = meter.floor(20, draws=6, figures=("category_kl_bits",))
    assert "fid_std" not in cats and "fid_std" in meter.floor(20, draws=6), "the floor's cache keeps figures apart"
    with pytest.raises(ValueError, match="figures=.*allowed"):
        meter.score(a, draws=6, figures=("fid", "is"))
    with pytest.raises(ValueError, match="figures="):
        meter.score(a, draws=6, figures="fid")
