"""Sentences a notebook prints, made from its numbers, so that a re-run with other numbers cannot leave prose that
contradicts its output (the conventions' "words follow numbers").

- `memorisation_summary`: the figures of a `ulib.eval.memorisation.memorisation_report` row that a table shows,
  under names that say what they are;
- `memorisation_sentence`: that summary as one paragraph: near-copy shares with their Wilson intervals, the
  median distance ratio, C_T (Meehan et al. 2020) and its reading, FID against train and against held-out images;
- `interval_text`: 'x (95 % interval lo to hi)' with the decimals the interval's width asks for;
- `near_copy_text`: 'k of n samples, share (95 % interval lo to hi)' of one space and threshold;
- `two_means_sentence`: two sets of per-item values (each mean with its t interval) and their difference;
- `difference_sentence`: a `QualityMeter.difference` row's figure with its interval, p and the direction it
  shows, or 'not resolved at this n' when the interval holds 0.
"""
from __future__ import annotations

import math

from ulib.eval.intervals import t_interval
from ulib.eval.stats import format_p, verdict

CT_COPYING = -3.0  # C_T below this: data-copying in Meehan et al.'s reading (ulib.eval.memorisation)


def _decimals(scale: float) -> int:
    """Decimals that show an error `scale` (a standard error, a quarter of a 95 % interval) to one significant
    figure, two when it starts with 1: 0.6 -> 1, 0.14 -> 2, 3 -> 0 (as `ulib.eval.stats.verdict` prints)."""
    if not math.isfinite(scale) or scale <= 0:
        return 2
    e = math.floor(math.log10(scale))
    return max(0, -e + (1 if scale / 10**e < 2 else 0))


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def interval_text(value: float, lo: float, hi: float, *, percent: bool = False) -> str:
    """'value (95 % interval lo to hi)'; percent=True prints shares in per cent with one decimal."""
    if percent:
        return f"{_pct(value)} (95 % interval {_pct(lo)} to {_pct(hi)})"
    n = _decimals((hi - lo) / 4)
    return f"{value:.{n}f} (95 % interval {lo:.{n}f} to {hi:.{n}f})"


def memorisation_summary(row: dict, samples: str, held: str = "test") -> dict:
    """The figures of a memorisation row (`ulib.app.measuring.memorisation`'s report.row) a table shows.

    samples: what the samples are ('300 samples of the absorbing prior, t = 0.8'); held: the split the baseline
    images come from ('test', or 'validation' in runs without a test split). Distances and near-copies are in
    the feature space (feat_*), with the pixel figures (pix_*) beside; FIDs are in the feature space."""
    missing = [k for k in ("feat_n_samples", "feat_near_copy_share", "feat_median_ratio", "feat_c_t",
                           "pix_near_copy_share", "pix_median_ratio") if k not in row]
    if missing:
        raise ValueError(f"memorisation_summary: the row lacks {', '.join(missing)}; pass "
                         "ulib.app.measuring.memorisation(...)[0].row (ulib.eval.memorisation.memorisation_report)")
    out = {"samples": samples, "features": row.get("features"), "n_samples": row["feat_n_samples"],
           "n_train": row["feat_n_train"], "baseline": held, "n_baseline": row["feat_n_test"],
           "n_baseline_used": row["feat_n_test_used"]}
    for space in ("feat", "pix"):
        for sfx in ("", "_p5"):
            out[f"{space}_near_copy_count{sfx}"] = row[f"{space}_near_copy_count{sfx}"]
            for end in ("", "_lo", "_hi"):
                out[f"{space}_near_copy_share{sfx}{end}"] = row[f"{space}_near_copy_share{sfx}{end}"]
        out[f"{space}_median_ratio"] = row[f"{space}_median_ratio"]
        out[f"{space}_c_t"] = row[f"{space}_c_t"]
    for k in ("feat_fid_train", "feat_fid_test", "feat_fid_test_to_train"):
        if k in row:
            out[k] = row[k]
    return out


def _ct_reading(c_t: float) -> str:
    if not math.isfinite(c_t):
        return "not computed (no k-means cell held enough samples)"
    if c_t < CT_COPYING:
        return f"{c_t:+.1f}, below {CT_COPYING:g}: data-copying in Meehan et al.'s reading"
    if c_t > -CT_COPYING:
        return f"{c_t:+.1f}, above {-CT_COPYING:+g}: samples farther from the training set than the baseline images"
    return f"{c_t:+.1f}, between {CT_COPYING:g} and {-CT_COPYING:+g} (data-copying reads as C_T below {CT_COPYING:g})"


def _ratio_reading(ratio: float, held: str) -> str:
    side = "closer to" if ratio < 1 else ("farther from" if ratio > 1 else "as close to")
    return f"{ratio:.2f} times the {held} images' ({side} the training set than they are)"


def near_copy_text(summary: dict, space: str = "feat", threshold: str = "") -> str:
    """'k of n samples, x % (95 % interval lo % to hi %)': the near-copies of `memorisation_summary` in space
    'feat' or 'pix', at threshold '' (the closest baseline image) or '_p5' (the baseline's 5th percentile)."""
    key = f"{space}_near_copy_share{threshold}"
    share = interval_text(summary[key], summary[f"{key}_lo"], summary[f"{key}_hi"], percent=True)
    return f"{summary[f'{space}_near_copy_count{threshold}']} of {summary['n_samples']} samples, {share},"


def difference_sentence(row: dict, figure: str, a: str, b: str) -> str:
    """One figure of a `ulib.eval.quality.QualityMeter.difference` row (set a minus set b, shared reference
    resamples) as a sentence: the difference with its bootstrap std, 95 % percentile interval and p, then
    which set has the higher figure, or 'not resolved at this n' when the interval holds 0."""
    missing = [k for k in (figure, f"{figure}_std", f"{figure}_lo", f"{figure}_hi", f"{figure}_p") if k not in row]
    if missing:
        raise ValueError(f"difference_sentence: the row lacks {', '.join(missing)}; score it with "
                         "QualityMeter.difference(..., draws >= 2)")
    d, lo, hi = row[figure], row[f"{figure}_lo"], row[f"{figure}_hi"]
    n = _decimals(row[f"{figure}_std"])
    name = figure.upper() if figure in ("fid", "kid") else figure  # as the tables' readers know them
    head = (f"{name} of {a} minus {b} = {d:+.{n}f} ± {row[f'{figure}_std']:.{n}f} (95 % interval {lo:+.{n}f} "
            f"to {hi:+.{n}f}, {format_p(row[f'{figure}_p'])}, {row.get('bootstrap_draws', '?')} bootstrap draws)")
    if lo > 0:
        return f"{head}: {a} have the higher {name}"
    if hi < 0:
        return f"{head}: {a} have the lower {name}"
    return f"{head}: the sign is not resolved at this n"


def memorisation_sentence(summary: dict) -> str:
    """`memorisation_summary` as prose: every direction in it is read off the numbers."""
    held, n, m = summary["baseline"], summary["n_samples"], summary["n_baseline_used"]
    parts = []
    for space, where in (("feat", f"in the {summary.get('features') or 'feature'} feature space"),
                         ("pix", "in pixels")):
        parts.append(f"{where.capitalize()}, {near_copy_text(summary, space)} lie closer to a training image than "
                     f"the closest of {m} {held} images does, and {near_copy_text(summary, space, '_p5')} within "
                     f"the {held} images' 5th percentile of that distance (where the {held} images put 5 % by "
                     f"construction); the samples' median distance to their nearest training image is "
                     f"{_ratio_reading(summary[f'{space}_median_ratio'], held)}; C_T = "
                     f"{_ct_reading(summary[f'{space}_c_t'])}.")
    if "feat_fid_train" in summary:
        parts.append(f"FID of the {n} samples against all {summary['n_train']} training images: "
                     f"{summary['feat_fid_train']:.1f}; against all {summary['n_baseline']} {held} images: "
                     f"{summary['feat_fid_test']:.1f}; "
                     f"the {held} images themselves against the training images: "
                     f"{summary['feat_fid_test_to_train']:.1f} (FID falls as n grows: compare sets of like size).")
    return " ".join(parts)


def two_means_sentence(a, b, a_name: str, b_name: str, what: str) -> str:
    """Two independent sets of per-item values (e.g. per-image L1 errors of two image sets) as a sentence: each
    mean with its t interval, then the difference of the means, d ± se (se = sqrt(se_a^2 + se_b^2), a normal
    95 % interval and its p), and which set has the higher mean, or 'not resolved at this n'."""
    ta, tb = t_interval(a), t_interval(b)
    d, se = ta.mean - tb.mean, math.hypot(ta.se, tb.se)
    v = verdict(d, se, better="higher", label=f"{what} {a_name} - {b_name}")
    lo, hi = v.interval
    n = _decimals(min((x for x in (ta.se, tb.se, se) if x > 0), default=0.0))
    mean = lambda t, name: f"{t.mean:.{n}f} on {t.k} {name} (95 % t interval {t.lo:.{n}f} to {t.hi:.{n}f})"
    side = (f"higher on {a_name}" if lo > 0 else f"lower on {a_name}" if hi < 0
            else "the sign is not resolved at this n")
    return (f"{what}: {mean(ta, a_name)}; {mean(tb, b_name)}; difference {d:+.{n}f} ± {se:.{n}f} (95 % interval "
            f"{lo:+.{n}f} to {hi:+.{n}f}, {format_p(v.p)}): {side}")
