"""pytest fixtures and collection rules; shared constants and helpers live in tests/helpers.py."""
import json
import os

import pytest
import torch

from ulib.device import _matmul_backends
from ulib.io.rundir import RunDir
from ulib.train.vqgan import train_vqgan

from helpers import CHROMIUM, OFFICIAL_KEYS, missing_browser, tiny_config


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def official_keys():
    """The released checkpoints' layout and the paper's hyper-parameters (OFFICIAL_KEYS)."""
    return json.loads(OFFICIAL_KEYS.read_text())


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary for the tests marked `browser`, with Playwright to drive it; skipped when either is
    missing, except under CI=true, where the test fails (helpers.missing_browser)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing_browser(f"no Chromium at {CHROMIUM} (set ULIB_CHROMIUM to use another)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing_browser("the playwright package is missing (pip install -e '.[dev]')")
    return CHROMIUM


@pytest.fixture(scope="module")
def vqgan_run(tmp_path_factory):
    """A run folder holding a VQGAN trained 2 steps on the tiny settings (with mirrored images), per test module."""
    run = RunDir(tmp_path_factory.mktemp("scale") / "run")
    train_vqgan(run, tiny_config(["vqgan_train.steps=2", "data.flip=true"]), show_progress=False)
    return run


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """An empty weights folder; nothing else (ULIB_WEIGHTS_DIR, the torch hub cache) can be found."""
    monkeypatch.delenv("ULIB_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    folder = tmp_path / "weights"
    folder.mkdir()
    return folder


@pytest.fixture
def matmul_setting():
    """Whatever a test sets as the float32 matmul precision is undone afterwards (the legacy setting, then the
    per-backend ones where torch has them)."""
    legacy, spaces = torch.get_float32_matmul_precision(), _matmul_backends()
    per_backend = [ns.fp32_precision for ns in spaces]
    yield
    torch.set_float32_matmul_precision(legacy)
    for ns, value in zip(spaces, per_backend):
        ns.fp32_precision = value
