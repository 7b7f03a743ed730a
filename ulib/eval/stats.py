"""The kit's verdicts: every claim about a paper's result ends in one of four words, with the number behind it.
The figures and their errors come from `ulib.eval.intervals` (t intervals, Wilson intervals, bootstrap draws).

- `verdict`: a difference and its error -> 'reproduced' | 'not reproduced' | 'not resolved at this n' |
  'equivalent within ±margin', with a sentence made from the numbers, so prose never hard-codes a direction;
  `verdict_of_difference`: the same for one figure of a `QualityMeter.difference` row; `format_p`: a p as printed;
- `trend_test`: a trend over an ordered setting (temperature, steps): weighted least-squares slope and
  Spearman's rho, each with its p;
- `direction`: a verdict's interval in a table's words ('lower', 'higher', 'equivalent within ±m', 'not resolved
  at this n'); `non_inferiority`: the verdict on "a is worse than b by less than a margin" (a claim that a cheaper
  setting "costs little").

"Equal" is only said with an equivalence margin stated beforehand; without one, an interval that holds 0 is
"not resolved at this n", never "no difference".
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ulib.eval.intervals import (
    DEFAULT_DRAWS,
    BootstrapSummary,
    S,
    TInterval,
    bootstrap_p,
    bootstrap_summary,
    check_confidence,
    finite_values,
    proportion_interval,
    t_interval,
    z_critical,
)

# the first six are re-exported for the notebooks (ulib and the tests import them from ulib.eval.intervals)
__all__ = ["DEFAULT_DRAWS", "TInterval", "bootstrap_p", "bootstrap_summary", "proportion_interval", "t_interval",
           "VERDICTS", "SIDES", "Verdict", "format_p", "verdict", "Trend", "trend_test", "verdict_of_difference",
           "direction", "non_inferiority"]

VERDICTS = ("reproduced", "not reproduced", "not resolved at this n", "equivalent within ±margin")
SIDES = ("lower", "higher")  # the side of 0 on which a claim puts the difference a - b


# ---- verdicts ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    verdict: str  # one of VERDICTS (the sentence spells the margin's value)
    label: str  # what the difference is, e.g. 'FID 32 steps - 256 steps'
    difference: float
    se: float | None  # its standard error (None when only an interval was given)
    interval: tuple[float, float]
    confidence: float
    z: float | None  # difference / se against 0 when the error is normal (a bootstrap std, a paired-item se)
    t: float | None  # the same on df degrees of freedom, for k seeds
    df: int | None
    p: float | None  # two-sided p of 'the difference is 0'
    p_equivalence: float | None  # TOST p of 'the difference lies outside ±margin' (a margin and an se given)
    margin: float | None
    better: str  # the side of 0 the claim puts a - b on: 'lower' or 'higher'
    sentence: str  # the line a notebook prints instead of hard-coding a direction

    def as_dict(self) -> dict:
        return asdict(self)


def _decimals(scale: float) -> int:
    """Decimals that show one significant figure of an error, two when it starts with 1 (0.9 -> 1, 0.14 -> 2)."""
    if not math.isfinite(scale) or scale <= 0:
        return 2
    e = math.floor(math.log10(scale))
    return max(0, -e + (1 if scale / 10**e < 2 else 0))


def format_p(p: float | None) -> str:
    """'p = 0.039' (two significant figures), 'p < 0.001', or 'p n/a'."""
    if p is None or not math.isfinite(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def _error(difference: float, se_or_interval, confidence: float, df):
    """(se or None, df, interval or None) from the forms `verdict` accepts."""
    e = se_or_interval
    if isinstance(e, TInterval):
        if not math.isclose(e.mean, difference, rel_tol=1e-9, abs_tol=1e-12):
            raise ValueError(f"verdict: difference {difference} but the t interval's mean is {e.mean}")
        return e.se, e.df, None
    if isinstance(e, BootstrapSummary):
        if not math.isclose(e.confidence, confidence):
            raise ValueError(f"verdict at confidence {confidence} of a bootstrap summary at {e.confidence}")
        return e.std, df, (e.lo, e.hi)
    if np.ndim(e) == 0:
        se = float(e)
        if not (math.isfinite(se) and se >= 0):
            raise ValueError(f"standard error {e!r}; allowed: a finite number >= 0")
        return se, df, None
    lo, hi = (float(v) for v in e)
    if not lo <= hi:
        raise ValueError(f"interval ({lo}, {hi}): the lower end must not exceed the upper")
    return None, df, (lo, hi)


def verdict(difference: float, se_or_interval, *, better: str, margin: float | None = None,
            confidence: float = 0.95, df: int | None = None, p: float | None = None, label: str = "a - b",
            decimals: int | None = None) -> Verdict:
    """The verdict on a paper's claim that a - b lies on the `better` side of 0 ('lower': a - b < 0, e.g. a
    has the lower FID; 'higher': a - b > 0, e.g. a has the higher precision).

    se_or_interval is one of
    - a standard error se: the interval is d ± z_{1-alpha/2} se, z = d / se, p = 2 P(Z > |z|) (a bootstrap std,
      a paired-item se); with df given, d ± t_{1-alpha/2, df} se, t = d / se on df (k seeds: df = k - 1);
    - a `TInterval` of k paired seed differences (its mean is `difference`), read as se and df = k - 1;
    - a `BootstrapSummary` of the difference's draws: its percentile interval, and z from its std;
    - an interval (lo, hi) computed elsewhere: z and p then from se ~ (hi - lo) / (2 z_{1-alpha/2}).
    p, when passed, replaces the computed one (e.g. `bootstrap_p` of the draws).

    From the interval [lo, hi]:
      'reproduced'                 it lies wholly on the claimed side of 0;
      'not reproduced'             it lies wholly on the other side;
      'equivalent within ±margin'  (a margin given) it lies wholly inside (-margin, +margin): two one-sided tests
                                   at (1 - confidence) / 2 each (TOST; at 95 % stricter than the usual 90 %
                                   interval of 5 % TOST); p_equivalence = the larger of their p;
      'not resolved at this n'     anything else.
    An interval that excludes 0 is judged by its direction, even when it also lies inside the margin.
    """
    if better not in SIDES:
        raise ValueError(f"better={better!r}; allowed: {', '.join(SIDES)} (the side of 0 the claim puts a - b on)")
    if margin is not None and not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin={margin!r}; allowed: a positive equivalence margin, or None")
    if df is not None and (isinstance(df, bool) or int(df) != df or df < 1):
        raise ValueError(f"df={df!r}; allowed: degrees of freedom >= 1 (k - 1 for k seeds)")
    confidence = check_confidence(confidence)
    d = float(difference)
    if not math.isfinite(d):
        raise ValueError(f"difference={difference!r}; allowed: a finite number")
    se, df, interval = _error(d, se_or_interval, confidence, df)
    dist = S.t(df) if df is not None else S.norm  # the law of d / se under d = 0
    crit = float(dist.ppf(0.5 + confidence / 2))
    if interval is None:
        interval = (d - crit * se, d + crit * se)
    lo, hi = interval
    scale = se if se is not None else (hi - lo) / (2 * crit)  # an interval alone: its normal-equivalent se
    if scale > 0:
        stat = d / scale
        p_stat = float(2 * dist.sf(abs(stat)))
        p_eq = None if margin is None else float(max(dist.sf((d + margin) / scale), dist.cdf((d - margin) / scale)))
    else:  # no spread: the difference is what it is
        stat, p_stat = (math.copysign(math.inf, d), 0.0) if d != 0 else (0.0, 1.0)
        p_eq = None if margin is None else float(abs(d) >= margin)
    p = p_stat if p is None else float(p)
    claimed = hi < 0 if better == "lower" else lo > 0
    against = lo > 0 if better == "lower" else hi < 0
    if claimed:
        word, why = "reproduced", f"{better}, as claimed"
    elif against:
        word, why = "not reproduced", f"{'higher' if better == 'lower' else 'lower'}, against the claimed {better}"
    elif margin is not None and -margin < lo and hi < margin:
        word, why = "equivalent within ±margin", ""
    else:
        word = "not resolved at this n"
        why = "" if margin is None else f"the interval is not inside ±{margin:g} either"
    n = _decimals(scale) if decimals is None else decimals
    error = f" ± {se:.{n}f}" if se is not None else ""
    kind = f"t interval on {df} df" if df is not None else "interval"
    said = word.replace("±margin", f"±{margin:g}") if margin is not None else word
    sentence = (f"{label} = {d:+.{n}f}{error} ({100 * confidence:g} % {kind} {lo:+.{n}f} to {hi:+.{n}f}, "
                f"{format_p(p)}): {said}" + (f" ({why})" if why else ""))
    return Verdict(word, label, d, se, (float(lo), float(hi)), confidence, None if df is not None else stat,
                   stat if df is not None else None, df, p, p_eq, margin, better, sentence)


# ---- trends over an ordered setting ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Trend:
    n: int  # settings (points)
    slope: float  # weighted least-squares slope of y on x
    se: float  # its standard error
    intercept: float
    z: float | None  # slope / se with known errors y_se (normal)
    t: float | None  # slope / se with the scatter about the line as the error, on n - 2 df
    df: int | None
    p: float  # two-sided p of 'no trend' (slope = 0)
    reduced_chi2: float | None  # with y_se: sum(w r^2) / (n - 2); well above 1 means y_se understates the scatter
    rho: float  # Spearman's rank correlation (any monotone trend, no line assumed)
    rho_p: float  # its two-sided p (scipy.stats.spearmanr)

    def as_dict(self) -> dict:
        return asdict(self)


def trend_test(x, y, y_se=None) -> Trend:
    """A trend of y over an ordered setting x (e.g. the share of the commonest category over temperature).

    Weighted least squares with w_i = 1 / y_se_i^2 (all 1 without y_se), xbar and ybar the w-weighted means:
        slope = sum w (x - xbar)(y - ybar) / Sxx,   Sxx = sum w (x - xbar)^2.
    With y_se (known errors, e.g. bootstrap stds): se = 1 / sqrt(Sxx), z = slope / se, normal p.
    Without: ordinary least squares, s^2 = sum r^2 / (n - 2) from the residuals r, se = s / sqrt(Sxx),
    t = slope / se on n - 2 df. Beside it Spearman's rho of (x, y), with its p, for a monotone trend."""
    x, y = finite_values(x, "trend_test x"), finite_values(y, "trend_test y")
    if x.shape != y.shape or x.size < 3:
        raise ValueError(f"trend_test: x and y must be the same length >= 3; got {x.size} and {y.size}")
    if np.ptp(x) == 0:
        raise ValueError("trend_test: x takes one value only; a trend needs at least two settings")
    if y_se is None:
        w = np.ones_like(x)
    else:
        se_y = finite_values(y_se, "trend_test y_se")
        if se_y.shape != y.shape or np.any(se_y <= 0):
            raise ValueError(f"trend_test: y_se must be {y.size} positive errors; got {se_y.tolist()}")
        w = 1 / se_y**2
    xbar, ybar = np.sum(w * x) / w.sum(), np.sum(w * y) / w.sum()
    sxx = float(np.sum(w * (x - xbar) ** 2))
    slope = float(np.sum(w * (x - xbar) * (y - ybar)) / sxx)
    intercept = float(ybar - slope * xbar)
    r = y - (intercept + slope * x)
    n, df = int(x.size), int(x.size) - 2
    if y_se is None:
        se = math.sqrt(float(np.sum(r**2)) / df / sxx)
        dist, chi2 = S.t(df), None
    else:
        se = 1 / math.sqrt(sxx)
        dist, chi2 = S.norm, float(np.sum(w * r**2) / df)
    if se > 0:
        stat = slope / se
        p = float(2 * dist.sf(abs(stat)))
    else:  # the points lie exactly on a line
        stat, p = (math.copysign(math.inf, slope), 0.0) if slope != 0 else (0.0, 1.0)
    if np.ptp(y) == 0:  # constant y: no ranks to correlate
        rho, rho_p = math.nan, math.nan
    else:
        res = S.spearmanr(x, y)
        rho, rho_p = float(res.statistic), float(res.pvalue)
    return Trend(n, slope, se, intercept, stat if y_se is not None else None, stat if y_se is None else None,
                 df if y_se is None else None, p, chi2, rho, rho_p)


def verdict_of_difference(row: dict, figure: str, *, better: str, margin: float | None = None,
                          label: str | None = None) -> Verdict:
    """`verdict` of one figure of a `ulib.eval.quality.QualityMeter.difference` row (set a - set b on shared
    reference resamples): its bootstrap std, 95 % percentile interval '<figure>_lo'/'_hi' and bootstrap p."""
    missing = [key for key in (figure, f"{figure}_std", f"{figure}_lo", f"{figure}_hi", f"{figure}_p")
               if key not in row]
    if missing:
        raise ValueError(f"verdict of {figure!r}: the row lacks {', '.join(missing)}; score the difference with "
                         f"draws >= 2 (QualityMeter.difference, default {DEFAULT_DRAWS})")
    b = BootstrapSummary(row[figure], row[f"{figure}_std"], row[f"{figure}_lo"], row[f"{figure}_hi"],
                         int(row.get("bootstrap_draws", 0)), 0.95)
    return verdict(row[figure], b, better=better, margin=margin, p=row[f"{figure}_p"],
                   label=label or f"{figure} a - b")


def direction(v: Verdict) -> str:
    """Where the interval of a - b lies, in the words of a table's column: 'lower' (wholly below 0), 'higher'
    (wholly above 0), 'equivalent within ±m' (wholly inside the verdict's margin m), else 'not resolved at this n'.
    The same reading as `verdict`, without a claimed side."""
    lo, hi = v.interval
    if hi < 0:
        return "lower"
    if lo > 0:
        return "higher"
    if v.margin is not None and -v.margin < lo and hi < v.margin:
        return f"equivalent within ±{v.margin:g}"
    return "not resolved at this n"


def non_inferiority(v: Verdict, margin: float) -> tuple[str, str]:
    """The verdict on "a is worse than b by less than `margin`" (non-inferiority), from the interval of a - b in
    v; v.better says which side of 0 is better for a ('lower' for FID: worse is a - b > 0).

    With lower better: 'reproduced' when the interval's upper end is below +margin (a costs less than the
    margin), 'not reproduced' when its lower end is above +margin (a is worse by more than the margin), else
    'not resolved at this n'; with higher better, the mirror image about 0 (-margin). At 95 % an end of the
    interval is a one-sided 97.5 % bound. Returns (verdict word, sentence) for `ulib.app.readings.claim`."""
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin={margin!r}; allowed: a positive non-inferiority margin")
    lo, hi = v.interval
    sign = 1 if v.better == "lower" else -1  # worse is sign * (a - b) > 0
    bound, far = (hi, lo) if sign == 1 else (lo, hi)  # the end nearer to 'worse', and the other
    limit = sign * margin
    if sign * bound < margin:
        word, why = "reproduced", f"its {'upper' if sign == 1 else 'lower'} end is inside the margin"
    elif sign * far > margin:
        word, why = "not reproduced", "the whole interval is beyond the margin"
    else:
        word, why = "not resolved at this n", "the interval straddles the margin"
    scale = v.se if v.se else (hi - lo) / (2 * z_critical(v.confidence))
    n = _decimals(scale)
    error = f" ± {v.se:.{n}f}" if v.se is not None else ""
    head = (f"{v.label} = {v.difference:+.{n}f}{error} ({100 * v.confidence:g} % interval {lo:+.{n}f} to "
            f"{hi:+.{n}f}, {format_p(v.p)})")
    return word, f"{head}; non-inferiority margin {limit:+.{n}f}: {why}: {word}"
