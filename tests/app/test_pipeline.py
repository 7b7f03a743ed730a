"""End to end: the CLI pipeline, exact resume, NaN guard, latent-cache staleness, DDP, bad input."""
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ulib.io.checkpoint import load_checkpoint
from ulib.io.logs import MetricsLog
from ulib.io.rundir import RunDir
from ulib.models import load_run
from ulib.official import build_sampler, build_vqgan
from ulib.official_layout import to_official_state_dict
from ulib.prior import absorbing
from ulib.profiles import get_profile
from ulib.sample.api import sample_images
from ulib.train import latents
from ulib.train.prior import train_prior
from ulib.train.vqgan import train_vqgan
from ulib.trained import load_run_vqgan

from helpers import ROOT, TINY, run_cli, tiny_sets

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A smoke run trained through the CLI, stage by stage, in subprocesses (as a user would)."""
    run = tmp_path_factory.mktemp("cli") / "run"
    for cmd in ("train-vqgan", "encode", "train-prior"):
        extra = ["--profile", "smoke"] if cmd == "train-vqgan" else []
        r = run_cli(cmd, "--run", str(run), *extra, *tiny_sets(), "--no-progress" if cmd != "encode" else "--force")
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    return run


def test_cli_pipeline_end_to_end(trained_run, tmp_path):
    run = RunDir(trained_run)
    cfg = json.loads(run.config_file.read_text())
    assert cfg["profile"] == "smoke" and cfg["vqgan_train"]["steps"] == 6
    for f in (run.vqgan_ckpt, run.prior_ckpt, run.latents, run.vqgan_log, run.prior_log):
        assert f.exists(), f
    assert load_checkpoint(run.vqgan_ckpt)["step"] == 6 and load_checkpoint(run.prior_ckpt)["step"] == 6
    rows = MetricsLog.read(run.vqgan_log)
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert rows[-1]["d_loss"] is not None, "the discriminator switched on at step 3"
    assert any(p.name.startswith("prior_samples_") for p in run.images.iterdir())

    png = tmp_path / "s.png"
    r = run_cli("sample", "--run", str(trained_run), "--n", "4", "--steps", "5", "--temperature", "0.8",
                "--seed", "3", "--png", str(png))
    assert r.returncode == 0, r.stderr
    assert "4 samples (5 steps, temperature 0.8, seed 3, method random)" in r.stdout
    img = np.asarray(Image.open(png))
    assert img.ndim == 3 and img.shape[2] == 3 and img.std() > 0
    # same seed, same picture; another seed, another picture
    png2, png3 = tmp_path / "s2.png", tmp_path / "s3.png"
    run_cli("sample", "--run", str(trained_run), "--n", "4", "--steps", "5", "--seed", "3", "--temperature", "0.8",
            "--png", str(png2))
    run_cli("sample", "--run", str(trained_run), "--n", "4", "--steps", "5", "--seed", "4", "--temperature", "0.8",
            "--png", str(png3))
    assert np.array_equal(img, np.asarray(Image.open(png2)))
    assert not np.array_equal(img, np.asarray(Image.open(png3)))


def test_pipeline_command_reuses_finished_stages(trained_run):
    r = run_cli("pipeline", "--run", str(trained_run), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("reusing it") == 2
    assert "samples:" in r.stdout and (trained_run / "samples.png").exists()
    assert (trained_run / "reconstructions.png").exists()


@pytest.mark.parametrize("args, message", [
    (["sample", "--steps", "0"], "--steps=0; allowed: 1..T=16"),
    (["sample", "--steps", "17"], "--steps=17; allowed: 1..T=16"),
    (["sample", "--temperature", "0"], "--temperature=0.0; must be > 0"),
    (["sample", "--set", "prior.total_stepz=3"], "unknown config key 'prior.total_stepz'"),
    (["sample", "--set", "vqgan.codebook_size=64"], "vqgan.codebook_size=32"),
    (["sample", "--set", "prior.n_layers=3"], "does not match the config"),
    (["sample", "--profile", "demo"], "was made with profile 'smoke'"),
    (["train-vqgan"], "already trained"),
])
def test_cli_bad_input_gives_clear_errors(trained_run, args, message):
    r = run_cli(args[0], "--run", str(trained_run), *args[1:])
    out = r.stdout + r.stderr
    assert message in out, out
    assert r.returncode == (0 if message == "already trained" else 2)


def test_cli_rejects_unknown_profile_and_bad_image_size(tmp_path):
    r = run_cli("train-vqgan", "--run", str(tmp_path / "r"), "--profile", "imagenet")
    assert r.returncode == 2 and "invalid choice: 'imagenet'" in r.stderr
    r = run_cli("train-vqgan", "--run", str(tmp_path / "r"), "--profile", "smoke", "--set", "data.img_size=17")
    assert r.returncode == 2 and "data.img_size=17 cannot be divided" in r.stderr


def test_cli_data_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("train-vqgan", "--run", str(tmp_path / "r1"), "--profile", "smoke", "--data", str(empty))
    assert r.returncode == 2 and str(empty) in r.stderr and "no images" in r.stderr.lower()
    r = run_cli("train-vqgan", "--run", str(tmp_path / "r2"), "--profile", "smoke", "--data", str(tmp_path / "nope"))
    assert r.returncode == 2 and "nope" in r.stderr


def test_cli_trains_on_a_folder_of_images(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "readme.png").write_text("not an image")  # a bad file among good ones, found before step 1
    Image.new("RGB", (40, 40), (9, 9, 9)).save(folder / "cut.png")
    (folder / "cut.png").write_bytes((folder / "cut.png").read_bytes()[:60])
    steps = tiny_sets(["vqgan_train.steps=2", f"data.cache_dir={tmp_path / 'cache'}"])
    r = run_cli("train-vqgan", "--run", str(tmp_path / "r0"), "--profile", "smoke", "--data", str(folder),
                "--no-progress", *steps)
    assert r.returncode == 2 and "2 of 26 image files" in r.stderr, r.stderr
    assert "readme.png" in r.stderr and "cut.png" in r.stderr and "data.skip_bad=true" in r.stderr
    assert not (tmp_path / "r0" / "vqgan.pt").exists()  # no training time was spent

    r = run_cli("train-vqgan", "--run", str(tmp_path / "r"), "--profile", "smoke", "--data", str(folder),
                "--no-progress", *steps, "--set", "data.skip_bad=true")
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["data"]["dataset"] == "folder" and cfg["data"]["path"] == str(folder)
    check = json.loads((tmp_path / "r" / "data_check.json").read_text())
    assert check["skipped"] == 2 and set(check["files"]) == {"readme.png", "cut.png"}
    assert "2 unreadable image files left out" in r.stdout


def test_help_documents_every_option():
    r = run_cli("--help")
    for cmd in ("train-vqgan", "encode", "train-prior", "sample", "pipeline"):
        assert cmd in r.stdout
    r = run_cli("sample", "--help")
    for opt in ("--run", "--profile", "--set", "--n", "--steps", "--temperature", "--seed", "--png"):
        assert opt in r.stdout
    r = run_cli("train-prior", "--help")
    for opt in ("--run", "--profile", "--set", "--data", "--resume", "--force"):
        assert opt in r.stdout


# ---- exact resume --------------------------------------------------------------------------------
def _cfg(extra=()):
    return get_profile("smoke", [*TINY, "vqgan_train.steps=8", "prior_train.steps=8", *extra])


def _compare_states(a: dict, b: dict, keys):
    for k in keys:
        for name, t in a[k].items():
            torch.testing.assert_close(t, b[k][name], rtol=0, atol=0, msg=f"{k}.{name}")


def _losses(path):
    return [{k: v for k, v in r.items() if k != "images_per_s"} for r in MetricsLog.read(path)]


def test_vqgan_resume_equals_uninterrupted(tmp_path):
    cfg = _cfg(["vqgan.disc_start_step=2", "data.flip=true", "vqgan.code_restart_every=3"])
    full, part = RunDir(tmp_path / "full"), RunDir(tmp_path / "part")
    train_vqgan(full, cfg, show_progress=False)
    train_vqgan(part, cfg, stop_at=5, show_progress=False)  # "interrupted" after step 5
    with pytest.raises(ValueError, match="--resume"):
        train_vqgan(part, cfg, show_progress=False)
    train_vqgan(part, cfg, resume=True, show_progress=False)
    a, b = load_checkpoint(full.vqgan_ckpt), load_checkpoint(part.vqgan_ckpt)
    assert a["step"] == b["step"] == 8
    _compare_states(a, b, ["model", "ema", "disc"])
    assert _losses(full.vqgan_log) == _losses(part.vqgan_log)


def test_prior_resume_equals_uninterrupted(trained_run, tmp_path):
    cfg = RunDir(trained_run).stored_config()
    cfg = get_profile("smoke", [*TINY, "prior_train.steps=8", "prior.dropout=0.1"])
    runs = []
    for name in ("full", "part"):
        d = tmp_path / name
        d.mkdir()
        shutil.copy(trained_run / "vqgan.pt", d / "vqgan.pt")
        runs.append(RunDir(d))
    full, part = runs
    train_prior(full, cfg, show_progress=False)
    train_prior(part, cfg, stop_at=3, show_progress=False)
    train_prior(part, cfg, resume=True, show_progress=False)
    a, b = load_checkpoint(full.prior_ckpt), load_checkpoint(part.prior_ckpt)
    _compare_states(a, b, ["model", "ema"])
    assert _losses(full.prior_log) == _losses(part.prior_log)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = _cfg()
    run = RunDir(tmp_path / "r")
    train_vqgan(run, cfg, show_progress=False)
    real = absorbing.AbsorbingDiffusion.training_losses
    calls = {"n": 0}

    def poisoned(self, model, x0, generator=None, t=None):
        out = real(self, model, x0, generator, t)
        if not torch.is_grad_enabled():  # validation, not a training step
            return out
        calls["n"] += 1
        if calls["n"] == 5:  # training step index 4, after the step-3 checkpoint
            out["loss"] = out["loss"] * math.nan
        return out

    monkeypatch.setattr(absorbing.AbsorbingDiffusion, "training_losses", poisoned)
    with pytest.raises(FloatingPointError, match=r"at step 4.*last good checkpoint is .*prior.pt \(step 3\)"):
        train_prior(run, cfg, show_progress=False)
    assert load_checkpoint(run.prior_ckpt)["step"] == 3


# ---- latent cache --------------------------------------------------------------------------------
def test_latent_cache_notices_stale_inputs(trained_run, tmp_path, monkeypatch):
    run = RunDir(tmp_path / "r")
    run.make()
    shutil.copy(trained_run / "vqgan.pt", run.vqgan_ckpt)
    cfg = get_profile("smoke", TINY)
    calls = []
    real = latents.encode_dataset
    monkeypatch.setattr(latents, "encode_dataset", lambda *a, **k: calls.append(1) or real(*a, **k))
    c1 = latents.load_latents(cfg, run.vqgan_ckpt, run.latents, "cpu")
    assert len(calls) == 1 and c1["train"].dtype == torch.uint8 and c1["train"].shape[1:] == (8, 8)
    latents.load_latents(cfg, run.vqgan_ckpt, run.latents, "cpu")
    assert len(calls) == 1, "fresh cache reused"
    latents.load_latents(get_profile("smoke", TINY + ["data.val_fraction=0.1"]), run.vqgan_ckpt, run.latents, "cpu")
    assert len(calls) == 2, "data config changed: rebuilt"
    state = load_checkpoint(run.vqgan_ckpt)
    state["model"]["quantize.embedding.weight"] += 1.0
    torch.save(state, run.vqgan_ckpt)
    with pytest.raises(ValueError, match="stale"):
        latents.load_latents(get_profile("smoke", TINY + ["data.val_fraction=0.1"]), run.vqgan_ckpt, run.latents,
                             "cpu", rebuild="never")


def test_codebook_mismatch_is_a_clear_error(trained_run):
    cfg = get_profile("smoke", TINY + ["vqgan.codebook_size=64"])
    with pytest.raises(ValueError, match="codebook_size=32"):
        load_run_vqgan(cfg, trained_run / "vqgan.pt", "cpu")
    cfg = get_profile("smoke", TINY + ["vqgan.emb_dim=8"])
    with pytest.raises(ValueError, match=r"quantize.embedding.weight: checkpoint \(32, 16\) vs model \(32, 8\)"):
        load_run_vqgan(cfg, trained_run / "vqgan.pt", "cpu")


# ---- distributed ---------------------------------------------------------------------------------
def test_torchrun_two_cpu_processes_with_gloo(trained_run, tmp_path):
    run = tmp_path / "ddp"
    run.mkdir()
    shutil.copy(trained_run / "config.json", run / "config.json")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for cmd in ("train-vqgan", "train-prior"):
        r = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
             "-m", "ulib", cmd, "--run-dir", str(run), "--no-progress", "--set", "vqgan_train.steps=4",
             "--set", "prior_train.steps=4", "--set", "vqgan_train.batch_size=4", "--set", "prior_train.batch_size=4"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (cmd, r.stdout[-3000:], r.stderr[-3000:])
    state = load_checkpoint(run / "prior.pt")
    assert state["step"] == 4 and len(state["generators"]) == 2
    assert not torch.equal(state["generators"][0], state["generators"][1]), "each rank draws its own masks"


# ---- sampling options, inpainting, released checkpoints -------------------------------------------
@pytest.mark.parametrize("extra, expect", [
    (["--method", "confidence"], "method confidence"),
    (["--method", "remask"], "method remask"),
    (["--canvas", "8x12", "--stride", "2"], "canvas 8x12"),
])
def test_cli_sample_methods_and_canvas(trained_run, tmp_path, extra, expect):
    png = tmp_path / "s.png"
    r = run_cli("sample", "--run", str(trained_run), "--n", "2", "--steps", "4", "--png", str(png), *extra)
    assert r.returncode == 0, r.stderr
    assert expect in r.stdout
    img = np.asarray(Image.open(png))
    if "--canvas" in extra:  # 2 canvases of 16x24 pixels side by side (smoke: 2x downsampling)
        assert img.shape[1] > 2.5 * img.shape[0]


def test_cli_inpaint(trained_run, tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[4:8, 4:10] = 255  # 2 x 3 latent cells at 2x downsampling
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    r = run_cli("inpaint", "--run", str(trained_run), "--image", str(tmp_path / "img.png"), "--mask",
                str(tmp_path / "mask.png"), "--png", str(out), "--steps", "4", "--paste-back")
    assert r.returncode == 0, r.stderr
    assert "regenerated 6 of 64 tokens" in r.stdout and out.exists()
    r = run_cli("inpaint", "--run", str(trained_run), "--image", str(tmp_path / "nope.png"), "--mask",
                str(tmp_path / "mask.png"))
    assert r.returncode == 2 and "nope.png" in r.stderr


def test_cli_samples_from_released_checkpoint_files(tmp_path):
    """The paper configuration's files, as the official code saves them (random weights here)."""
    torch.manual_seed(0)
    torch.save(to_official_state_dict(build_vqgan(), "vqgan"), tmp_path / "vqgan_ema_1.th")
    torch.save(to_official_state_dict(build_sampler("absorbing"), "absorbing"), tmp_path / "absorbing_ema_1.th")
    png = tmp_path / "o.png"
    r = run_cli("sample", "--official-vqgan", str(tmp_path / "vqgan_ema_1.th"), "--official-sampler",
                str(tmp_path / "absorbing_ema_1.th"), "--n", "1", "--steps", "1", "--png", str(png))
    assert r.returncode == 0, r.stderr
    assert np.asarray(Image.open(png)).shape[:2] == (258, 258)  # one 256x256 image with 1 px padding
    r = run_cli("sample", "--official-vqgan", str(tmp_path / "vqgan_ema_1.th"))
    assert r.returncode == 2 and "give both --official-vqgan and --official-sampler" in r.stderr


def test_cli_elbo_full_and_monte_carlo(trained_run):
    r = run_cli("elbo", "--run", str(trained_run), "--max-items", "16")
    assert r.returncode == 0, r.stderr
    assert "negative ELBO, full sum over t=1..16" in r.stdout and "bits/token (16 grids, 16 passes)" in r.stdout
    (rec,) = json.loads((trained_run / "likelihood.json").read_text())
    assert rec["kind"] == "absorbing" and rec["n_passes"] == 16 and rec["bits_per_token"] > 0
    r = run_cli("elbo", "--run", str(trained_run), "--max-items", "16", "--mc", "2")
    assert r.returncode == 0 and "Monte-Carlo over 2 t per grid" in r.stdout and "±" in r.stdout


def test_autoregressive_baseline_trains_samples_and_reports_nll(trained_run, tmp_path):
    run = tmp_path / "both"
    shutil.copytree(trained_run, run)
    r = run_cli("train-prior", "--run", str(run), "--no-progress", "--set", "prior.kind=autoregressive")
    assert r.returncode == 0, r.stderr
    assert (run / "prior_ar.pt").exists() and json.loads((run / "config.json").read_text())["prior"]["kind"] == (
        "absorbing")
    rows = MetricsLog.read(run / "metrics_prior_ar.csv")
    assert rows[-1]["nll_bpt"] is not None and rows[-1]["val_nll_bpt"] is not None
    r = run_cli("sample", "--run", str(run), "--n", "2", "--top-k", "5", "--set", "prior.kind=autoregressive",
                "--png", str(tmp_path / "ar.png"))
    assert r.returncode == 0 and "2 samples (temperature" in r.stdout, r.stderr
    # --method speculative: the run's AR prior as the target, its absorbing prior drafting; the same images as the
    # library draws with the same seed, models and settings
    npz = tmp_path / "spec.npz"
    r = run_cli("sample", "--run", str(run), "--n", "3", "--method", "speculative", "--option", "block=3",
                "--top-k", "5", "--seed", "4", "--png", str(tmp_path / "spec.png"), "--npz", str(npz))
    assert r.returncode == 0, r.stderr
    assert "method speculative, block=3, draft: the run's absorbing prior" in r.stdout and "accepted" in r.stdout
    ar, ab = (load_run(run, "cpu", kind=k, use_ema=None) for k in ("autoregressive", "absorbing"))
    want = sample_images(ar, 3, seed=4, method="speculative", draft=ab.prior, block=3, top_k=5)
    assert np.array_equal(np.load(npz)["images"], ((want.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
                          .permute(0, 2, 3, 1).numpy())
    for args, message in [(["--option", "draft=x"], "takes draft from its inputs"),
                          (["--option", "top_k=2"], "--top-k"), (["--option", "block=0"], "block=0")]:
        r = run_cli("sample", "--run", str(run), "--n", "1", "--method", "speculative", *args)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
    r = run_cli("elbo", "--run", str(run), "--max-items", "8")
    assert r.returncode == 0, r.stderr
    assert "negative ELBO, full sum" in r.stdout and "exact NLL (autoregressive)" in r.stdout
    assert [x["kind"] for x in json.loads((run / "likelihood.json").read_text())] == ["absorbing", "autoregressive"]


def test_bench_quick_writes_records(tmp_path):
    out = tmp_path / "bench.json"
    r = run_cli("bench", "--quick", "--device", "cpu", "--json", str(out))
    assert r.returncode == 0, r.stderr
    recs = json.loads(out.read_text())
    names = {x["name"] for x in recs}
    for want in ("matmul float32", "transformer forward", "absorbing sampling, naive (paper as written)",
                 "absorbing sampling, random (ulib)", "AR sampling, KV cache", "AR sampling, recompute everything",
                 "big-image sampling", "prior training"):
        assert want in names, want
    for x in recs:
        assert set(x) == {"name", "value", "unit", "configuration", "device", "torch"} and x["device"] == "cpu"
        assert isinstance(x["value"], float) and x["value"] >= 0
    assert "AR sampling, KV cache, module path" in names and "  lean step speed-up" in names


def test_bench_only_runs_the_chosen_groups(tmp_path):
    out = tmp_path / "bench.json"
    r = run_cli("bench", "--quick", "--device", "cpu", "--only", "ar", "--no-ar-plain", "--json", str(out))
    assert r.returncode == 0, r.stderr
    names = {x["name"] for x in json.loads(out.read_text())}
    assert names == {"AR sampling, KV cache, module path", "AR sampling, KV cache", "  lean step speed-up"}
    r = run_cli("bench", "--quick", "--only", "sampling")
    assert r.returncode == 2 and "--only sampling: unknown group; allowed: forward, absorbing" in r.stderr
