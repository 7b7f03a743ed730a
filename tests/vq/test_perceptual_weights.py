"""LPIPS's VGG16 backbone file (issue #21): refused unless it is torchvision's released file or the caller opts
in, read with weights_only=True, and checked key by key against VGG16."""
import pytest
import torch

import ulib.vq.perceptual as P
from ulib.io.files import file_sha256

from helpers import PickleBomb, vgg16_features_file

FLAG = "--allow-unverified-weights"


@pytest.fixture
def weights(weights):
    """The empty weights folder (conftest) holding a test-made VGG16 `features` file; nothing else can be found."""
    vgg16_features_file(weights)
    return weights


def test_a_file_that_is_not_torchvisions_is_refused(weights):
    path = weights / P.VGG16_FILE
    with pytest.raises(ValueError) as err:
        P.load_lpips(weights)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and file_sha256(path) in msg and P.VGG16_SHA256 in msg
    assert FLAG in msg


def test_opting_in_loads_it_as_unofficial(weights):
    with pytest.warns(UserWarning, match="official_weights: false"):
        model = P.load_lpips(weights, allow_unverified=True)
    assert model.official_weights is False


def test_the_environment_opts_in_where_no_flag_reaches(weights, monkeypatch):
    """Training and notebooks load LPIPS without a command-line flag: ULIB_ALLOW_UNVERIFIED_WEIGHTS=1 is theirs."""
    monkeypatch.setenv("ULIB_ALLOW_UNVERIFIED_WEIGHTS", "1")
    with pytest.warns(UserWarning, match="official_weights: false"):
        assert P.load_lpips(weights).official_weights is False
    monkeypatch.setenv("ULIB_ALLOW_UNVERIFIED_WEIGHTS", "0")
    with pytest.raises(ValueError, match="ULIB_ALLOW_UNVERIFIED_WEIGHTS=1"):
        P.load_lpips(weights)


def test_the_released_digest_loads_without_a_warning(weights, monkeypatch, recwarn):
    """We cannot make torchvision's file, so the expected digest is set to our file's."""
    monkeypatch.setattr(P, "VGG16_SHA256", file_sha256(weights / P.VGG16_FILE))
    model = P.load_lpips(weights)
    assert model.official_weights is True and not [w for w in recwarn if "sha256" in str(w.message)]
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert model(x, x).abs().max() < 1e-6 and (model(x, x.flip(0)) > 0).all()


def test_a_key_foreign_to_vgg16_is_refused_even_when_opted_in(weights):
    state = torch.load(weights / P.VGG16_FILE, weights_only=True)
    torch.save({**state, "classifier.9.weight": torch.zeros(1)}, weights / P.VGG16_FILE)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="unexpected key 'classifier.9.weight'"):
        P.load_lpips(weights, allow_unverified=True)
    state["features.28.weight"] = torch.zeros(512, 512, 1, 1)
    torch.save(state, weights / P.VGG16_FILE)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"features.28.weight has shape \(512, 512, 1, 1\)"):
        P.load_lpips(weights, allow_unverified=True)


@pytest.mark.parametrize("allow", [False, True])
def test_a_pickle_bomb_never_runs(weights, tmp_path, allow, recwarn):
    marker = tmp_path / "pwned"
    state = torch.load(weights / P.VGG16_FILE, weights_only=True)
    torch.save({**state, "payload": PickleBomb(marker)}, weights / P.VGG16_FILE)
    with pytest.raises(ValueError) as err:
        P.load_lpips(weights, allow_unverified=allow)
    assert not marker.exists(), "reading the weights file ran its code"
    assert str(weights / P.VGG16_FILE) in str(err.value)
    assert (FLAG if not allow else "weights_only=True") in str(err.value)
