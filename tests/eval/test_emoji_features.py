"""The OpenMoji feature space: augmentation, the recipe's script, torch-fidelity registration, that it is a metric."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from ulib.data.openmoji import load_openmoji
from ulib.eval import compare as C
from ulib.eval import extractors as X
from ulib.eval import features as EF
from ulib.eval import metric_checks as MC
from ulib.eval import metrics as M
from ulib.eval.categories import CATEGORIES

from helpers import CACHE, run_cli


@pytest.fixture(scope="module")
def space():
    return X.load_inception("openmoji")


@pytest.fixture(scope="module")
def emoji():
    """Two disjoint halves of the rendered OpenMoji set at 32 px, uint8 (N, 3, 32, 32), 800 each."""
    images, _ = load_openmoji(32, CACHE)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[perm[:800]], x[perm[800:1600]]


def feats(space, x):
    return X.extract_features(space, [x[i: i + 256] for i in range(0, len(x), 256)])[space.pool]


# ---- the recipe's augmentation ------------------------------------------------------------------------
def test_augment_keeps_content_and_fills_white():
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    g = torch.Generator().manual_seed(0)
    same = EF.augment(x, EF.FeatureRecipe(max_shift=0.0, scale=(1.0, 1.0)), g)
    for a, b in zip(same, x):  # only a flip or nothing
        assert torch.allclose(a, b, atol=1e-5) or torch.allclose(a, b.flip(-1), atol=1e-5)
    small = EF.augment(x, EF.FeatureRecipe(max_shift=0.0, scale=(0.5, 0.5)), g)  # zoomed out: a white frame
    assert torch.allclose(small[:, :, :4, :], torch.ones(1), atol=1e-5)
    assert torch.allclose(small[:, :, :, -4:], torch.ones(1), atol=1e-5)


# ---- the recipe's script and the shipped file -----------------------------------------------------------
def test_train_features_script_runs_on_a_tiny_config(tmp_path):
    out = tmp_path / "f.pt"
    r = run_cli("train-features", "--out", str(out), "--limit", "48", "--epochs", "6", "--cache-dir", CACHE,
                "--no-progress", timeout=600)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "48 emoji" in r.stdout
    net, report = EF.load_feature_net(out)
    assert report["n_emoji"] == 48 and report["recipe"]["epochs"] == 6
    h = report["history"]
    assert len(h) == 6 and h[-1]["loss_exemplar"] < h[0]["loss_exemplar"]  # it learns
    f, logits = net(torch.zeros(2, 3, 32, 32))
    assert f.shape == (2, 256) and logits.shape == (2, len(CATEGORIES))


def test_shipped_weights_were_made_by_the_default_recipe(space):
    _, report = EF.load_feature_net()
    assert report["recipe"] == EF.FeatureRecipe().to_dict()  # change the recipe: retrain the shipped file
    assert report["n_emoji"] >= 1800 and report["categories"] == list(CATEGORIES)
    assert report["exemplar_accuracy_augmented"] > 0.5 and report["category_accuracy"] > 0.8
    assert space.features == "openmoji" and space.layers == EF.LAYERS and len(space.info["sha256"]) == 64


def test_missing_or_wrong_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-features"):
        EF.load_feature_net(tmp_path / "none.pt")
    torch.save({"x": 1}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not an OpenMoji feature-weights file"):
        EF.load_feature_net(tmp_path / "bad.pt")


def test_torch_fidelity_computes_the_same_fid_in_the_registered_space(space, emoji):
    import torch_fidelity

    class Images(torch.utils.data.Dataset):
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i]

    a, b = emoji[0][:300], MC.gaussian_blur(emoji[1][:300], 1.0)
    EF.register_with_torch_fidelity()
    out = torch_fidelity.calculate_metrics(input1=Images(a), input2=Images(b), feature_extractor="openmoji",
                                           feature_extractor_weights_path=str(EF.shipped_weights()), fid=True,
                                           cuda=False, verbose=False, cache=False, batch_size=100)
    assert out["frechet_inception_distance"] == pytest.approx(M.fid(feats(space, a), feats(space, b)), rel=1e-3)


# ---- it is a metric ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep(space, emoji):
    return MC.sanity_sweep(lambda x: feats(space, x), *emoji)


def test_real_halves_score_at_the_floor_and_corruptions_get_monotonically_worse(sweep):
    for name in MC.CORRUPTIONS:
        rows = [r for r in sweep if r["corruption"] == name]
        fids = [r["fid"] for r in rows]
        assert fids == sorted(fids) and fids[-1] > 5 * fids[0], (name, fids)
        assert rows[0]["precision"] > 0.6 and rows[0]["recall"] > 0.6 and rows[0]["coverage"] > 0.6
        assert rows[-1]["density"] < rows[0]["density"], name


def test_a_collapsed_set_has_low_recall_and_coverage(sweep):
    floor = next(r for r in sweep if r["corruption"] == "blur" and r["strength"] == 0)
    col = next(r for r in sweep if r["corruption"] == "collapse")
    assert col["recall"] < 0.25 * floor["recall"] and col["coverage"] < 0.25 * floor["coverage"]
    assert col["fid"] > floor["fid"]


def test_corruptions_hand_cases():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(2, 3, 8, 8)
    assert torch.equal(MC.gaussian_blur(x, 0), x)
    flat = torch.full((1, 3, 8, 8), 77, dtype=torch.uint8)
    assert torch.equal(MC.gaussian_blur(flat, 1.5), flat)  # a flat image stays flat
    g = torch.Generator().manual_seed(0)
    s = MC.shuffle_patches(x, 1.0, 4, g)
    assert not torch.equal(s, x)
    tiles = lambda t: sorted(t[0, :, i:i + 4, j:j + 4].flatten().tolist() for i in (0, 4) for j in (0, 4))
    assert tiles(s) == tiles(x)  # the same tiles, moved
    c = MC.collapse(x.repeat(5, 1, 1, 1), 3, g)
    assert len(c) == 10 and len({bytes(i.numpy()) for i in c}) <= 3


# ---- python -m ulib compare ----------------------------------------------------------------------------
def test_compare_command_on_folders_and_npz(tmp_path, emoji):
    real, fake = emoji[0][:120], MC.gaussian_noise(emoji[1][:120], 32.0, torch.Generator().manual_seed(0))
    (tmp_path / "real").mkdir()
    for i, img in enumerate(real):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / "real" / f"{i:03d}.png")
    np.savez(tmp_path / "fake.npz", images=fake.permute(0, 2, 3, 1).numpy())
    out = tmp_path / "r.json"
    r = run_cli("compare", str(tmp_path / "real"), str(tmp_path / "fake.npz"), "--features", "openmoji",
                "--json", str(out), "--bootstrap", "3")
    assert r.returncode == 0, r.stderr
    for word in ("feature space: openmoji", "real: 120 images", "fake: 120 images", "fid", "kid", "precision",
                 "recall", "density", "coverage", "noise floor"):
        assert word in r.stdout, word
    rec = json.loads(out.read_text())
    assert rec["n_real"] == rec["n_fake"] == 120 and rec["features"] == "openmoji"
    assert rec["noise_floor"]["n"] == 60 and rec["fid"] > rec["noise_floor"]["fid"]
    assert set(rec["std"]) == set(C.FIGURES) and all(v > 0 for v in rec["std"].values())


def test_compare_names_bad_input(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "x.png")
    Image.new("RGB", (9, 8)).save(tmp_path / "a" / "y.png")
    with pytest.raises(ValueError, match="y.png is 9x8"):
        C.load_image_set(tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="no such"):
        C.load_image_set(tmp_path / "missing")
    np.savez(tmp_path / "f.npz", a=np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="float32 of shape .*expected a .npz holding one uint8 array"):
        C.load_image_set(tmp_path / "f.npz")
    r = run_cli("compare", str(tmp_path / "missing"), str(tmp_path / "f.npz"))
    assert r.returncode == 2 and "no such folder" in r.stderr
