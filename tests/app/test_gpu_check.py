"""`make gpu-check` / `python -m ulib gpu-check`: the --tiny run on the CPU exercises every phase and writes the
JSON."""
import json
import re

import pytest

from ulib.app.gpu_check import check_config
from ulib.profiles import get_profile

from helpers import ROOT, run_cli

pytestmark = pytest.mark.slow

METHODS = ("random", "confidence", "remask", "halton", "eb", "remdm", "first_hitting")
PHASES = {"vqgan", "encode", "prior_absorbing", "prior_ar", "big_canvas", "inpaint", "features",
          "ar_cache_fp32", "ar_cache_bf16"} | {f"sample_{m}_{p}" for m in METHODS for p in ("fp32", "bf16")}
RATES = {"vqgan": "images_per_s", "encode": "images_per_s", "prior_absorbing": "tokens_per_s",
         "prior_ar": "tokens_per_s", "sample_random_bf16": "samples_per_s", "ar_cache_fp32": "tokens_per_s",
         "big_canvas": "samples_per_s", "inpaint": "samples_per_s", "features": "images_per_s"}


def test_gpu_check_tiny_on_cpu_prints_every_phase_as_json(tmp_path):
    out = tmp_path / "check.json"
    r = run_cli("gpu-check", "--tiny", "--device", "cpu", "--json", str(out), "--workdir", str(tmp_path / "w"))
    assert r.returncode == 0, r.stderr[-3000:]
    record = json.loads(out.read_text())
    assert json.loads(r.stdout) == record, "stdout carries the JSON and nothing else"
    assert record["ok"] and record["tiny"] and record["device"] == "cpu"
    assert set(record["phases"]) == PHASES
    for name, rec in record["phases"].items():
        assert rec["ok"], (name, rec.get("error"), rec.get("traceback"))
        assert rec["wall_s"] > 0 and rec["peak_memory_mb"] > 0, name
    for name, key in RATES.items():
        assert record["phases"][name][key] > 0, (name, key)
    assert record["phases"]["vqgan"]["gan_steps"] >= 1, "the GAN was switched on"
    assert record["phases"]["prior_absorbing"]["micro_batch"] == 2, "an accumulation step ran"
    assert record["phases"]["features"]["streamed"] > record["phases"]["features"]["kept"]
    assert record["model"]["latent"] == "8x8" and record["budget_s"] == 300


def test_gpu_check_paper_sizes_are_the_ffhq_profile(tmp_path):
    cfg, paper = check_config(False, tmp_path, tmp_path, perceptual=True), get_profile("ffhq")
    assert cfg.data.img_size == 256 and cfg.vqgan == paper.vqgan.__class__(**{**vars(paper.vqgan),
                                                                             "disc_start_step": 2})
    assert cfg.prior == paper.prior and cfg.prior_train.batch_size == 20


def test_make_gpu_check_target_runs_the_script():
    text = (ROOT / "Makefile").read_text()
    m = re.search(r"^gpu-check:.*\n\t(.+)$", text, re.M)
    assert m and "-m ulib gpu-check" in m.group(1)
