"""`python -m ulib reproduce`: run the numbered notebooks in order with papermill, then gather their results.

    python -m ulib reproduce --profile smoke                    # every notebook, into runs/smoke/
    python -m ulib reproduce --profile demo --run runs/d --only 04 05 [--force] [--set prior_train.steps=50]

Each notebook `notebooks/NN_name.ipynb` is executed with its `parameters` cell overridden (profile, run_dir
as an absolute path, device, seed, overrides) into `RUN/notebooks/NN_name.ipynb`. The notebooks share the
run directory, so the VQGAN and the prior are trained once (by the first notebook that needs them) and
loaded by the others.

A notebook that finished leaves `RUN/results/NN_name.done` (JSON: its parameters, how long it took); a
later call skips it while the parameters are the same, unless --force. --force re-executes notebooks, not
trainings: the stages inside reuse finished checkpoints (use a fresh --run, or delete them, to retrain).

The notebooks write their figures (PNG) and tables (CSV) into `RUN/results/`. Afterwards every CSV gets a
Markdown twin (`.md`) holding our values, the paper's where `ulib/paper.py` has checked ones, and the
profile; `RUN/results/README.md` lists every table and figure.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ulib.app import flags as F
from ulib.app import verdicts
from ulib.device import resolve_device
from ulib.io.files import file_sha256
from ulib.io.logs import markdown_table
from ulib.io.rundir import RunDir
from ulib.paper import HEADLINE, PAPER, paper_rows
from ulib.profiles import PROFILES
from ulib.train import pretrained

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout holding pyproject.toml (editable install)
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
KERNEL = "python3"


# ---- which notebooks -----------------------------------------------------------------------------------
def list_notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks NN_name.ipynb of `folder`, in order."""
    found = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {folder}")
    return found


def select(notebooks: list[Path], only: list[str] | None) -> list[Path]:
    """The notebooks named by `only` ('04', '4' or '04_step_skipping'), in their order; all when None."""
    if not only:
        return notebooks
    by_key = {}
    for nb in notebooks:
        num = nb.stem.split("_", 1)[0]
        by_key.update({num: nb, str(int(num)): nb, nb.stem: nb})
    unknown = [o for o in only if o not in by_key]
    if unknown:
        raise ValueError(f"--only {unknown}: no such notebook; allowed: {[nb.stem for nb in notebooks]} "
                         f"(or their numbers)")
    wanted = {by_key[o] for o in only}
    return [nb for nb in notebooks if nb in wanted]


def parameters(profile: str, run: Path, device: str, seed: int, overrides: list[str]) -> dict:
    """The values papermill injects after each notebook's `parameters` cell."""
    return {"profile": profile, "run_dir": str(Path(run).resolve()), "device": device, "seed": seed,
            "overrides": list(overrides)}


def marker(run: Path, nb: Path) -> Path:
    return Path(run) / "results" / f"{nb.stem}.done"


def notebook_sha256(nb: Path) -> str:
    """SHA-256 of the notebook file as committed: a marker made by another version of it is stale."""
    return file_sha256(nb)


def is_done(run: Path, nb: Path, params: dict) -> bool:
    """True when this version of the notebook (its SHA-256) finished before with the same parameters."""
    m = marker(run, nb)
    if not m.exists():
        return False
    try:
        done = json.loads(m.read_text())
    except json.JSONDecodeError:
        return False
    return done.get("parameters") == params and done.get("notebook_sha256") == notebook_sha256(nb)


# ---- running -------------------------------------------------------------------------------------------
def installed_kernels() -> set[str] | None:
    """Names of the installed Jupyter kernels (for --kernel), or None without jupyter_client (papermill's
    dependency; imported here, not at the top, for the reason `execute` imports papermill late)."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager
    except ImportError:
        return None
    return set(KernelSpecManager().find_kernel_specs())


def execute(nb: Path, out: Path, params: dict, kernel: str = KERNEL) -> None:
    """Execute one notebook with papermill (kernel started in the notebook's folder, as in JupyterLab)."""
    import papermill as pm

    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(nb), str(out), parameters=params, kernel_name=kernel, cwd=str(nb.parent),
                        progress_bar=False, log_output=False, request_save_on_cell_execute=True)


def run_notebooks(profile: str, run: str | Path | None = None, *, only: list[str] | None = None,
                  force: bool = False, device: str = "auto", seed: int = 0, overrides: list[str] = (),
                  notebooks_dir: Path = NOTEBOOKS_DIR, kernel: str = KERNEL, log=print) -> dict:
    """Execute the (selected) notebooks in order into RUN/notebooks/, then gather RUN/results/.

    Returns {notebook stem: 'ran' | 'skipped'}. Stops at the first notebook that fails, raising
    papermill's error (the executed copy, with the failing cell, is in RUN/notebooks/).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; allowed: {sorted(PROFILES)}")
    run = Path(run if run is not None else Path("runs") / profile).resolve()
    params = parameters(profile, run, device, seed, list(overrides))
    chosen = select(list_notebooks(notebooks_dir), only)
    status = {}
    for nb in chosen:
        if not force and is_done(run, nb, params):
            log(f"[{nb.stem}] done before (this version, these parameters): skipped (--force to run it again)")
            status[nb.stem] = "skipped"
            continue
        out = run / "notebooks" / nb.name
        log(f"[{nb.stem}] running -> {out}")
        t0 = time.perf_counter()
        execute(nb, out, params, kernel)
        seconds = time.perf_counter() - t0
        marker(run, nb).write_text(json.dumps({
            "notebook": nb.name, "notebook_sha256": notebook_sha256(nb), "parameters": params,
            "seconds": round(seconds, 1),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "executed_copy": str(out),
        }, indent=2) + "\n")
        log(f"[{nb.stem}] finished in {seconds:.0f}s")
        status[nb.stem] = "ran"
    collect(run, profile, log=log)
    return status


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


def command_line(profile: str | None, run: str | None, *, only=None, force: bool = False, device: str = "auto",
                 seed: int = 0, overrides=(), kernel: str = KERNEL, export: str | None = None,
                 pretrained_model: str | None = None) -> int:
    """`python -m ulib reproduce`: install a pretrained model first if asked, check every flag the notebooks would
    trip over, run the notebooks under the run's lock and export the copies; errors said on stderr with the exit
    code (2: a flag or a missing file; 1: a notebook failed, naming the executed copy that shows the cell)."""
    if pretrained_model:
        try:
            profile = profile or pretrained.config_of(pretrained_model).profile
            run = run or str(Path("runs") / pretrained_model)
            F.check_output_folder(run, "--run")
            print(pretrained.describe_install(pretrained_model, RunDir(run)))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if profile is None:
        print("error: --profile is required (one of " + ", ".join(sorted(PROFILES)) + ")", file=sys.stderr)
        return 2
    folder = Path(run or Path("runs") / profile)
    try:
        F.check_seed(seed)
        F.check_output_folder(run, "--run")
        F.check_output_folder(export, "--export")
        resolve_device(device)
        # the settings every notebook will use: the run's stored config (or the profile's) with the overrides
        RunDir(folder).resolve_config(profile, overrides)
        kernels = installed_kernels()
        if kernels is not None and kernel not in kernels:
            raise ValueError(f"--kernel {kernel!r} is not an installed Jupyter kernel; allowed: {sorted(kernels)}")
        # the notebooks' kernels are this command's children: they write the run under its lock (RunDir.lock)
        with RunDir(folder).lock():
            run_notebooks(profile, run, only=only, force=force, device=device, seed=seed, overrides=overrides,
                          kernel=kernel)
        if export:
            export_docs(folder, Path(export))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # papermill's execution error: name the notebook copy that holds the traceback
        if type(e).__name__ != "PapermillExecutionError":
            raise
        print(f"error: a notebook failed ({e.ename}: {e.evalue}); the executed copy under {folder / 'notebooks'} "
              f"shows the failing cell", file=sys.stderr)
        return 1
    return 0
