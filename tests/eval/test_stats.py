"""ulib.eval.stats: verdicts, trends, a verdict's direction and non-inferiority on hand-computed cases.

Closed forms used as the hand checks: Student's t on 2 df has P(|T| > t) = 1 - |t| / sqrt(t^2 + 2), so
t_{0.975, 2} solves t / sqrt(t^2 + 2) = 0.95: t = sqrt(2 * 0.9025 / 0.0975) = 4.3027; on 3 df
P(T < t) = 1/2 + (u / (1 + u^2) + atan u) / pi with u = t / sqrt 3."""
import math

import numpy as np
import pytest

from ulib.eval import stats as S
from ulib.eval.intervals import bootstrap_p, bootstrap_summary, t_interval


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
    r = t_interval(4.9 + math.sqrt(3) * np.array([-1.0, 0.0, 1.0]))
    v = S.verdict(r.mean, r, better="higher", label="precision a - b")
    assert v.verdict == "reproduced" and v.t == pytest.approx(4.9) and v.df == 2 and v.z is None
    assert v.p == pytest.approx(2 / 51) and v.interval == pytest.approx((r.lo, r.hi))
    assert v.sentence == ("precision a - b = +4.9 ± 1.0 (95 % t interval on 2 df +0.6 to +9.2, p = 0.039): "
                          "reproduced (higher, as claimed)")
    assert S.verdict(1.0, 1.0, better="higher", df=2).interval == pytest.approx((1 - 4.302653, 1 + 4.302653))
    with pytest.raises(ValueError, match="mean"):
        S.verdict(1.0, r, better="higher")
    b = bootstrap_summary(np.arange(1, 201), estimate=100.0)
    vb = S.verdict(100.0, b, better="higher", p=bootstrap_p(np.arange(1, 201)))
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
