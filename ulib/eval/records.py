"""A run's evaluations on disk: RUN/evaluation.jsonl holds one JSON record per `python -m ulib evaluate` (the
figures and the whole recipe), and RUN/evaluation.md is rendered from all of them, one table per kind of figure
and feature set (figures on different feature spaces are never mixed). The sample table's figure columns and
the summary's words come from the scoring core's registry (`ulib.eval.scoring`), the headings' words from the
feature-space registry (`ulib.eval.extractors.SPACES`).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from ulib.eval import scoring as S
from ulib.eval.extractors import SPACES, paper_scale
from ulib.io.files import atomic_write

PAPER_PRDC_K = 3  # the official calc_PRDC.py used nearest_k = 3 (we use k = 5, as Naeem et al. recommend)


def read_records(path: str | Path) -> list[dict]:
    """The records of an evaluation.jsonl, in order. A line that is not a JSON record (a write cut short by a full
    disk in an older version, a hand edit) is skipped with a warning naming it, so one bad line never blocks
    the evaluations after it."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                warnings.warn(f"{path}, line {i}: not a JSON record ({e}); skipped (fix or delete that line)",
                              stacklevel=2)
                continue
            if not isinstance(record, dict):
                warnings.warn(f"{path}, line {i}: a JSON {type(record).__name__}, not a record; skipped", stacklevel=2)
                continue
            out.append(record)
    return out


def check_same_features(records: list[dict]) -> str:
    """The one feature set of `records`; ValueError when they differ (such figures are not comparable)."""
    kinds = sorted({r.get("features") for r in records}, key=str)
    if len(kinds) != 1 or kinds[0] is None:
        raise ValueError(f"records computed on different (or unnamed) features {kinds} cannot be compared or "
                         "merged: FID/PRDC on different feature spaces are not on one scale")
    return kinds[0]


def _f(v, fmt=".2f") -> str:
    return "–" if v is None else format(v, fmt)


def _cell(v, column: S.Column) -> str:
    """A figure's cell in the sample table: v * scale in the column's format ('–' for None)."""
    if column.fmt is None:
        return str(v)
    return _f(v if v is None or column.scale == 1 else v * column.scale, column.fmt)


SAMPLE_RECIPE_COLUMNS = ["time", "prior (step)", "EMA", "samples", "steps", "τ", "reference (n)", "seed"]
VQGAN_COLUMNS = ["time", "VQGAN (step)", "EMA", "split", "images", "rFID", "PSNR (dB)", "SSIM", "LPIPS",
                 "codes used", "perplexity"]


def evaluation_table(records: list[dict]) -> str:
    """One Markdown table of records of one kind on one feature set (ValueError otherwise), with the paper's
    row where the records say the paper's figures apply."""
    features = check_same_features(records)
    kinds = {r["kind"] for r in records}
    if len(kinds) != 1:
        raise ValueError(f"one table holds one kind of record; got {sorted(kinds)}")
    rows = []
    if kinds == {"samples"}:
        families = S.recorded(features)
        columns = [(c, f.paper) for f in families for c in f.columns]
        cols = SAMPLE_RECIPE_COLUMNS + [c.title for c, _ in columns]
        for r in records:
            rows.append([r["time"], f"{r['prior_kind']} ({r['prior_step']})", "yes" if r["ema"] else "no",
                         str(r["n_samples"]), str(r["steps"] or "–"), f"{r['temperature']:g}",
                         f"{r['reference']} ({r['n_reference']})", str(r["seed"])]
                        + [_cell(r[c.key], c) for c, _ in columns])
        paper = next((r["paper"] for r in records if r.get("paper")), None)
        if paper and paper_scale(features):  # the paper's row fills the columns of the figures it reports
            rows.append([f"paper: {paper['source']}", "absorbing", "yes", f"{paper['n_samples']}", "–",
                         f"{paper['temperature']:g}", "train", "–"]
                        + [_cell(paper.get(c.key), c) if in_paper else "–" for c, in_paper in columns])
    else:
        cols = VQGAN_COLUMNS
        for r in records:
            rows.append([r["time"], f"vqgan ({r['vqgan_step']})", "yes" if r["ema"] else "no", r["reference"],
                         str(r["n_images"]), _f(r["rfid"]), _f(r["psnr"]), _f(r["ssim"], ".4f"),
                         _f(r["lpips"], ".4f"), f"{r['codes_used']}/{r['codebook_size']}", _f(r["perplexity"], ".1f")])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _title(kind: str, features: str) -> str:
    what = ("Samples: FID and PRDC (paper Tables 1, 2)" if kind == "samples"
            else "VQGAN reconstructions (paper Table 5)")
    # a space no longer registered keeps the words records of unknown features always had
    title = SPACES.get(features, SPACES["random-inception"]).title
    return f"## {what} — features: {features} ({title})"


def render_markdown(records: list[dict], run_name: str = "") -> str:
    out = [f"# Evaluations{' of ' + run_name if run_name else ''}", "",
           "Rewritten from evaluation.jsonl (the full recipe of every row) by `python -m ulib evaluate`. "
           "One table per kind of figure and feature set: figures on different features are never mixed.", ""]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["kind"], r["features"]), []).append(r)
    # samples before the VQGAN's, the paper's features first
    for (kind, features), rs in sorted(groups.items(), key=lambda kv: (kv[0][0] != "samples",
                                                                       not paper_scale(kv[0][1]))):
        out += [_title(kind, features), "", evaluation_table(rs), ""]
        if kind == "samples" and any(r.get("paper") for r in rs):
            out += [f"PRDC: the paper's figures were computed by the official calc_PRDC.py with k = {PAPER_PRDC_K}; "
                    "precision and recall are not listed (not verified against the paper).", ""]
    return "\n".join(out)


def record_evaluation(run_path: str | Path, record: dict) -> tuple[Path, Path]:
    """Add `record` to RUN/evaluation.jsonl and rewrite RUN/evaluation.md from all records.

    The file is rewritten whole through `atomic_write` (the old lines byte for byte, then the new one), never
    appended in place: a write cut short (full disk, kill) leaves the previous file intact instead of a partial
    last line. The command holds the run's lock (`RunDir.lock`), so no other writer adds a record meanwhile."""
    run_path = Path(run_path)
    jsonl, md = run_path / "evaluation.jsonl", run_path / "evaluation.md"
    before = jsonl.read_bytes() if jsonl.is_file() else b""
    if before and not before.endswith(b"\n"):
        before += b"\n"
    line = (json.dumps(record) + "\n").encode()
    atomic_write(jsonl, lambda f: f.write(before + line))
    text = render_markdown(read_records(jsonl), run_path.name) + "\n"
    atomic_write(md, lambda f: f.write(text.encode()))
    return jsonl, md


def summary(r: dict) -> str:
    tag = f"[features: {r['features']}]"
    if r["kind"] == "vqgan":
        lp = "skipped" if r["lpips"] is None else f"{r['lpips']:.4f}"
        return (f"{tag} VQGAN on {r['n_images']} {r['reference']} images: rFID {r['rfid']:.2f}, PSNR {r['psnr']:.2f} "
                f"dB, SSIM {r['ssim']:.4f}, LPIPS {lp}, codes used {r['codes_used']}/{r['codebook_size']} "
                f"(perplexity {r['perplexity']:.1f})")
    figures = ", ".join(f.summary(r) for f in S.recorded(r["features"]) if f.summary is not None)
    return (f"{tag} {r['n_samples']} samples ({r['steps']} steps, temperature {r['temperature']:g}, seed {r['seed']}) "
            f"vs {r['n_reference']} {r['reference']} images: {figures}")


_HELD = {"val": "validation", "test": "test"}


def memorisation_summary(r: dict) -> str:
    """One line of an evaluation's memorisation figures (`python -m ulib evaluate --memorisation`)."""
    held = r.get("memorisation_split", "val")  # records made before the test split compared with validation
    return (f"memorisation [features: {r['features']}]: median distance to the nearest training image "
            f"{r['memorisation_sample_to_train_median']:.4g} for samples vs "
            f"{r['memorisation_test_to_train_median']:.4g} "
            f"for {_HELD[held]} images (ratio {r['memorisation_median_ratio']:.3f}); near-copies "
            f"{r['memorisation_near_copy_share']:.1%} [{r['memorisation_near_copy_share_lo']:.1%}, "
            f"{r['memorisation_near_copy_share_hi']:.1%}]; C_T {r['memorisation_c_t']:.2f} (below about -3: "
            f"copying); FID vs train {r['fid']:.2f}, vs {_HELD[held]} {r[f'fid_vs_{held}']:.2f}")
