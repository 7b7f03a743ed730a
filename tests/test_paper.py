"""ulib.paper: the paper's Tables 1-5 as the kit shows them, and their Markdown beside ours."""
import pytest

from ulib import paper as P
from ulib.app.results import table_markdown


def test_table3_relative_hand_case():
    rows = {(r["dataset"], r["steps"]): r for r in P.table3_relative()}
    churches_50 = rows[("Churches", 50)]
    assert churches_50["fid"] == 6.86 and churches_50["steps_fraction"] == pytest.approx(50 / 256)
    assert churches_50["fid_ratio"] == pytest.approx(6.86 / 5.58)
    assert all(rows[(d, 256)]["fid_ratio"] == 1.0 for d in ("Churches", "Bedroom", "FFHQ"))
    assert len(rows) == 15


def test_tables_1_2_and_4_rows():
    t09 = {r["dataset"]: r for r in P.table1_2_rows(0.9)}
    assert t09["FFHQ"] == {"dataset": "FFHQ", "temperature": 0.9, "fid": 6.11, "precision": 0.73, "recall": 0.48,
                           "density": 1.20, "coverage": 0.80}
    assert P.table1_2_rows(1.0)[0]["fid"] == 5.58 and P.table1_2_rows(0.5) == []
    t4 = {(r["dataset"], r["model"]): r for r in P.table4_rows()}
    assert (t4[("Churches", "absorbing")]["nll_bits_per_token"]
            < t4[("Churches", "autoregressive")]["nll_bits_per_token"])
    assert P.TABLE5_RECON_FID["rows"]["both"] == (2.70, 3.12)
    assert P.TABLE2_FID["rows"][("Churches", 1.0)] == P.TABLE3_STEPS["fid"]["Churches"][-1], \
        "Table 2 at t = 1.0 is Table 3 at 256 steps (Churches)"


def test_markdown_shows_the_papers_rows_beside_ours(tmp_path):
    csv = tmp_path / "table3_steps.csv"
    csv.write_text("method,steps,fid\nrandom,64,12.5\n")
    md = table_markdown(csv, "demo")
    assert "| random | 64 | 12.5 | demo |" in md
    assert "The paper's rows (Table 3" in md and "| FFHQ | 50 | 0.1953 | 9.6 | 1.348 |" in md
    other = tmp_path / "02_codebook_usage.csv"
    other.write_text("codebook_size\n256\n")
    assert "paper's rows" not in table_markdown(other, "demo")


def test_table5_is_joined_on_the_variant(tmp_path):
    rows = P.paper_rows("table5_recon_fid")
    assert rows["key"] == "variant" and rows["rows"]["both"] == {"Churches": 2.70, "FFHQ": 3.12}
    csv_path = tmp_path / "table5_recon_fid.csv"
    csv_path.write_text("variant,fid\ndefault,30.5\nno GAN,20.1\n")
    md = table_markdown(csv_path, "demo")
    assert "| variant | fid | paper: Churches | paper: FFHQ | profile |" in md
    assert "| default | 30.5 | 5.25 | 3.37 | demo |" in md and "Table 5" in md
