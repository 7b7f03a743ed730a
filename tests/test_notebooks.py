"""The numbered notebooks: committed clean and regenerable, executed end to end with papermill under the
smoke profile (as `python -m ulib reproduce` runs them), their tables recorded as data, and the cells marked
`# NBVAL_CHECK_OUTPUT` reproducible (nbval, lax mode, over the executed copies).

One run directory is shared by all notebooks in order, so the VQGAN and the priors are trained once.
"""
import ast
import json
import subprocess
import sys

import jupytext
import nbformat
import pytest

from ulib.app.reproduce import is_done, notebook_sha256, run_notebooks
from ulib.app.results import PROJECT_ROOT, export_docs, marker, read_table

from helpers import ROOT, TINY

NOTEBOOKS = ROOT / "notebooks"
COMMITTED = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
REQUIRED_PARAMETERS = {"profile", "run_dir", "device", "seed", "overrides", "pretrained"}

# Tables the notebooks must record, with the columns a runner relies on.
TABLES = {
    "table3_steps": ["method", "steps", "network_calls", "seconds_per_image", "n", "fid", "fid_std", "floor_fid", "kid",
                     "precision", "recall", "density", "coverage", "coverage_std", "fid_ratio_to_T", "fid_minus_T",
                     "fid_minus_T_lo", "fid_minus_T_hi", "fid_minus_T_p", "vs_T", "cost_below_margin",
                     "near_copy_share", "near_copy_share_lo", "near_copy_share_hi", "median_ratio",
                     "pix_near_copy_share", "pix_median_ratio", "c_t", "features"],
    "table4_ar_vs_absorbing": ["model", "checkpoint", "bits_per_token", "estimate", "stderr", "sampling_steps",
                               "seconds_per_image"],
    "table4_quality": ["model", "checkpoint", "step", "temperature", "n", "fid", "fid_std", "floor_fid", "precision",
                       "recall", "density", "coverage", "features"],
    "table4_fid_differences": ["checkpoints", "absorbing_step", "autoregressive_step", "reference", "n",
                               "fid_difference", "fid_difference_std", "lo", "hi", "p", "verdict", "features"],
    "table4_memorisation": None,  # model, checkpoint, step, then ulib.eval.memorisation.memorisation_report's row
    "fig5_val_elbo": ["loss_type", "step", "val_elbo_bpt", "seed"],
    "fig5_seed_summary": ["loss_type", "step", "seeds", "val_elbo_bpt_mean", "val_elbo_bpt_std"],
    "fig5_paired_difference": ["step", "seeds", "difference_bpt", "se", "df", "lo", "hi", "p"],
    "table5_recon_fid": None,
    "table4_overfitting": ["model", "steps", "train_bpt_last", "val_bpt_last", "generalisation_gap_bpt", "best_val_bpt",
                           "best_val_step", "val_rise_since_best_bpt"],
    "fig6_temperature": ["temperature", "n", "fid", "fid_std", "floor_fid", "precision", "precision_std", "recall",
                         "recall_std", "density", "coverage", "coverage_std", "category_entropy_bits",
                         "category_entropy_bits_std", "reference_entropy_bits", "category_kl_bits",
                         "category_kl_bits_std", "top_category_share", "top_category_share_std",
                         "reference_top_category_share", "token_entropy_bits", "features", "top_category_share_lo",
                         "top_category_share_hi", "floor_top_category_share", "share_minus_floor",
                         "share_minus_floor_lo", "share_minus_floor_hi", "share_minus_floor_p", "share_vs_floor",
                         "floor_category_kl_bits", "kl_minus_floor", "kl_minus_floor_lo", "kl_minus_floor_hi",
                         "kl_minus_floor_p", "kl_vs_floor", "floor_category_entropy_bits", "entropy_minus_floor",
                         "entropy_minus_floor_lo", "entropy_minus_floor_hi", "entropy_vs_floor", "near_copy_share",
                         "near_copy_share_lo", "near_copy_share_hi", "median_ratio", "pix_near_copy_share",
                         "pix_median_ratio", "c_t", "fid_test"],
    "table1_2_temperature": ["data", "temperature", "n", "fid", "fid_std", "precision", "recall", "density", "coverage",
                             "features"],
    "fig4_big_images": ["canvas", "window", "stride", "windows", "steps", "seconds_per_image"],
    "fig7_inpainting": ["mask", "tokens_regenerated", "tokens", "start_time", "T", "seconds_per_image"],
    "02_codebook_usage": ["codebook_size", "codes_used", "perplexity"],
    "03_accuracy_by_mask_ratio": ["mask_ratio", "accuracy", "cross_entropy_bits", "n_masked"],
    "12_metric_sanity": None,  # columns: ulib.eval.metric_checks.sanity_sweep's
    "12_run_quality": None,
    "01_quality": None,
    "01_memorisation": None,  # columns: ulib.app.prose.memorisation_summary's
    "02_reconstruction_l1": ["images", "n", "l1_mean"],
    "fig4_seam_quality": None,
    "fig7_inpainting_quality": None,
}
FIGURES = ["01_samples", "02_reconstructions", "02_codebook_usage", "02_diffaug", "02_training_curves",
           "03_forward_process", "03_loss_weights", "03_training_curves", "03_accuracy_by_mask_ratio",
           "table3_steps", "table3_samples", "table3_nearest_training",
           "table4_ar_vs_absorbing", "table4_samples", "table4_training_curves", "table4_nearest_pairs",
           "table5_recon_fid", "table5_reconstructions", "fig5_val_elbo", "fig5_paired_difference",
           "fig6_temperature", "fig6_temperature_samples", "fig6_nearest_training",
           "08_window_coverage", "fig4_big_images",
           "fig4_independent_tiles", "fig4_middle_crops", "fig7_inpainting", "fig7_inpainting_sets",
           "01_nearest_training", "11_playground_samples", "11_playground_inpaint_before",
           "11_playground_inpaint_after", "12_metric_sanity", "12_real_recon_samples"]


# ---- committed notebooks: clean, regenerable, one parameters cell of literals ------------------------------
def test_notebooks_exist_in_order():
    names = [p.stem for p in COMMITTED]
    assert names[:9] == ["01_quickstart", "02_vqgan", "03_absorbing_prior", "04_step_skipping", "05_ar_vs_absorbing",
                         "06_elbo_vs_reweighted", "07_temperature", "08_big_images", "09_inpainting"], names


def _cells(nb) -> list[tuple]:
    return [(c.cell_type, c.source, tuple(c.metadata.get("tags", []))) for c in nb.cells]


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_notebook_is_paired_with_its_percent_source(path):
    """Each .ipynb has a jupytext percent-format .py (what people edit and review) holding the same cells;
    after editing one, `make notebooks` (jupytext --sync) brings the other along."""
    source = path.with_suffix(".py")
    assert source.exists(), f"{path.name} has no paired {source.name}: jupytext --set-formats ipynb,py:percent"
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", f"{path.name} is not paired"
    paired = jupytext.read(source)
    assert _cells(paired) == _cells(nb), f"{path.name} and {source.name} differ: run `make notebooks`"


def _notebook(path):
    return jupytext.read(path) if path.suffix == ".py" else nbformat.read(path, as_version=4)


@pytest.mark.parametrize("path", [p for nb in COMMITTED for p in (nb, nb.with_suffix(".py"))], ids=lambda p: p.name)
def test_committed_notebook_is_clean(path):
    nb = _notebook(path)
    if path.suffix == ".ipynb":
        nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a cell has outputs"
            assert cell.execution_count is None, f"{path.name}: a cell has an execution count"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'; exactly one is allowed"
    tree = ast.parse(tagged[0].source)
    names = set()
    for stmt in tree.body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name), \
            f"{path.name}: the parameters cell may hold only `name = literal` lines, not {ast.unparse(stmt)!r}"
        ast.literal_eval(stmt.value)  # raises on anything but a plain literal
        names.add(stmt.targets[0].id)
    assert REQUIRED_PARAMETERS <= names, f"{path.name}: missing parameters {REQUIRED_PARAMETERS - names}"
    setups = [c.source for c in nb.cells if c.cell_type == "code" and "session.setup(" in c.source]
    assert setups and "session.setup(profile, run_dir, device, seed, overrides, pretrained)" in setups[0], \
        f"{path.name}: the setup call must pass the parameters on, `pretrained` (the ready-trained model) included"
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    for heading in ("**Reproduces:**", "**Needs:**", "**Time:**"):
        assert heading in first.source, f"{path.name}: the first cell should say {heading}"
    assert any("# NBVAL_CHECK_OUTPUT" in c.source for c in nb.cells if c.cell_type == "code"), \
        f"{path.name}: mark at least one deterministic cell with # NBVAL_CHECK_OUTPUT"


# ---- executed with papermill under the smoke profile ------------------------------------------------------------
@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    """All notebooks executed in order into one smoke run directory, as `python -m ulib reproduce` does."""
    run = tmp_path_factory.mktemp("nb") / "run"
    status = run_notebooks("smoke", run, overrides=TINY, device="cpu", log=lambda *a: None)
    return run, status


@pytest.mark.slow
def test_every_notebook_runs(reproduced):
    run, status = reproduced
    assert set(status) == {p.stem for p in COMMITTED} and set(status.values()) == {"ran"}
    for p in COMMITTED:
        executed = nbformat.read(run / "notebooks" / p.name, as_version=4)
        injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and f"run_dir = {str(run.resolve())!r}".replace("'", '"') in injected[0].source
        done = json.loads((run / "results" / f"{p.stem}.done").read_text())
        assert done["parameters"]["profile"] == "smoke" and done["parameters"]["overrides"] == TINY


@pytest.mark.slow
@pytest.mark.parametrize("table", sorted(TABLES))
def test_tables_are_recorded_as_csv_and_markdown(reproduced, table):
    run, _ = reproduced
    rows = read_table(run / "results" / f"{table}.csv")
    assert rows, table
    if TABLES[table] is not None:
        assert list(rows[0]) == TABLES[table]
    md = (run / "results" / f"{table}.md").read_text()
    assert "| profile |" in md and "| smoke |" in md


@pytest.mark.slow
def test_table_contents(reproduced):
    run, _ = reproduced
    t3 = read_table(run / "results" / "table3_steps.csv")
    steps = [int(r["steps"]) for r in t3 if r["method"] == "random"]
    assert steps == [16, 8, 4, 2, 1]  # smoke: T = 16, then T/2, ...
    assert [(r["method"], int(r["steps"])) for r in t3 if r["method"] != "random"] == [
        ("confidence", 4), ("confidence", 2), ("confidence", 1), ("remask", 4), ("remask", 2), ("remask", 1)]
    assert all(int(r["n"]) == 40 and float(r["fid_std"]) > 0 and r["features"] == "openmoji" for r in t3)
    assert float(t3[0]["fid_ratio_to_T"]) == 1.0 and t3[0]["fid_minus_T"] == "", "the baseline: random at T"
    directions = {"lower", "higher", "not resolved at this n"}
    assert all(r["vs_T"] in directions and r["cost_below_margin"] in {"yes", "no", "not resolved at this n"}
               and float(r["fid_minus_T_lo"]) <= float(r["fid_minus_T_hi"]) for r in t3[1:])
    assert 0 <= float(t3[0]["near_copy_share"]) <= 1 and all(r["near_copy_share"] == "" for r in t3[1:])
    md3 = (run / "results" / "table3_steps.md").read_text()
    assert "The paper's rows (Table 3" in md3 and "| Churches | 50 |" in md3
    fig6 = read_table(run / "results" / "fig6_temperature.csv")
    assert [float(r["temperature"]) for r in fig6] == [0.5, 0.7, 0.8, 0.9, 1.0, 1.2]
    assert all(float(r["category_entropy_bits"]) >= 0 and float(r["category_kl_bits"]) >= 0 for r in fig6)
    assert all(float(r["top_category_share_lo"]) <= float(r["top_category_share"]) <= float(r["top_category_share_hi"])
               and r["share_vs_floor"] in directions and 0 <= float(r["near_copy_share"]) <= 1 for r in fig6)
    verdicts = {n: json.loads((run / "results" / f"verdicts_{n}.json").read_text())
                for n in ("04_step_skipping", "07_temperature")}
    assert [r["key"] for r in verdicts["04_step_skipping"]] == ["fewer_steps_raise_fid", "half_steps_cost_little"]
    assert [r["key"] for r in verdicts["07_temperature"]] == [
        "low_temperature_bias", "temperature_amplifies_bias", "small_change_bias_unclear", "t09_lower_fid",
        "t09_improves_prdc"]
    t12 = read_table(run / "results" / "table1_2_temperature.csv")
    assert [float(r["temperature"]) for r in t12] == [0.9, 1.0]
    assert "| FFHQ | 0.9 | 6.11 |" in (run / "results" / "table1_2_temperature.md").read_text()
    for name in ("12_run_quality", "01_quality"):
        quality = read_table(run / "results" / f"{name}.csv")
        assert [r["set"] for r in quality][:2] == ["test images (the floor)", "VQGAN reconstructions"]
        assert "of families no model saw" in quality[0]["images"] and "training images" in quality[0]["reference"]
        assert float(quality[2]["fid_over_reconstructions"]) > 0 and all(float(r["fid_std"]) > 0 for r in quality)
    mem = read_table(run / "results" / "01_memorisation.csv")[0]
    assert mem["baseline"] == "test" and int(mem["n_samples"]) == 40
    assert 0 <= float(mem["feat_near_copy_share"]) <= float(mem["feat_near_copy_share_hi"]) <= 1
    for name, sets in (("fig4_seam_quality", ["middle crops of Eq. 8 canvases", "middle crops of independent tiles",
                                              "training-size samples"]),
                       ("fig7_inpainting_quality", ["inpainted", "region from another image",
                                                    "region's own tokens (no edit)"])):
        rows = read_table(run / "results" / f"{name}.csv")
        assert [r["set"] for r in rows] == sets and all(int(r["n"]) == 40 for r in rows), name
    verdicts = {stem: json.loads((run / "results" / f"verdicts_{stem}.json").read_text())
                for stem in ("01_quickstart", "08_big_images", "09_inpainting")}
    assert {stem: sorted(r["key"] for r in rows) for stem, rows in verdicts.items()} == {
        "01_quickstart": ["near_copies"], "08_big_images": ["quality_at_scale", "seam"],
        "09_inpainting": ["consistent_fill"]}
    t4 = {r["model"]: r for r in read_table(run / "results" / "table4_ar_vs_absorbing.csv")}
    assert set(t4) == {"absorbing", "absorbing (4 steps)", "autoregressive"}
    assert all(float(r["bits_per_token"]) > 0 for r in t4.values())
    assert "Table 4" in (run / "results" / "table4_ar_vs_absorbing.md").read_text()
    t4q = read_table(run / "results" / "table4_quality.csv")
    assert [r["model"] for r in t4q] == ["absorbing", "autoregressive"] and all(float(r["fid_std"]) > 0 for r in t4q)
    assert "| Churches | autoregressive | 5.93 | 6.24 |" in (run / "results" / "table4_quality.md").read_text()
    # Table 4 at both kept checkpoints (smoke keeps the best-validation one too): memorisation of every set, the
    # FID difference against training and test images, and the verdicts recorded
    mem = read_table(run / "results" / "table4_memorisation.csv")
    assert [(r["model"], r["checkpoint"]) for r in mem] == [(k, w) for k in ("absorbing", "autoregressive")
                                                           for w in ("final", "best")]
    assert all(0 <= float(r["feat_near_copy_share"]) <= 1 and float(r["feat_fid_test"]) > 0 for r in mem)
    diffs = read_table(run / "results" / "table4_fid_differences.csv")
    assert {r["checkpoints"] for r in diffs} <= {"final", "best"} and len(diffs) % 2 == 0
    assert [r["reference"].split(" ")[1] for r in diffs[:2]] == ["training", "test"]
    t4v = json.loads((run / "results" / "verdicts_05_ar_vs_absorbing.json").read_text())
    assert [v["key"] for v in t4v] == ["nll", "near_copies_absorbing", "near_copies_autoregressive", "fid", "fid_test"]
    assert all(v["verdict"] == "measured" for v in t4v[1:3]) and "test images" in t4v[0]["statistic"]
    fig5 = read_table(run / "results" / "fig5_val_elbo.csv")
    assert {r["loss_type"] for r in fig5} == {"elbo", "reweighted_elbo"}
    assert (run / "fig5_elbo" / "prior.pt").exists() and (run / "prior_ar.pt").exists()
    # Fig. 5 without gradient clipping for both losses, judged on 3 seeds with a t interval on 2 df
    for child in ("fig5_elbo", "fig5_reweighted_elbo_seed2"):
        assert json.loads((run / child / "config.json").read_text())["prior_train"]["grad_clip"] == 0
    fig5_verdicts = json.loads((run / "results" / "verdicts_06_elbo_vs_reweighted.json").read_text())
    assert [v["key"] for v in fig5_verdicts] == ["lower_at_end", "lower_sooner"]
    assert all("t interval on 2 df" in v["statistic"] and "validation images" in v["statistic"] for v in fig5_verdicts)


@pytest.mark.slow
def test_figures_and_index(reproduced):
    run, _ = reproduced
    for name in FIGURES:
        assert (run / "results" / f"{name}.png").stat().st_size > 0, name
    index = (run / "results" / "README.md").read_text()
    assert "table3_steps" in index and "![fig4_big_images](fig4_big_images.png)" in index


@pytest.mark.slow
def test_finished_notebooks_are_skipped(reproduced):
    run, _ = reproduced
    assert set(run_notebooks("smoke", run, overrides=TINY, device="cpu", log=lambda *a: None).values()) == {"skipped"}
    with pytest.raises(ValueError, match="--only"):
        run_notebooks("smoke", run, only=["42"], overrides=TINY, device="cpu", log=lambda *a: None)


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_papermill_reads_every_parameter_with_its_help(path):
    """`papermill --help-notebook` (papermill.inspect_notebook) lists each parameter with the comment after it as
    its help; a line papermill cannot parse (a comment holding `name=value`, say) drops the parameter silently."""
    papermill = pytest.importorskip("papermill")
    tagged = [c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    names = [stmt.targets[0].id for stmt in ast.parse(tagged[0].source).body]
    seen = papermill.inspect_notebook(str(path))
    assert list(seen) == names, f"{path.name}: papermill reads {list(seen)}, the cell sets {names}"
    assert all(p["help"] for p in seen.values()), f"{path.name}: parameters without a help comment: " \
        f"{[k for k, p in seen.items() if not p['help']]}"


def test_a_changed_notebook_is_not_skipped(tmp_path):
    """The done-marker records the notebook's SHA-256: same parameters but an edited notebook is stale."""
    nb, run = tmp_path / "01_x.ipynb", tmp_path / "run"
    nb.write_text('{"cells": []}')
    (run / "results").mkdir(parents=True)
    params = {"profile": "smoke"}
    assert not is_done(run, nb, params), "no marker yet"
    marker(run, nb).write_text(json.dumps({"parameters": params, "notebook_sha256": notebook_sha256(nb)}))
    assert is_done(run, nb, params)
    assert not is_done(run, nb, {"profile": "demo"}), "other parameters"
    nb.write_text('{"cells": [1]}')
    assert not is_done(run, nb, params), "edited notebook"
    marker(run, nb).write_text(json.dumps({"parameters": params}))
    assert not is_done(run, nb, params), "a marker from before hashes were recorded is stale"


@pytest.mark.slow
def test_nbval_lax_over_executed_notebooks(reproduced):
    """nbval re-executes the executed copies (whose trainings are now all finished, so this also exercises
    the load-if-present path) and compares the cells marked # NBVAL_CHECK_OUTPUT with the papermill run."""
    run, _ = reproduced
    paths = [str(run / "notebooks" / p.name) for p in COMMITTED]
    r = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q",
                        "-p", "no:cacheprovider", "--rootdir", str(run), *paths],
                       cwd=run, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]


def test_export_docs_copies_notebooks_with_relative_paths(tmp_path):
    run = tmp_path / "run"
    (run / "notebooks").mkdir(parents=True)
    (run / "results").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f'run_dir = "{PROJECT_ROOT}/runs/demo"', execution_count=1,
        outputs=[nbformat.v4.new_output("stream", text=f"saved {PROJECT_ROOT}/runs/demo/vqgan.pt\n")])])
    nbformat.write(nb, run / "notebooks" / "01_quickstart.ipynb")
    (run / "results" / "01_quickstart.done").write_text(json.dumps(
        {"seconds": 12.5, "parameters": {"profile": "demo"}, "finished": "2026-11-29T12:00:00+00:00"}))
    (run / "results" / "01_samples.png").write_bytes(b"\x89PNG fake")
    (run / "results" / "table3_steps.csv").write_text("steps\n4\n")
    (run / "results" / "README.md").write_text("# index\n")
    dest = tmp_path / "docs"
    (dest / "results").mkdir(parents=True)
    (dest / "results" / "keep.txt").write_text("not ours")  # other files survive an export
    index = export_docs(run, dest, log=lambda *a: None)
    text = (dest / "01_quickstart.ipynb").read_text()
    assert str(PROJECT_ROOT) not in text and 'run_dir = \\"runs/demo\\"' in text and "saved runs/demo/vqgan.pt" in text
    assert sorted(p.name for p in (dest / "results").iterdir()) == ["01_samples.png", "README.md", "keep.txt",
                                                                   "table3_steps.csv"]
    readme = index.read_text()
    assert "| [01_quickstart](01_quickstart.ipynb) | demo | 12.5 |" in readme
    results_index = (dest / "results" / "README.md").read_text()
    assert "Notebooks finished: `01_quickstart`." in results_index and "(data: [table3_steps.csv]" in results_index
    # a later export of one notebook (reproduce --only 06 --export) adds to the earlier one, losing nothing
    other = tmp_path / "other"
    (other / "notebooks").mkdir(parents=True)
    (other / "results").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), other / "notebooks" / "06_elbo_vs_reweighted.ipynb")
    (other / "results" / "06_elbo_vs_reweighted.done").write_text(json.dumps(
        {"seconds": 2000, "parameters": {"profile": "demo"}, "finished": "2026-12-05T12:00:00+00:00"}))
    (other / "results" / "fig5_elbo.csv").write_text("step,loss\n1,2.5\n")
    (other / "results" / "README.md").write_text("# only 06\n")
    export_docs(other, dest, log=lambda *a: None)
    readme = index.read_text()
    assert "| [01_quickstart](01_quickstart.ipynb) | demo | 12.5 | 2026-11-29T12:00:00+00:00 |" in readme
    assert "| [06_elbo_vs_reweighted](06_elbo_vs_reweighted.ipynb) | demo | 2000 |" in readme
    assert readme.index("01_quickstart") < readme.index("06_elbo_vs_reweighted")
    results_index = (dest / "results" / "README.md").read_text()
    assert "Notebooks finished: `01_quickstart`, `06_elbo_vs_reweighted`." in results_index
    assert "(data: [table3_steps.csv]" in results_index and "(data: [fig5_elbo.csv]" in results_index
    assert (dest / "01_quickstart.ipynb").read_text() == text and (dest / "results" / "01_samples.png").exists()
    with pytest.raises(FileNotFoundError, match="no executed notebooks"):
        export_docs(tmp_path / "empty", dest, log=lambda *a: None)


# ---- executed copies under docs/ (make docs-notebooks, demo profile) ----------------------------------------
DOCS = ROOT / "docs" / "notebooks"


@pytest.mark.skipif(not DOCS.exists(), reason="docs/notebooks not generated (make docs-notebooks)")
def test_docs_notebooks_are_complete_and_clean():
    """Every numbered notebook has an executed copy: all code cells ran, none raised, no absolute paths,
    and no copy is bulky (the figures are PNGs in the outputs, kept small)."""
    copies = sorted(p.name for p in DOCS.glob("[0-9][0-9]_*.ipynb"))
    assert set(copies) <= {p.name for p in COMMITTED}, "docs/notebooks holds copies of notebooks that do not exist"
    missing = [p.stem for p in COMMITTED if p.name not in copies]
    if missing:  # a copy removed because it no longer ran must be named in the index's pending note
        index = (DOCS / "README.md").read_text()
        assert "**Pending a full regeneration" in index, f"docs/notebooks lacks copies of {missing}: run " \
                                                         "`make docs-notebooks`"
        pending = index.split("**Pending a full regeneration", 1)[1].split("\n\n", 1)[0]
        assert all(f"of {stem[:2]}" in pending or f"{stem[:2]} and" in pending for stem in missing), (missing, pending)
    for path in sorted(DOCS.glob("[0-9][0-9]_*.ipynb")):
        text = path.read_text()
        assert str(ROOT) not in text, f"{path.name} holds an absolute path of this checkout"
        assert path.stat().st_size < 3_000_000, f"{path.name} is {path.stat().st_size} bytes"
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.execution_count for c in code), f"{path.name} has cells that did not run"
        assert not [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"], path.name
    assert (DOCS / "results" / "README.md").exists() and (DOCS / "README.md").exists()
