"""The study profile's best-validation checkpoints (Table 4), and the VQGAN continuations of Table 5."""
import shutil

import pytest
import torch

from ulib.app import gan_variants, measuring, session
from ulib.eval.extractors import to_uint8
from ulib.io.checkpoint import load_checkpoint
from ulib.io.logs import MetricsLog
from ulib.io.rundir import RunDir
from ulib.overrides import apply_overrides
from ulib.profiles import get_profile
from ulib.train.prior import train_prior
from ulib.train.vqgan import start_continuation, train_vqgan
from ulib.trained import load_run_vqgan

from helpers import TINY


def test_study_profile_is_the_demo_with_its_earlier_prior_trained_longer_and_validated():
    demo, study = get_profile("demo").to_dict(), get_profile("study").to_dict()
    differ = sorted(f"{sec}.{k}" for sec, d in demo.items() if isinstance(d, dict)
                    for k in d if d[k] != study[sec][k])
    # the prior and its sampling temperature as the demo had them before #12's rebalance, then 2.5x longer
    assert differ == ["prior.n_emb", "prior.n_head", "prior_train.lr", "prior_train.steps", "sample.temperature"]
    assert (study["prior"]["n_emb"], study["prior_train"]["steps"], study["prior_train"]["lr"]) == (192, 2500, 7e-4)
    assert study["prior_train"]["keep_best"] and demo["prior_train"]["keep_best"]  # Table 4 at final and best
    assert study["vqgan"] == demo["vqgan"] and study["vqgan_train"] == demo["vqgan_train"], \
        "the study can reuse the demo's VQGAN"


@pytest.fixture(scope="module")
def vqgan_run(tmp_path_factory):
    """This module's own VQGAN run: the tiny settings as they are (the shared fixture trains 2 steps on mirrors)."""
    run = RunDir(tmp_path_factory.mktemp("study") / "run")
    train_vqgan(run, get_profile("smoke", TINY), show_progress=False)
    return run


def _val(log, key="val_elbo_bpt"):
    return [(r["step"], r[key]) for r in MetricsLog.read(log) if r.get(key) is not None]


@pytest.mark.parametrize("kind", ["absorbing", "autoregressive"])
def test_keep_best_saves_the_best_validation_checkpoint_and_survives_resume(vqgan_run, tmp_path, kind):
    cfg = get_profile("smoke", [*TINY, "prior_train.steps=8", "prior_train.image_every=2", "prior_train.keep_best=true",
                                f"prior.kind={kind}"])
    runs = []
    for name in ("full", "part"):
        (tmp_path / name).mkdir()
        shutil.copy(vqgan_run.vqgan_ckpt, tmp_path / name / "vqgan.pt")
        runs.append(RunDir(tmp_path / name))
    full, part = runs
    train_prior(full, cfg, show_progress=False)
    key = "val_nll_bpt" if kind == "autoregressive" else "val_elbo_bpt"
    val = _val(full.prior_log_for(kind), key)
    assert [s for s, _ in val] == [2, 4, 6, 8]
    best_step, best_val = min(val, key=lambda p: p[1])
    best = load_checkpoint(full.prior_best_for(kind))
    assert best["step"] == best_step and best["best"]["val"] == pytest.approx(best_val, rel=1e-5)
    assert best["best"]["metric"] == key and "optimizer" not in best, "weights only"
    assert full.prior_best_for(kind).name == ("prior_ar_best.pt" if kind == "autoregressive" else "prior_best.pt")
    # interrupted after step 5 and resumed: the same best checkpoint as the uninterrupted run
    train_prior(part, cfg, stop_at=5, show_progress=False)
    train_prior(part, cfg, resume=True, show_progress=False)
    again = load_checkpoint(part.prior_best_for(kind))
    assert again["step"] == best["step"]
    for name, t in best["model"].items():
        torch.testing.assert_close(t, again["model"][name], rtol=0, atol=0)


def test_notebooks_load_the_final_or_the_best_prior(vqgan_run, tmp_path):
    (tmp_path / "r").mkdir()
    shutil.copy(vqgan_run.vqgan_ckpt, tmp_path / "r" / "vqgan.pt")
    run = RunDir(tmp_path / "r")
    cfg = get_profile("smoke", [*TINY, "prior_train.image_every=2", "prior_train.keep_best=true"])
    train_prior(run, cfg, show_progress=False)
    s = session.setup("smoke", str(run.path), "cpu", 0, [])
    ckpt = load_checkpoint(run.prior_best_for("absorbing"))
    best = session.prior(s, checkpoint="best")
    weights = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    for k, v in best.state_dict().items():
        torch.testing.assert_close(v, weights[k], rtol=0, atol=0, msg=k)
    auto = session.prior(s, checkpoint="auto")  # the run keeps its best: 'auto' is 'best'
    for (k, a), b in zip(auto.state_dict().items(), best.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    assert session.checkpoint_step(run.prior_best_for("absorbing")) == ckpt["step"]
    with pytest.raises(ValueError, match="checkpoint="):
        session.prior(s, checkpoint="newest")
    run.prior_best_for("absorbing").unlink()
    with pytest.raises(FileNotFoundError, match="keep_best"):
        session.prior(s, checkpoint="best")


def test_vqgan_variants_of_table5():
    cfg = get_profile("smoke", TINY)
    v = gan_variants.vqgan_variant_configs(cfg, gan_steps=4)
    assert list(v) == ["default", "lambda_max=1", "DiffAug", "both", "no GAN"]
    settings = {k: (c.vqgan.disc_weight_max, c.vqgan.diff_aug) for k, c in v.items() if k != "no GAN"}
    assert settings == {"default": (1e4, False), "lambda_max=1": (1.0, False), "DiffAug": (1e4, True),
                        "both": (1.0, True)}
    for name, c in v.items():
        assert c.vqgan_train.steps == cfg.vqgan_train.steps + 4
        gan_on = c.vqgan.disc_start_step < c.vqgan_train.steps
        assert gan_on == (name != "no GAN")
        if gan_on:
            assert c.vqgan.disc_start_step == cfg.vqgan_train.steps, "the GAN starts where the shared phase ends"
    assert list(gan_variants.vqgan_variant_configs(cfg, 1, with_control=False)) == [
        "default", "lambda_max=1", "DiffAug", "both"]
    with pytest.raises(ValueError, match="gan_steps"):
        gan_variants.vqgan_variant_configs(cfg, 0)
    slow = gan_variants.vqgan_variant_configs(cfg, 4, lr=1e-5)
    assert {c.vqgan_train.lr for c in slow.values()} == {1e-5} and v["both"].vqgan_train.lr == cfg.vqgan_train.lr
    with pytest.raises(ValueError, match="lr"):
        gan_variants.vqgan_variant_configs(cfg, 4, lr=0.0)


def test_train_child_vqgan_continues_the_parents_checkpoint(vqgan_run, tmp_path):
    parent = RunDir(tmp_path / "parent")
    parent.path.mkdir()
    shutil.copy(vqgan_run.vqgan_ckpt, parent.vqgan_ckpt)
    shutil.copy(vqgan_run.config_file, parent.config_file)
    before = parent.vqgan_ckpt.read_bytes()
    s = session.setup("smoke", str(parent.path), "cpu", 0, [])
    base = s.cfg.vqgan_train.steps
    c = gan_variants.vqgan_variant_configs(s.cfg, gan_steps=2)["both"]
    child = gan_variants.train_child_vqgan(s, "table5_both", c)
    state = load_checkpoint(child.vqgan_ckpt)
    assert state["step"] == base + 2 and parent.vqgan_ckpt.read_bytes() == before, "the parent is never replaced"
    steps = [r["step"] for r in MetricsLog.read(child.vqgan_log)]
    assert steps and min(steps) > base, "the child's log holds only the continuation"
    gan = [r for r in MetricsLog.read(child.vqgan_log) if r.get("d_weight")]
    assert gan and all(0 < r["d_weight"] <= 1.0 for r in gan), "GAN on, lambda clamped at 1"
    mtime = child.vqgan_ckpt.stat().st_mtime_ns
    gan_variants.train_child_vqgan(s, "table5_both", c)  # load if present
    assert child.vqgan_ckpt.stat().st_mtime_ns == mtime
    other = gan_variants.vqgan_variant_configs(s.cfg, gan_steps=3)["both"]  # another config: again from the parent
    again = gan_variants.train_child_vqgan(s, "table5_both", other)
    assert load_checkpoint(again.vqgan_ckpt)["step"] == base + 3
    assert sorted(r["step"] for r in MetricsLog.read(again.vqgan_log)) == [base + 2, base + 3], \
        "the new continuation's log only, not the old one's rows"


def test_a_continuation_restarts_the_ema_and_draws_its_discriminator_and_streams_from_its_seed(vqgan_run, tmp_path):
    """start_continuation keeps the autoencoder and its step, restarts the EMA from the raw weights (not the
    parent's EMA), and draws a fresh discriminator from cfg.seed; trained on, two seeds differ and one seed
    twice gives the same weights, so seeds of a variant are independent repeats."""
    parent = RunDir(tmp_path / "parent")
    parent.path.mkdir()
    shutil.copy(vqgan_run.vqgan_ckpt, parent.vqgan_ckpt)
    shutil.copy(vqgan_run.config_file, parent.config_file)
    s = session.setup("smoke", str(parent.path), "cpu", 0, [])
    c = gan_variants.vqgan_variant_configs(s.cfg, gan_steps=2)["both"]
    seeded = {k: apply_overrides(c, {"seed": k}) for k in (1, 2)}
    made = {name: load_checkpoint(start_continuation(parent.vqgan_ckpt, tmp_path / f"{name}.pt", seeded[k]))
            for name, k in (("a", 1), ("b", 1), ("c", 2))}
    before = load_checkpoint(parent.vqgan_ckpt)
    assert any(not torch.equal(before["ema"][k], before["model"][k]) for k in before["model"]), \
        "the parent's EMA differs from its raw weights (else this test could not fail)"
    for k, v in before["model"].items():
        assert torch.equal(made["a"]["ema"][k], v) and torch.equal(made["a"]["model"][k], v), k
    assert made["a"]["step"] == before["step"] and made["a"]["generators"] == []
    disc = lambda name: torch.cat([v.flatten().float() for v in made[name]["disc"].values()])
    assert torch.equal(disc("a"), disc("b")) and not torch.equal(disc("a"), disc("c"))
    assert not torch.equal(disc("a"), torch.cat([v.flatten().float() for v in before["disc"].values()]))

    trained = {name: load_checkpoint(gan_variants.train_child_vqgan(s, f"t5_{name}", seeded[k]).vqgan_ckpt)["model"]
               for name, k in (("a", 1), ("b", 1), ("c", 2))}
    assert all(torch.equal(v, trained["b"][k]) for k, v in trained["a"].items()), "one seed, one result"
    assert any(not torch.equal(v, trained["c"][k]) for k, v in trained["a"].items()), "two seeds differ"


def test_reconstruct_returns_uint8_images(vqgan_run):
    vq = load_run_vqgan(get_profile("smoke", TINY), vqgan_run.vqgan_ckpt, "cpu")
    x = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    r = measuring.reconstruct(vq, x, "cpu", batch_size=2)
    assert r.dtype == torch.uint8 and r.shape == x.shape
    with torch.no_grad():
        direct = vq(x.float().div(127.5).sub(1))[0].clamp(-1, 1)

    assert torch.equal(r, to_uint8(direct)), "batches give what one pass gives"


def test_notebooks_resume_a_prior_interrupted_mid_training(vqgan_run, tmp_path):
    """A notebook finds a prior checkpoint short of the config's steps (a run stopped mid-training) and continues it
    to the end, as load-if-present-else-train promises, instead of stopping with 'pass --resume'."""
    (tmp_path / "r").mkdir()
    shutil.copy(vqgan_run.vqgan_ckpt, tmp_path / "r" / "vqgan.pt")
    run = RunDir(tmp_path / "r")
    train_prior(run, get_profile("smoke", [*TINY, "prior_train.steps=3"]), show_progress=False)
    assert session.checkpoint_step(run.prior_ckpt) == 3
    s = session.setup("smoke", str(run.path), "cpu", 0, ["prior_train.steps=6"])
    session.prior(s)
    assert session.checkpoint_step(run.prior_ckpt) == 6
