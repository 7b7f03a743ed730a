"""Continuing a run on another device (ulib/train/resume.py): a random generator's state from another device type
re-seeds deterministically; a fused optimiser's state loads into a plain one (and a scaler's into a disabled one).
The resume decision and the settings checked against checkpoints, through whole trainings:
tests/app/test_prior_pairing.py, tests/app/test_run_integrity.py, tests/data/test_group_split.py."""
import pytest
import torch

from ulib import device as D
from ulib.train.resume import load_optimizer_state, restore_generator


def test_generator_state_from_another_device_reseeds_deterministically():
    cpu_state = torch.Generator().manual_seed(5).get_state()
    g = torch.Generator()
    restore_generator(g, cpu_state, "cpu")
    assert torch.equal(g.get_state(), cpu_state)
    philox = torch.arange(16, dtype=torch.uint8)  # what a CUDA generator's state looks like
    a, b = torch.Generator(), torch.Generator()
    with pytest.warns(UserWarning, match="written on cuda"):
        restore_generator(a, philox, "cuda")
    with pytest.warns(UserWarning):
        restore_generator(b, philox, "cuda")
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))


def test_scaler_and_fused_optimizer_states_cross_devices():
    enabled = torch.amp.GradScaler("cpu", enabled=True)  # as CUDA fp16 would be
    D.load_scaler_state(enabled, {})  # what a CPU run (disabled scaler) saved: start afresh, no error
    assert enabled.get_scale() == 65536.0
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    D.load_scaler_state(disabled, enabled.state_dict())
    w = torch.nn.Parameter(torch.ones(3))
    fused = torch.optim.AdamW([w], fused=True)  # as on CUDA
    w.grad = torch.ones(3)
    fused.step()
    plain = torch.optim.AdamW([w])
    load_optimizer_state(plain, fused.state_dict())
    assert not plain.param_groups[0]["fused"] and plain.state[w]["step"].device.type == "cpu"
    plain.step()
    assert float(plain.state[w]["step"]) == 2.0
