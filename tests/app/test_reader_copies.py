"""Executed copies for readers (docs/notebooks, the site) never start a run inside docs/ (#23): the export points
the injected run_dir at the run relative to the copy's folder, and `session.setup` refuses a run directory under
docs/."""
import json
from pathlib import Path

import nbformat
import pytest

from ulib.app import session
from ulib.app.results import PROJECT_ROOT, copy_for_readers


def executed(run_dir: str) -> str:
    params = nbformat.v4.new_code_cell('# Parameters\nprofile = "demo"\nrun_dir = "%s"\nseed = 0\n' % run_dir)
    params.metadata["tags"] = ["injected-parameters"]
    other = nbformat.v4.new_code_cell('run_dir = "untouched"  # not the injected cell')
    nb = nbformat.v4.new_notebook(cells=[params, other])
    nb.metadata["papermill"] = {"parameters": {"profile": "demo", "run_dir": run_dir}}
    return nbformat.writes(nb)


def test_the_injected_run_dir_points_at_the_run_from_the_copys_folder(tmp_path):
    run, dest = tmp_path / "runs" / "demo", tmp_path / "docs" / "notebooks"
    out = json.loads(copy_for_readers(executed(str(run)), run, dest))
    injected = "".join(out["cells"][0]["source"])
    assert 'run_dir = "../../runs/demo"' in injected and 'profile = "demo"' in injected and "seed = 0" in injected
    assert "".join(out["cells"][1]["source"]) == 'run_dir = "untouched"  # not the injected cell'
    assert out["metadata"]["papermill"]["parameters"]["run_dir"] == "../../runs/demo"
    assert (dest / "../../runs/demo").resolve() == run.resolve()
    nbformat.validate(nbformat.reads(json.dumps(out), as_version=4))


def test_setup_refuses_a_run_directory_inside_docs():
    for inside in (PROJECT_ROOT / "docs", PROJECT_ROOT / "docs" / "notebooks" / "runs" / "demo"):
        with pytest.raises(ValueError, match="inside the project's docs/"):
            session.setup("smoke", str(inside), "cpu", 0, [], banner=False)
    assert not (PROJECT_ROOT / "docs" / "notebooks" / "runs").exists()
    assert Path(PROJECT_ROOT / "docs").is_dir()
