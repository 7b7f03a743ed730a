"""Third-party weights files (issue #21): the InceptionV3 file must be the released one unless the caller opts in
(`--allow-unverified-weights`), and no file, opted in or not, can run code when it is read: we read it with
weights_only=True and torch-fidelity only ever sees our clean copy."""
import io

import numpy as np
import pytest
import torch

import ulib.app.cli as cli
import ulib.eval.evaluate as E
import ulib.eval.extractors as X
import ulib.eval.inception as INC
from ulib.io.files import file_sha256
from ulib.io.rundir import RunDir

from helpers import PickleBomb, tiny_config, vgg16_features_file

FLAG = "--allow-unverified-weights"


@pytest.fixture(scope="module")
def state():
    return INC.random_inception_state_dict(0)


def bomb_file(folder, state, marker):
    """The InceptionV3 state dict with one extra entry whose unpickling creates `marker`."""
    torch.save({**state, "payload": PickleBomb(marker)}, folder / INC.INCEPTION_FILE)
    return folder / INC.INCEPTION_FILE


def refused(load):
    """The exception `load()` raised (it must raise)."""
    with pytest.raises(Exception) as err:
        load()
    return err.value


# ---- the digest --------------------------------------------------------------------------------------
def test_a_file_that_is_not_the_released_one_is_refused(weights, state):
    torch.save(state, weights / INC.INCEPTION_FILE)
    path, sha = weights / INC.INCEPTION_FILE, file_sha256(weights / INC.INCEPTION_FILE)
    with pytest.raises(ValueError) as err:
        X.load_inception("inception", weights_dir=weights)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and sha in msg and INC.INCEPTION_SHA256 in msg and FLAG in msg


def test_opting_in_loads_it_as_unofficial_plain_tensors(weights, state):
    torch.save(state, weights / INC.INCEPTION_FILE)
    with pytest.warns(UserWarning, match="official_weights: false"):
        space = X.load_inception("inception", weights_dir=weights, allow_unverified=True)
    assert space.info["official_weights"] is False and space.info["sha256"] == file_sha256(weights / INC.INCEPTION_FILE)


def test_the_released_digest_loads_through_our_reader_only(weights, state, monkeypatch):
    """We cannot make the released file, so the expected digest is set to our file's: the happy path, where
    torch-fidelity is handed our in-memory copy and never opens the user's file."""
    path = weights / INC.INCEPTION_FILE
    torch.save(state, path)
    monkeypatch.setattr(INC, "INCEPTION_SHA256", file_sha256(path))
    calls, real_load = [], torch.load

    def spy(f, *args, **kwargs):
        calls.append((f, kwargs.get("weights_only")))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    space = X.load_inception("inception", weights_dir=weights)
    assert space.info["official_weights"] is True and space.key == INC.INCEPTION_SHA256
    user = [w for f, w in calls if not isinstance(f, io.BytesIO)]
    assert user == [True]  # the user's file is opened once, by us, with weights_only=True
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    f = space(x)
    assert f["2048"].shape == (2, 2048) and f["logits_unbiased"].shape == (2, 1008)
    assert torch.equal(f["2048"], X.load_inception("random-inception")(x)["2048"])  # the same weights


def test_a_file_of_the_wrong_architecture_is_refused_even_when_opted_in(weights, state):
    bad = dict(state)
    bad["fc.weight"] = torch.zeros(1000, 2048)
    torch.save(bad, weights / INC.INCEPTION_FILE)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"fc.weight has shape \(1000, 2048\)"):
        X.load_inception("inception", weights_dir=weights, allow_unverified=True)
    del bad["fc.weight"]
    torch.save(bad, weights / INC.INCEPTION_FILE)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="'fc.weight' is missing"):
        X.load_inception("inception", weights_dir=weights, allow_unverified=True)


# ---- a file that would run code ------------------------------------------------------------------------
def test_a_pickle_bomb_with_a_wrong_digest_is_refused_unread(weights, state, tmp_path):
    marker = tmp_path / "pwned"
    path = bomb_file(weights, state, marker)
    err = refused(lambda: X.load_inception("inception", weights_dir=weights))
    assert not marker.exists(), "reading the weights file ran its code"
    assert isinstance(err, ValueError) and str(path) in str(err) and FLAG in str(err)


def test_a_pickle_bomb_never_runs_even_when_unverified_weights_are_allowed(weights, state, tmp_path):
    marker = tmp_path / "pwned"
    path = bomb_file(weights, state, marker)
    with pytest.warns(UserWarning, match="sha256"):
        err = refused(lambda: X.load_inception("inception", weights_dir=weights, allow_unverified=True))
    assert not marker.exists(), "reading the weights file ran its code"
    assert isinstance(err, ValueError) and str(path) in str(err) and "weights_only=True" in str(err)
    assert "\n" not in str(err)


def test_a_pickle_bomb_never_runs_even_with_the_released_digest(weights, state, tmp_path, monkeypatch):
    """Should a crafted file ever match the digest, weights_only=True still refuses it."""
    marker = tmp_path / "pwned"
    path = bomb_file(weights, state, marker)
    monkeypatch.setattr(INC, "INCEPTION_SHA256", file_sha256(path), raising=False)
    err = refused(lambda: X.load_inception("inception", weights_dir=weights))
    assert not marker.exists(), "reading the weights file ran its code"
    assert isinstance(err, ValueError) and "weights_only=True" in str(err)


# ---- the CLI and evaluate pass the opt-in on --------------------------------------------------------------
@pytest.mark.parametrize("command", ["evaluate", "compare"])
def test_the_flag_is_on_both_commands(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    assert FLAG in capsys.readouterr().out


@pytest.fixture
def image_sets(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for name in ("real", "fake"):
        np.savez(tmp_path / f"{name}.npz", images=rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8))
        paths.append(str(tmp_path / f"{name}.npz"))
    return paths


def test_compare_refuses_a_wrong_digest_with_an_error_line(weights, state, image_sets, capsys):
    torch.save(state, weights / INC.INCEPTION_FILE)
    rc = cli.main(["compare", *image_sets, "--features", "inception", "--weights-dir", str(weights)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and str(weights / INC.INCEPTION_FILE) in err and FLAG in err


class Stop(Exception):
    pass


def test_compare_passes_the_flag_on(weights, image_sets, monkeypatch):
    seen = {}

    def stub(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(X, "load_inception", stub)  # compare reads it from its module
    for argv, want in (([], False), ([FLAG], True)):
        with pytest.raises(Stop):
            cli.main(["compare", *image_sets, "--weights-dir", str(weights), *argv])
        assert seen["allow_unverified"] is want


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A run folder with a config and nothing else; evaluating it stops where the reference set would be read."""
    run = RunDir(tmp_path / "run").make()
    run.save_config(tiny_config())

    def reference_set(*args, **kwargs):
        raise Stop("got past the weights")

    monkeypatch.setattr(E, "reference_set", reference_set)
    return run


def test_evaluate_refuses_a_wrong_digest_before_sampling(run, weights, state, capsys):
    torch.save(state, weights / INC.INCEPTION_FILE)
    rc = cli.main(["evaluate", "--run", str(run.path), "--weights-dir", str(weights), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and str(weights / INC.INCEPTION_FILE) in err and FLAG in err


def test_evaluate_passes_the_flag_to_both_loaders(run, weights, monkeypatch):
    seen = []

    def inception(*args, **kwargs):
        seen.append(("inception", kwargs["allow_unverified"]))
        return X.load_inception("random-inception")

    def lpips(*args, **kwargs):
        seen.append(("lpips", kwargs["allow_unverified"]))
        raise Stop

    monkeypatch.setattr(E, "load_inception", inception)
    monkeypatch.setattr(E, "load_lpips", lpips)
    for argv in (["--neighbours", "2"], ["--vqgan"]):
        seen.clear()
        with pytest.raises(Stop):
            cli.main(["evaluate", "--run", str(run.path), "--weights-dir", str(weights), "--device", "cpu", FLAG,
                      *argv])
        assert seen == [("inception", True), ("lpips", True)]


def test_evaluate_refuses_a_wrong_vgg16_digest_for_the_neighbours(run, weights, state, capsys, monkeypatch):
    vgg16_features_file(weights)
    monkeypatch.setattr(E, "load_inception", lambda *a, **k: X.load_inception("random-inception"))
    rc = cli.main(["evaluate", "--run", str(run.path), "--weights-dir", str(weights), "--device", "cpu",
                   "--neighbours", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "vgg16-397923af.pth" in err and FLAG in err
