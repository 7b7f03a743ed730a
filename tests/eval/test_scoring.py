"""ulib.eval.scoring: the figure registry that compare, QualityMeter, evaluate and the records iterate."""
import pytest
import torch

from ulib.eval import compare as C
from ulib.eval import metrics as M
from ulib.eval import records as R
from ulib.eval import scoring as S
from ulib.eval.quality import CATEGORY_FIGURES, FIGURES, PRDC, QualityMeter, within_noise


class StubSpace:
    """Features: the first 6 pixel values; class logits: one-hot of the first pixel value mod 4."""

    features, pool, logits, layers = "stub", "f", "l", ("f", "l")

    def __call__(self, images):
        x = images.float().flatten(1)
        return {"f": x[:, :6], "l": torch.nn.functional.one_hot(images.flatten(1)[:, 0].long() % 4, 4).float()}


def stub_images(n, seed):
    return torch.randint(0, 256, (n, 3, 4, 4), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def mean_gap(p: S.Pair) -> dict:
    """A toy figure: the distance between the two sets' mean features."""
    return {"mean_gap": float((p.ref.mean(0) - p.fake.mean(0)).norm())}


GAP = S.Family("gap", (S.Figure("mean_gap", True, ".2f"),), value=mean_gap,
               record=lambda r: {"mean_gap": float((r.real.mean(0) - r.fake.mean(0)).norm())},
               columns=(S.Column("gap", "mean_gap", ".1f"),), summary=lambda r: f"gap {r['mean_gap']:.1f}")


def test_the_built_in_figures_and_their_directions():
    assert FIGURES == ("fid", "kid", "precision", "recall", "density", "coverage", "category_kl_bits",
                       "category_entropy_bits", "top_category_share")
    assert C.FIGURES == FIGURES[:6] and PRDC == FIGURES[2:6] and CATEGORY_FIGURES == FIGURES[6:]
    assert [S.figure(n).lower_is_better for n in ("fid", "kid", "precision", "coverage")] == [True, True, False, False]
    assert [f.name for f in S.recorded("openmoji")] == ["fid", "prdc", "kid", "is"], "the paper's figures first"
    with pytest.raises(KeyError, match="'nope'; registered: fid, kid"):
        S.figure("nope")
    assert within_noise({"precision": 0.5}, {"precision": 0.9}, "precision", z=0) is False, "higher is better"
    assert within_noise({"fid": 9.0}, {"fid": 10.0}, z=0) and not within_noise({"fid": 11.0}, {"fid": 10.0}, z=0)


def test_a_figure_registered_once_reaches_compare_the_meter_evaluate_and_the_records(monkeypatch):
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(40, 6, generator=g), torch.randn(30, 6, generator=g) + 1.0
    assert "mean_gap" not in C.figures(real, fake, k=3)
    monkeypatch.setitem(S.FAMILIES, "gap", GAP)  # the registration line

    gap = float((real.mean(0) - fake.mean(0)).norm())
    r = C.compare_features(real, fake, draws=3, k=3)
    assert r["mean_gap"] == pytest.approx(gap) and r["std"]["mean_gap"] > 0 and "mean_gap" in r["noise_floor"]
    assert list(r)[3:10] == ["fid", "kid", "precision", "recall", "density", "coverage", "mean_gap"]
    assert "\nmean_gap " in C.format_report(r)

    meter = QualityMeter(StubSpace(), stub_images(40, 0), k=3)
    row = meter.score(stub_images(30, 1), draws=4, seed=0, figures=("mean_gap",))
    feats = StubSpace()(stub_images(30, 1))["f"]
    assert row["mean_gap"] == pytest.approx(float((meter.ref_features.mean(0) - feats.mean(0)).norm()))
    assert row["mean_gap_std"] > 0 and "fid_std" not in row and "mean_gap" in meter.figures
    # a family without a fast path is drawn as its value on the resampled sets
    ri, fi = torch.arange(40).flip(0)[:20], torch.arange(10)
    drawn = meter._draw(ri, fi, feats, feats, meter._resampler(feats), figures=("mean_gap",))
    assert drawn == {"mean_gap": pytest.approx(float((meter.ref_features[ri].mean(0) - feats[fi].mean(0)).norm()))}

    recipe = S.Recipe(real, None, real[:30], fake, torch.randn(30, 11, generator=g), 3)
    entries = S.record_figures(recipe, "openmoji")
    assert list(entries)[-1] == "mean_gap" and entries["mean_gap"] == pytest.approx(gap)
    record = {"kind": "samples", "features": "openmoji", "time": "t", "prior_kind": "absorbing", "prior_step": 1,
              "ema": True, "n_samples": 30, "steps": 4, "temperature": 1.0, "reference": "train", "n_reference": 40,
              "seed": 0, "paper": None, **entries}
    table = R.evaluation_table([record])
    assert table.splitlines()[0].endswith("| KID ×10³ | IS | gap |") and table.endswith(f"| {gap:.1f} |")
    assert R.summary(record).endswith(f", gap {gap:.1f}")


def test_a_figure_that_belongs_to_one_space_is_computed_only_there(monkeypatch):
    monkeypatch.setitem(S.FAMILIES, "gap", S.Family("gap", GAP.figures, value=mean_gap, spaces=("stub",)))
    assert "mean_gap" not in C.figures(torch.randn(10, 6), torch.randn(10, 6), k=3)
    assert "mean_gap" in C.figures(torch.randn(10, 6), torch.randn(10, 6), k=3, space="stub")
    assert "mean_gap" in QualityMeter(StubSpace(), stub_images(20, 0), k=3).score(stub_images(10, 1), draws=0)
    assert [f.name for f in S.families("openmoji")] == ["fid", "kid", "prdc", "categories"]


def test_the_built_in_families_compute_what_the_metrics_do():
    """compare's figures are the metrics' (FID, KID's mean, PRDC); a draw's fast path equals its value on the
    resampled sets (FID from the counts, PRDC from distances computed once)."""
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(30, 5, generator=g), torch.randn(25, 5, generator=g)
    out = C.figures(real, fake, k=3, kid_subsets=5)
    assert out == {"fid": M.fid(real, fake), "kid": M.kid(real, fake, subsets=5)["kid_mean"], **M.prdc(real, fake, 3)}
    pair = S.Pair(real, fake, k=3, kid_subsets=5)
    ri, fi = torch.randint(30, (30,), generator=g), torch.randint(25, (25,), generator=g)
    cr, cf = torch.bincount(ri, minlength=30).numpy(), torch.bincount(fi, minlength=25).numpy()
    for fam in (S.FID, S.PRDC):
        prepared = fam.prepare({}, real, fake, 3) if fam.prepare else None
        fast = S.drawn(S.Draw(ri, fi, cr, cf, pair, None, prepared), fam)
        assert fast == pytest.approx(fam.value(S.Pair(real[ri], fake[fi], k=3)), rel=1e-6)
