"""Ready-trained models (ulib/io/pretrained.py): packed from a finished run as float16 EMA weights with their
SHA-256, verified before use, installed into a run directory so that every stage reuses them, never over a
checkpoint of another training; and the tutorial model the kit ships loads, pairs and samples."""
from __future__ import annotations

import json

import pytest
import torch

from ulib.app import session
from ulib.io.checkpoint import load_checkpoint
from ulib.io.files import file_sha256
from ulib.io.rundir import RunDir
from ulib.profiles import get_profile
from ulib.sample.api import load_run, sample_images
from ulib.train import pretrained as P
from ulib.train.common import AlreadyTrained
from ulib.train.prior import train_prior
from ulib.train.resume import VQGAN_KEYS
from ulib.train.vqgan import start_continuation, train_vqgan
from ulib.trained import load_run_prior, load_run_vqgan, vqgan_digest

from helpers import run_cli, tiny_config, tiny_trained_run


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """A tiny finished run (VQGAN and absorbing prior, 2 steps each) and its packed folder `toy`."""
    base = tmp_path_factory.mktemp("pretrained")
    run, cfg = tiny_trained_run(base / "run")
    root = base / "models"
    P.pack_run(run, "toy", recipe="the test's recipe", root=root)
    return run, root, cfg


def test_pack_writes_float16_ema_weights_their_digests_and_the_pairing(packed):
    run, root, _ = packed
    info = P.manifest("toy", root)
    assert info["profile"] == "smoke" and info["recipe"] == "the test's recipe" and "OpenMoji" in info["credit"]
    for fname in P.FILES:
        path = root / "toy" / fname
        assert info["files"][fname]["sha256"] == file_sha256(path)
        assert info["files"][fname]["bytes"] == path.stat().st_size
        state = load_checkpoint(path)
        assert "optimizer" not in state and state["ema"] is None
        floats = [v for v in state["model"].values() if v.is_floating_point()]
        assert floats and all(v.dtype == torch.float16 for v in floats)
        # the EMA weights, rounded to float16 (not the raw weights); the prior: its best-validation checkpoint
        original = load_checkpoint(run.path / ("prior_best.pt" if fname == "prior.pt" else fname))
        key = next(k for k, v in state["model"].items() if v.is_floating_point() and v.numel() > 8)
        assert torch.equal(state["model"][key], original["ema"][key].half())
    prior = load_checkpoint(root / "toy" / "prior.pt")
    assert prior["vqgan_digest"] == vqgan_digest(root / "toy" / "vqgan.pt")
    assert info["prior"]["shipped"] == "best validation checkpoint" and info["prior"]["step"] == prior["step"]
    assert info["config"]["prior_train"]["steps"] == prior["step"], "every stage takes the shipped prior as trained"
    assert P.listing(root).startswith("toy: profile smoke, EMA weights in float16: vqgan.pt (step 2")


def test_pack_refuses_an_unfinished_prior(tmp_path, packed):
    run, _, cfg = packed
    longer = RunDir(tmp_path / "run")
    for f in ("vqgan.pt", "prior.pt", "config.json"):
        (longer.path / f).parent.mkdir(parents=True, exist_ok=True)
        (longer.path / f).write_bytes((run.path / f).read_bytes())
    state = load_checkpoint(longer.prior_ckpt)
    state["config"]["prior_train"]["steps"] = 10
    torch.save(state, longer.prior_ckpt)
    with pytest.raises(P.PretrainedError, match="unfinished .step 2 of 10"):
        P.pack_run(longer, "toy2", recipe="-", root=tmp_path / "models")
    assert not (tmp_path / "models" / "toy2").exists(), "a run that cannot be packed leaves nothing behind"


def test_installed_models_are_reused_by_every_stage_and_match_the_run(tmp_path, packed):
    run, root, cfg = packed
    target = RunDir(tmp_path / "fresh")
    assert P.install("toy", target, root) == ["config.json", "vqgan.pt", "prior.pt"]
    assert target.stored_config() == P.config_of("toy", root)
    with pytest.raises(AlreadyTrained):
        train_vqgan(target, cfg, show_progress=False)
    with pytest.raises(AlreadyTrained):
        train_prior(target, cfg, show_progress=False)
    # the same models as the run's EMA weights, within float16 rounding; the prior's pairing check passes
    tokens = torch.randint(0, cfg.vqgan.codebook_size, (2, cfg.latent_size, cfg.latent_size))
    ours, theirs = load_run_vqgan(cfg, target.vqgan_ckpt, "cpu"), load_run_vqgan(cfg, run.vqgan_ckpt, "cpu")
    with torch.no_grad():
        a, b = ours.decode(tokens), theirs.decode(tokens)
    assert a.dtype == torch.float32 and (a - b).abs().max() < 2e-2
    net = load_run_prior(cfg, target.prior_ckpt, "cpu", vqgan_ckpt=target.vqgan_ckpt)
    images = sample_images(load_run(target), 2, seed=0)
    assert images.shape == (2, 3, cfg.data.img_size, cfg.data.img_size) and net.training is False
    # a second install copies nothing
    assert P.install("toy", target, root) == []
    assert "holds it already" in P.describe_install("toy", target, root)


def test_an_altered_file_is_refused_naming_it_and_both_digests(tmp_path, packed):
    _, root, _ = packed
    copy = tmp_path / "models" / "toy"
    copy.mkdir(parents=True)
    for f in (*P.FILES, P.MANIFEST):
        (copy / f).write_bytes((root / "toy" / f).read_bytes())
    data = bytearray((copy / "prior.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "prior.pt").write_bytes(bytes(data))
    target = RunDir(tmp_path / "fresh")
    with pytest.raises(P.PretrainedError, match=r"prior\.pt: sha256 [0-9a-f]{64} is not the manifest's"):
        P.install("toy", target, tmp_path / "models")
    assert not target.path.exists(), "nothing is written before every file is verified"
    (copy / "vqgan.pt").unlink()
    with pytest.raises(P.PretrainedError, match=r"vqgan\.pt is missing .*recreate the model: the test's recipe"):
        P.verify("toy", tmp_path / "models")


def test_another_trainings_checkpoint_is_never_overwritten(tmp_path, packed):
    run, root, cfg = packed
    target = RunDir(tmp_path / "other")
    train_vqgan(target, tiny_config(["vqgan_train.steps=1"]), show_progress=False)
    before = file_sha256(target.vqgan_ckpt)
    with pytest.raises(P.PretrainedError, match="is not the pretrained 'toy' model's vqgan.pt"):
        P.install("toy", target, root)
    assert file_sha256(target.vqgan_ckpt) == before and not target.prior_ckpt.exists()


def test_a_run_of_another_profile_and_an_unknown_name_are_refused(tmp_path, packed):
    _, root, _ = packed
    demo = RunDir(tmp_path / "demo")
    demo.save_config(get_profile("demo"))
    with pytest.raises(P.PretrainedError, match="made with profile 'demo'.*profile 'smoke'"):
        P.install("toy", demo, root)
    with pytest.raises(P.PretrainedError, match="no pretrained model 'nope'.*present in .*: toy"):
        P.manifest("nope", root)


def test_a_model_trained_on_differently_rendered_images_is_refused_naming_why(tmp_path, packed, monkeypatch):
    _, root, _ = packed
    assert P.manifest("toy", root)["data"]["openmoji"] == P.openmoji_version()
    monkeypatch.setattr(P, "openmoji_version", lambda: "99.0.0")
    monkeypatch.setattr(P, "latents_fingerprint", lambda cfg, ckpt: "0" * 16)
    target = RunDir(tmp_path / "fresh")
    with pytest.raises(P.PretrainedError, match=r"renders differently \(openmoji '[0-9.]+' there, '99.0.0' here\)"):
        P.install("toy", target, root)
    assert not target.path.exists()


def test_a_gan_phase_continues_from_weights_only_with_a_fresh_adam(tmp_path, packed):
    _, root, cfg = packed
    target = RunDir(tmp_path / "fresh")
    P.install("toy", target, root)
    child = RunDir(tmp_path / "fresh" / "gan")
    longer = tiny_config(["vqgan_train.steps=3", "vqgan.disc_start_step=0"])
    start_continuation(target.vqgan_ckpt, child.vqgan_ckpt, longer)
    state = load_checkpoint(child.vqgan_ckpt)
    assert state["optimizer"]["state"] == {} and state["step"] == 2
    assert all(v.dtype == torch.float32 for v in state["model"].values() if v.is_floating_point())
    train_vqgan(child, longer, resume=True, show_progress=False)
    assert load_checkpoint(child.vqgan_ckpt)["step"] == 3


def test_the_notebook_setup_installs_it_and_takes_its_profile(tmp_path, packed, monkeypatch, capsys):
    _, root, _ = packed
    monkeypatch.setenv(P.ROOT_ENV, str(root))
    monkeypatch.chdir(tmp_path)
    s = session.setup("demo", str(tmp_path / "nb"), "cpu", pretrained="toy", banner=False)
    out = capsys.readouterr().out
    assert "profile 'smoke' (the model's own), not 'demo'" in out and "installed in" in out
    assert s.cfg.profile == "smoke" and s.run.prior_ckpt.exists()


def test_the_command_line_lists_and_installs(tmp_path, packed):
    _, root, _ = packed
    env = {P.ROOT_ENV: str(root)}
    listed = run_cli("pretrained", "list", env=env)
    assert listed.returncode == 0 and "toy: profile smoke" in listed.stdout
    done = run_cli("pretrained", "install", "toy", "--run", str(tmp_path / "r"), env=env)
    assert done.returncode == 0 and "installed in" in done.stdout and (tmp_path / "r" / "prior.pt").exists()
    missing = run_cli("pretrained", "install", "nope", "--run", str(tmp_path / "r2"), env=env)
    assert missing.returncode == 2 and "no pretrained model 'nope'" in missing.stderr


# ---- the model the kit ships ---------------------------------------------------------------------------
SHIPPED = P.PRETRAINED_DIR / "tutorial" / P.MANIFEST


@pytest.mark.skipif(not SHIPPED.exists(), reason="the tutorial model is not packed in this checkout")
def test_the_shipped_tutorial_model_verifies_matches_its_profile_and_samples(tmp_path):
    info = P.verify("tutorial")
    shipped = P.config_of("tutorial")
    recipe = get_profile("tutorial")
    for key in (*VQGAN_KEYS, "prior.n_emb", "prior.n_head", "prior.n_layers", "prior.total_steps",
                "data.split_by", "data.test_fraction", "data.val_fraction", "data.split_seed", "seed"):
        section, _, name = key.rpartition(".")
        get = (lambda c: getattr(getattr(c, section), name)) if section else (lambda c: getattr(c, name))
        assert get(shipped) == get(recipe), f"{key}: the shipped model and the tutorial profile disagree"
    assert info["prior"]["trained_steps"] == recipe.prior_train.steps, "packed when the recipe had finished"
    assert info["files"]["prior.pt"]["step"] == info["prior"]["best"]["step"] <= recipe.prior_train.steps
    assert sum(r["bytes"] for r in info["files"].values()) < 8 * 2**20, "a few MB, as promised"
    run = RunDir(tmp_path / "tutorial")
    P.install("tutorial", run)
    images = sample_images(load_run(run), 2, steps=8, seed=0)
    assert images.shape == (2, 3, 32, 32) and torch.isfinite(images).all()
    assert json.loads((run.config_file).read_text())["profile"] == "tutorial"


def test_reproduce_installs_it_first_and_the_notebooks_reuse_it(tmp_path, packed):
    _, root, _ = packed
    run = tmp_path / "r"
    done = run_cli("reproduce", "--pretrained", "toy", "--run", str(run), "--only", "01",
                   env={P.ROOT_ENV: str(root)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pretrained model 'toy' installed in" in done.stdout
    for fname in P.FILES:  # loaded, never trained again
        assert file_sha256(run / fname) == P.manifest("toy", root)["files"][fname]["sha256"]
    assert (run / "results" / "01_quickstart.done").exists()
