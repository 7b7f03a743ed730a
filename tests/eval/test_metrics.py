"""Metrics: the real torch-fidelity and prdc code paths on test-made weights, KNN search."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

import ulib.eval.metrics as M
from ulib.eval import extractors as X
from ulib.eval.inception import INCEPTION_FILE, random_inception_state_dict
from ulib.eval.reconstruction import lpips_distance
from ulib.vq.perceptual import load_lpips

from helpers import vgg16_features_file


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """Any attempt by torch-fidelity (or torch hub) to fetch weights fails the test."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    def refuse(*a, **k):
        raise AssertionError(f"tried to download {a or k}")

    monkeypatch.setattr(fe, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


def images(n, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def random_inception():
    return X.load_inception("random-inception")


@pytest.fixture(scope="module")
def random_feats(random_inception):
    """Features of 16 small random images (InceptionV3 costs ~0.7 s per image on two CPU cores)."""
    return random_inception(images(16))


# ---- the feature extractor ---------------------------------------------------------------------------
def test_standard_path_loads_a_weights_file_and_matches_random(tmp_path, random_inception, random_feats):
    """The random state dict saved under the standard file name goes through the standard loading (opted in: it
    is not the released file)."""
    torch.save(random_inception_state_dict(0), tmp_path / INCEPTION_FILE)
    with pytest.warns(UserWarning, match="sha256"):
        std = X.load_inception("inception", weights_dir=tmp_path, allow_unverified=True)
    assert std.features == "inception" and std.info["official_weights"] is False
    assert std.info["weights"] == str(tmp_path / INCEPTION_FILE) and len(std.key) == 64
    x = images(16)[:3]
    fs = std(x)
    assert fs["2048"].shape == (3, 2048) and fs["logits_unbiased"].shape == (3, 1008)
    assert torch.equal(fs["2048"], random_feats["2048"][:3])
    f = random_feats["2048"]
    assert torch.isfinite(f).all() and f.std() > 1e-3 and (f.std(0) > 0).float().mean() > 0.5  # not degenerate
    assert random_inception.key == "random-seed0" and random_inception.info["features"] == "random-inception"
    # float images in [-1, 1] are quantised like a PNG first
    assert torch.equal(random_inception(x.float() / 127.5 - 1)["2048"], f[:3])


def test_missing_weights_name_the_file_places_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("ULIB_WEIGHTS_DIR", str(tmp_path / "env"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError) as e:
        X.load_inception("inception")
    msg = str(e.value)
    assert INCEPTION_FILE in msg and str(tmp_path / "env") in msg and str(tmp_path / "hub") in msg
    assert "https://github.com/toshas/torch-fidelity/releases" in msg and "--weights-dir" in msg
    with pytest.raises(ValueError, match="allowed"):
        X.load_inception("vgg")


# ---- figures from features ---------------------------------------------------------------------------
def test_fid_of_a_set_against_itself_is_zero(random_feats):
    f = random_feats["2048"]
    trace = torch.cov(f.T.double()).trace().item()
    assert abs(M.fid(f, f)) < 1e-9 * trace
    assert M.fid(f[:8], f[8:]) > 1e-3 * trace


def test_fid_hand_case_shifted_gaussian():
    """Same covariance, means apart by c in each of d dims: FID = d c^2 (torch-fidelity's path: N > D)."""
    x = torch.randn(400, 8, generator=torch.Generator().manual_seed(0))
    assert M.fid_method(400, 400, 8) == "torch-fidelity"
    assert M.fid(x, x + 0.5) == pytest.approx(8 * 0.25, rel=1e-4)


@pytest.mark.parametrize("dim", [64, pytest.param(2048, marks=pytest.mark.slow)])
def test_low_rank_fid_equals_torch_fidelity(dim):
    """Sets smaller than D take the N x N route; torch-fidelity's eigendecomposition gives the same value."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, dim, generator=g) @ torch.randn(dim, dim, generator=g) / dim**0.5
    y = 0.8 * torch.randn(30, dim, generator=g) + 0.1
    assert M.fid_method(20, 30, dim) == "low-rank"
    ref = fid_statistics_to_metric(fid_features_to_statistics(x), fid_features_to_statistics(y), False)
    assert M.fid(x, y) == pytest.approx(ref["frechet_inception_distance"], rel=1e-5)


@pytest.mark.parametrize("n_real, n_fake, dim", [(300, 200, 16), (20, 30, 64)])  # N > D, and rank-deficient
def test_fid_of_a_resample_from_counts_is_fid_of_the_resampled_rows(n_real, n_fake, dim):
    """fid_resampled(x, y, counts) equals fid(x[idx], y[jdx]) of the drawn indices, repeats included; no counts:
    each item once, fid(x, y); the hand case of a shift by c in each of d dims gives d c^2 as well."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n_real, dim, generator=g) @ torch.randn(dim, dim, generator=g) / dim**0.5
    y = 0.7 * torch.randn(n_fake, dim, generator=g) + 0.2
    idx, jdx = torch.randint(n_real, (n_real,), generator=g), torch.randint(n_fake, (n_fake,), generator=g)
    cx, cy = torch.bincount(idx, minlength=n_real), torch.bincount(jdx, minlength=n_fake)
    assert M.fid_resampled(x, y, cx, cy) == pytest.approx(M.fid(x[idx], y[jdx]), rel=1e-6)
    assert M.fid_resampled(x, y) == pytest.approx(M.fid(x, y), rel=1e-6)
    assert M.fid_resampled(x, x + 0.5) == pytest.approx(dim * 0.25, rel=1e-6)
    with pytest.raises(ValueError, match="one count per item"):
        M.fid_resampled(x, y, cx[:-1])


def test_prdc_same_and_disjoint_gaussians():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((600, 16)).astype(np.float32), rng.standard_normal((600, 16)).astype(np.float32)
    same = M.prdc(a, b, k=5)
    assert same["precision"] > 0.8 and same["recall"] > 0.8 and same["coverage"] > 0.8
    assert 0.7 < same["density"] < 1.3
    far = M.prdc(a, b + 100.0, k=5)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    for n in (5, 6):  # each point's 5th neighbour other than itself needs 7 points (6 was numpy's kth error)
        with pytest.raises(ValueError, match="needs at least 7"):
            M.prdc(a[:n], b, k=5)


def test_kid_and_inception_score():
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    y = torch.randn(300, 16, generator=torch.Generator().manual_seed(1))
    near, far = M.kid(x, y, subsets=20), M.kid(x, y + 3.0, subsets=20)
    assert near["kid_subset_size"] == 300 and abs(near["kid_mean"]) < far["kid_mean"] / 100
    # p(y|x) uniform for every x: KL(p(y|x) || p(y)) = 0, so IS = exp(0) = 1
    assert M.inception_score(torch.zeros(20, 1008))["is_mean"] == pytest.approx(1.0)
    # every x certain of its own class, classes spread evenly over 10 per split: IS = 10
    logits = torch.full((100, 10), -1e4).scatter(1, (torch.arange(100) % 10)[:, None], 0.0)
    assert M.inception_score(logits, splits=1)["is_mean"] == pytest.approx(10.0, rel=1e-6)


# ---- nearest neighbours ------------------------------------------------------------------------------
def test_nearest_neighbours_finds_planted_copies(tmp_path):
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(20, 3, 8, 8, generator=gen) * 2 - 1
    planted = [3, 17, 8]
    queries = ref[planted] + 0.01 * torch.randn(3, 3, 8, 8, generator=gen)
    sq = lambda x, y: (x - y).pow(2).flatten(1).mean(1)  # noqa: E731
    nn_ = M.nearest_neighbours(queries, ref.split(6), sq, k=4)  # batches of 6, 6, 6, 2
    assert nn_.indices[:, 0].tolist() == planted
    assert (nn_.distances[:, 1:] >= nn_.distances[:, :-1]).all()
    assert torch.equal(nn_.images, ref[nn_.indices])
    want = torch.stack([sq(q.expand_as(ref), ref) for q in queries]).topk(4, largest=False)
    assert torch.equal(nn_.indices, want.indices)
    png = tmp_path / "nn.png"
    M.save_neighbours_grid(queries, nn_, png)
    w, h = Image.open(png).size
    assert (w, h) == ((5 * 9 + 1) * 8, (3 * 9 + 1) * 8)  # 1 + k columns, one row per query, upscaled 64 // 8


def test_lpips_distance_and_neighbours_with_test_made_weights(tmp_path):
    vgg16_features_file(tmp_path)
    with pytest.warns(UserWarning, match="sha256"):  # a test-made file is not torchvision's
        lp = load_lpips(tmp_path, allow_unverified=True)
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(6, 3, 16, 16, generator=gen) * 2 - 1
    d = lpips_distance(lp, ref, ref.flip(0))
    assert d.shape == (6,) and (d > 0).all()
    assert torch.allclose(lpips_distance(lp, ref, ref), torch.zeros(6), atol=1e-6)
    nn_ = M.nearest_neighbours(ref[[4, 1]], ref.split(4), lambda x, y: lpips_distance(lp, x, y), k=2)
    assert nn_.indices[:, 0].tolist() == [4, 1] and math.isclose(nn_.distances[0, 0].item(), 0.0, abs_tol=1e-6)
