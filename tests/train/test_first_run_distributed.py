"""A multi-process first run (issue 26): rank 0 alone decodes an image folder up front while the others wait and read
its cached verdict (`ulib.train.distributed.rank0_first`), and `pipeline` under torchrun encodes with every
process's share (`load_latents_distributed`)."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from ulib.app import pipeline
from ulib.train import distributed as dist_utils
from ulib.train import latents
from ulib.vq.model import VQAutoEncoder

from helpers import ROOT, png_folder, tiny_config

# Each of the two processes builds two folders' datasets through rank0_first: 'a' (skip_bad: the bad file left
# out) and 'b' (no skip_bad: BadImagesError). Every decode of a file appends "FOLDER RANK" to decoded.txt.
TWO_RANKS = """
import json, sys
from pathlib import Path
import torch.distributed as dist
from ulib.config import DataConfig
from ulib.data import folders
from ulib.data.datasets import build_dataset
from ulib.train import distributed as dist_utils

rank, tmp = int(sys.argv[1]), Path(sys.argv[2])
dist.init_process_group("gloo", init_method=f"file://{tmp / 'pg'}", rank=rank, world_size=2)
real, phase = folders._read_error, ["a"]
def counted(path):
    with open(tmp / "decoded.txt", "a") as f:
        f.write(f"{phase[0]} {rank}\\n")
    return real(path)
folders._read_error = counted
def data(name, skip_bad):
    return DataConfig(dataset="folder", path=str(tmp / name), img_size=8, cache_dir=str(tmp / "cache"),
                      skip_bad=skip_bad)
out = {}
ds = dist_utils.rank0_first(lambda: build_dataset(data("a", True), "all"))
out["files"], out["skipped"] = [p.name for p in ds.files], ds.skipped
phase[0] = "b"
try:
    dist_utils.rank0_first(lambda: build_dataset(data("b", False), "all"))
except folders.BadImagesError as e:
    out["error"] = str(e).splitlines()[0]
dist.barrier()
dist.destroy_process_group()
(tmp / f"rank{rank}.json").write_text(json.dumps(out))
"""


def _folder(path, n=4):
    png_folder(path, n=n)
    (path / "bad.png").write_bytes(b"not a png")
    return path


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed (gloo)")
def test_two_processes_decode_a_folder_once(tmp_path):
    _folder(tmp_path / "a")
    _folder(tmp_path / "b")
    script = tmp_path / "two_ranks.py"
    script.write_text(TWO_RANKS)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(tmp_path)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    decoded = (tmp_path / "decoded.txt").read_text().split("\n")[:-1]
    assert sorted(decoded) == ["a 0"] * 5 + ["b 0"] * 5, "rank 0 alone decodes each of the 5 files, once"
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0 == r1, "rank 1 read rank 0's verdict"
    assert r0["files"] == [f"{i}.png" for i in range(4)] and list(r0["skipped"]) == ["bad.png"]
    assert r0["error"].startswith("1 of 5 image files"), "an error on rank 0 reaches rank 1 instead of a hang"


def test_rank0_first_without_a_process_group_just_calls():
    calls = []
    assert dist_utils.rank0_first(lambda: calls.append(1) or "x") == "x"
    assert calls == [1]


def _folder_config(tmp_path):
    folder = png_folder(tmp_path / "imgs", n=6, size=(16, 16))
    return tiny_config([f"data.path={folder}", "data.dataset=folder", "data.split_by=random",
                        "data.test_fraction=0", "data.val_fraction=0.2", f"data.cache_dir={tmp_path / 'cache'}"])


def _spy_rank0_first(monkeypatch):
    seen = []
    real = dist_utils.rank0_first
    monkeypatch.setattr(dist_utils, "rank0_first", lambda fn: seen.append(fn) or real(fn))
    return seen


def test_the_latent_encode_builds_the_folder_rank0_first(tmp_path, monkeypatch):
    cfg = _folder_config(tmp_path)
    seen = _spy_rank0_first(monkeypatch)
    torch.manual_seed(0)
    vq = VQAutoEncoder.from_config(cfg.vqgan, cfg.data.img_size).eval()
    monkeypatch.setattr(latents, "load_run_vqgan", lambda *a, **k: vq)
    monkeypatch.setattr(latents, "latents_fingerprint", lambda *a: "fp")
    cache = latents.encode_dataset(cfg, tmp_path / "vqgan.pt", tmp_path / "latents.pt", "cpu", progress=False)
    assert len(seen) == 1, "the first split's dataset (the folder's check) is built rank 0 first"
    assert len(cache["train"]) + len(cache["val"]) == 6


def test_vqgan_training_builds_the_folder_rank0_first(tmp_path, monkeypatch):
    from ulib.io.rundir import RunDir
    from ulib.train.vqgan import train_vqgan

    cfg = _folder_config(tmp_path)
    seen = []

    def stop(fn):
        seen.append(fn())
        raise KeyboardInterrupt  # enough: the datasets are what this test is about

    monkeypatch.setattr(dist_utils, "rank0_first", stop)
    with pytest.raises(KeyboardInterrupt):
        train_vqgan(RunDir(tmp_path / "run"), cfg, show_progress=False)
    assert len(seen) == 1 and len(seen[0]) == 5, "the training split of the folder, built rank 0 first"


@pytest.mark.parametrize("rank, world", [(0, 1), (1, 2)])
def test_pipeline_encodes_each_process_share(tmp_path, monkeypatch, rank, world):
    cfg = tiny_config()
    done = []
    monkeypatch.setattr(pipeline.dist_utils, "init_from_env", lambda device: (rank, world, device))
    monkeypatch.setattr(pipeline, "train_vqgan", lambda *a, **k: done.append("vqgan"))
    monkeypatch.setattr(pipeline, "train_prior", lambda *a, **k: done.append("prior"))
    monkeypatch.setattr(pipeline, "tokens_changed", lambda *a: None)
    monkeypatch.setattr(pipeline, "save_reconstructions", lambda *a: done.append("reconstructions"))
    monkeypatch.setattr(pipeline, "load_run", lambda *a, **k: None)
    monkeypatch.setattr(pipeline, "sample_uint8", lambda *a, **k: done.append("samples"))
    monkeypatch.setattr(pipeline, "save_image_grid", lambda *a, **k: None)
    monkeypatch.setattr(pipeline, "load_latents_distributed",
                        lambda cfg, ckpt, path, device, r, w, progress: done.append(("encode", r, w)))
    monkeypatch.setattr(latents, "load_latents", lambda *a, **k: pytest.fail("every process encoding everything"))
    from ulib.io.rundir import RunDir
    pipeline.run_pipeline(RunDir(tmp_path / "run"), cfg, show_progress=False)
    pictures = ["reconstructions", "samples"] if rank == 0 else []
    assert done == ["vqgan"] + pictures[:1] + [("encode", rank, world), "prior"] + pictures[1:]
