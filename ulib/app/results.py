"""What a reproduction leaves to read: each finished notebook's marker, RUN/results/ gathered (a Markdown twin of
every CSV table beside the paper's checked values, the verdict table, the index README.md), and the executed
copies exported for readers (`python -m ulib reproduce --export docs/notebooks`, `make docs-notebooks`).

`ulib.app.reproduce` runs the notebooks and calls `collect` and `export_docs`.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

from ulib.app import verdicts
from ulib.io.logs import markdown_table
from ulib.paper import HEADLINE, PAPER, paper_rows

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout holding pyproject.toml (editable install)


# ---- the marker of a finished notebook -------------------------------------------------------------------
def marker(run: Path, nb: Path) -> Path:
    return Path(run) / "results" / f"{nb.stem}.done"


# ---- tables (plain Python: no torch here, so `--help` stays fast) --------------------------------------------
def read_table(path) -> list[dict]:
    """A CSV written by `notebook_utils.write_table` as a list of dicts of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---- gathering -------------------------------------------------------------------------------------------
def table_markdown(csv_path: Path, profile: str) -> str:
    """Our CSV as Markdown: our columns, then the paper's checked values (joined on the key column), then
    the profile; with a note naming the paper's table when it has no checked values."""
    rows = read_table(csv_path)
    paper = paper_rows(csv_path.stem)
    ours = list(rows[0]) if rows else []
    pcols = [f"paper: {c}" for c in paper["columns"]]
    for r in rows:
        values = paper["rows"].get(r.get(paper["key"]), {}) if paper["key"] else {}
        for c in paper["columns"]:
            r[f"paper: {c}"] = values.get(c)
        r["profile"] = profile
    text = f"### {csv_path.stem}\n\n" + markdown_table(rows, ours + pcols + ["profile"])
    if paper.get("paper_rows"):  # the paper's own rows, at its settings (not joined to ours)
        text += (f"\nThe paper's rows ({paper['source']}; its datasets and settings, shown beside ours, not "
                 f"joined):\n\n" + markdown_table(paper["paper_rows"], list(paper["paper_rows"][0])))
    elif paper["paper_table"]:
        if paper["rows"]:
            text += f"\nPaper values: {paper['paper_table']}, {paper['source']}.\n"
        else:
            text += (f"\nPaper: {paper['paper_table']}. No paper values are recorded in ulib/paper.py "
                     f"(only checked numbers go there); compare by hand. Our profile {profile!r} differs from "
                     f"the paper's setting unless it is ffhq, churches or bedrooms.\n")
    return text


def collect(run: Path, profile: str, log=print) -> Path:
    """Write a Markdown twin of every RUN/results/*.csv and the index RUN/results/README.md."""
    results = Path(run) / "results"
    results.mkdir(parents=True, exist_ok=True)
    for csv_path in sorted(results.glob("*.csv")):
        csv_path.with_suffix(".md").write_text(table_markdown(csv_path, profile))
    verdicts.collect(results)  # verdicts.csv and its own verdicts.md (notebooks linked), after the generic twins
    finished = [d.stem for d in sorted(results.glob("*.done"))]
    return write_results_index(results, profile, Path(run).name, finished, log)


def write_results_index(results: Path, profile: str, run_name: str, finished: list[str], log=print) -> Path:
    """RESULTS/README.md: every table (its Markdown twin, made from the CSV where missing) and figure there."""
    tables = [p for p in sorted(results.glob("*.csv")) if p.name != "verdicts.csv"]
    figures = sorted(results.glob("*.png"))
    lines = [f"# Reproduction results: profile `{profile}`", "",
             f"Run directory: `{run_name}`. Paper: {PAPER}.", "",
             "Notebooks finished: " + (", ".join(f"`{stem}`" for stem in finished) or "none") + ".", ""]
    if (results / "verdicts.md").exists():
        lines += ["## Verdicts: each claim of the paper the notebooks test", "",
                  "Reproduced / not reproduced: the 95 % interval lies wholly on the claimed / the other side; "
                  "not resolved at this n: it straddles 0 (ulib.eval.stats.verdict).", "",
                  (results / "verdicts.md").read_text(), "(data: [verdicts.csv](verdicts.csv))", ""]
    lines += ["## Tables", ""]
    for csv_path in tables:
        twin = csv_path.with_suffix(".md")
        text = twin.read_text() if twin.exists() else table_markdown(csv_path, profile)
        lines += [text, f"(data: [{csv_path.name}]({csv_path.name}))", ""]
    lines += ["## Figures", ""]
    lines += [f"### {p.stem}\n\n![{p.stem}]({p.name})\n" for p in figures]
    lines += ["## The paper's headline results", "",
              f"From the {HEADLINE['source']}; for the paper profiles' targets, not comparable with CPU profiles.", "",
              markdown_table(HEADLINE["rows"], HEADLINE["columns"])]
    index = results / "README.md"
    index.write_text("\n".join(lines))
    log(f"results: {index} ({len(tables)} tables, {len(figures)} figures)")
    return index


# ---- executed copies for readers ------------------------------------------------------------------------
INDEX_ROW = re.compile(r"^\| \[(\d\d_\w+)\]\(\1\.ipynb\) \| (.*?) \| (.*?) \| (.*?) \|$")


def _exported_rows(index: Path) -> dict[str, dict]:
    """The notebook rows of an earlier export's DEST/README.md, by notebook stem ('–' read back as None)."""
    rows = {}
    for line in index.read_text().splitlines() if index.exists() else []:
        m = INDEX_ROW.match(line)
        if m:
            profile, seconds, finished = (None if v == "–" else v for v in m.group(2, 3, 4))
            rows[m.group(1)] = {"notebook": f"[{m.group(1)}]({m.group(1)}.ipynb)", "profile": profile,
                                "seconds": seconds, "finished": finished}
    return rows


def copy_for_readers(text: str, run: Path, dest: Path) -> str:
    """An executed notebook's JSON text with its injected run_dir pointing at RUN relative to DEST, the folder the
    copy goes to: a reader who re-executes the copy where it lies (the kernel starts in DEST) reuses RUN's
    checkpoints when they have them and otherwise trains into RUN, never into a folder under DEST (docs/)."""
    nb = json.loads(text)
    try:
        rel = Path(os.path.relpath(Path(run).resolve(), Path(dest).resolve())).as_posix()
    except ValueError:  # another drive (Windows): keep the absolute path
        rel = Path(run).resolve().as_posix()
    line = f'run_dir = "{rel}"  # the run these outputs came from, relative to this copy\'s folder\n'
    for cell in nb.get("cells", []):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell["source"] if isinstance(cell["source"], list) else cell["source"].splitlines(True)
            cell["source"] = [line if s.startswith("run_dir = ") else s for s in source]
    params = nb.get("metadata", {}).get("papermill", {}).get("parameters")
    if isinstance(params, dict) and "run_dir" in params:
        params["run_dir"] = rel
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def export_docs(run: Path, dest: Path, log=print) -> Path:
    """Copy RUN's executed notebooks to DEST and its results to DEST/results, for readers who want the figures
    without running anything (`make docs-notebooks` writes docs/notebooks/ from the demo profile).

    Absolute paths of this checkout inside the notebooks (the injected run_dir, printed paths) become
    relative to the project root, so the copies read the same on every machine. DEST/README.md lists the
    notebooks with how long each took and links the results' index, DEST/results/README.md. An export adds
    to an earlier one: the notebooks and results files RUN has replace theirs, every other file of DEST stays,
    and both indexes list everything DEST then holds (so `reproduce --only 06 --export docs/notebooks`
    updates notebook 06 alone).
    """
    run, dest = Path(run).resolve(), Path(dest)
    executed = sorted((run / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not executed:
        raise FileNotFoundError(f"no executed notebooks in {run / 'notebooks'}; run `python -m ulib reproduce "
                                f"--profile P --run {run}` first")
    (dest / "results").mkdir(parents=True, exist_ok=True)
    root = str(PROJECT_ROOT) + "/"
    index = dest / "README.md"
    rows = _exported_rows(index)
    profiles = set()
    for nb in executed:
        (dest / nb.name).write_text(copy_for_readers(nb.read_text().replace(root, ""), run, dest))
        done = marker(run, nb)
        info = json.loads(done.read_text()) if done.exists() else {}
        profiles.add(info.get("parameters", {}).get("profile"))
        rows[nb.stem] = {"notebook": f"[{nb.stem}]({nb.name})", "seconds": info.get("seconds"),
                         "profile": info.get("parameters", {}).get("profile"), "finished": info.get("finished")}
    for f in sorted((run / "results").glob("*")):
        if f.suffix in (".png", ".csv", ".md") and f.name != "README.md":
            shutil.copy2(f, dest / "results" / f.name)
    shown = sorted(p.stem for p in dest.glob("[0-9][0-9]_*.ipynb"))
    rows = [rows.get(stem, {"notebook": f"[{stem}]({stem}.ipynb)"}) for stem in shown]
    profile = next(iter(profiles)) if len(profiles) == 1 and None not in profiles else "mixed"
    write_results_index(dest / "results", profile, run.name, shown, log=lambda *a: None)
    docs = PROJECT_ROOT / "docs" / "notebooks"
    if (dest / "results" / "verdicts.csv").exists() and docs.exists() and dest.resolve() == docs.resolve():
        # the README's verdict table is this export's (tests/app/test_verdicts.py holds them equal)
        if verdicts.update_readme(PROJECT_ROOT / "README.md", verdicts.read_csv(dest / "results" / "verdicts.csv")):
            log("README.md: verdict table updated from docs/notebooks/results/verdicts.csv")
    index.write_text("\n".join([
        "# Executed notebooks", "",
        "Copies of the numbered notebooks as `python -m ulib reproduce` ran them, outputs included, so the "
        "figures can be read without running anything. Regenerate with `make docs-notebooks` (after "
        "`make demo`), or one notebook with `python -m ulib reproduce --profile demo --run runs/demo --only NN "
        "--export docs/notebooks`. Tables and figures: [results/README.md](results/README.md).", "",
        "Seconds: how long each notebook took in the exported run; a notebook that finds its checkpoints "
        "trains nothing, so these can be far below a first run's (each notebook's header gives both).", "",
        markdown_table(rows, ["notebook", "profile", "seconds", "finished"]),
        "*Images derived from OpenMoji (CC BY-SA 4.0) when the profile uses it.*", ""]))
    log(f"exported {len(executed)} notebooks and {len(list((dest / 'results').glob('*')))} result files to {dest}")
    return index
