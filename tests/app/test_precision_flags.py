"""The precision flags reach the prior, and `encode` writes what train-prior encodes (issue 26): `inpaint
--precision` (passed to `ulib.sample.inpaint.inpaint`), `elbo --precision` (the prior's forward passes, recorded in
RUN/likelihood.json; a CPU's figures unchanged), and `encode` with TF32 set as train-prior has it."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from ulib.app import cli, flags
from ulib.eval.elbo import validation_likelihood
from ulib.io.checkpoint import load_checkpoint
from ulib.models import SamplingModels, load_prior
from ulib.prior.absorbing import AbsorbingDiffusion
from ulib.prior.likelihood import absorbing_elbo
from ulib.prior.transformer import Transformer
from ulib.vq.model import VQAutoEncoder

from helpers import tiny_trained_run


def _autocast_of(device_type: str = "cpu"):
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


@pytest.fixture
def prior_autocast(monkeypatch):
    """The autocast dtype (None: none) of every forward pass of any Transformer, in order."""
    seen, real = [], Transformer.features
    monkeypatch.setattr(Transformer, "features", lambda self, x: seen.append(_autocast_of()) or real(self, x))
    return seen


@pytest.fixture
def prior_weights(monkeypatch):
    """The weights' dtype of every forward pass of any Transformer (bf16 sampling runs a bf16 copy of the prior)."""
    seen, real = [], Transformer.features
    monkeypatch.setattr(Transformer, "features",
                        lambda self, x: seen.append(self.tok_emb.weight.dtype) or real(self, x))
    return seen


# ---- inpaint ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flag, want", [([], torch.float32), (["--precision", "fp32"], torch.float32),
                                        (["--precision", "bf16"], torch.bfloat16)])
def test_inpaint_precision_flag_reaches_the_prior(flag, want, tmp_path, monkeypatch, prior_weights, capsys):
    """`python -m ulib inpaint` with a tiny pair standing in for a run's (8 x 8 tokens of 16 x 16 images)."""
    torch.manual_seed(0)
    vq = VQAutoEncoder(img_size=16, nf=16, ch_mult=(1, 2), res_blocks=1, attn_resolutions=(), codebook_size=8,
                       emb_dim=4, norm_groups=4).eval()
    prior = Transformer(codebook_size=8, block_size=64, n_emb=16, n_head=2, n_layers=1).eval()
    m = SamplingModels(vq, prior, "absorbing", 4, 8, (8, 8), 4, 1.0, 2, "test")
    monkeypatch.setattr(flags, "sampling_models", lambda args: (m, torch.device("cpu"), tmp_path))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    mask = np.zeros((16, 16, 3), dtype=np.uint8)
    mask[4:10, 4:10] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    argv = ["inpaint", "--image", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"), "--steps", "4",
            "--png", str(tmp_path / "out.png"), *flag]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert prior_weights and set(prior_weights) == {want}
    assert (tmp_path / "out.png").exists()


def test_inpaint_refuses_another_precision(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["inpaint", "--image", "a.png", "--mask", "b.png", "--precision", "fp16"])
    assert info.value.code == 2 and "--precision: invalid choice: 'fp16'" in capsys.readouterr().err


# ---- elbo and encode, on a tiny trained run ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(RunDir, config) of a tiny run on a folder of 40 noise images (32 train, 8 validation), trained 2 steps per
    stage; its token cache was encoded by train-prior."""
    tmp = tmp_path_factory.mktemp("precision")
    (tmp / "images").mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp / "images" / f"{i}.png")
    return tiny_trained_run(tmp / "run", extra=["data.dataset=folder", f"data.path={tmp / 'images'}",
                                                "data.val_fraction=0.2", "data.split_by=random",
                                                f"data.cache_dir={tmp / 'cache'}"])


@pytest.mark.slow
def test_encode_command_writes_the_tokens_train_prior_encoded(trained, monkeypatch, capsys):
    run, _ = trained
    before = load_checkpoint(run.latents)
    configured = []
    real = cli.configure_matmul
    monkeypatch.setattr(cli, "configure_matmul", lambda device: configured.append(device) or real(device))
    assert cli.main(["encode", "--run", str(run.path), "--force"]) == 0, capsys.readouterr().err
    after = load_checkpoint(run.latents)
    assert configured == [torch.device("cpu")]  # TF32 on CUDA, as train-prior's setup sets it
    assert after["fingerprint"] == before["fingerprint"]
    for split in ("train", "val"):
        assert torch.equal(after[split], before[split]), split


@pytest.mark.slow
@pytest.mark.parametrize("precision, want", [("auto", None), ("fp32", None), ("bf16", torch.bfloat16)])
def test_elbo_precision_reaches_the_prior_and_is_recorded(trained, precision, want, prior_autocast):
    run, cfg = trained
    lines = []
    (rec,) = validation_likelihood(run, cfg, mc=2, max_items=4, precision=precision, log=lines.append)
    assert prior_autocast and set(prior_autocast) == {want}
    assert rec["precision"] == ("bf16" if want else "fp32") and lines[0].endswith(f"prior in {rec['precision']}")
    assert json.loads((run.path / "likelihood.json").read_text())[0]["precision"] == rec["precision"]


@pytest.mark.slow
def test_elbo_on_a_cpu_is_unchanged_and_bf16_is_close(trained):
    """'auto' on a CPU is fp32 and gives the figure of `absorbing_elbo` called plainly (no autocast, no TF32: the
    command before it had a --precision); bf16 a finite figure near it (loose: bf16 logits of a tiny prior)."""
    run, cfg = trained
    net = load_prior(run, torch.device("cpu"), "absorbing", use_ema=True, cfg=cfg)
    val = load_checkpoint(run.latents)["val"].reshape(-1, 64)[:4]
    diffusion = AbsorbingDiffusion(cfg.prior.total_steps, cfg.mask_id, cfg.prior.loss_type)
    plain = absorbing_elbo(diffusion, net, val, generator=torch.Generator().manual_seed(0)).bits_per_token
    got = {p: validation_likelihood(run, cfg, max_items=4, precision=p, log=lambda s: None)[0]["bits_per_token"]
           for p in ("auto", "fp32", "bf16")}
    assert got["auto"] == got["fp32"] == plain
    assert np.isfinite(got["bf16"]) and got["bf16"] == pytest.approx(plain, rel=0.05)


@pytest.mark.slow
def test_elbo_refuses_another_precision(trained, capsys):
    run, cfg = trained
    with pytest.raises(ValueError, match=r"precision='fp16'; allowed: auto, fp32, bf16"):
        validation_likelihood(run, cfg, precision="fp16")
    with pytest.raises(SystemExit) as info:
        cli.main(["elbo", "--run", str(run.path), "--precision", "fp16"])
    assert info.value.code == 2 and "--precision: invalid choice: 'fp16'" in capsys.readouterr().err
    assert cli.main(["elbo", "--run", str(run.path), "--max-items", "2", "--mc", "1", "--precision", "bf16"]) == 0
    assert "prior in bf16" in capsys.readouterr().out
    assert json.loads((run.path / "likelihood.json").read_text())[0]["precision"] == "bf16"
