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
profile; `RUN/results/README.md` lists every table and figure (`ulib/app/results.py`, which also exports the
executed copies for readers: --export).
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ulib.app import flags as F
from ulib.app.results import PROJECT_ROOT, collect, export_docs, marker
from ulib.device import resolve_device
from ulib.io.files import file_sha256
from ulib.io.rundir import RunDir
from ulib.profiles import PROFILES
from ulib.train import pretrained

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
