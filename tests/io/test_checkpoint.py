"""ulib.io.checkpoint: atomic save, safe load, RNG state, state-dict checks, unwrap (atomic files: test_files.py)."""
import os
import random

import numpy as np
import pytest
import torch

from ulib.io.checkpoint import check_state_dict, load_checkpoint, rng_state, save_checkpoint, set_rng_state, unwrap

from helpers import FakeDDP, small_net


# ---- save / load -------------------------------------------------------------------------------------
def test_save_load_round_trip_creates_folder(tmp_path):
    path = tmp_path / "run" / "sub" / "ckpt.pt"
    state = {"step": 7, "w": torch.arange(6.0).reshape(2, 3), "cfg": {"name": "smoke", "sizes": [1, 2]}}
    save_checkpoint(path, state)
    loaded = load_checkpoint(path)
    assert loaded["step"] == 7 and loaded["cfg"] == {"name": "smoke", "sizes": [1, 2]}
    assert torch.equal(loaded["w"], state["w"])
    assert os.listdir(path.parent) == ["ckpt.pt"]  # no temp file left


def test_failed_save_keeps_old_checkpoint_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 1})
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")  # partial bytes, then the disk "fills up"
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {"step": 2})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1


def test_interrupted_save_removes_temp(tmp_path, monkeypatch):
    def interrupted(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "new.pt", {"step": 0})
    assert os.listdir(tmp_path) == []


def test_save_rejects_non_dict(tmp_path):
    with pytest.raises(TypeError, match="list"):
        save_checkpoint(tmp_path / "x.pt", [1, 2])


def test_load_truncated_file_names_it(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"w": torch.randn(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="ckpt.pt") as e:
        load_checkpoint(path)
    assert "RuntimeError" in str(e.value)  # the underlying error is named
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="EOFError"):
        load_checkpoint(path)


def test_load_missing_file_lists_present_checkpoints(tmp_path):
    save_checkpoint(tmp_path / "vqgan.pt", {"a": 1})
    save_checkpoint(tmp_path / "prior.pt", {"a": 1})
    with pytest.raises(FileNotFoundError, match="vqgan_ema.pt") as e:
        load_checkpoint(tmp_path / "vqgan_ema.pt")
    assert "prior.pt, vqgan.pt" in str(e.value)
    with pytest.raises(FileNotFoundError, match="does not exist either"):
        load_checkpoint(tmp_path / "nope" / "x.pt")


class Evil:
    """Any class that is not a tensor or plain data: weights_only loading must refuse it."""


def test_load_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": Evil()}, path)
    with pytest.raises(ValueError, match="evil.pt"):
        load_checkpoint(path)


# ---- RNG state ---------------------------------------------------------------------------------------
def _draw():
    return (
        [random.random() for _ in range(3)] + [random.gauss(0, 1)],
        np.random.rand(3).tolist() + [float(np.random.randn())],
        torch.rand(3).tolist() + torch.randn(1).tolist(),
    )


def test_rng_state_round_trip_through_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leave a cached gaussian in both Python and NumPy
    np.random.randn()
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = _draw()
    _draw()  # move every generator on
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])  # weights_only=True inside
    assert _draw() == expected


def test_set_rng_state_rejects_other_dicts():
    with pytest.raises(ValueError, match="rng_state"):
        set_rng_state({"torch": torch.get_rng_state()})


# ---- check_state_dict --------------------------------------------------------------------------------
def test_check_state_dict_passes_on_match():
    check_state_dict(small_net(), small_net().state_dict(), "checkpoint x.pt")


def test_check_state_dict_lists_every_problem():
    sd = small_net().state_dict()
    del sd["2.bias"]
    sd["extra.weight"] = torch.zeros(1)
    sd["0.weight"] = torch.zeros(5, 3)
    what = "VQGAN checkpoint runs/demo/vqgan.pt does not match the config"
    with pytest.raises(ValueError) as e:
        check_state_dict(small_net(), sd, what)
    msg = str(e.value)
    assert msg.startswith(what)
    assert "missing keys (in the model, not in the checkpoint) (1):\n    2.bias" in msg
    assert "unexpected keys (in the checkpoint, not in the model) (1):\n    extra.weight" in msg
    assert "0.weight: checkpoint (5, 3) vs model (4, 3)" in msg


def test_check_state_dict_ignore_prefixes_and_truncation():
    sd = small_net().state_dict()
    sd.update({f"lpips.layer{i}": torch.zeros(1) for i in range(30)})
    check_state_dict(small_net(), sd, "x", ignore_prefixes=("lpips.",))
    check_state_dict(small_net(), sd, "x", ignore_prefixes="lpips.")  # a bare string works too
    with pytest.raises(ValueError) as e:
        check_state_dict(small_net(), sd, "x")
    msg = str(e.value)
    assert "(30):" in msg and "... and 10 more" in msg
    assert msg.count("lpips.layer") == 20


# ---- unwrap ------------------------------------------------------------------------------------------
class HasModuleChild(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.module = torch.nn.Linear(1, 1)


def test_unwrap():
    net = small_net()
    assert unwrap(net) is net
    assert unwrap(torch.nn.DataParallel(net)) is net
    assert unwrap(FakeDDP(net)) is net
    assert unwrap(torch.compile(net)) is net  # the wrapper is built lazily: nothing compiles here
    assert unwrap(FakeDDP(torch.compile(net))) is net
    plain = HasModuleChild()
    assert unwrap(plain) is plain  # a child called `module` is not a wrapper
