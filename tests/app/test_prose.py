"""ulib.app.prose: the sentences notebooks print are made from the numbers, so their directions follow the
numbers (a flipped sign flips the words) and their intervals are the ones computed."""
import math

import numpy as np
import pytest
import torch

from ulib.app.prose import (
    difference_sentence,
    interval_text,
    memorisation_sentence,
    memorisation_summary,
    near_copy_text,
    two_means_sentence,
)
from ulib.eval.intervals import proportion_interval
from ulib.eval.memorisation import memorisation_report


def test_interval_text_decimals_and_percent():
    assert interval_text(1.234, 1.0, 1.4) == "1.23 (95 % interval 1.00 to 1.40)"  # a quarter of 0.4 = 0.1: 2
    assert interval_text(12.3, 9.0, 15.0) == "12.3 (95 % interval 9.0 to 15.0)"  # 1.5: one decimal
    assert interval_text(12.3, 4.0, 24.0) == "12 (95 % interval 4 to 24)"
    assert interval_text(0.05, 0.02, 0.1, percent=True) == "5.0 % (95 % interval 2.0 % to 10.0 %)"


def _difference_row(d, lo, hi, p=0.01):
    return {"fid": d, "fid_std": 1.5, "fid_lo": lo, "fid_hi": hi, "fid_p": p, "bootstrap_draws": 200}


@pytest.mark.parametrize("d, lo, hi, words", [
    (5.0, 2.0, 8.0, "A have the higher FID"),
    (-5.0, -8.0, -2.0, "A have the lower FID"),
    (1.0, -2.0, 4.0, "the sign is not resolved at this n"),
])
def test_difference_sentence_direction_follows_the_interval(d, lo, hi, words):
    text = difference_sentence(_difference_row(d, lo, hi), "fid", "A", "B")
    assert text.endswith(words)
    assert f"= {d:+.1f} ± 1.5 (95 % interval {lo:+.1f} to {hi:+.1f}, p = 0.01, 200 bootstrap draws)" in text


def test_difference_sentence_needs_the_bootstrap_columns():
    with pytest.raises(ValueError, match="fid_p"):
        difference_sentence({"fid": 1.0, "fid_std": 1.0, "fid_lo": 0.0, "fid_hi": 2.0}, "fid", "A", "B")


def test_two_means_sentence_hand_checked():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 0.0, 0.0])
    text = two_means_sentence(a, b, "test images", "training images", "L1")
    # a: mean 2, sd 1, se 1/sqrt(3), t_{0.975, 2} = 4.303: 2 ± 2.484; b: zero spread; difference 2 ± 0.577
    # normal interval 2 ± 1.96 * 0.577 = [0.868, 3.132]: higher on the test images
    assert "2.0 on 3 test images (95 % t interval -0.5 to 4.5)" in text  # se 0.58: one decimal
    assert "0.0 on 4 training images (95 % t interval 0.0 to 0.0)" in text
    assert "difference +2.0 ± 0.6 (95 % interval +0.9 to +3.1" in text
    assert text.endswith("higher on test images")
    flipped = two_means_sentence(b, a, "test images", "training images", "L1")
    assert flipped.endswith("lower on test images")
    assert two_means_sentence(a, a + 0.1, "x", "y", "L1").endswith("not resolved at this n")


class _Space:
    """Features: the first 4 pixel values of the image; logits: 2 zeros (enough for memorisation_report)."""

    features, pool, logits, layers = "toy", "f", "l", ("f", "l")

    def __call__(self, images):
        x = images.float().flatten(1)
        return {"f": x[:, :4], "l": torch.zeros(len(x), 2)}


@pytest.fixture
def toy_report():
    g = torch.Generator().manual_seed(0)
    images = lambda n: torch.randint(0, 256, (n, 3, 4, 4), generator=g, dtype=torch.uint8)
    train, test = images(60), images(30)
    samples = torch.cat([train[:10], images(30)])  # ten copies of training images, thirty fresh draws
    return memorisation_report(_Space(), samples, train, test, cells=2, min_cell_samples=2).row


def test_memorisation_summary_and_sentence_follow_the_row(toy_report):
    row = toy_report
    summary = memorisation_summary(row, "40 toy samples", "test")
    assert summary["n_samples"] == 40 and summary["n_train"] == 60 and summary["baseline"] == "test"
    assert summary["feat_near_copy_count"] == row["feat_near_copy_count"] >= 10  # ten exact copies
    share = proportion_interval(summary["feat_near_copy_count"], 40)
    assert math.isclose(summary["feat_near_copy_share_lo"], share.lo)
    text = memorisation_sentence(summary)
    assert near_copy_text(summary) in text
    assert f"{summary['feat_near_copy_count']} of 40 samples, {100 * share.share:.1f} %" in text
    side = "closer to" if summary["feat_median_ratio"] < 1 else "farther from"
    assert f"{summary['feat_median_ratio']:.2f} times the test images' ({side} the training set" in text
    assert f"against all {summary['n_baseline']} test images: {summary['feat_fid_test']:.1f}" in text


@pytest.mark.parametrize("c_t, words", [(-5.0, "data-copying in Meehan"), (5.0, "farther from the training set"),
                                        (0.5, "between -3 and +3"), (math.nan, "not computed")])
def test_memorisation_sentence_reads_c_t_by_its_value(toy_report, c_t, words):
    summary = memorisation_summary({**toy_report, "feat_c_t": c_t}, "toy", "test")
    assert words in memorisation_sentence(summary).split("In pixels")[0]


def test_memorisation_summary_rejects_other_rows():
    with pytest.raises(ValueError, match="feat_n_samples"):
        memorisation_summary({"fid": 1.0}, "x")
