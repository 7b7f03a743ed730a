"""The paper's numbers that `python -m ulib reproduce` puts beside ours, each with where it was checked.

Only numbers someone checked against a source are recorded; a figure we could not check is left out rather
than typed from memory. The reproduction's Markdown tables show the paper's column as '–' where nothing is
recorded, and name the table of the paper to compare with by hand.

State (when this file was written): the headline results below were checked against the abstract as
published in the official repository's README (samb-t/unleashing-transformers). Table 3 (step skipping:
FID and time against sampling steps) and Table 4 (likelihoods and sampling time, absorbing vs
autoregressive) could not be checked with the sources at hand, so `TABLES` holds no rows for them yet.
To add them, copy the rows from the paper (arXiv:2111.12701, ECCV 2022) into `TABLES[...]["rows"]`,
keyed like our CSV's key column, and fill in `source` with the table and version you read.
"""
from __future__ import annotations

PAPER = ("Bond-Taylor, Hessey, Sasaki, Breckon, Willcocks. Unleashing Transformers: Parallel Token Prediction "
         "with Discrete Absorbing Diffusion for Fast High-Resolution Image Generation from Vector-Quantized "
         "Codes. ECCV 2022 (arXiv:2111.12701)")

# Headline results of the paper's final models (256x256, T = 256): abstract of the paper, as quoted in the
# official repository's README.md. Not comparable with the CPU profiles' numbers (other data, tiny models);
# listed so that a paper-profile run has its targets at hand.
HEADLINE = {
    "source": "abstract (samb-t/unleashing-transformers README.md)",
    "columns": ["dataset", "FID", "density", "coverage"],
    "rows": [  # "profile": ulib's profile of that dataset (not a column of the paper's)
        {"dataset": "FFHQ", "FID": 6.11, "density": 1.20, "coverage": 0.80, "profile": "ffhq"},
        {"dataset": "LSUN Churches", "FID": 4.07, "density": 1.12, "coverage": 0.73, "profile": "churches"},
        {"dataset": "LSUN Bedroom", "FID": 3.64, "density": 1.51, "coverage": 0.83, "profile": "bedrooms"},
    ],
}


def headline(profile: str) -> dict | None:
    """{'fid', 'density', 'coverage'} of the paper's final model on the dataset of `profile`, or None.
    (Precision and recall are not in the abstract, the only source checked.)"""
    for row in HEADLINE["rows"]:
        if row["profile"] == profile:
            return {"fid": row["FID"], "density": row["density"], "coverage": row["coverage"]}
    return None

# Per reproduced table: the paper's table it mirrors, the column of our CSV its rows are keyed on, the
# paper's columns, and its checked rows ({key value: {column: value}}). Empty rows: nothing checked yet.
TABLES: dict[str, dict] = {
    "table3_steps": {
        "paper_table": "Table 3 (sampling steps: sample quality and time per image)",
        "key": "steps",
        "columns": [],
        "rows": {},
        "source": None,
    },
    "table4_ar_vs_absorbing": {
        "paper_table": "Table 4 (autoregressive vs absorbing diffusion prior: likelihood and sampling time)",
        "key": "model",
        "columns": [],
        "rows": {},
        "source": None,
    },
}


def paper_rows(table: str) -> dict:
    """The checked paper values for one of our tables: {'paper_table', 'key', 'columns', 'rows', 'source'}
    (rows empty when none were checked); an unknown table gives the same shape with no rows."""
    return TABLES.get(table, {"paper_table": None, "key": None, "columns": [], "rows": {}, "source": None})
