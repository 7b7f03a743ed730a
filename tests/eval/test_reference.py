"""ulib.eval.reference: the reference set's features cached and rebuilt when stale, its fixed subsets, and a
reference larger than the kept set streamed (issue 14)."""
import torch

from ulib.eval import reference as REF
from ulib.eval.metrics import FeatureMoments
from ulib.eval.recipe import PAPER_N_SAMPLES
from ulib.io.rundir import RunDir
from ulib.profiles import get_profile

from helpers import CACHE
from helpers import tiny_config as _cfg


# ---- the reference cache -----------------------------------------------------------------------------
class StubInception:
    """Stands in for InceptionV3: 'features' are the mean colour, so the cache logic runs in milliseconds."""

    features, key, calls = "random-inception", "stub", 0
    pool, logits, layers = "2048", "logits_unbiased", ("2048", "logits_unbiased")

    def __call__(self, x):
        StubInception.calls += 1
        f = x.float().flatten(2).mean(2)
        return {"2048": f, "logits_unbiased": f}


def test_reference_cache_is_reused_and_rebuilt_when_stale(tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    cfg = get_profile("smoke", [f"data.cache_dir={CACHE}"])
    inc = StubInception()
    f1, key = REF.reference_features(run, cfg, inc, "val", 10, batch_size=4, show_progress=False)
    n = StubInception.calls
    assert f1.shape == (10, 3) and key["n"] == 10 and key["subset_seed"] == 0 and n == 3
    f2, _ = REF.reference_features(run, cfg, inc, "val", 10, batch_size=4, show_progress=False)
    assert StubInception.calls == n and torch.equal(f1, f2)  # cached
    cfg2 = get_profile("smoke", [f"data.cache_dir={CACHE}", "data.split_seed=1"])  # other images
    f3, _ = REF.reference_features(run, cfg2, inc, "val", 10, batch_size=4, show_progress=False)
    assert StubInception.calls > n and "stale (data_fingerprint" in capsys.readouterr().err
    assert not torch.equal(f1, f3)
    assert REF.reference_indices(5, None) == [0, 1, 2, 3, 4]
    assert REF.reference_indices(100, 7) == REF.reference_indices(100, 7) and len(REF.reference_indices(100, 7)) == 7


# ---- a reference larger than the kept set -----------------------------------------------------------
class FakeInception:
    """Stands in for InceptionV3: 'features' are the images' first pixels (2048 of them)."""
    features, key = "random-inception", "fake"
    layers, pool, logits = ("2048", "logits_unbiased"), "2048", "logits_unbiased"

    def __call__(self, images):
        f = images.flatten(1)[:, :2048].float()
        return {"2048": f, "logits_unbiased": f[:, :8]}


def test_reference_larger_than_the_kept_set_is_streamed(vqgan_run, monkeypatch):
    cfg = _cfg(["data.img_size=32"])  # 3 x 32 x 32 > 2048 values per image
    monkeypatch.setattr(REF, "REFERENCE_KEEP", 10)
    feats, key, moments = REF.reference_set(vqgan_run, cfg, FakeInception(), "val", "all", 8, False)
    assert key["n"] == key["n_split"] > 10 and len(feats) == 10 and key["limit"] == "all"
    monkeypatch.setattr(REF, "REFERENCE_KEEP", 1000)
    full, _, none = REF.reference_set(vqgan_run, cfg, FakeInception(), "val", key["n"] + 5, 8, False)
    monkeypatch.setattr(REF, "REFERENCE_KEEP", 10)
    assert none is None and len(full) == key["n"]
    exact = FeatureMoments.of(full)
    assert moments.n == key["n"] and torch.allclose(moments.cov, exact.cov, atol=1e-10)
    again = REF.reference_set(vqgan_run, cfg, FakeInception(), "val", "all", 8, False)  # from the cache
    assert torch.equal(again[0], feats) and torch.equal(again[2].m2, moments.m2)
    # the default takes every image of a split up to the paper's 50,000, and says so in the record
    _, key, _ = REF.reference_set(vqgan_run, cfg, FakeInception(), "val", None, 8, False)
    assert key["n"] == key["n_split"] and key["limit"] == "default: at most 50000"
    assert REF.DEFAULT_MAX_REFERENCE == PAPER_N_SAMPLES == 50_000
    assert REF.reference_indices(3_000_000, REF.DEFAULT_MAX_REFERENCE)[:3] == sorted(REF.reference_indices(
        3_000_000, 50_000))[:3] and len(REF.reference_indices(3_000_000, REF.DEFAULT_MAX_REFERENCE)) == 50_000
