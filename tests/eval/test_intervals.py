"""ulib.eval.intervals: t intervals, Wilson intervals and bootstrap summaries on hand-computed cases.

Closed forms used as the hand checks: Student's t on 1 df is Cauchy, P(|T| > t) = 1 - (2/pi) atan|t|; on 2 df
P(|T| > t) = 1 - |t| / sqrt(t^2 + 2), so t_{0.975, 2} solves t / sqrt(t^2 + 2) = 0.95: t = sqrt(2 * 0.9025 /
0.0975) = 4.3027."""
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ulib.eval import intervals


# ---- t intervals -------------------------------------------------------------------------------------------
def test_t_interval_three_seeds_the_issues_example():
    """Three differences 4.9 + sqrt(3) * (-1, 0, 1): mean 4.9, sd sqrt 3, se 1, so t = 4.9 on 2 df and
    p = 1 - 4.9 / sqrt(4.9^2 + 2) = 1 - 4.9 / 5.1 = 2/51 = 0.0392 ('4.9 SE with 3 seeds is p ~ 0.04')."""
    r = intervals.t_interval(4.9 + math.sqrt(3) * np.array([-1.0, 0.0, 1.0]))
    assert r.k == 3 and r.df == 2 and r.mean == pytest.approx(4.9)
    assert r.sd == pytest.approx(math.sqrt(3)) and r.se == pytest.approx(1.0)
    assert r.t_crit == pytest.approx(math.sqrt(2 * 0.9025 / 0.0975)) == pytest.approx(4.3027, abs=1e-4)
    assert r.t == pytest.approx(4.9) and r.p == pytest.approx(2 / 51)
    assert (r.lo, r.hi) == pytest.approx((4.9 - 4.302653, 4.9 + 4.302653), abs=1e-6)
    assert r.as_dict()["p"] == r.p


def test_t_interval_two_seeds_is_cauchy():
    """Values 1, 3: mean 2, sd sqrt 2, se 1, t = 2 on 1 df: p = 1 - (2/pi) atan 2 = 0.2952;
    t_{0.975, 1} = tan(0.475 pi) = 12.706."""
    r = intervals.t_interval([1, 3])
    assert r.se == pytest.approx(1.0) and r.t == pytest.approx(2.0) and r.df == 1
    assert r.p == pytest.approx(1 - 2 / math.pi * math.atan(2)) == pytest.approx(0.2952, abs=1e-4)
    assert r.t_crit == pytest.approx(math.tan(0.475 * math.pi)) == pytest.approx(12.706, abs=1e-3)
    assert intervals.t_interval([1, 3], confidence=0.5).t_crit == pytest.approx(1.0)  # tan(pi / 4): the quartiles


def test_t_interval_refuses_one_value_and_handles_no_spread():
    with pytest.raises(ValueError, match=">= 2 values"):
        intervals.t_interval([1.7])
    with pytest.raises(ValueError, match="finite"):
        intervals.t_interval([1.0, math.nan])
    with pytest.raises(ValueError, match="confidence"):
        intervals.t_interval([1, 2], confidence=95)
    same = intervals.t_interval([2.0, 2.0, 2.0])
    assert same.se == 0 and same.t == math.inf and same.p == 0 and same.lo == same.hi == 2.0
    zero = intervals.t_interval([0.0, 0.0])
    assert zero.t == 0 and zero.p == 1


# ---- proportions ---------------------------------------------------------------------------------------------
def test_wilson_interval_of_the_issues_share():
    """169 / 300 = 56.3 %: z = 1.959964, z^2 / n = 0.0128049; centre (0.563333 + 0.006402) / 1.012805 = 0.562533;
    half 1.959964 / 1.012805 * sqrt(0.563333 * 0.436667 / 300 + 3.841459 / 360000) = 0.055774."""
    r = intervals.proportion_interval(169, 300)
    assert r.share == pytest.approx(0.563333, abs=1e-6) and r.se == pytest.approx(0.028635, abs=1e-6)
    assert (r.lo, r.hi) == pytest.approx((0.562533 - 0.055774, 0.562533 + 0.055774), abs=2e-6)
    ci = scipy_stats.binomtest(169, 300).proportion_ci(method="wilson")  # scipy's own Wilson, independently
    assert (r.lo, r.hi) == pytest.approx((ci.low, ci.high))
    assert r.p is None and intervals.proportion_interval(169, 300, against=0.5).p == pytest.approx(
        scipy_stats.binomtest(169, 300, 0.5).pvalue)


def test_wilson_interval_at_the_edges():
    """0 of 10: [0, z^2 / (n + z^2)] = [0, 3.841459 / 13.841459] = [0, 0.27753]; 10 of 10 mirrors it; the Wald
    interval (se = 0) would claim certainty."""
    none = intervals.proportion_interval(0, 10)
    assert none.lo == 0 and none.hi == pytest.approx(0.27753, abs=1e-5) and none.se == 0
    every = intervals.proportion_interval(10, 10)
    assert every.hi == 1 and every.lo == pytest.approx(1 - 0.27753, abs=1e-5)
    # an exact binomial p by hand: 0 of 10 against 1/2 is 2 * 0.5^10
    assert intervals.proportion_interval(0, 10, against=0.5).p == pytest.approx(2 * 0.5**10)
    for bad in [(11, 10), (-1, 10), (1, 0), (1.5, 10), (True, 3)]:
        with pytest.raises(ValueError, match="successes"):
            intervals.proportion_interval(*bad)


# ---- bootstrap ---------------------------------------------------------------------------------------------
def test_bootstrap_summary_hand_case():
    """Draws 1..200: std sqrt(200 * 201 / 12) = 57.879; the 2.5 % quantile sits at position 0.025 * 199 = 4.975
    of the sorted draws, 5 + 0.975 = 5.975; the 97.5 % at 194.025, i.e. 195.025."""
    b = intervals.bootstrap_summary(np.arange(1, 201), estimate=100.0)
    assert intervals.DEFAULT_DRAWS == 200 and b.draws == 200 and b.estimate == 100
    assert b.std == pytest.approx(math.sqrt(200 * 201 / 12)) and (b.lo, b.hi) == pytest.approx((5.975, 195.025))
    with pytest.raises(ValueError, match=">= 2 draws"):
        intervals.bootstrap_summary([1.0], 1.0)


def test_bootstrap_summary_normal_interval_is_centred_on_the_estimate():
    """A single set's FID draws all sit above its estimate (resamples repeat images): the percentile interval of
    draws 101..300 misses an estimate of 50, the normal one is 50 -/+ 1.959964 * 57.879 and holds it."""
    draws = np.arange(101, 301)
    pct = intervals.bootstrap_summary(draws, estimate=50.0)
    assert pct.method == "percentile" and pct.lo > 50
    b = intervals.bootstrap_summary(draws, estimate=50.0, method="normal")
    half = 1.959964 * math.sqrt(200 * 201 / 12)
    assert b.method == "normal" and b.std == pytest.approx(pct.std)
    assert (b.lo, b.hi) == pytest.approx((50 - half, 50 + half), rel=1e-6)
    with pytest.raises(ValueError, match="method='bca'"):
        intervals.bootstrap_summary(draws, 50.0, method="bca")


def test_bootstrap_p_hand_cases():
    assert intervals.bootstrap_p(np.arange(-10, 190)) == pytest.approx(2 * 11 / 200)  # 11 of 200 draws at or below 0
    assert intervals.bootstrap_p(np.arange(1, 201)) == pytest.approx(1 / 200), "no draw below 0: floored at 1 / B"
    assert intervals.bootstrap_p(np.zeros(200)) == 1.0, "all draws at 0: capped at 1"
    assert intervals.bootstrap_p(-np.arange(1, 101)) == pytest.approx(0.01)
