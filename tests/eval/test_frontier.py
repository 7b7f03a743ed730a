"""The decoding lab's measurement (ulib/eval/frontier.py): what each image costs, counted from the steps; the
rows of the frontier, each setting against the baseline as a paired difference; the read-offs."""
from __future__ import annotations

import math

import matplotlib
import pytest
import torch

from ulib.eval import frontier as Fr
from ulib.models import SamplingModels
from ulib.sample.api import sample_tokens

from helpers import tiny_transformer

matplotlib.use("Agg")
K, GRID, T = 16, (4, 4), 16
L = GRID[0] * GRID[1]


class PixelsOfTokens(torch.nn.Module):
    """A stand-in VQGAN: token c -> a 2x2 grey patch of value c / K (so images differ when tokens do)."""

    def decode(self, tokens):  # (n, h, w) -> (n, 3, 2h, 2w)
        x = tokens.float()[:, None] / K * 2 - 1
        return x.repeat_interleave(2, 2).repeat_interleave(2, 3).expand(-1, 3, -1, -1)


@pytest.fixture(scope="module")
def models():
    return SamplingModels(PixelsOfTokens(), tiny_transformer(K, L), "absorbing", T, K, GRID, T, 1.0, 8, "test")


def test_draw_samples_what_sample_tokens_samples_and_counts_each_images_calls(models):
    d = Fr.draw(models, Fr.Setting("random", T), 6, seed=3, batch_size=4)
    g = torch.Generator().manual_seed(3)  # one generator across the batches, as draw does
    direct = torch.cat([sample_tokens(models, 4, steps=T, generator=g).view(4, -1),
                        sample_tokens(models, 2, steps=T, generator=g).view(2, -1)])
    assert torch.equal(d.tokens, direct)  # recording changes nothing
    assert (d.reveal_step >= 0).all()  # every position written once at least
    # an image's calls are the distinct steps at which its positions were revealed (its empty steps are skipped)
    assert d.calls.tolist() == [len(set(r.tolist())) for r in d.reveal_step]
    assert d.calls.max() <= T and d.batch_passes >= d.calls[:4].max() + d.calls[4:].max()
    assert d.seconds > 0 and d.seconds_per_image == d.seconds / 6


def test_confidence_costs_every_image_its_steps(models):
    d = Fr.draw(models, Fr.Setting.of("confidence", 5, schedule="linear"), 6, seed=0, batch_size=3)
    assert d.calls.tolist() == [5] * 6 and d.batch_passes == 2 * 5  # each step reveals >= 1 per image
    # the linear schedule reveals floor-spaced counts: after step j, floor(16 (1 - (j+1)/5)) remain masked
    per_step = [(d.reveal_step == j).sum(1).tolist() for j in range(5)]
    assert per_step == [[16 - 12] * 6, [12 - 9] * 6, [9 - 6] * 6, [6 - 3] * 6, [3] * 6]


def test_setting_checks_its_method_and_options():
    assert Fr.Setting.of("confidence", 8, schedule="linear").label == "confidence, 8 steps, schedule=linear"
    with pytest.raises(ValueError, match=r"option\(s\) \['shedule'\] unknown; allowed: \('schedule'"):
        Fr.Setting.of("confidence", 8, shedule="linear")
    with pytest.raises(ValueError, match="method='nope'; allowed"):
        Fr.Setting("nope")
    with pytest.raises(ValueError, match="n=0"):
        Fr.draw(None, Fr.Setting("random"), 0)


class FakeMeter:
    """FID = 10 x the mean pixel of a set; the difference's interval is +-1 around it (std 0.5)."""

    def __init__(self):
        self.paired = []

    def fid(self, images):
        return 10 * images.float().mean().item()

    def floor(self, n, **kw):
        return {"fid": 1.0, "fid_std": 0.1}

    def score(self, images, **kw):
        return {"fid": self.fid(images), "fid_std": 0.25}

    def difference(self, a, b, *, paired=False, **kw):
        self.paired.append(paired)
        d = self.fid(a) - self.fid(b)
        return {"fid": d, "fid_std": 0.5, "fid_lo": d - 1, "fid_hi": d + 1, "fid_p": 0.5, "bootstrap_draws": 200}


def test_measure_puts_the_baseline_first_and_pairs_every_setting_with_it(models):
    meter = FakeMeter()
    settings = [Fr.Setting.of("confidence", 4), Fr.Setting("random", 2), Fr.Setting("random", T)]
    rows, drawn = Fr.measure(models, meter, settings, 5, seed=1, draws=10, log=None)
    assert [r["setting"] for r in rows] == ["random, 16 steps", "confidence, 4 steps", "random, 2 steps"]
    assert "fid_minus_base" not in rows[0] and meter.paired == [True, True]
    for r in rows[1:]:
        assert math.isclose(r["fid_minus_base"], r["fid"] - rows[0]["fid"], abs_tol=1e-9)
        assert r["fid_minus_base_lo"] == r["fid_minus_base"] - 1
        assert r["vs_base"] == ("lower" if r["fid_minus_base"] < -1 else "higher" if r["fid_minus_base"] > 1
                                else "not resolved at this n")
    assert rows[1]["calls_per_image"] == 4 and "schedule" not in rows[1]  # only the options a setting gives
    assert rows[2]["calls_max"] <= 2 and set(drawn) == set(settings)
    assert all(r["floor_fid"] == 1.0 and r["n"] == 5 and r["seed"] == 1 for r in rows)


def test_fewest_calls_and_best_within_read_the_rows():
    rows = [{"method": "random", "calls_per_image": 40.0, "fid": 40.0},
            {"method": "halton", "calls_per_image": 8.0, "fid": 45.0, "fid_minus_base_lo": 0.5},  # worse: resolved
            {"method": "halton", "calls_per_image": 16.0, "fid": 41.0, "fid_minus_base_lo": -0.5},
            {"method": "halton", "calls_per_image": 32.0, "fid": 39.0, "fid_minus_base_lo": -2.0},
            {"method": "eb", "calls_per_image": 4.0, "fid": 60.0, "fid_minus_base_lo": 10.0}]
    rows += [{"method": "confidence", "calls_per_image": 4.0, "fid": 41.0, "fid_minus_base_lo": -1.0},  # lucky
             {"method": "confidence", "calls_per_image": 8.0, "fid": 45.0, "fid_minus_base_lo": 0.2},  # worse
             {"method": "confidence", "calls_per_image": 16.0, "fid": 39.0, "fid_minus_base_lo": -3.0}]
    best = Fr.fewest_calls(rows)
    assert best["random"] is rows[0] and best["halton"] is rows[2] and best["eb"] is None
    assert best["confidence"] is rows[-1]  # read down from the most calls: 8 is worse, so 4 does not count
    assert Fr.best_within(rows, 8) is rows[5] and Fr.best_within(rows, 3) is None


def test_plot_frontier_draws_a_line_per_method():
    import matplotlib.pyplot as plt

    rows = [{"method": "random", "setting": "random, 64 steps", "calls_per_image": 40.0, "fid": 40.0, "fid_std": 1.0,
             "floor_fid": 5.0, "n": 100, "seconds_per_image": 0.1},
            {"method": "confidence", "calls_per_image": 8.0, "fid": 30.0, "fid_std": 1.0, "seconds_per_image": 0.02},
            {"method": "confidence", "calls_per_image": 16.0, "fid": 28.0, "fid_std": 1.0, "seconds_per_image": 0.04}]
    fig, (a, b) = plt.subplots(1, 2)
    Fr.plot_frontier(rows, a, b)
    labels = [ln.get_label() for ln in a.get_lines()]
    assert labels[:2] == ["random", "confidence"] and len(b.get_lines()) == 2
    assert a.get_lines()[1].get_xydata().tolist() == [[8.0, 30.0], [16.0, 28.0]]
    plt.close(fig)


def test_draw_uses_the_generator_of_its_seed(models):
    a = Fr.draw(models, Fr.Setting("random", 4), 3, seed=5).tokens
    assert torch.equal(a, Fr.draw(models, Fr.Setting("random", 4), 3, seed=5).tokens)
    assert not torch.equal(a, Fr.draw(models, Fr.Setting("random", 4), 3, seed=6).tokens)
