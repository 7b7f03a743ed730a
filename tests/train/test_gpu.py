"""CUDA-only checks (skipped where no GPU exists): mixed-precision training of both stages."""
import pytest
import torch

from ulib.device import amp_dtype, resolve_device
from ulib.io.checkpoint import load_checkpoint
from ulib.io.rundir import RunDir
from ulib.profiles import get_profile
from ulib.train.prior import train_prior
from ulib.train.vqgan import train_vqgan

from helpers import TINY


@pytest.mark.gpu
def test_amp_training_on_cuda(tmp_path):
    cfg = get_profile("smoke", TINY + ["device=cuda"])
    assert amp_dtype(resolve_device("cuda"), True) in (torch.bfloat16, torch.float16)
    run = RunDir(tmp_path / "r")
    train_vqgan(run, cfg, show_progress=False)
    train_prior(run, cfg, show_progress=False)
    state = load_checkpoint(run.prior_ckpt)
    assert state["step"] == cfg.prior_train.steps
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())


def test_amp_is_off_on_cpu():
    assert amp_dtype(torch.device("cpu"), True) is None
