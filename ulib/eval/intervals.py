"""Figures with their uncertainty, the inputs of the kit's verdicts (`ulib.eval.stats`):

- `t_interval`: k seed values (or k paired seed differences) -> mean, t interval on k - 1 degrees of freedom, p;
- `proportion_interval`: a share x / n with its Wilson score interval (and an exact binomial p if asked);
- `bootstrap_summary`, `bootstrap_p`: the std, interval (percentile for differences, normal around the
  estimate for a single set's biased figure) and two-sided p of bootstrap draws (`DEFAULT_DRAWS` = 200, the
  least the kit quotes an interval from).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_DRAWS = 200  # bootstrap draws where features are cached: at least 200 (cheap once features are cached)


class _SciPyStats:
    """scipy.stats, imported at its first use: the command line and the GPU check load without scipy (a GPU
    machine's own Python may lack it); only the figures' p values and critical points need it."""

    def __getattr__(self, name: str):
        from scipy import stats

        return getattr(stats, name)


S = _SciPyStats()  # read as scipy.stats here and in ulib.eval.stats


def finite_values(values, what: str) -> np.ndarray:
    """`values` as a flat float array; ValueError naming `what` unless every value is finite."""
    v = np.asarray(values, float).ravel()
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{what}: values must be finite; got {v.tolist()}")
    return v


def check_confidence(confidence: float) -> float:
    """`confidence` as a float; ValueError unless it lies strictly between 0 and 1."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r}; allowed: a level strictly between 0 and 1, e.g. 0.95")
    return float(confidence)


def z_critical(confidence: float) -> float:
    """z_{1 - alpha/2}: 1.959964 at 95 %."""
    return float(S.norm.ppf(0.5 + check_confidence(confidence) / 2))


# ---- k seeds: the t interval -----------------------------------------------------------------------------
@dataclass(frozen=True)
class TInterval:
    k: int  # number of values (seeds, or paired seed differences)
    mean: float
    sd: float  # sample standard deviation (ddof = 1)
    se: float  # sd / sqrt(k)
    df: int  # k - 1
    t_crit: float  # t_{1 - alpha/2, k - 1}
    lo: float  # mean - t_crit se
    hi: float  # mean + t_crit se
    t: float  # mean / se, against 0
    p: float  # two-sided p of t on k - 1 df
    confidence: float

    def as_dict(self) -> dict:
        return asdict(self)


def t_interval(values, confidence: float = 0.95) -> TInterval:
    """Student's t interval of the mean of k values (e.g. one figure per training seed, or the per-seed
    differences of two settings run on common seeds) and the two-sided test of mean = 0.

        se = sd / sqrt(k),  df = k - 1,  interval mean ± t_{1-alpha/2, df} se,  t = mean / se,
        p = 2 P(T_df > |t|)   (for df = 2 in closed form: p = 1 - |t| / sqrt(t^2 + 2); t = 4.9 gives 2/51 = 0.039).

    A zero spread gives se = 0: t = ±inf and p = 0 for a non-zero mean; t = 0 and p = 1 for a zero mean."""
    v = finite_values(values, "t_interval")
    if v.size < 2:
        raise ValueError(f"a t interval needs >= 2 values (k - 1 >= 1 degrees of freedom); got {v.size}")
    confidence = check_confidence(confidence)
    k, mean, sd = int(v.size), float(v.mean()), float(v.std(ddof=1))
    se, df = sd / math.sqrt(k), k - 1
    t_crit = float(S.t.ppf(0.5 + confidence / 2, df))
    if se > 0:
        t = mean / se
        p = float(2 * S.t.sf(abs(t), df))
    else:
        t, p = (math.copysign(math.inf, mean), 0.0) if mean != 0 else (0.0, 1.0)
    return TInterval(k, mean, sd, se, df, t_crit, mean - t_crit * se, mean + t_crit * se, t, p, confidence)


# ---- proportions ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Proportion:
    successes: int
    n: int
    share: float  # x / n
    se: float  # sqrt(share (1 - share) / n), the binomial (Wald) standard error
    lo: float  # Wilson score interval
    hi: float
    confidence: float
    against: float | None  # the share the exact binomial test is against, if asked
    p: float | None  # its two-sided p

    def as_dict(self) -> dict:
        return asdict(self)


def proportion_interval(successes: int, n: int, confidence: float = 0.95, *, against: float | None = None
                        ) -> Proportion:
    """The share x / n with its Wilson score interval (right near 0 and 1, where share ± z se is not):

        c = (p + z^2 / 2n) / (1 + z^2 / n),   h = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2),
        interval c ± h   (x = 0 gives [0, z^2 / (n + z^2)]).

    against=p0: also the exact two-sided binomial p of H0: share = p0 (scipy.stats.binomtest)."""
    if isinstance(successes, bool) or isinstance(n, bool) or int(successes) != successes or int(n) != n \
            or not 0 <= successes <= n or n < 1:
        raise ValueError(f"proportion of {successes!r} in {n!r}; allowed: whole numbers 0 <= successes <= n, n >= 1")
    x, n = int(successes), int(n)
    z = z_critical(confidence)
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    p_value = None
    if against is not None:
        if not 0 <= against <= 1:
            raise ValueError(f"against={against!r}; allowed: a share between 0 and 1")
        p_value = float(S.binomtest(x, n, against).pvalue)
    lo = 0.0 if x == 0 else centre - half  # exactly 0 and 1 at the edges (c - h = 0 at x = 0, c + h = 1 at x = n)
    hi = 1.0 if x == n else centre + half
    return Proportion(x, n, p, math.sqrt(p * (1 - p) / n), lo, hi, float(confidence), against, p_value)


# ---- bootstrap draws ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BootstrapSummary:
    estimate: float  # the figure on the data themselves (not the mean of the draws)
    std: float  # std of the draws (ddof = 1): the bootstrap standard error
    lo: float  # the interval (`method`): percentile quantiles of the draws, or estimate -/+ z std
    hi: float
    draws: int
    confidence: float
    method: str = "percentile"

    def as_dict(self) -> dict:
        return asdict(self)


INTERVAL_METHODS = ("percentile", "normal")


def bootstrap_summary(draws_values, estimate: float, confidence: float = 0.95,
                      method: str = "percentile") -> BootstrapSummary:
    """Std and interval of B bootstrap draws of a figure.

    method='percentile': the alpha/2 and 1 - alpha/2 quantiles of the draws (numpy's linear quantiles: the q
    quantile of sorted draws d_0..d_{B-1} sits at position q (B - 1)); right for differences, whose resampling
    bias largely cancels. method='normal': estimate -/+ z_{1-alpha/2} std, centred on the estimate; right for
    a single set's FID or KID, whose every resample repeats images and so scores higher than the set itself
    (the floor's FID 15.6 had a percentile interval of [20.5, 26.7], not holding it): the draws' spread is the
    error, their offset a resampling artefact."""
    d = finite_values(draws_values, "bootstrap_summary")
    if d.size < 2:
        raise ValueError(f"a bootstrap summary needs >= 2 draws; got {d.size}")
    confidence = check_confidence(confidence)
    std = float(d.std(ddof=1))
    if method == "percentile":
        lo, hi = np.quantile(d, [0.5 - confidence / 2, 0.5 + confidence / 2])
    elif method == "normal":
        lo, hi = estimate - z_critical(confidence) * std, estimate + z_critical(confidence) * std
    else:
        raise ValueError(f"method={method!r}; allowed: {', '.join(INTERVAL_METHODS)}")
    return BootstrapSummary(float(estimate), std, float(lo), float(hi), int(d.size), confidence, method)


def bootstrap_p(draws_values) -> float:
    """Two-sided bootstrap p of 'the difference is 0': twice the smaller share of draws on either side of 0
    (draws equal to 0 count on both sides), floored at 1 / B (B draws cannot show a smaller p) and capped at 1."""
    d = finite_values(draws_values, "bootstrap_p")
    if d.size < 2:
        raise ValueError(f"a bootstrap p needs >= 2 draws; got {d.size}")
    tail = min(np.mean(d <= 0), np.mean(d >= 0))
    return float(min(1.0, max(2 * tail, 1 / d.size)))
