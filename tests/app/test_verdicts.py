"""The verdict table: notebooks record their claims (readings.claim), reproduce gathers them (ulib.app.verdicts)."""
import csv
import json

import pytest

from ulib.app import readings, session
from ulib.app import verdicts as V
from ulib.app.results import collect
from ulib.eval.stats import verdict

from helpers import ROOT


def _row(key="k", **kw):
    return {"key": key, "claim": "fewer steps cost little", "paper": "Table 3: FID 7.0 at 256 steps",
            "verdict": "reproduced", "statistic": "FID a - b = -1.0 ± 0.2", **kw}


def test_rows_are_written_read_back_and_gathered(tmp_path):
    V.write_notebook_rows(tmp_path, "04_step_skipping", [_row("a"), _row("b", verdict="not resolved at this n")])
    V.write_notebook_rows(tmp_path, "03_absorbing_prior", [_row("c", verdict="equivalent within ±0.5")])
    rows = V.collect(tmp_path)
    assert [(r["notebook"], r["key"]) for r in rows] == [("03_absorbing_prior", "c"), ("04_step_skipping", "a"),
                                                          ("04_step_skipping", "b")]
    with open(tmp_path / "verdicts.csv") as f:
        assert list(csv.DictReader(f)) == rows
    md = (tmp_path / "verdicts.md").read_text()
    assert "**not resolved at this n**" in md and "[04](../04_step_skipping.ipynb)" in md
    assert md.count("\n") == 5  # header, rule, 3 rows
    # a notebook's second run replaces its rows
    V.write_notebook_rows(tmp_path, "04_step_skipping", [_row("a", verdict="not reproduced")])
    assert [r["verdict"] for r in V.read_all(tmp_path)] == ["equivalent within ±0.5", "not reproduced"]


@pytest.mark.parametrize("bad, match", [
    (dict(verdict="roughly equal"), "allowed"),
    (dict(statistic=""), "lacks statistic"),
    (dict(claim=None), "lacks claim"),
])
def test_a_bad_row_is_refused(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        V.write_notebook_rows(tmp_path, "04_step_skipping", [_row(**bad)])
    assert not V.notebook_file(tmp_path, "04_step_skipping").exists()


def test_repeated_keys_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="keys repeat"):
        V.write_notebook_rows(tmp_path, "04_step_skipping", [_row("a"), _row("a")])
    (tmp_path / "verdicts_99_x.json").write_text('{"not": "a list"}')
    with pytest.raises(ValueError, match="verdicts_99_x.json: not a verdict file"):
        V.read_all(tmp_path)


def test_claim_prints_the_generated_sentence_and_keeps_one_row_per_key(tmp_path, capsys):
    s = session.Session(run=None, cfg=None, device=None, seed=0, results=tmp_path)
    lower = verdict(-2.0, 0.5, better="lower", label="FID a - b")
    readings.claim(s, "05_ar_vs_absorbing", "fid", "absorbing beats AR", "Table 4", lower)
    out = capsys.readouterr().out
    assert "**reproduced**" in out and "FID a - b = -2.0" in out
    same = verdict(0.1, 0.5, better="lower", margin=2.0, label="FID a - b")
    readings.claim(s, "05_ar_vs_absorbing", "fid", "absorbing beats AR", "Table 4", same)
    readings.claim(s, "05_ar_vs_absorbing", "copies", "near-copies", "supplement", ("measured", "3/300 = 1.0 %"))
    rows = json.loads(V.notebook_file(tmp_path, "05_ar_vs_absorbing").read_text())
    assert [(r["key"], r["verdict"]) for r in rows] == [("fid", "equivalent within ±2"), ("copies", "measured")]


def test_the_results_index_opens_with_the_verdicts(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    V.write_notebook_rows(results, "06_elbo_vs_reweighted", [_row("fig5", verdict="not reproduced")])
    (results / "table3_steps.csv").write_text("steps\n4\n")
    index = collect(tmp_path, "demo", log=lambda *a: None).read_text()
    assert index.index("## Verdicts") < index.index("## Tables") and "**not reproduced**" in index
    assert "verdicts.csv" not in index.split("## Tables")[1]  # the verdicts are not repeated as a plain table


def test_the_readme_block_is_replaced_in_place(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# kit\n\nbefore\n{V.README_START}\nold\n{V.README_END}\nafter\n")
    rows = [V.check_row({**_row(), "notebook": "04_step_skipping"})]
    assert V.update_readme(readme, rows) and not V.update_readme(readme, rows)
    text = readme.read_text()
    assert text.startswith("# kit\n\nbefore\n") and text.endswith("\nafter\n") and "old" not in text
    assert "[04](docs/notebooks/04_step_skipping.ipynb)" in text
    readme.write_text("# no block\n")
    with pytest.raises(ValueError, match="no verdict block"):
        V.update_readme(readme, rows)


def test_the_readme_verdict_table_is_the_executed_docs_one():
    """README's table is generated from docs/notebooks/results/verdicts.csv (the export writes both), so the
    verdicts a reader sees on the front page are the ones the executed notebooks printed."""
    csv_path = ROOT / "docs" / "notebooks" / "results" / "verdicts.csv"
    text = (ROOT / "README.md").read_text()
    assert V.README_START in text and V.README_END in text, "README.md lacks its verdict block"
    block = V.README_START + text.split(V.README_START, 1)[1].split(V.README_END, 1)[0] + V.README_END
    rows = V.read_csv(csv_path) if csv_path.exists() else []  # none before the first export with verdicts
    assert block == V.readme_block(rows)
    assert ("No verdicts recorded yet" in block) == (not rows)
