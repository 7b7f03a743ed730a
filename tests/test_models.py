"""The one door for loading (ulib/models.py): a run's models resolved from its stored config with overrides, kind,
checkpoint and device in one call; clear errors for what a run lacks; the released files through load_official."""
from __future__ import annotations

import pytest
import torch

import ulib
from ulib import models as M
from ulib.io.checkpoint import load_checkpoint
from ulib.io.rundir import RunDir
from ulib.overrides import apply_overrides
from ulib.train.prior import train_prior
from ulib.train.vqgan import train_vqgan

from helpers import tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run: VQGAN, absorbing prior (with its best checkpoint) and AR prior, 2 steps each."""
    run = RunDir(tmp_path_factory.mktemp("models") / "run")
    cfg = tiny_config(["vqgan_train.steps=2", "prior_train.steps=2", "prior_train.keep_best=true"])
    train_vqgan(run, cfg, show_progress=False)
    train_prior(run, cfg, show_progress=False)
    train_prior(run, apply_overrides(cfg, {"prior.kind": "autoregressive"}), show_progress=False)
    return run


def test_load_run_resolves_config_device_kind_and_checkpoint(run):
    m = M.load_run(run.path)  # a path, device 'auto' (the CPU here)
    cfg = run.stored_config()
    assert next(m.prior.parameters()).device.type == "cpu" and not m.prior.training and not m.vqgan.training
    assert (m.kind, m.num_timesteps, m.mask_id) == ("absorbing", cfg.prior.total_steps, cfg.mask_id)
    assert m.latent_shape == (cfg.latent_size, cfg.latent_size) and m.source == f"run {run.path}"
    ar = M.load_run(run, "cpu", kind="autoregressive")
    assert ar.kind == "autoregressive" and getattr(ar.prior, "causal", False)
    hot = M.load_run(run, overrides=["sample.temperature=0.5"])
    assert hot.default_temperature == 0.5 and m.default_temperature == cfg.sample.temperature
    for checkpoint, path in (("best", run.prior_best_for("absorbing")), ("final", run.prior_ckpt)):
        net, saved = M.load_prior(run, checkpoint=checkpoint), load_checkpoint(path)["ema"]
        assert all(torch.equal(v, saved[k]) for k, v in net.state_dict().items() if k in saved), checkpoint
    raw = M.load_vqgan(run, use_ema=False)
    ema = M.load_vqgan(run)
    assert any(not torch.equal(a, b) for a, b in zip(raw.state_dict().values(), ema.state_dict().values()))
    assert ulib.load_run is M.load_run  # the front door's loading is this one


def test_what_a_run_lacks_is_named(run, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config.json not found: .* is not a trained run"):
        M.load_run(tmp_path / "nothing")
    with pytest.raises(ValueError, match="checkpoint='last'; allowed"):
        M.load_prior(run, checkpoint="last")
    bare = RunDir(tmp_path / "bare")
    bare.path.mkdir()
    for f in ("config.json", "vqgan.pt", "prior.pt"):
        (bare.path / f).write_bytes((run.path / f).read_bytes())
    with pytest.raises(FileNotFoundError, match="no best-validation checkpoint of the absorbing prior"):
        M.load_prior(bare, checkpoint="best")
    with pytest.raises(ValueError, match="device='cuda:7'|CUDA is not available"):
        M.load_run(run, "cuda:7")


def test_a_given_config_is_used_instead_of_the_stored_one(run):
    cfg = apply_overrides(run.stored_config(), {"sample.steps": 3})
    m = M.load_run(run, "cpu", cfg=cfg)
    assert m.default_steps == 3
    with pytest.raises(ValueError, match="codebook_size"):
        M.load_vqgan(run, "cpu", cfg=apply_overrides(cfg, {"vqgan.codebook_size": 64}))


def test_the_runs_own_settings_when_left_out(run, monkeypatch):
    """device=None and use_ema=None take the run's config (what `sample` does without --device / --no-ema);
    profile= must be the run's. The CLI resolves none of this itself: it passes its flags to load_run."""
    seen = []
    monkeypatch.setattr(M, "load_run_prior", lambda cfg, path, dev, use_ema, vqgan_ckpt: seen.append((dev, use_ema)))
    monkeypatch.setattr(M, "load_run_vqgan", lambda cfg, path, dev, use_ema: None)
    M.load_run(run, None, use_ema=None, overrides=["device=cpu", "sample.use_ema=false"])
    M.load_run(run, None, use_ema=None)
    assert seen == [(torch.device("cpu"), False), (torch.device("cpu"), True)]
    with pytest.raises(ValueError, match="device='banana'"):
        M.load_run(run, None, overrides=["device=banana"])  # the config's device is the one resolved
    with pytest.raises(ValueError, match=r"was made with profile 'smoke', not 'demo'.*drop --profile"):
        M.load_run(run, profile="demo")
    assert M.load_run(run, profile=run.stored_config().profile) is not None
