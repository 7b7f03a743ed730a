import json
import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CACHE = str(ROOT / "data" / "cache")
# Key names and shapes of the official code's released checkpoints (source named inside the file).
OFFICIAL_KEYS = ROOT / "tests" / "data" / "official_checkpoint_keys.json"

# Tiny settings on top of the smoke profile: every stage runs in seconds on 2 CPU cores.
TINY = [
    f"data.cache_dir={CACHE}",
    "vqgan_train.steps=6", "vqgan_train.log_every=2", "vqgan_train.image_every=3", "vqgan_train.ckpt_every=3",
    "vqgan.disc_start_step=3",
    "prior_train.steps=6", "prior_train.log_every=2", "prior_train.image_every=3", "prior_train.ckpt_every=3",
]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def official_keys():
    """The released checkpoints' layout and the paper's hyper-parameters (tests/data/official_checkpoint_keys.json)."""
    return json.loads(OFFICIAL_KEYS.read_text())


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run `python -m ulib ARGS` in a subprocess; return the CompletedProcess."""
    import subprocess

    e = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "ulib", *args], cwd=cwd or ROOT, env=e, capture_output=True,
                          text=True, timeout=timeout)
