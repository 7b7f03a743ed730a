"""ulib.eval.stats: t intervals, Wilson intervals, bootstrap summaries, verdicts and trends on hand-computed cases.

Closed forms used as the hand checks: Student's t on 1 df is Cauchy, P(|T| > t) = 1 - (2/pi) atan|t|; on 2 df
P(|T| > t) = 1 - |t| / sqrt(t^2 + 2), so t_{0.975, 2} solves t / sqrt(t^2 + 2) = 0.95: t = sqrt(2 * 0.9025 /
0.0975) = 4.3027; on 3 df P(T < t) = 1/2 + (u / (1 + u^2) + atan u) / pi with u = t / sqrt 3."""
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ulib.eval import stats as S


# ---- t intervals -------------------------------------------------------------------------------------------
def test_t_interval_three_seeds_the_issues_example():
    """Three differences 4.9 + sqrt(3) * (-1, 0, 1): mean 4.9, sd sqrt 3, se 1, so t = 4.9 on 2 df and
    p = 1 - 4.9 / sqrt(4.9^2 + 2) = 1 - 4.9 / 5.1 = 2/51 = 0.0392 ('4.9 SE with 3 seeds is p ~ 0.04')."""
    r = S.t_interval(4.9 + math.sqrt(3) * np.array([-1.0, 0.0, 1.0]))
    assert r.k == 3 and r.df == 2 and r.mean == pytest.approx(4.9)
    assert r.sd == pytest.approx(math.sqrt(3)) and r.se == pytest.approx(1.0)
    assert r.t_crit == pytest.approx(math.sqrt(2 * 0.9025 / 0.0975)) == pytest.approx(4.3027, abs=1e-4)
    assert r.t == pytest.approx(4.9) and r.p == pytest.approx(2 / 51)
    assert (r.lo, r.hi) == pytest.approx((4.9 - 4.302653, 4.9 + 4.302653), abs=1e-6)
    assert r.as_dict()["p"] == r.p


def test_t_interval_two_seeds_is_cauchy():
    """Values 1, 3: mean 2, sd sqrt 2, se 1, t = 2 on 1 df: p = 1 - (2/pi) atan 2 = 0.2952;
    t_{0.975, 1} = tan(0.475 pi) = 12.706."""
    r = S.t_interval([1, 3])
    assert r.se == pytest.approx(1.0) and r.t == pytest.approx(2.0) and r.df == 1
    assert r.p == pytest.approx(1 - 2 / math.pi * math.atan(2)) == pytest.approx(0.2952, abs=1e-4)
    assert r.t_crit == pytest.approx(math.tan(0.475 * math.pi)) == pytest.approx(12.706, abs=1e-3)
    assert S.t_interval([1, 3], confidence=0.5).t_crit == pytest.approx(1.0)  # tan(pi / 4): the quartiles


def test_t_interval_refuses_one_value_and_handles_no_spread():
    with pytest.raises(ValueError, match=">= 2 values"):
        S.t_interval([1.7])
    with pytest.raises(ValueError, match="finite"):
        S.t_interval([1.0, math.nan])
    with pytest.raises(ValueError, match="confidence"):
        S.t_interval([1, 2], confidence=95)
    same = S.t_interval([2.0, 2.0, 2.0])
    assert same.se == 0 and same.t == math.inf and same.p == 0 and same.lo == same.hi == 2.0
    zero = S.t_interval([0.0, 0.0])
    assert zero.t == 0 and zero.p == 1


# ---- proportions ---------------------------------------------------------------------------------------------
def test_wilson_interval_of_the_issues_share():
    """169 / 300 = 56.3 %: z = 1.959964, z^2 / n = 0.0128049; centre (0.563333 + 0.006402) / 1.012805 = 0.562533;
    half 1.959964 / 1.012805 * sqrt(0.563333 * 0.436667 / 300 + 3.841459 / 360000) = 0.055774."""
    r = S.proportion_interval(169, 300)
    assert r.share == pytest.approx(0.563333, abs=1e-6) and r.se == pytest.approx(0.028635, abs=1e-6)
    assert (r.lo, r.hi) == pytest.approx((0.562533 - 0.055774, 0.562533 + 0.055774), abs=2e-6)
    ci = scipy_stats.binomtest(169, 300).proportion_ci(method="wilson")  # scipy's own Wilson, independently
    assert (r.lo, r.hi) == pytest.approx((ci.low, ci.high))
    assert r.p is None and S.proportion_interval(169, 300, against=0.5).p == pytest.approx(
        scipy_stats.binomtest(169, 300, 0.5).pvalue)


def test_wilson_interval_at_the_edges():
    """0 of 10: [0, z^2 / (n + z^2)] = [0, 3.841459 / 13.841459] = [0, 0.27753]; 10 of 10 mirrors it; the Wald
    interval (se = 0) would claim certainty."""
    none = S.proportion_interval(0, 10)
    assert none.lo == 0 and none.hi == pytest.approx(0.27753, abs=1e-5) and none.se == 0
    every = S.proportion_interval(10, 10)
    assert every.hi == 1 and every.lo == pytest.approx(1 - 0.27753, abs=1e-5)
    # an exact binomial p by hand: 0 of 10 against 1/2 is 2 * 0.5^10
    assert S.proportion_interval(0, 10, against=0.5).p == pytest.approx(2 * 0.5**10)
    for bad in [(11, 10), (-1, 10), (1, 0), (1.5, 10), (True, 3)]:
        with pytest.raises(ValueError, match="successes"):
            S.proportion_interval(*bad)


# ---- bootstrap ---------------------------------------------------------------------------------------------
def test_bootstrap_summary_hand_case():
    """Draws 1..200: std sqrt(200 * 201 / 12) = 57.879; the 2.5 % quantile sits at position 0.025 * 199 = 4.975
    of the sorted draws, 5 + 0.975 = 5.975; the 97.5 % at 194.025, i.e. 195.025."""
    b = S.bootstrap_summary(np.arange(1, 201), estimate=100.0)
    assert S.DEFAULT_DRAWS == 200 and b.draws == 200 and b.estimate == 100
    assert b.std == pytest.approx(math.sqrt(200 * 201 / 12)) and (b.lo, b.hi) == pytest.approx((5.975, 195.025))
    with pytest.raises(ValueError, match=">= 2 draws"):
        S.bootstrap_summary([1.0], 1.0)


def test_bootstrap_summary_normal_interval_is_centred_on_the_estimate():
    """A single set's FID draws all sit above its estimate (resamples repeat images): the percentile interval of
    draws 101..300 misses an estimate of 50, the normal one is 50 -/+ 1.959964 * 57.879 and holds it."""
    draws = np.arange(101, 301)
    pct = S.bootstrap_summary(draws, estimate=50.0)
    assert pct.method == "percentile" and pct.lo > 50
    b = S.bootstrap_summary(draws, estimate=50.0, method="normal")
    half = 1.959964 * math.sqrt(200 * 201 / 12)
    assert b.method == "normal" and b.std == pytest.approx(pct.std)
    assert (b.lo, b.hi) == pytest.approx((50 - half, 50 + half), rel=1e-6)
    with pytest.raises(ValueError, match="method='bca'"):
        S.bootstrap_summary(draws, 50.0, method="bca")


def test_bootstrap_p_hand_cases():
    assert S.bootstrap_p(np.arange(-10, 190)) == pytest.approx(2 * 11 / 200)  # 11 of 200 draws at or below 0
    assert S.bootstrap_p(np.arange(1, 201)) == pytest.approx(1 / 200), "no draw below 0: floored at 1 / B"
    assert S.bootstrap_p(np.zeros(200)) == 1.0, "all draws at 0: capped at 1"
    assert S.bootstrap_p(-np.arange(1, 101)) == pytest.approx(0.01)


# ---- verdicts ------------------------------------------------------------------------------------------------
def test_verdict_reads_the_interval_against_the_claimed_side():
    # z = 1.8 / 0.95 = 1.895: interval 1.8 ± 1.862 holds 0, p = 2 (1 - Phi(1.895)) = 0.058
    v = S.verdict(1.8, 0.95, better="lower", label="FID 32 steps - 256 steps")
    assert v.verdict == "not resolved at this n" and v.z == pytest.approx(1.8 / 0.95) and v.t is None
    assert v.p == pytest.approx(0.0581, abs=1e-4) and v.interval == pytest.approx((1.8 - 1.862, 1.8 + 1.862),
                                                                                 abs=1e-3)
    assert v.sentence == ("FID 32 steps - 256 steps = +1.8 ± 0.9 (95 % interval -0.1 to +3.7, p = 0.058): "
                          "not resolved at this n")
    # z = 3: the interval 3 ± 1.96 lies above 0
    assert S.verdict(3.0, 1.0, better="higher").verdict == "reproduced"
    wrong = S.verdict(3.0, 1.0, better="lower")
    assert wrong.verdict == "not reproduced" and "against the claimed lower" in wrong.sentence
    assert S.verdict(-3.0, 1.0, better="lower").verdict == "reproduced"
    assert S.verdict(-3.0, 1.0, better="higher").verdict == "not reproduced"


def test_verdict_equivalence_needs_a_margin():
    """d = 0.1, se = 0.2: interval 0.1 ± 0.392 = (-0.292, 0.492). Without a margin: not resolved; inside ±0.5:
    equivalent, TOST p = max(P(Z > (0.1 + 0.5) / 0.2), P(Z < (0.1 - 0.5) / 0.2)) = P(Z < -2) = 0.02275;
    ±0.4 does not hold it."""
    assert S.verdict(0.1, 0.2, better="higher").verdict == "not resolved at this n"
    eq = S.verdict(0.1, 0.2, better="higher", margin=0.5)
    assert eq.verdict == "equivalent within ±margin" and eq.verdict in S.VERDICTS
    assert eq.p_equivalence == pytest.approx(0.02275, abs=1e-5)
    assert eq.sentence.endswith(": equivalent within ±0.5")
    narrow = S.verdict(0.1, 0.2, better="higher", margin=0.4)
    assert narrow.verdict == "not resolved at this n" and "not inside ±0.4" in narrow.sentence
    # a resolved direction wins over the margin
    assert S.verdict(0.3, 0.1, better="higher", margin=1.0).verdict == "reproduced"


def test_verdict_from_seeds_bootstrap_and_intervals():
    r = S.t_interval(4.9 + math.sqrt(3) * np.array([-1.0, 0.0, 1.0]))
    v = S.verdict(r.mean, r, better="higher", label="precision a - b")
    assert v.verdict == "reproduced" and v.t == pytest.approx(4.9) and v.df == 2 and v.z is None
    assert v.p == pytest.approx(2 / 51) and v.interval == pytest.approx((r.lo, r.hi))
    assert v.sentence == ("precision a - b = +4.9 ± 1.0 (95 % t interval on 2 df +0.6 to +9.2, p = 0.039): "
                          "reproduced (higher, as claimed)")
    assert S.verdict(1.0, 1.0, better="higher", df=2).interval == pytest.approx((1 - 4.302653, 1 + 4.302653))
    with pytest.raises(ValueError, match="mean"):
        S.verdict(1.0, r, better="higher")
    b = S.bootstrap_summary(np.arange(1, 201), estimate=100.0)
    vb = S.verdict(100.0, b, better="higher", p=S.bootstrap_p(np.arange(1, 201)))
    assert vb.interval == (b.lo, b.hi) and vb.se == b.std and vb.p == 0.005 and vb.verdict == "reproduced"
    given = S.verdict(0.5, (-0.1, 1.1), better="higher")  # se ~ 1.2 / 3.92 = 0.306
    assert given.se is None and given.verdict == "not resolved at this n"
    assert given.z == pytest.approx(0.5 / (1.2 / (2 * 1.959964)))
    for bad in [dict(better="smaller"), dict(better="lower", margin=0), dict(better="lower", df=0)]:
        with pytest.raises(ValueError):
            S.verdict(1.0, 1.0, **bad)
    with pytest.raises(ValueError, match="lower end"):
        S.verdict(1.0, (2.0, 0.0), better="lower")


def test_format_p():
    assert S.format_p(0.0392) == "p = 0.039" and S.format_p(0.0004) == "p < 0.001" and S.format_p(None) == "p n/a"


# ---- trends ----------------------------------------------------------------------------------------------
def test_trend_of_a_perfect_line():
    """y = 2x + 1 at x = 0..4 with errors 0.1: w = 100, Sxx = 100 * 10, slope 2, se 1 / sqrt(1000) = 0.0316,
    z = 63.2; rho = 1. Without errors the residuals are 0: se 0, p 0."""
    x, y = [0, 1, 2, 3, 4], [1, 3, 5, 7, 9]
    r = S.trend_test(x, y, y_se=[0.1] * 5)
    assert r.slope == pytest.approx(2) and r.intercept == pytest.approx(1)
    assert r.se == pytest.approx(1 / math.sqrt(1000))
    assert r.z == pytest.approx(2 * math.sqrt(1000)) and r.t is None and r.p < 1e-12 and r.rho == pytest.approx(1)
    assert r.reduced_chi2 == pytest.approx(0, abs=1e-12)
    plain = S.trend_test(x, y)
    assert plain.slope == pytest.approx(2) and plain.se == pytest.approx(0, abs=1e-12) and plain.p == pytest.approx(0)


def test_trend_of_a_flat_noisy_setting():
    """x = 0..4, y = 1, -1, 0, 1, -1: Sxy = -2, Sxx = 10, slope -0.2, intercept 0.4; residuals 0.6, -1.2, 0, 1.2,
    -0.6, s^2 = 3.6 / 3 = 1.2, se = sqrt(0.12) = 0.3464, t = -0.5774 on 3 df; with u = t / sqrt 3 = -1/3,
    P(T < t) = 1/2 + (-0.3 + atan(-1/3)) / pi = 0.30209, p = 0.60418. Spearman: y's ranks 4.5, 1.5, 3, 4.5, 1.5
    against 1..5: rho = -3 / sqrt(10 * 9) = -0.3162."""
    r = S.trend_test([0, 1, 2, 3, 4], [1, -1, 0, 1, -1])
    assert r.slope == pytest.approx(-0.2) and r.intercept == pytest.approx(0.4) and r.df == 3 and r.z is None
    assert r.se == pytest.approx(math.sqrt(0.12)) and r.t == pytest.approx(-1 / math.sqrt(3))
    assert r.p == pytest.approx(2 * (0.5 + (-0.3 + math.atan(-1 / 3)) / math.pi)) == pytest.approx(0.60418, abs=1e-5)
    assert r.rho == pytest.approx(-3 / math.sqrt(90))
    weighted = S.trend_test([0, 1, 2, 3, 4], [1, -1, 0, 1, -1], y_se=[1.0] * 5)  # se 1 / sqrt 10, z = -0.632
    assert weighted.se == pytest.approx(1 / math.sqrt(10)) and weighted.z == pytest.approx(-0.2 * math.sqrt(10))
    assert weighted.reduced_chi2 == pytest.approx(3.6 / 3)
    with pytest.raises(ValueError, match=">= 3"):
        S.trend_test([0, 1], [1, 2])
    with pytest.raises(ValueError, match="one value"):
        S.trend_test([1, 1, 1], [1, 2, 3])
    assert math.isnan(S.trend_test([0, 1, 2], [5, 5, 5]).rho)


def test_verdict_of_a_difference_row():
    """A QualityMeter.difference row's figure: std 0.5, interval (-2.0, -0.1), p 0.03 -> reproduced for 'lower'."""
    row = {"fid": -1.0, "fid_std": 0.5, "fid_lo": -2.0, "fid_hi": -0.1, "fid_p": 0.03, "bootstrap_draws": 200}
    v = S.verdict_of_difference(row, "fid", better="lower", label="FID 32 steps - 256 steps")
    assert v.verdict == "reproduced" and v.interval == (-2.0, -0.1) and v.p == 0.03 and v.z == pytest.approx(-2)
    assert v.sentence == ("FID 32 steps - 256 steps = -1.0 ± 0.5 (95 % interval -2.0 to -0.1, p = 0.03): "
                          "reproduced (lower, as claimed)")
    with pytest.raises(ValueError, match="fid_p"):
        S.verdict_of_difference({k: v for k, v in row.items() if k != "fid_p"}, "fid", better="lower")


def test_direction_reads_the_interval_in_a_tables_words():
    """se 1 at 95 %: d ± 1.96; margin 3 turns an interval inside ±3 into 'equivalent within ±3'."""
    assert S.direction(S.verdict(-3.0, 1.0, better="lower")) == "lower"  # -4.96 to -1.04
    assert S.direction(S.verdict(3.0, 1.0, better="lower")) == "higher"
    assert S.direction(S.verdict(0.5, 1.0, better="lower")) == "not resolved at this n"
    assert S.direction(S.verdict(0.5, 1.0, better="lower", margin=3)) == "equivalent within ±3"  # -1.46 to 2.46
    assert S.direction(S.verdict(0.5, 1.0, better="lower", margin=2)) == "not resolved at this n"


def test_non_inferiority_against_a_margin_on_the_worse_side():
    """FID (lower better), se 1: the interval d ± 1.96 against +margin 4: d = 2, upper end 3.96 < 4 ->
    'reproduced'; d = 2.1, 0.14 to 4.06 straddles 4 -> 'not resolved at this n'; d = 6, lower end 4.04 > 4 ->
    'not reproduced'; the mirror for a figure where higher is better (margin -4 below 0). A large improvement is
    never 'worse by more than the margin'."""
    word, sentence = S.non_inferiority(S.verdict(2.0, 1.0, better="lower", label="FID S - T"), 4.0)
    assert word == "reproduced" and sentence.startswith("FID S - T = +2.0 ± 1.0 (95 % interval +0.0 to +4.0")
    assert "non-inferiority margin +4.0" in sentence and sentence.endswith(": reproduced")
    assert S.non_inferiority(S.verdict(2.1, 1.0, better="lower"), 4.0)[0] == "not resolved at this n"
    assert S.non_inferiority(S.verdict(6.0, 1.0, better="lower"), 4.0)[0] == "not reproduced"  # 4.04 to 7.96
    assert S.non_inferiority(S.verdict(-20.0, 1.0, better="lower"), 4.0)[0] == "reproduced"
    assert S.non_inferiority(S.verdict(-2.0, 1.0, better="higher"), 4.0)[0] == "reproduced"  # -3.96 > -4
    assert S.non_inferiority(S.verdict(-6.0, 1.0, better="higher"), 4.0)[0] == "not reproduced"
    assert "margin -4.0" in S.non_inferiority(S.verdict(-6.0, 1.0, better="higher"), 4.0)[1]
    with pytest.raises(ValueError, match="margin"):
        S.non_inferiority(S.verdict(2.0, 1.0, better="lower"), 0.0)
