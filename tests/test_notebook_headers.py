"""Every notebook's header promises only what its cells do (issue #22 item 5: "A test that every notebook's header
promises only cells it has").

The header is the first Markdown cell of notebooks/NN_name.py, with four fields: **Reproduces:**, **Needs:**,
**Time:**, **Writes:**. The rules, matched to how the headers are written:

- Reproduces: every paper artefact it names ("Table 3", "Fig. 5", "Tables 1 and 2", "Figs. 1, 4, 7",
  "Eq. 4, 5") is named again in a later cell, in prose or code ("Table 3", "Eq. 9c", or a results name such as
  `table3_steps`, `fig5_val_elbo`, `table1_2_temperature`). A mention after "as in" is a cross-reference to
  another notebook ("temperature as in Fig. 6", notebook 11) and promises nothing here.
- Needs: a repository path it names in backticks exists; `python -m ulib CMD` is a real command; "notebook NN"
  exists; a child run folder `RUN/prefix<...>/` or `RUN/prefix*/` is made by a code cell (the prefix is in it);
  "trained here" / "trains only what is missing" needs a cell that trains what is missing (nbu.vqgan, nbu.prior,
  nbu.models, nbu.latents, nbu.val_tokens, nbu.train_child_prior, nbu.train_child_vqgan).
- Time: names the `smoke` and the `demo` profile, and says "measured" or "estimate".
- Writes: "figures"/"PNG" needs a cell that saves a PNG into RUN/results/ (nbu.save_figure, nbu.save_grid, or
  `s.results / "NAME.png"`); "tables"/"CSV" one that calls nbu.write_table; "verdicts" one that calls nbu.claim.
  Every results file the header names (`NAME.png`, `NAME.csv`, `verdicts_NAME.json`), and every
  `RUN/results/NAME.ext` any Markdown cell names, is written by a code cell.
"""
import ast
import fnmatch
import re

import jupytext
import nbformat
import pytest

from ulib.app.cli import COMMANDS

from helpers import ROOT

SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
FIELDS = ("Reproduces", "Needs", "Time", "Writes")

ARTEFACT = re.compile(r"\b(?P<kind>Tables?|Figs?\.|Figures?|Eqs?\.|Equations?)\s*\(?"
                      r"(?P<nums>\d+[a-z]?(?:\s*(?:,|and|&|-|–|to)\s*\d+[a-z]?\b)*)")
RESULTS_NAME = re.compile(r"\b(?P<kind>table|fig|eq)(?P<nums>\d+(?:_\d+)*)(?![0-9])")
CROSS_REFERENCE = re.compile(r"\bas in\s+(?:the paper's\s+)?$", re.I)
TRAINS_WHEN_MISSING = {"vqgan", "prior", "models", "latents", "val_tokens", "train_child_prior", "train_child_vqgan"}
PNG_WRITERS, TABLE_WRITERS = {"save_figure", "save_grid"}, {"write_table"}


def _kind(word: str) -> str:
    return {"t": "Table", "f": "Fig.", "e": "Eq."}[word[0].lower()]


def _numbers(nums: str) -> list[int]:
    """'1, 4, 7' -> [1, 4, 7]; '1-5' -> 1..5; '1 and 2' -> [1, 2]; '9c' -> [9]; '1_2' -> [1, 2]."""
    out, tokens = [], re.findall(r"\d+|-|–|\bto\b", nums)
    for i, tok in enumerate(tokens):
        if tok.isdigit():
            if i >= 2 and tokens[i - 1] in ("-", "–", "to") and tokens[i - 2].isdigit():
                out += range(int(tokens[i - 2]) + 1, int(tok) + 1)
            else:
                out.append(int(tok))
    return out


def artefacts(text: str, skip_cross_references: bool = False) -> set[tuple[str, int]]:
    """{('Table', 3), ('Fig.', 5), ('Eq.', 9), ...} named in prose (and, for code, as results names table3_...)."""
    found = set()
    for m in ARTEFACT.finditer(text):
        if skip_cross_references and CROSS_REFERENCE.search(text[:m.start()]):
            continue
        found |= {(_kind(m["kind"]), n) for n in _numbers(m["nums"])}
    for m in RESULTS_NAME.finditer(text):
        found |= {(_kind(m["kind"]), n) for n in _numbers(m["nums"].replace("_", ","))}
    return found


def header_fields(text: str) -> dict[str, str]:
    """{'Reproduces': its text, ...} from a header cell: each **Field:** runs to the next one."""
    parts = re.split(r"\*\*(\w+):\*\*", text)
    return {parts[i]: " ".join(parts[i + 1].split()) for i in range(1, len(parts) - 1, 2)}


def _name_pattern(node) -> str | None:
    """The string a name argument spells: a literal, or an f-string with `*` for each formatted part."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "*" for v in node.values)
    return "*" if node is not None else None


def _argument(call: ast.Call, index: int, keyword: str):
    if len(call.args) > index:
        return call.args[index]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def code_facts(code: str) -> dict:
    """What the code cells do: {'writes': results file patterns, 'calls': nbu-style helper names called,
    'text': the code}."""
    writes, calls = set(), set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            calls.add(attr)
            if attr in PNG_WRITERS | TABLE_WRITERS and (name := _name_pattern(_argument(node, 2, "name"))):
                writes.add(name + (".png" if attr in PNG_WRITERS else ".csv"))
            if attr == "claim" and (stem := _name_pattern(_argument(node, 1, "notebook"))):
                writes.add(f"verdicts_{stem}.json")
        if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.left, ast.Attribute)
                and node.left.attr == "results" and (name := _name_pattern(node.right))):
            writes.add(name)  # s.results / "NAME.png"
    return dict(writes=writes, calls=calls, text=code)


def _written(name: str, writes: set[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, w) for w in writes)


def header_problems(nb, notebooks_dir=ROOT / "notebooks", commands: set[str] | None = None) -> list[str]:
    """What the header of notebook `nb` (nbformat) promises that its cells do not do, one line each."""
    head, rest = nb.cells[0], nb.cells[1:]
    if head.cell_type != "markdown":
        return ["the first cell is not the Markdown header"]
    fields = header_fields(head.source)
    problems = [f"the header has no **{f}:** field" for f in FIELDS if f not in fields]
    code = "\n".join(c.source for c in rest if c.cell_type == "code")
    markdown = "\n".join(c.source for c in rest if c.cell_type == "markdown")
    try:
        facts = code_facts(code)
    except SyntaxError as e:
        return problems + [f"the code cells do not parse ({e.msg}, line {e.lineno} of all code cells joined)"]

    # Reproduces: every paper artefact named again later
    later = artefacts(markdown + "\n" + code)
    for kind, n in sorted(artefacts(fields.get("Reproduces", ""), skip_cross_references=True) - later):
        problems.append(f"**Reproduces:** names {kind} {n}, but no later cell does (no '{kind} {n}' in prose "
                        f"or code, no results name {kind.lower().rstrip('.')}{n}_...)")

    # Needs: paths, commands, notebooks, child runs, training
    needs = fields.get("Needs", "")
    for path in re.findall(r"`((?:ulib|data|notebooks|docs|tests)/[^`<>*]+)`", needs):
        if not (ROOT / path).exists():
            problems.append(f"**Needs:** names `{path}`, which is not in the repository")
    known = set(COMMANDS) if commands is None else commands
    for cmd in re.findall(r"python -m ulib ([\w-]+)", " ".join(fields.values())):
        if cmd not in known:
            problems.append(f"the header names `python -m ulib {cmd}`, which is not a command")
    for nn in re.findall(r"\bnotebooks? (\d\d)\b", needs):
        if not list(notebooks_dir.glob(f"{nn}_*.py")):
            problems.append(f"**Needs:** names notebook {nn}, which does not exist")
    for prefix in re.findall(r"`RUN/([\w-]+?)(?:<|\*)[^`]*/`", needs):
        if prefix not in code:
            problems.append(f"**Needs:** names child runs `RUN/{prefix}.../`, but no code cell names {prefix!r}")
    if re.search(r"trained here|trains only what is missing|trains? (?:it|them) here", needs) and not (
            facts["calls"] & TRAINS_WHEN_MISSING):
        problems.append("**Needs:** says what is missing is trained here, but no code cell trains anything (none "
                        f"of nbu.{', nbu.'.join(sorted(TRAINS_WHEN_MISSING))})")

    # Time: both everyday profiles, measured or estimated
    time = fields.get("Time", "")
    for profile in ("smoke", "demo"):
        if not re.search(rf"\b{profile}\b", time):
            problems.append(f"**Time:** does not name the `{profile}` profile")
    if not re.search(r"measured|estimate", time):
        problems.append("**Time:** says neither 'measured' nor 'estimate'")

    # Writes: the kinds of output, and every results file named
    writes = fields.get("Writes", "")
    kinds = [(r"\bfigures?\b|\bPNGs?\b", ".png", "figures (PNG): no nbu.save_figure / nbu.save_grid / "
              "s.results / 'NAME.png'"),
             (r"\btables?\b|\bCSVs?\b", ".csv", "tables (CSV): no nbu.write_table"),
             (r"\bverdicts?\b", ".json", "verdicts: no nbu.claim")]
    for words, ext, missing in kinds:
        if re.search(words, writes) and not any(w.endswith(ext) for w in facts["writes"]):
            problems.append(f"**Writes:** promises {missing} in any code cell")
    named = set(re.findall(r"`(?:RUN/results/)?([\w*<>-]+\.(?:png|csv|json))`", head.source))
    named |= set(re.findall(r"RUN/results/([\w-]+\.(?:png|csv|json))", markdown))
    for name in sorted(named):
        if not _written(re.sub(r"<[^>]*>", "x", name), facts["writes"]):
            problems.append(f"names results file {name}, but no code cell writes it")
    return problems


# ---- the notebooks -----------------------------------------------------------------------------------------
def test_every_notebook_is_checked():
    assert len(SOURCES) >= 13 and SOURCES[0].name == "01_quickstart.py", SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_header_promises_only_what_the_cells_do(path):
    problems = header_problems(jupytext.read(path))
    assert not problems, (f"{path.relative_to(ROOT)}: the header promises what no cell does (fix the header or "
                          f"add the cell):\n  " + "\n  ".join(problems))


# ---- the rules themselves, on headers made here --------------------------------------------------------------
def test_artefacts_expand_lists_and_ranges():
    assert artefacts("Fig. 6 and the rows of its Tables 1 and 2; Figs. 1, 4, 7; Eq. 4, 5; Eq. 9c") == {
        ("Fig.", 6), ("Table", 1), ("Table", 2), ("Fig.", 1), ("Fig.", 4), ("Fig.", 7), ("Eq.", 4), ("Eq.", 5),
        ("Eq.", 9)}
    assert artefacts("Tables 1-5") == {("Table", n) for n in range(1, 6)}
    assert artefacts('nbu.write_table(s, rows, "table1_2_temperature"); "fig5_val_elbo"') == {
        ("Table", 1), ("Table", 2), ("Fig.", 5)}
    assert artefacts("steps as in Table 3, temperature as in Fig. 6, Fig. 4", skip_cross_references=True) == {
        ("Fig.", 4)}


def _nb(header: str, *cells: tuple[str, str]):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(header)] + [
        nbformat.v4.new_code_cell(src) if kind == "code" else nbformat.v4.new_markdown_cell(src)
        for kind, src in cells]
    return nb


GOOD_HEADER = ("# 99 · A notebook\n\n**Reproduces:** Table 3 of the paper, and decoding as in Fig. 6.\n\n"
               "**Needs:** notebook 01's run directory (trained here when missing); `ulib/config.py`; child runs go "
               "into `RUN/t3_<steps>/` (`python -m ulib train-prior`).\n\n"
               "**Time:** CPU: 1 s with `smoke`, 5 s with `demo` (measured on 2 cores).\n\n"
               "**Writes:** figures (PNG), tables (CSV) and verdicts into `RUN/results/`, e.g. `table3_steps.csv`.")
GOOD_CODE = ('vq = nbu.vqgan(s)\nrun = nbu.train_child_prior(s, f"t3_{k}", c)\n'
             'nbu.save_figure(s, fig, "table3_steps")\nnbu.write_table(s, rows, "table3_steps")\n'
             'nbu.claim(s, "99_notebook", "k", "claim", "paper", v)\n(s.results / f"grid_{k}.png").write_bytes(b)')


def test_a_header_that_keeps_its_promises_passes():
    assert header_problems(_nb(GOOD_HEADER, ("code", GOOD_CODE), ("markdown", "See `RUN/results/grid_3.png`.")),
                           commands={"train-prior"}) == []


@pytest.mark.parametrize("header, code, markdown, expected", [
    (GOOD_HEADER.replace("Table 3 of", "Table 3 and Fig. 5 of"), GOOD_CODE, "", "names Fig. 5, but no later"),
    (GOOD_HEADER, GOOD_CODE.replace("table3", "steps"), "", "names Table 3, but no later"),
    (GOOD_HEADER.replace("Table 3", "Tables 1-3"), GOOD_CODE, "Table 1", "names Table 2"),
    (GOOD_HEADER, GOOD_CODE.replace("nbu.vqgan(s)", "1").replace("train_child_prior", "child_run"), "",
     "no code cell trains"),
    (GOOD_HEADER, GOOD_CODE.replace('f"t3_', 'f"x_'), "", "no code cell names 't3_'"),
    (GOOD_HEADER.replace("`ulib/config.py`", "`ulib/no_such.py`"), GOOD_CODE, "", "`ulib/no_such.py`, which is not"),
    (GOOD_HEADER.replace("notebook 01", "notebook 77"), GOOD_CODE, "", "notebook 77, which does not exist"),
    (GOOD_HEADER.replace("train-prior", "train-nothing"), GOOD_CODE, "", "train-nothing`, which is not a command"),
    (GOOD_HEADER.replace("with `demo`", "with `study`"), GOOD_CODE, "", "does not name the `demo` profile"),
    (GOOD_HEADER.replace("(measured on 2 cores)", ""), GOOD_CODE, "", "neither 'measured' nor 'estimate'"),
    (GOOD_HEADER, GOOD_CODE.replace("nbu.write_table", "print"), "", "tables (CSV): no nbu.write_table"),
    (GOOD_HEADER, GOOD_CODE.replace("save_figure", "show").replace("s.results /", "s.run /"), "",
     "figures (PNG): no"),
    (GOOD_HEADER, GOOD_CODE.replace("nbu.claim", "print"), "", "verdicts: no nbu.claim"),
    (GOOD_HEADER.replace("table3_steps.csv", "table9.csv"), GOOD_CODE, "", "table9.csv, but no code cell"),
    (GOOD_HEADER, GOOD_CODE, "Written to RUN/results/other.png.", "other.png, but no code cell"),
    (GOOD_HEADER.replace("**Time:**", "**Timing:**"), GOOD_CODE, "", "no **Time:** field"),
])
def test_each_broken_promise_is_named(header, code, markdown, expected):
    problems = header_problems(_nb(header, ("code", code), ("markdown", markdown)), commands={"train-prior"})
    assert any(expected in p for p in problems), problems
