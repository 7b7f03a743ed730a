"""FID of image sets in several feature spaces with shared bootstrap draws (ulib.eval.metric_checks)."""
import numpy as np
import pytest
import torch

from ulib.eval import metric_checks as MC
from ulib.eval import metrics as M


def _sets(seed=0):
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(60, 6, generator=g)
    test = torch.randn(30, 6, generator=g) + 0.3
    return {"ref": ref, "test": test, "copy": test.clone(), "other": torch.randn(30, 6, generator=g) * 1.5}


def test_every_space_scores_the_same_resamples_and_tied_sets_are_drawn_together():
    """A space whose features are twice another's gives exactly 4x its FID in every draw (same items drawn in both
    spaces); a set tied to another with the same features gives the same FID in every draw; untied, it does not."""
    x = _sets()
    spaces = {"x": x, "2x": {k: 2 * v for k, v in x.items()}}
    pairs = [("test", "ref"), ("copy", "ref"), ("other", "ref")]
    out = MC.fids_across_spaces(spaces, pairs, draws=30, seed=1, tied={"copy": "test"})
    assert out["x"][("test", "ref")]["fid"] == pytest.approx(M.fid(x["test"], x["ref"]), rel=1e-6)
    for pair in pairs:
        np.testing.assert_allclose(out["2x"][pair]["draws"], 4 * out["x"][pair]["draws"], rtol=1e-9)
        assert out["x"][pair]["draws"].shape == (30,) and out["x"][pair]["draws"].std() > 0
    np.testing.assert_array_equal(out["x"][("copy", "ref")]["draws"], out["x"][("test", "ref")]["draws"])
    free = MC.fids_across_spaces({"x": x}, pairs, draws=30, seed=1)
    assert not np.array_equal(free["x"][("copy", "ref")]["draws"], free["x"][("test", "ref")]["draws"])
    assert "draws" not in MC.fids_across_spaces({"x": x}, pairs, draws=0)["x"][pairs[0]]


def test_spaces_must_hold_the_same_sets():
    x = _sets()
    with pytest.raises(ValueError, match="same sets"):
        MC.fids_across_spaces({"a": x, "b": {**x, "test": x["test"][:10]}}, [("test", "ref")], draws=2)
    with pytest.raises(ValueError, match="no set 'nope'"):
        MC.fids_across_spaces({"a": x}, [("nope", "ref")], draws=2)
    with pytest.raises(ValueError, match="tied"):
        MC.fids_across_spaces({"a": x}, [("test", "ref")], draws=2, tied={"ref": "test"})
