"""Every notebook teaches (#23): the method's key lines written out beside their equation and checked against ulib,
a reading at the end, exercises with expected outcomes and worked solutions, and references.

- From scratch: the functions FROM_SCRATCH names are defined in a code cell of at most 25 lines each, a Markdown
  cell shortly before states the equation in LaTeX with the paper's number (`\\tag{N}`, where the paper has one),
  and a later cell marked `# NBVAL_CHECK_OUTPUT` calls the function and asserts (the check against ulib runs in
  CI's smoke execution of the notebooks, tests/test_notebooks.py).
- Reading: a Markdown cell '## Reading' with its three parts, followed by a code cell calling `readings.reading`.
- Exercises: a Markdown cell '## Exercises' with 2-3 numbered exercises, each with '*Expected:*' and a collapsed
  worked solution (<details>), whose Python blocks parse.
- References: a Markdown cell '## References' that cites the paper; over all notebooks, VQGAN, D3PM, MaskGIT, ARDM
  and MDLM are cited.
"""
import ast
import re

import jupytext
import pytest

from helpers import ROOT

SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
FROM_SCRATCH = {  # notebook: {function: the paper's equation number, or None (a method from another paper)}
    "02": {"quantise": 5},
    "03": {"q_sample": None, "training_loss": 7},
    "04": {"sample_random_order": 12, "sample_confidence": None, "sample_remask": None},
    "05": {"attention": 1},
    "08": {"window_mixture": 8},
    "14": {"halton_order_scratch": None, "eb_reveal_scratch": None, "speculative_keep_scratch": None},
}
CITED_SOMEWHERE = {"VQGAN": "2012.09841", "D3PM": "2107.03006", "MaskGIT": "2202.04200", "ARDM": "2110.02037",
                   "MDLM": "2406.07524"}
PAPER = "2111.12701"


def cells(path):
    return jupytext.read(path).cells


def section(path, title):
    """(index, cell) of the Markdown cell that starts with '## title'."""
    found = [(i, c) for i, c in enumerate(cells(path))
             if c.cell_type == "markdown" and c.source.lstrip().startswith(f"## {title}")]
    assert len(found) == 1, f"{path.name}: {len(found)} Markdown cells start with '## {title}'; expected 1"
    return found[0]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_every_notebook_ends_with_a_reading(path):
    i, cell = section(path, "Reading")
    for part in ("**What to notice.**", "**Against the paper.**", "**Why it differs at this scale.**"):
        assert part in cell.source, f"{path.name}: the reading lacks {part}"
    after = cells(path)[i + 1]
    assert after.cell_type == "code" and "readings.reading(" in after.source, \
        f"{path.name}: the reading's table (readings.reading) must follow it"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_every_notebook_has_exercises_with_expected_outcomes_and_solutions(path):
    _, cell = section(path, "Exercises")
    items = re.split(r"\n(?=\d+\. \*\*)", cell.source)[1:]
    assert 2 <= len(items) <= 3, f"{path.name}: {len(items)} exercises; expected 2-3"
    for k, item in enumerate(items, 1):
        assert "*Expected:*" in item, f"{path.name}, exercise {k}: no expected outcome"
        assert "<details><summary>Solution</summary>" in item and "</details>" in item, \
            f"{path.name}, exercise {k}: no collapsed worked solution"
        for block in re.findall(r"```python\n(.*?)```", item, re.S):
            code = "\n".join(line[3:] if line.startswith("   ") else line for line in block.splitlines())
            ast.parse(code)  # a solution that does not parse is no solution


def test_references_cite_the_paper_everywhere_and_the_methods_somewhere():
    cited = ""
    for path in SOURCES:
        _, cell = section(path, "References")
        assert PAPER in cell.source, f"{path.name}: the references do not cite the paper (arXiv:{PAPER})"
        cited += cell.source
    missing = [name for name, arxiv in CITED_SOMEWHERE.items() if arxiv not in cited]
    assert not missing, f"no notebook cites {missing}"


def defined_functions(source):
    return {n.name: n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}


@pytest.mark.parametrize("nn", sorted(FROM_SCRATCH))
def test_key_lines_are_written_out_beside_their_equation_and_checked(nn):
    path = next(p for p in SOURCES if p.name.startswith(nn))
    nb = cells(path)
    for name, equation in FROM_SCRATCH[nn].items():
        where = [i for i, c in enumerate(nb) if c.cell_type == "code" and name in defined_functions(c.source)]
        assert where, f"{path.name}: no code cell defines {name}"
        i = where[0]
        fn = defined_functions(nb[i].source)[name]
        assert fn.end_lineno - fn.lineno + 1 <= 25, f"{path.name}: {name} has {fn.end_lineno - fn.lineno + 1} lines"
        if equation is not None:
            before = [c.source for c in nb[max(0, i - 4): i] if c.cell_type == "markdown"]
            assert any(f"\\tag{{{equation}}}" in b for b in before), \
                f"{path.name}: {name} is not beside its equation (\\tag{{{equation}}} in LaTeX)"
        checks = [c.source for c in nb[i + 1:] if c.cell_type == "code" and "# NBVAL_CHECK_OUTPUT" in c.source
                  and re.search(rf"\b{name}\(", c.source)]
        assert checks, f"{path.name}: no checked cell (# NBVAL_CHECK_OUTPUT) calls {name}"
        assert any(isinstance(n, ast.Assert) for n in ast.walk(ast.parse(checks[0]))), \
            f"{path.name}: the cell that calls {name} asserts nothing"
