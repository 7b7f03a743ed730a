"""pytest fixtures and collection rules; shared constants and helpers live in tests/helpers.py."""
import json

import pytest
import torch

from helpers import OFFICIAL_KEYS


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
