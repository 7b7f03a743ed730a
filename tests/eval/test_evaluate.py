"""`python -m ulib evaluate` end to end on a tiny smoke run, the reference cache, and the records/tables."""
import json
import math
import shutil

import pytest
import torch
from PIL import Image

import ulib.eval.evaluate as E
import ulib.eval.records as R
from ulib.data.datasets import build_dataset
from ulib.eval.inception import INCEPTION_FILE, random_inception_state_dict
from ulib.eval.recipe import paper_results
from ulib.io.rundir import RunDir
from ulib.profiles import get_profile

from helpers import CACHE, run_cli, vgg16_features_file


def evaluate_cli(*args, env=None):
    """`python -m ulib evaluate ARGS` in a subprocess."""
    return run_cli("evaluate", *args, env=env)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A smoke run trained for 4 steps per stage through the CLI."""
    run = tmp_path_factory.mktemp("eval") / "run"
    sets = ["--set", f"data.cache_dir={CACHE}"]
    for cmd, extra in (("train-vqgan", ["--profile", "smoke", "--set", "vqgan_train.steps=4", "--no-progress"]),
                       ("encode", []), ("train-prior", ["--set", "prior_train.steps=4", "--no-progress"])):
        r = run_cli(cmd, "--run", str(run), *extra, *sets)
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    return run


@pytest.fixture
def no_weights_env(tmp_path):
    """No LPIPS or Inception weights anywhere this test can see, whatever the machine has."""
    (tmp_path / "empty").mkdir()
    return {"ULIB_WEIGHTS_DIR": str(tmp_path / "empty"), "TORCH_HOME": str(tmp_path / "torch_home")}


# InceptionV3 costs ~0.7 s per image on two CPU cores: 12 samples against 12 reference images
SAMPLE_ARGS = ["--samples", "12", "--steps", "4", "--temperature", "0.9", "--max-reference", "12",
               "--batch-size", "8", "--no-progress"]



@pytest.mark.slow
def test_evaluate_in_the_openmoji_feature_space(tiny_run, tmp_path, no_weights_env):
    """--features openmoji needs no downloaded file: the weights ship with the kit; labelled in the records."""
    run = tmp_path / "copy"

    shutil.copytree(tiny_run, run)
    (run / "evaluation.jsonl").unlink(missing_ok=True)
    r = evaluate_cli("--run", str(run), *SAMPLE_ARGS, "--features", "openmoji", env=no_weights_env)
    assert r.returncode == 0, r.stdout + r.stderr
    (rec,) = R.read_records(run / "evaluation.jsonl")
    assert rec["features"] == "openmoji" and rec["fid"] > 0 and 0 <= rec["coverage"] <= 1
    assert rec["extractor"]["features"] == "openmoji" and len(rec["extractor"]["sha256"]) == 64
    assert "features: openmoji (the kit's OpenMoji feature network" in (run / "evaluation.md").read_text()

@pytest.mark.slow
def test_evaluate_samples_end_to_end(tiny_run, tmp_path, no_weights_env):
    r = evaluate_cli("--run", str(tiny_run), *SAMPLE_ARGS, "--seed", "1", "--features", "random-inception",
                     env=no_weights_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[features: random-inception]" in r.stdout
    (rec,) = R.read_records(tiny_run / "evaluation.jsonl")
    assert rec["kind"] == "samples" and rec["features"] == "random-inception"
    recipe = {k: rec[k] for k in ("n_samples", "steps", "total_steps", "temperature", "seed", "reference",
                                  "n_reference", "image_size", "ema", "prdc_k", "prdc_n_real", "prdc_n_fake")}
    assert recipe == {"n_samples": 12, "steps": 4, "total_steps": 16, "temperature": 0.9, "seed": 1,
                      "reference": "train", "n_reference": 12, "image_size": 16, "ema": True, "prdc_k": 5,
                      "prdc_n_real": 12, "prdc_n_fake": 12}
    assert rec["prior_step"] == 4 and rec["vqgan_step"] == 4 and rec["extractor"]["seed"] == 0
    assert rec["paper"] is None and "bilinear" in rec["inception_resize"] and rec["data_fingerprint"]
    assert math.isfinite(rec["fid"]) and rec["fid"] >= 0
    assert all(0 <= rec[k] <= 1 for k in ("precision", "recall", "coverage")) and rec["density"] >= 0
    cache = list((tiny_run / "eval_cache").glob("reference_random-inception_train_12.pt"))
    assert len(cache) == 1

    # the same reference features come from the cache; the standard path on a test-made weights file (allowed as
    # unverified: it is not the released file) gives the same numbers (same weights) but lands in its own table
    weights = tmp_path / "w"
    weights.mkdir()
    torch.save(random_inception_state_dict(0), weights / INCEPTION_FILE)
    vgg16_features_file(weights)  # LPIPS for the nearest-neighbour grid
    r = evaluate_cli("--run", str(tiny_run), *SAMPLE_ARGS, "--seed", "1", "--features", "inception",
                     "--weights-dir", str(weights), "--neighbours", "2", "--neighbours-k", "3",
                     "--allow-unverified-weights", env=no_weights_env)
    assert r.returncode == 0, r.stdout + r.stderr
    a, b = R.read_records(tiny_run / "evaluation.jsonl")
    assert b["features"] == "inception" and b["extractor"]["official_weights"] is False
    png = Image.open(b["neighbours_png"])
    assert png.size == ((4 * 17 + 1) * 4, (2 * 17 + 1) * 4) and b["neighbours_k"] == 3  # sample + 3, upscaled x4
    assert b["fid"] == pytest.approx(a["fid"], rel=1e-4, abs=1e-6) and b["precision"] == a["precision"]
    md = (tiny_run / "evaluation.md").read_text()
    assert "features: random-inception (fixed-seed RANDOMLY INITIALISED" in md
    assert "features: inception (standard" in md
    with pytest.raises(ValueError, match="different"):
        R.evaluation_table([a, b])

    r = evaluate_cli("--run", str(tiny_run), *SAMPLE_ARGS, "--features", "inception", env=no_weights_env)
    assert r.returncode == 2 and INCEPTION_FILE in r.stderr and "--weights-dir" in r.stderr
    assert len(R.read_records(tiny_run / "evaluation.jsonl")) == 2  # nothing recorded for a failed evaluation


@pytest.mark.slow
def test_evaluate_vqgan_end_to_end(tiny_run, no_weights_env):
    r = evaluate_cli("--run", str(tiny_run), "--vqgan", "--samples", "8", "--features", "random-inception",
                     "--batch-size", "8", "--no-progress", env=no_weights_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "LPIPS skipped" in r.stdout and "vgg16-397923af.pth" in r.stdout
    rec = [x for x in R.read_records(tiny_run / "evaluation.jsonl") if x["kind"] == "vqgan"][-1]
    assert rec["reference"] == "val" and rec["n_images"] == 8 and rec["lpips"] is None
    assert math.isfinite(rec["rfid"]) and rec["psnr"] > 0 and -1 <= rec["ssim"] <= 1
    assert 1 <= rec["codes_used"] <= rec["codebook_size"] == 32 and rec["ssim_recipe"] == E.SSIM_RECIPE
    assert "VQGAN reconstructions (paper Table 5)" in (tiny_run / "evaluation.md").read_text()


# ---- records and tables ------------------------------------------------------------------------------
def _record(features="inception", fid=7.0, paper=None):
    return {"kind": "samples", "features": features, "time": "t", "prior_kind": "absorbing", "prior_step": 1,
            "ema": True, "n_samples": 50000, "steps": 256, "temperature": 0.9, "reference": "train",
            "n_reference": 70000, "seed": 0, "fid": fid, "precision": 0.7, "recall": 0.5, "density": 1.1,
            "coverage": 0.8, "prdc_k": 5, "kid_mean": 0.002, "is_mean": 3.0, "paper": paper}


def test_paper_figures_stand_only_in_the_standard_features_table():
    paper = paper_results(get_profile("ffhq"), "inception")
    md = R.render_markdown([_record(paper=paper), _record("random-inception", 50.0)], "r")
    std, rnd = md.split("## ")[1], md.split("## ")[2]
    assert "6.11" in std and "| 7.00 |" in std and "RANDOMLY INITIALISED" in rnd and "6.11" not in rnd
    assert "k = 3" in md
    with pytest.raises(ValueError, match="cannot be compared"):
        R.check_same_features([_record(), _record("random-inception")])
    assert R.check_same_features([_record(), _record()]) == "inception"


def test_record_evaluation_appends(tmp_path):
    R.record_evaluation(tmp_path, _record())
    R.record_evaluation(tmp_path, _record(fid=8.0))
    assert [r["fid"] for r in R.read_records(tmp_path / "evaluation.jsonl")] == [7.0, 8.0]
    md = (tmp_path / "evaluation.md").read_text()
    assert md.count("## ") == 1 and "| 7.00 |" in md and "| 8.00 |" in md
    json.loads((tmp_path / "evaluation.jsonl").read_text().splitlines()[0])


@pytest.mark.slow
def test_evaluate_memorisation_records_distances_and_fid_against_validation(tiny_run, tmp_path, no_weights_env):
    run = tmp_path / "copy"
    shutil.copytree(tiny_run, run)
    (run / "evaluation.jsonl").unlink(missing_ok=True)
    r = evaluate_cli("--run", str(run), *SAMPLE_ARGS, "--features", "openmoji", "--memorisation", env=no_weights_env)
    assert r.returncode == 0, r.stdout + r.stderr
    (rec,) = R.read_records(run / "evaluation.jsonl")
    assert 0 <= rec["memorisation_near_copy_share"] <= 1 and rec["memorisation_sample_to_train_median"] > 0
    held = rec["memorisation_split"]  # the test split when the run has one (the smoke profile does), else validation
    assert held == ("test" if json.loads((run / "config.json").read_text())["data"]["test_fraction"] > 0 else "val")
    assert rec[f"fid_vs_{held}"] > 0 and rec[f"n_{held}_reference"] > 0
    assert {"test": "test split", "val": "validation split"}[held] in rec["memorisation_baseline"]
    assert "memorisation [features: openmoji]" in r.stdout
    assert {"test": "vs test", "val": "vs validation"}[held] in r.stdout
    bad = evaluate_cli("--run", str(run), "--vqgan", "--memorisation", "--features", "openmoji", env=no_weights_env)
    assert bad.returncode == 2 and "--memorisation measures samples" in bad.stderr


@pytest.mark.slow
def test_evaluate_memorisation_sees_a_model_that_copies_its_training_images(tiny_run, tmp_path, monkeypatch):
    """A 'prior' whose samples are training images: every sample is a near-copy at distance 0 (FID alone would
    call it excellent)."""
    shutil.copytree(tiny_run, tmp_path / "copy")
    run = RunDir(tmp_path / "copy")
    cfg = run.stored_config()
    train = build_dataset(cfg.data, "train", train_transforms=False)
    copies = iter(torch.stack([train[i] for i in range(30)]).split(10))
    monkeypatch.setattr(E, "sample_images", lambda models, n, **kw: next(copies)[:n])
    rec = E.evaluate_samples(run, cfg, n=30, features="openmoji", batch_size=10, device="cpu", show_progress=False,
                             memorisation=True)
    assert rec["memorisation_sample_exact_copies"] == 30 and rec["memorisation_near_copy_share"] == 1.0
    assert rec["memorisation_sample_to_train_median"] == 0.0 and rec["memorisation_median_ratio"] == 0.0
