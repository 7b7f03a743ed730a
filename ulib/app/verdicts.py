"""The verdict table: each of the paper's claims a notebook tests, with its verdict and the statistic behind it.

A notebook states no direction in its prose; it computes a `ulib.eval.stats.Verdict` (or a proportion, a trend)
and hands it to `ulib.app.readings.claim`, which prints the generated sentence and keeps one row per claim in
`RUN/results/verdicts_<notebook>.json` (rewritten whole on every run of that notebook, so a re-run replaces its
rows). `python -m ulib reproduce` gathers every notebook's rows into `RUN/results/verdicts.csv` and `.md`
(`collect`), the first table of the results' index; the README's verdict table is that file's copy from the
executed docs (tests/app/test_verdicts.py holds them equal).

A row: notebook (stem, e.g. '04_step_skipping'), claim (what the paper says, one line), paper (the paper's
figure or table and value), verdict (one of VERDICTS), statistic (the measured sentence: difference, interval,
p, n), key (a short id unique in its notebook).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from ulib.eval.stats import VERDICTS
from ulib.io.files import atomic_write

COLUMNS = ("notebook", "key", "claim", "paper", "verdict", "statistic")
EXTRA_VERDICTS = ("measured",)  # a figure with no claimed direction (e.g. a near-copy share), reported as is


def check_row(row: dict) -> dict:
    """The row with exactly COLUMNS, each a non-empty string; ValueError naming the first problem."""
    missing = [c for c in COLUMNS if row.get(c) is None or not str(row[c]).strip()]
    if missing:
        raise ValueError(f"verdict row lacks {', '.join(missing)}: {row}")
    allowed = tuple(v.replace("±margin", "±") for v in VERDICTS) + EXTRA_VERDICTS
    if not any(str(row["verdict"]).startswith(v) for v in allowed):
        raise ValueError(f"verdict {row['verdict']!r}; allowed: {', '.join(VERDICTS + EXTRA_VERDICTS)}")
    return {c: str(row[c]) for c in COLUMNS}


def notebook_file(results: Path, notebook: str) -> Path:
    return Path(results) / f"verdicts_{notebook}.json"


def write_notebook_rows(results: Path, notebook: str, rows: list[dict]) -> Path:
    """Replace RESULTS/verdicts_<notebook>.json with rows (keys unique within the notebook)."""
    rows = [check_row({**r, "notebook": notebook}) for r in rows]
    keys = [r["key"] for r in rows]
    if len(set(keys)) != len(keys):
        raise ValueError(f"verdict keys repeat in {notebook}: {keys}")
    path = notebook_file(results, notebook)
    text = json.dumps(rows, indent=1) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))
    return path


def read_all(results: Path) -> list[dict]:
    """Every notebook's rows, in notebook order, then in the order each notebook wrote them."""
    rows = []
    for path in sorted(Path(results).glob("verdicts_*.json")):
        try:
            rows += [check_row(r) for r in json.loads(path.read_text())]
        except (ValueError, TypeError, AttributeError) as e:  # json.JSONDecodeError is a ValueError
            raise ValueError(f"{path}: not a verdict file of this kit ({e})") from None
    return rows


def read_csv(path: Path) -> list[dict]:
    """The rows of a verdicts.csv written by `collect`."""
    with open(path, newline="") as f:
        return [check_row(r) for r in csv.DictReader(f)]


def markdown(rows: list[dict], link_prefix: str = "") -> str:
    """The verdict table in Markdown, each notebook linked as link_prefix + stem + '.ipynb'."""
    lines = ["| paper's claim | paper | verdict | measured | notebook |", "|---|---|---|---|---|"]
    for r in rows:
        cells = [r["claim"], r["paper"], f"**{r['verdict']}**", r["statistic"],
                 f"[{r['notebook'][:2]}]({link_prefix}{r['notebook']}.ipynb)"]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines)


def collect(results: Path) -> list[dict]:
    """Write RESULTS/verdicts.csv and verdicts.md from every notebook's rows; returns the rows."""
    results = Path(results)
    rows = read_all(results)
    if not rows:
        return rows
    with open(results / "verdicts.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    (results / "verdicts.md").write_text(markdown(rows, link_prefix="../") + "\n")
    return rows


# ---- the README's copy ----------------------------------------------------------------------------------------
README_START = "<!-- verdicts: generated from docs/notebooks/results/verdicts.csv; do not edit by hand -->"
README_END = "<!-- verdicts: end -->"


def readme_block(rows: list[dict]) -> str:
    """The README's verdict table: `markdown` with the notebooks linked from the project root (without rows, a
    line saying the executed copies have recorded none yet)."""
    table = (markdown(rows, link_prefix="docs/notebooks/") if rows else
             "*No verdicts recorded yet: the executed copies in `docs/notebooks/` predate the verdict table; "
             "`make docs-notebooks` fills it.*")
    return f"{README_START}\n{table}\n{README_END}"


def update_readme(readme: Path, rows: list[dict]) -> bool:
    """Replace the README's verdict block (between README_START and README_END) with `readme_block(rows)`;
    returns True when the text changed. ValueError when the README has no such block."""
    text = Path(readme).read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme}: no verdict block (a line {README_START!r} ... {README_END!r})")
    head, rest = text.split(README_START, 1)
    new = head + readme_block(rows) + rest.split(README_END, 1)[1]
    if new != text:
        Path(readme).write_text(new)
    return new != text
