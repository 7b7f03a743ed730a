"""ulib.io.logs: the CSV metrics log and PNG image grids."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from ulib.io.logs import MetricsLog, save_image_grid


# ---- MetricsLog --------------------------------------------------------------------------------------
def test_log_and_read_back(tmp_path):
    path = tmp_path / "logs" / "metrics.csv"  # folder created
    log = MetricsLog(path)
    log.log(0, loss=1.5, lr=0.0002)
    log.log(50, loss=torch.tensor(0.123456789), lr=np.float32(0.0002))
    log.log(100, loss=1.23456789e-5, lr=None, tokens=4096)
    assert path.read_text() == "step,loss,lr,tokens\n0,1.5,0.0002,\n50,0.123457,0.0002,\n100,1.23457e-05,,4096\n"
    rows = MetricsLog.read(path)
    assert rows == [
        {"step": 0, "loss": 1.5, "lr": 0.0002, "tokens": None},
        {"step": 50, "loss": 0.123457, "lr": 0.0002, "tokens": None},
        {"step": 100, "loss": 1.23457e-05, "lr": None, "tokens": 4096.0},
    ]
    assert isinstance(rows[0]["step"], int)


def test_columns_grow_and_old_rows_get_empty_cells(tmp_path):
    path = tmp_path / "m.csv"
    log = MetricsLog(path)
    log.log(0, rec=0.5)
    log.log(1000, rec=0.4)
    log.log(2000, rec=0.3, g_loss=2.0, d_loss=0.7)  # the GAN loss switches on
    log.log(3000, rec=0.2, d_loss=0.6)
    assert log.columns == ["step", "rec", "g_loss", "d_loss"]
    assert path.read_text().splitlines() == [
        "step,rec,g_loss,d_loss",
        "0,0.5,,",
        "1000,0.4,,",
        "2000,0.3,2,0.7",
        "3000,0.2,,0.6",
    ]
    assert [r["g_loss"] for r in MetricsLog.read(path)] == [None, None, 2.0, None]
    assert os.listdir(tmp_path) == ["m.csv"]  # no temp file from the rewrite


def test_fresh_run_replaces_existing_file(tmp_path):
    path = tmp_path / "m.csv"
    MetricsLog(path).log(0, loss=1.0)
    log = MetricsLog(path)
    assert path.read_text() == "step\n" and log.columns == ["step"]


def _run(path, steps, resume_step=None):
    log = MetricsLog(path, resume_step=resume_step)
    for s in steps:
        metrics = {"rec": 1.0 / (s + 1)}
        if s >= 20:
            metrics["gan"] = s / 10
        log.log(s, **metrics)


def test_resume_drops_rows_after_the_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    whole, resumed = tmp_path / "whole.csv", tmp_path / "resumed.csv"
    _run(whole, range(0, 40, 5))
    _run(resumed, range(0, 30, 5))  # crashed after step 25 (the 'gan' column already exists)...
    MetricsLog(resumed, resume_step=10)  # ...resumed from the checkpoint of step 10
    assert [r["step"] for r in MetricsLog.read(resumed)] == [0, 5, 10]
    assert MetricsLog(resumed, resume_step=10).columns == ["step", "rec"]  # unused 'gan' dropped
    _run(resumed, range(15, 40, 5), resume_step=10)
    assert resumed.read_bytes() == whole.read_bytes()


def test_resume_keeps_columns_in_use_and_handles_missing_file(tmp_path):
    path = tmp_path / "m.csv"
    _run(path, range(0, 30, 5))
    log = MetricsLog(path, resume_step=20)
    assert log.columns == ["step", "rec", "gan"]
    assert [r["step"] for r in MetricsLog.read(path)] == [0, 5, 10, 15, 20]
    new = MetricsLog(tmp_path / "absent.csv", resume_step=100)  # nothing to resume: a fresh log
    assert new.columns == ["step"]


def test_interrupted_last_line_is_dropped(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("step,loss,acc\n0,1.0,0.5\n5,0.9,0.6\n10,0.8")  # killed mid-write
    with pytest.warns(UserWarning, match="malformed last line"):
        rows = MetricsLog.read(path)
    assert [r["step"] for r in rows] == [0, 5]
    with pytest.warns(UserWarning):
        MetricsLog(path, resume_step=100)
    assert path.read_text() == "step,loss,acc\n0,1.0,0.5\n5,0.9,0.6\n"  # kept cells are not reformatted


def test_log_errors_name_what_was_given(tmp_path):
    log = MetricsLog(tmp_path / "m.csv")
    with pytest.raises(TypeError, match="step=1.5"):
        log.log(1.5, loss=1.0)
    with pytest.raises(TypeError, match="metric 'name'='abc'"):
        log.log(1, name="abc")
    with pytest.raises(ValueError, match=r"metric 'loss'.*shape \(2,\)"):
        log.log(1, loss=torch.zeros(2))
    with pytest.raises(TypeError, match="resume_step='3'"):
        MetricsLog(tmp_path / "m.csv", resume_step="3")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        MetricsLog.read(tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("loss,step\n1,0\n")
    with pytest.raises(ValueError, match="'step' column"):
        MetricsLog.read(tmp_path / "bad.csv")


# ---- save_image_grid ---------------------------------------------------------------------------------
def _read(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_grid_size_layout_and_padding(tmp_path):
    images = torch.linspace(-1, 1, 5).view(5, 1, 1, 1).expand(5, 3, 4, 6).contiguous()  # image i is flat grey
    path = tmp_path / "out" / "grid.png"  # folder created
    save_image_grid(images, path, nrow=3, padding=2, pad_value=-1.0)
    grid = _read(path)
    assert grid.shape == (2 * (4 + 2) + 2, 3 * (6 + 2) + 2, 3)  # (H, W, 3) = (14, 26, 3)
    expected = [0, 64, 128, 191, 255]  # round((v + 1) * 127.5) for v = -1, -0.5, 0, 0.5, 1
    for i, value in enumerate(expected):
        r, c = divmod(i, 3)
        y, x = 2 + r * 6, 2 + c * 8
        assert (grid[y : y + 4, x : x + 6] == value).all()
    assert (grid[:2] == 0).all() and (grid[:, :2] == 0).all()  # border padding in pad_value (black)
    assert (grid[8:12, 18:24] == 0).all()  # the sixth, empty cell is padding too
    assert os.listdir(path.parent) == ["grid.png"]


def test_grid_maps_minus_one_to_0_and_one_to_255_and_clamps(tmp_path):
    images = torch.tensor([-1.0, 1.0, -3.0, 3.0]).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    save_image_grid(images, tmp_path / "g.png", nrow=4, padding=0)
    grid = _read(tmp_path / "g.png")
    assert grid.shape == (2, 8, 3)
    assert grid[0, ::2, 0].tolist() == [0, 255, 0, 255]


def test_grid_default_nrow_uint8_input_and_upscale(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 3, 3, 3), dtype=np.uint8)  # (B, H, W, 3)
    save_image_grid(images, tmp_path / "a.png", padding=1)  # nrow = ceil(sqrt(5)) = 3
    small = _read(tmp_path / "a.png")
    assert small.shape == (2 * 4 + 1, 3 * 4 + 1, 3)
    assert (small[1:4, 1:4] == images[0]).all() and (small[5:8, 5:8] == images[4]).all()
    assert (small[0] == 255).all()  # default pad_value 1.0 is white
    save_image_grid(images, tmp_path / "b.png", padding=1, upscale=4)
    big = _read(tmp_path / "b.png")
    assert big.shape == (small.shape[0] * 4, small.shape[1] * 4, 3)
    assert (big == small.repeat(4, axis=0).repeat(4, axis=1)).all()  # nearest neighbour


def test_grid_single_image_and_nrow_larger_than_batch(tmp_path):
    save_image_grid(torch.zeros(2, 3, 5, 5), tmp_path / "g.png", nrow=8, padding=1)
    assert _read(tmp_path / "g.png").shape == (7, 13, 3)  # at most B images per row


def test_grid_errors(tmp_path):
    p = tmp_path / "g.png"
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*\(2, 1, 4, 4\)"):
        save_image_grid(torch.zeros(2, 1, 4, 4), p)
    with pytest.raises(TypeError, match="int64"):
        save_image_grid(np.zeros((2, 4, 4, 3), dtype=np.int64), p)
    with pytest.raises(ValueError, match="NaN"):
        save_image_grid(torch.full((1, 3, 2, 2), float("nan")), p)
    with pytest.raises(ValueError, match="nrow=0"):
        save_image_grid(torch.zeros(2, 3, 4, 4), p, nrow=0)
    with pytest.raises(ValueError, match="upscale=0"):
        save_image_grid(torch.zeros(2, 3, 4, 4), p, upscale=0)
    with pytest.raises(ValueError, match="pad_value=2"):
        save_image_grid(torch.zeros(2, 3, 4, 4), p, pad_value=2)
    with pytest.raises(ValueError, match="'.png'"):
        save_image_grid(torch.zeros(2, 3, 4, 4), tmp_path / "g.jpg")
    assert os.listdir(tmp_path) == []
