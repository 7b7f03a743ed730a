"""A prior is tied to the VQGAN whose tokens it was trained on (#21): every prior checkpoint records that VQGAN,
training refuses to resume or reuse a prior of another VQGAN, every command that samples refuses the mismatched
pair, old checkpoints still load (with a warning), and an interrupted --force never leaves a new log beside an
old checkpoint."""
import shutil

import numpy as np
import pytest
from PIL import Image

from ulib.app import session
from ulib.io.checkpoint import load_checkpoint, save_checkpoint
from ulib.io.files import file_sha256
from ulib.io.logs import MetricsLog
from ulib.io.rundir import RunDir
from ulib.models import load_run
from ulib.overrides import apply_overrides
from ulib.train.common import AlreadyTrained
from ulib.train.latents import latents_fingerprint
from ulib.train.prior import train_prior
from ulib.train.vqgan import train_vqgan
from ulib.trained import load_run_prior

from helpers import run_cli, tiny_config

pytestmark = pytest.mark.slow

TRAIN_MSG = "was trained on tokens of another VQGAN checkpoint or data"  # train-prior, pipeline
LOAD_MSG = "was trained on tokens of a different"  # sample, inpaint, elbo, evaluate, notebooks
AR = {"prior.kind": "autoregressive"}


def vqgan_digest(path) -> str:
    """What a prior records of its VQGAN: the first 16 hex digits of the SHA-256 of vqgan.pt's bytes."""
    return file_sha256(path)[:16]


def _cfg():
    return tiny_config(["prior_train.keep_best=true"])


@pytest.fixture(scope="module")
def paired_run(tmp_path_factory):
    """A tiny run with its VQGAN, absorbing prior and AR prior, each prior with its best-validation checkpoint."""
    run = RunDir(tmp_path_factory.mktemp("pairing") / "run")
    cfg = _cfg()
    train_vqgan(run, cfg, show_progress=False)
    train_prior(run, cfg, show_progress=False)
    train_prior(run, apply_overrides(cfg, AR), show_progress=False)
    return run


def _copy(run: RunDir, dst) -> RunDir:
    shutil.copytree(run.path, dst)
    return RunDir(dst)


def _swap_vqgan(run: RunDir) -> None:
    """Put another VQGAN's file in place of the run's vqgan.pt (same architecture, other weights)."""
    state = load_checkpoint(run.vqgan_ckpt)
    for key in ("model", "ema"):
        if state.get(key) is not None:
            state[key]["quantize.embedding.weight"] += 1.0
    save_checkpoint(run.vqgan_ckpt, state)


@pytest.fixture(scope="module")
def stale_run(paired_run, tmp_path_factory):
    """A copy of the paired run whose vqgan.pt was replaced by another VQGAN's file."""
    run = _copy(paired_run, tmp_path_factory.mktemp("stale") / "run")
    _swap_vqgan(run)
    return run


def _out(r):
    return r.stdout + r.stderr


def test_every_prior_checkpoint_records_its_vqgan(paired_run):
    cfg = _cfg()
    fp, digest = latents_fingerprint(cfg, paired_run.vqgan_ckpt), vqgan_digest(paired_run.vqgan_ckpt)
    for kind in ("absorbing", "autoregressive"):
        for path in (paired_run.prior_ckpt_for(kind), paired_run.prior_best_for(kind)):
            state = load_checkpoint(path)
            assert (state.get("vqgan_digest"), state.get("latents_fingerprint")) == (digest, fp), path


def test_train_prior_refuses_a_prior_of_a_retrained_vqgan(paired_run, tmp_path):
    run = _copy(paired_run, tmp_path / "run")
    r = run_cli("train-vqgan", "--run", str(run.path), "--force", "--no-progress", "--set", "seed=1")
    assert r.returncode == 0, _out(r)
    for flags in ([], ["--resume"]):
        r = run_cli("train-prior", "--run", str(run.path), "--no-progress", *flags)
        out = _out(r)
        assert r.returncode == 2, out
        assert f"{run.prior_ckpt} {TRAIN_MSG}: {run.vqgan_ckpt} is another VQGAN checkpoint" in out
        assert "pass --force" in out and "nothing to do" not in out
    r = run_cli("train-prior", "--run", str(run.path), "--no-progress", "--force")
    assert r.returncode == 0, _out(r)
    assert load_checkpoint(run.prior_ckpt)["vqgan_digest"] == vqgan_digest(run.vqgan_ckpt)
    r = run_cli("sample", "--run", str(run.path), "--n", "2", "--steps", "2", "--png", str(tmp_path / "s.png"))
    assert r.returncode == 0, _out(r)


def test_train_prior_refuses_a_prior_of_other_data(paired_run, tmp_path):
    run = _copy(paired_run, tmp_path / "run")
    with pytest.raises(ValueError, match=f"{TRAIN_MSG}: the data config changed"):
        train_prior(run, apply_overrides(_cfg(), {"data.val_fraction": 0.2}))


def _inpaint_files(folder):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / "i.png")
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[4:8, 4:8] = 255
    Image.fromarray(mask).save(folder / "m.png")
    return ["--image", str(folder / "i.png"), "--mask", str(folder / "m.png")]


@pytest.mark.parametrize("command, ckpt, message", [
    (["sample", "--n", "2", "--steps", "2"], "prior.pt", LOAD_MSG),
    (["inpaint", "--steps", "2"], "prior.pt", LOAD_MSG),
    (["elbo", "--max-items", "4"], "prior.pt", LOAD_MSG),
    (["evaluate", "--samples", "8", "--max-reference", "8", "--features", "random-inception", "--no-progress"],
     "prior.pt", LOAD_MSG),
    (["train-prior", "--no-progress"], "prior.pt", TRAIN_MSG),
    (["sample", "--n", "2", "--set", "prior.kind=autoregressive"], "prior_ar.pt", LOAD_MSG),
    (["evaluate", "--samples", "8", "--max-reference", "8", "--features", "random-inception", "--no-progress",
      "--set", "prior.kind=autoregressive"], "prior_ar.pt", LOAD_MSG),
    (["train-prior", "--no-progress", "--resume", "--set", "prior.kind=autoregressive"], "prior_ar.pt", TRAIN_MSG),
])
def test_commands_refuse_a_prior_of_another_vqgan(stale_run, tmp_path, command, ckpt, message):
    extra = _inpaint_files(tmp_path) if command[0] == "inpaint" else []
    png = ["--png", str(tmp_path / "out.png")] if command[0] in ("sample", "inpaint") else []
    r = run_cli(command[0], "--run", str(stale_run.path), *command[1:], *extra, *png)
    out = _out(r)
    assert r.returncode == 2, out
    assert f"{stale_run.path / ckpt} {message}" in out and str(stale_run.vqgan_ckpt) in out
    hint = f"train-prior --run {stale_run.path} --force"
    if ckpt == "prior_ar.pt":
        hint += " --set prior.kind=autoregressive"
    assert hint in out
    assert not (tmp_path / "out.png").exists()


def test_pipeline_refuses_a_prior_of_another_vqgan(stale_run, tmp_path):
    run = _copy(stale_run, tmp_path / "run")
    r = run_cli("pipeline", "--run", str(run.path), "--no-progress")
    out = _out(r)
    assert r.returncode == 2 and f"{run.prior_ckpt} {TRAIN_MSG}" in out, out
    assert "[train-prior]" not in out and not run.samples.exists()
    assert "encoding" not in out, "refused before encoding anything"


def test_a_prior_of_another_vqgan_does_not_load(stale_run):
    cfg = stale_run.stored_config()
    with pytest.raises(ValueError, match=LOAD_MSG):
        load_run(stale_run, "cpu", cfg=cfg)
    for kind in ("absorbing", "autoregressive"):  # the best-validation checkpoints too
        with pytest.raises(ValueError, match=f"{stale_run.prior_best_for(kind)} {LOAD_MSG}"):
            load_run_prior(apply_overrides(cfg, {"prior.kind": kind}), stale_run.prior_best_for(kind), "cpu",
                           vqgan_ckpt=stale_run.vqgan_ckpt)


def test_a_prior_saved_before_the_record_loads_with_a_warning(paired_run, tmp_path):
    run = _copy(paired_run, tmp_path / "run")
    for path in (run.prior_ckpt, run.prior_best_for("absorbing")):
        state = load_checkpoint(path)
        state.pop("vqgan_digest", None), state.pop("latents_fingerprint", None)
        save_checkpoint(path, state)
    cfg = run.stored_config()
    with pytest.warns(UserWarning, match="does not record which VQGAN it was trained on"):
        load_run(run, "cpu", cfg=cfg)
    with pytest.warns(UserWarning, match="does not record the tokens it was trained on"):
        with pytest.raises(AlreadyTrained):
            train_prior(run, cfg, show_progress=False)


def test_notebook_child_priors_follow_a_new_parent_vqgan(paired_run, tmp_path):
    run = _copy(paired_run, tmp_path / "run")
    s = session.setup("smoke", str(run.path), "cpu", 0, [])
    child = session.train_child_prior(s, "child", s.cfg)
    _swap_vqgan(run)
    session.train_child_prior(s, "child", s.cfg)  # trained again on the new VQGAN's tokens, not reused
    assert load_checkpoint(child.prior_ckpt).get("vqgan_digest") == vqgan_digest(run.vqgan_ckpt)


# ---- an interrupted --force -----------------------------------------------------------------------
def _killed_at_first_log(monkeypatch):
    """Make every MetricsLog.log raise: a run killed at its first log step (2), before its first save (3)."""
    def killed(self, step, **metrics):
        raise KeyboardInterrupt(f"killed at step {step}")

    monkeypatch.setattr(MetricsLog, "log", killed)


@pytest.mark.parametrize("stage", ["vqgan", "absorbing", "autoregressive"])
def test_an_interrupted_force_leaves_no_old_checkpoint_beside_the_new_log(paired_run, tmp_path, monkeypatch, stage):
    run = _copy(paired_run, tmp_path / "run")
    cfg = _cfg() if stage != "autoregressive" else apply_overrides(_cfg(), AR)
    if stage == "vqgan":
        train, ckpts, log = train_vqgan, [run.vqgan_ckpt], run.vqgan_log
    else:
        train, log = train_prior, run.prior_log_for(stage)
        ckpts = [run.prior_ckpt_for(stage), run.prior_best_for(stage)]
    with monkeypatch.context() as m:
        _killed_at_first_log(m)
        with pytest.raises(KeyboardInterrupt):
            train(run, cfg, force=True, show_progress=False)
    assert MetricsLog.read(log) == [], "the log was restarted"
    assert [p for p in ckpts if p.exists()] == [], "so the old checkpoints are gone"
    train(run, cfg, show_progress=False)  # a fresh start, not 'already trained'
    steps = [r["step"] for r in MetricsLog.read(log)]
    assert load_checkpoint(ckpts[0])["step"] == 6 and steps == [r["step"] for r in MetricsLog.read(
        paired_run.path / log.name)], "a whole log"
