"""ulib.eval.memorisation: near-copies against the test set's baseline, the picture of pairs, and the report in
features and pixels; seeded Gaussians (nearest rows: test_neighbours.py; C_T: test_data_copying.py)."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ulib.eval import memorisation as MEM


def gaussians(seed, n_train=1000, n_test=500, n_samples=500, dim=8):
    """(train, test, fresh samples): independent seeded draws of one N(0, I) in `dim` dimensions."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, dim, generator=g, dtype=torch.float64) for n in (n_train, n_test, n_samples))


# ---- the three cases: copies, fresh draws, far away -----------------------------------------------------------------
def test_copies_of_training_rows():
    train, test, _ = gaussians(0)
    copies = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(1))[:500]]
    out = MEM.memorisation(copies, train, test)
    assert out["sample_to_train_median"] == 0.0 and out["sample_to_train_mean"] == 0.0
    assert out["sample_exact_copies"] == 500 and out["test_exact_copies"] == 0
    assert out["near_copy_share"] == 1.0 and out["near_copy_share_p5"] == 1.0 and out["median_ratio"] == 0.0
    assert out["near_copy_share_lo"] > 0.99 and out["near_copy_share_hi"] == 1.0
    assert out["c_t"] < -3, out["c_t"]  # seen: -9.2
    assert out["c_t_cells"] == 10 and out["c_t_cells_used"] == 10 and out["c_t_test_share_used"] == 1.0


def test_fresh_draws_of_the_same_distribution():
    train, test, fresh = gaussians(0)
    out = MEM.memorisation(fresh, train, test)
    assert (out["n_samples"], out["n_train"], out["n_test"], out["n_test_used"], out["dim"]) == (500, 1000, 500,
                                                                                               500, 8)
    assert abs(out["c_t"]) < 2, out["c_t"]  # seen: -0.002; sd about 1/sqrt(10 cells) over seeds
    assert 0.9 < out["median_ratio"] < 1.1 and 0.9 < out["mean_ratio"] < 1.1
    assert out["near_copy_share"] <= 0.02  # expected about 1/(n_test + 1): below the closest test image
    assert out["near_copy_share_p5_lo"] <= 0.05 <= out["near_copy_share_p5_hi"]  # about q = 0.05
    assert out["near_copy_threshold"] == out["test_to_train_min"]
    assert out["sample_to_train_q25"] <= out["sample_to_train_median"] <= out["sample_to_train_q75"]


def test_samples_far_from_the_data():
    train, test, fresh = gaussians(0)
    out = MEM.memorisation(fresh + 3, train, test)
    assert out["c_t"] > 3, out["c_t"]  # seen: 10.2 (underfitting)
    assert out["median_ratio"] > 2 and out["near_copy_share"] == 0.0
    assert 0 < out["c_t_cells_used"] < out["c_t_cells"]  # the shifted samples crowd a few edge cells


def test_a_test_image_that_duplicates_a_training_image_is_no_baseline():
    train, test, _ = gaussians(2, 200, 100, 50)
    test[0], test[1] = train[5], train[6]  # a leak in the split: two test images are training images
    out = MEM.memorisation(train[:50], train, test)
    assert out["test_exact_copies"] == 2 and out["n_test"] == 100 and out["n_test_used"] == 98
    kept = MEM.nearest(test[2:], train)[0]
    assert out["near_copy_threshold"] == kept.min().item() > 0 and out["test_to_train_min"] > 0
    assert out["near_copy_share"] == 1.0 and out["c_t"] < -3
    leaky = MEM.memorisation(train[:50], train, test, drop_test_copies=False)
    assert leaky["n_test_used"] == 100 and leaky["near_copy_threshold"] == 0.0
    assert leaky["near_copy_share"] == 1.0  # d <= 0: exact copies still count
    noisy = train[:50] + 1e-3  # near-copies, not exact: only the baseline without the leak sees them
    assert MEM.memorisation(noisy, train, test)["near_copy_share"] == 1.0
    assert MEM.memorisation(noisy, train, test, drop_test_copies=False)["near_copy_share"] == 0.0
    with pytest.raises(ValueError, match="all 2 test rows duplicate a training row"):
        MEM.memorisation(train[:50], train, train[:2])


# ---- the picture ------------------------------------------------------------------------------------------------
def test_nearest_pairs_grid_shape_and_layout(tmp_path):
    samples = torch.stack([torch.full((3, 4, 4), v, dtype=torch.uint8) for v in (10, 20, 30, 40, 50)])
    train = torch.stack([torch.full((3, 4, 4), v, dtype=torch.uint8) for v in (100, 110, 120)])
    indices = torch.tensor([2, 1, 0, 0, 1])
    distances = torch.tensor([5.0, 1.0, 4.0, 2.0, 3.0])  # closest first: samples 1, 3, 4
    grid = MEM.nearest_pairs_grid(samples, train, indices, n=3, distances=distances, per_row=2, upscale=1,
                                  path=tmp_path / "pairs.png")
    # 2 columns; 2 blocks of (samples, neighbours): 4 tile rows of 4 pixels and 1-pixel padding
    assert grid.shape == (4 * 5 + 1, 2 * 5 + 1, 3) and grid.dtype == np.uint8
    tile = lambda r, c: int(grid[1 + 5 * r, 1 + 5 * c, 0])
    assert [tile(0, 0), tile(0, 1), tile(1, 0), tile(1, 1)] == [20, 40, 110, 100]  # samples 1, 3 over neighbours
    assert [tile(2, 0), tile(3, 0)] == [50, 110] and tile(2, 1) == tile(3, 1) == 255  # sample 4; white filler
    assert np.array_equal(np.asarray(Image.open(tmp_path / "pairs.png").convert("RGB")), grid)
    first = MEM.nearest_pairs_grid(samples.float() / 127.5 - 1, train, indices, n=2, upscale=2)  # no distances
    assert first.shape == (2 * (2 * 5 + 1), 2 * (2 * 5 + 1), 3)
    assert int(first[2, 2, 0]) == 10 and int(first[2 * 6, 2, 0]) == 120  # sample 0 over training image 2


# ---- the report in a feature space and in pixels ---------------------------------------------------------------
class StubSpace:
    """Features: the first 6 pixel values of the image; logits: 2 zeros."""

    features, pool, logits, layers = "stub", "f", "l", ("f", "l")

    def __call__(self, images):
        x = images.float().flatten(1)
        return {"f": x[:, :6], "l": torch.zeros(len(x), 2)}


def test_memorisation_report_in_features_and_pixels():
    g = torch.Generator().manual_seed(4)
    images = lambda n: torch.randint(0, 256, (n, 3, 4, 4), generator=g, dtype=torch.uint8)
    train, test = images(60), images(40)
    samples = train[torch.tensor([7, 3, 3, 50] * 10)]  # 40 copies of four training images
    report = MEM.memorisation_report(StubSpace(), samples, train, test)
    row = report.row
    assert row["features"] == "stub" and row["feat_dim"] == 6 and row["pix_dim"] == 48
    assert row["feat_near_copy_share"] == 1.0 and row["pix_near_copy_share"] == 1.0
    assert row["pix_sample_exact_copies"] == 40 and row["pix_median_ratio"] == 0.0
    assert row["feat_c_t"] < -3 and row["pix_c_t"] < -3
    assert report.pix.indices.tolist() == [7, 3, 3, 50] * 10 and (report.pix.distances == 0).all()
    assert report.feat.indices.tolist() == [7, 3, 3, 50] * 10
    assert {"feat_fid_train", "feat_fid_test", "feat_fid_test_to_train"} <= set(row)
    assert row["feat_fid_train"] < row["feat_fid_test"]  # copies of training images sit on train
    assert all(isinstance(v, (int, float, str)) for v in row.values()), "one flat row"
    floats = MEM.memorisation_report(StubSpace(), samples.float() / 127.5 - 1, train, test).row  # [-1, 1] samples
    assert floats["pix_sample_exact_copies"] == 40


# ---- bad input -----------------------------------------------------------------------------------------------------
def test_bad_input_names_the_problem():
    train, test, fresh = gaussians(0, 50, 30, 30)
    with pytest.raises(ValueError, match="samples is empty"):
        MEM.memorisation(fresh[:0], train, test)
    with pytest.raises(ValueError, match="test is empty"):
        MEM.memorisation(fresh, train, test[:0])
    with pytest.raises(ValueError, match="different dimensions.*samples 5, train 8, test 8"):
        MEM.memorisation(fresh[:, :5], train, test)
    with pytest.raises(ValueError, match="query rows have 5 dimensions, reference rows 8"):
        MEM.nearest(fresh[:, :5], train)
    with pytest.raises(ValueError, match="empty set"):
        MEM.nearest(fresh[:0], train)
    with pytest.raises(ValueError, match="exclude_self needs the query to be the reference"):
        MEM.nearest(fresh, train, exclude_self=True)
    with pytest.raises(ValueError, match="batch_size"):
        MEM.nearest(fresh, train, batch_size=0)
    with pytest.raises(ValueError, match=r"features \(N, D\) or images"):
        MEM.nearest(torch.zeros(3), train)
    with pytest.raises(ValueError, match="NaN"):
        MEM.nearest(torch.full((2, 8), math.nan), train)
    with pytest.raises(ValueError, match="quantile"):
        MEM.memorisation(fresh, train, test, quantiles=(1.0,))
    with pytest.raises(ValueError, match="cells=51"):
        MEM.data_copying_statistic(fresh, train, test, cells=51)
    with pytest.raises(ValueError, match="distances of shapes"):
        MEM.data_copying_statistic(fresh, train, test, sample_distances=torch.zeros(3))
    with pytest.raises(ValueError, match="min_cell_samples"):
        MEM.data_copying_statistic(fresh, train, test, min_cell_samples=0)
    img = torch.zeros(4, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="different sizes"):
        MEM.memorisation_report(StubSpace(), img, torch.zeros(4, 3, 8, 8, dtype=torch.uint8), img)
    with pytest.raises(ValueError, match="train is empty"):
        MEM.memorisation_report(StubSpace(), img, img[:0], img)
    with pytest.raises(ValueError, match="indices of shape"):
        MEM.nearest_pairs_grid(img, img, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="outside the 4 training images"):
        MEM.nearest_pairs_grid(img, img, torch.tensor([0, 1, 2, 4]))


def test_near_copy_sentence_is_made_from_the_row():
    train, test, fresh = gaussians(0)
    copies = MEM.memorisation(train[:40], train, test)
    text = MEM.near_copy_sentence(copies, prefix="", space="pixels")
    assert text == ("pixels: near-copies 40 of 40 (100.0 %, 95 % Wilson 91.2 % to 100.0 %; no farther from a "
                    "training image than the closest of 500 test images); 40 within the test images' 5th percentile "
                    "(100.0 %, 91.2 % to 100.0 %; unseen images 5 %, binomial p < 0.001); median distance ratio "
                    f"0.00; C_T {copies['c_t']:+.2f}")
    out = MEM.memorisation(fresh, train, test)
    k = out["near_copy_count_p5"]
    assert f"; {k} within the test images' 5th percentile ({100 * k / 500:.1f} %" in MEM.near_copy_sentence(out, "")
    report = MEM.memorisation_report(StubSpace(), *(torch.randint(0, 256, (m, 3, 4, 4), dtype=torch.uint8,
                                                                  generator=torch.Generator().manual_seed(m))
                                                    for m in (30, 60, 40))).row
    assert MEM.near_copy_sentence(report, "pix_", "pixels").startswith(
        f"pixels: near-copies {report['pix_near_copy_count']} of 30")
    assert MEM.near_copy_sentence({**out, "c_t": math.nan}, "").endswith("; C_T n/a (no cell held 20 samples)")
    with pytest.raises(ValueError, match="no 'feat_n_samples'"):
        MEM.near_copy_sentence(out)


def test_memorisation_report_takes_features_computed_once():
    g = torch.Generator().manual_seed(5)
    images = lambda n: torch.randint(0, 256, (n, 3, 4, 4), generator=g, dtype=torch.uint8)
    train, test, samples = images(60), images(40), images(30)
    space = StubSpace()
    plain = MEM.memorisation_report(space, samples, train, test).row
    feats = {name: space(x)["f"] for name, x in (("train", train), ("test", test))}
    given = MEM.memorisation_report(space, samples, train, test, train_features=feats["train"],
                                    test_features=feats["test"]).row
    assert given == plain
    shifted = MEM.memorisation_report(space, samples, train, test, train_features=feats["train"] + 50).row
    assert shifted["feat_sample_to_train_median"] != plain["feat_sample_to_train_median"]  # the given ones are used
    with pytest.raises(ValueError, match="test_features must be \\(N, D\\) features of the 40 test images"):
        MEM.memorisation_report(space, samples, train, test, test_features=feats["test"][:5])


def test_a_cache_kept_between_sample_sets_changes_no_figure():
    """cache: the test-to-train distances and the k-means centres of C_T, which depend on the train and test sets
    only, are stored on the first call and reused: a second sample set scores exactly as without a cache."""
    g = torch.Generator().manual_seed(6)
    images = lambda n: torch.randint(0, 256, (n, 3, 4, 4), generator=g, dtype=torch.uint8)
    train, test, first, second = images(60), images(100), images(100), images(100)
    space, cache = StubSpace(), {}
    MEM.memorisation_report(space, first, train, test, cache=cache, cells=2, min_cell_samples=5)
    assert set(cache) == {"feat", "pix"} and ("kmeans_centres", 2, 0) in cache["pix"]
    assert cache["feat"]["test_to_train"].shape == (100,)
    cached = MEM.memorisation_report(space, second, train, test, cache=cache, cells=2, min_cell_samples=5).row
    fresh = MEM.memorisation_report(space, second, train, test, cells=2, min_cell_samples=5).row
    assert cached == fresh and not math.isnan(fresh["pix_c_t"])
