"""Every committed notebook, executed copies under docs/ included, imports only what ulib has today (issue #22
item 6: "a test that every import in every committed notebook, executed copies included, resolves against
ulib today").

Each code cell is parsed with `ast` (IPython magics and shell lines set aside); every `import ulib...` and
`from ulib... import name` must import, `name` being an attribute or a submodule; and every attribute read
through a name bound to a ulib module (`session.setup` after `from ulib.app import session`,
`ulib.eval.stats.verdict` after `import ulib.eval.stats`) must exist. Nothing is executed but the imports.
"""
import ast
import importlib
import inspect
import re
import types

import nbformat
import pytest

from helpers import ROOT

# Found by glob, so a new notebook (or a new folder of executed copies under docs/notebooks/) is covered.
NOTEBOOKS = sorted(p for pattern in ("notebooks/**/*.ipynb", "docs/notebooks/**/*.ipynb")
                   for p in ROOT.glob(pattern) if ".ipynb_checkpoints" not in p.parts)
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun"}  # %%magic lines whose body is still Python
PYTHON_LINE_MAGIC = re.compile(r"^(\s*)%(?:time|timeit|prun)\s+(.*)$")  # %time x = f(): the code after it counts
MAGIC_OR_SHELL = re.compile(r"^(\s*)(?:[%!]|\w[\w\s,]*=\s*[%!])")  # %matplotlib, !pip, files = !ls


def python_source(source: str) -> str | None:
    """A code cell's Python with IPython syntax set aside: a line magic or shell line becomes `pass` (keeping
    its indentation; `%time CODE` keeps CODE), a trailing `?` (help) is dropped; a cell magic whose body is not
    Python (%%bash, %%html, %%writefile ...) gives None. Line numbers are kept."""
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        if lines[0].lstrip()[2:].split(" ")[0] not in PYTHON_CELL_MAGICS:
            return None
        lines[0] = ""
    out = []
    for line in lines:
        timed = PYTHON_LINE_MAGIC.match(line)
        shell = MAGIC_OR_SHELL.match(line)
        if timed:
            line = timed.group(1) + timed.group(2)
        elif shell:
            line = shell.group(1) + "pass"
        elif line.rstrip().endswith("?") and not line.lstrip().startswith("#"):
            line = line.rstrip().rstrip("?") or "pass"
        out.append(line)
    return "\n".join(out)


def resolve(dotted: str):
    """The module or object `dotted` names ('ulib.app.notebook', 'ulib.app.notebook.setup'); LookupError saying
    which part is missing, or the error importing an existing module raised. A function, class or module a ulib
    module merely imports for its own use (`load_openmoji` in ulib.data.datasets, defined in ulib.data.openmoji)
    is missing too: it may go whenever that module's own code changes; names in a module's __all__ are its own."""
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError as e:
        if e.name is None or not (dotted == e.name or dotted.startswith(e.name + ".")):
            raise LookupError(f"importing {dotted} fails inside ulib: {e!r}") from None
    parent, _, attr = dotted.rpartition(".")
    if not parent:
        raise LookupError(f"no module {dotted}")
    owner = resolve(parent)
    if not hasattr(owner, attr):
        raise LookupError(f"{parent} has no attribute or submodule {attr!r}")
    obj = getattr(owner, attr)
    defined = inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj)  # not a value (a Path)
    home = obj.__name__ if inspect.ismodule(obj) else obj.__module__ if defined else None
    if (inspect.ismodule(owner) and home not in (None, parent, dotted) and attr not in getattr(owner, "__all__", ())):
        raise LookupError(f"{parent} has {attr!r} only because it imports it for its own use (it is defined in "
                          f"{home}, and not in {parent}.__all__): import it from {home}")
    return obj


def _is_ulib(module: str | None) -> bool:
    return module is not None and (module == "ulib" or module.startswith("ulib."))


def _bindings(stmt: ast.stmt) -> list[tuple[int, str, str]]:
    """(line, local name, dotted target) for every ulib import inside `stmt`; the target is what must resolve."""
    out = []
    for node in ast.walk(stmt):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _is_ulib(a.name):  # `import ulib.a.b` binds `ulib`; `import ulib.a.b as x` binds x to ulib.a.b
                    out.append((node.lineno, a.asname or "ulib", a.name if a.asname else "ulib"))
                    if not a.asname:
                        out.append((node.lineno, "", a.name))  # still must import
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_ulib(node.module):
            for a in node.names:
                target = node.module if a.name == "*" else f"{node.module}.{a.name}"
                out.append((node.lineno, "" if a.name == "*" else a.asname or a.name, target))
    return out


def _attribute_chains(stmt: ast.stmt, env: dict[str, str]) -> list[tuple[int, str, str]]:
    """(line, 'ulib.x.y.attr', 'ulib.x') for the longest attribute chains read from a name bound to a ulib import:
    the chain as dotted names, and the name's own target."""
    out = []
    inner = {id(n.value) for n in ast.walk(stmt) if isinstance(n, ast.Attribute)}
    for node in ast.walk(stmt):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        parts, base = [], node
        while isinstance(base, ast.Attribute):
            parts.append(base.attr)
            base = base.value
        if isinstance(base, ast.Name) and base.id in env:
            out.append((node.lineno, ".".join([env[base.id], *reversed(parts)]), env[base.id]))
    return out


def check_chain(dotted: str, start: str) -> str | None:
    """Walk 'ulib.a.b.c.d' from the bound name `start` ('ulib.a'): each step after it must exist while the object
    reached is a module (attributes of classes and functions are not followed). None, or what is missing."""
    try:
        obj = resolve(start)
        parts = dotted[len(start) + 1:].split(".") if dotted != start else []
        name = start
        for part in parts:
            if not isinstance(obj, types.ModuleType):
                return None
            name = f"{name}.{part}"
            obj = resolve(name)
    except LookupError as e:
        return str(e)
    return None


def notebook_problems(path) -> list[str]:
    """One line per ulib name in the notebook at `path` that does not resolve today: 'cell N of M, line L:
    `source line`: what is missing'. Cells are numbered from 1 in the order Jupyter shows them."""
    nb = nbformat.read(path, as_version=4)
    env: dict[str, str] = {}  # local name -> dotted ulib name it is bound to, carried from cell to cell
    problems = []
    for index, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code":
            continue
        where = f"cell {index} of {len(nb.cells)}"
        source = python_source(cell.source)
        if source is None:
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError as e:
            problems.append(f"{where}, line {e.lineno}: cannot parse the cell ({e.msg}); its imports are unchecked")
            continue
        lines = cell.source.splitlines()
        seen = set()
        for stmt in tree.body:
            found = []
            for line, name, target in _bindings(stmt):
                found.append((line, target, target))
                if name and check_chain(target, target) is None:
                    env[name] = target
                elif name:  # reported at the import; its uses would only repeat it
                    env.pop(name, None)
            found += _attribute_chains(stmt, env)
            for line, dotted, start in found:
                problem = check_chain(dotted, start)
                if problem and (line, problem) not in seen:
                    seen.add((line, problem))
                    problems.append(f"{where}, line {line}: `{lines[line - 1].strip()}`: {problem}")
            for node in ast.walk(stmt):  # a name assigned anything else no longer refers to the import
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    env.pop(node.id, None)
    return problems


# ---- the committed notebooks ----------------------------------------------------------------------------------
def test_the_glob_finds_the_notebooks_and_their_executed_copies():
    names = {p.relative_to(ROOT).as_posix() for p in NOTEBOOKS}
    assert {"notebooks/01_quickstart.ipynb", "docs/notebooks/01_quickstart.ipynb"} <= names, sorted(names)
    assert len(names) >= 2 * 11, sorted(names)  # the 13 notebooks and their executed copies


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_ulib_import_resolves(path):
    problems = notebook_problems(path)
    assert not problems, (f"{path.relative_to(ROOT)} uses ulib names that do not exist today (regenerate an "
                          f"executed copy with `python -m ulib reproduce`, or fix the notebook):\n  "
                          + "\n  ".join(problems))


# ---- the checker itself, on notebooks made here ---------------------------------------------------------------
def _notebook(tmp_path, *cells: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# title")] + [nbformat.v4.new_code_cell(c) for c in cells]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def test_checker_passes_what_exists(tmp_path):
    path = _notebook(
        tmp_path,
        "%matplotlib inline\n!pip list\nfiles = !ls\nfrom ulib.app import session as nbu, outputs\n"
        "import ulib.eval.stats",
        "%%time\nfrom ulib.eval import stats as S, quality\nS.verdict\nquality.QualityMeter.difference\n"
        "s = nbu.setup\nulib.eval.stats.format_p\nfrom ulib.data import families\nfamilies.group_split",
        "%time x = outputs.save_figure\nnbu?\nimport ulib\nulib.config.Config\nfrom ulib.config import *",
        "from ulib import sample_images\nimport ulib.sample as sample\nsample.api.sample_images",  # in ulib.__all__
        "%%bash\nthis is not python: ulib.nothing",
        "nbu = object()\nnbu.anything_now",  # rebound: no longer the module
        "def f():\n    from ulib.eval import memorisation as mem\n    return mem.nearest_pairs_grid",
    )
    assert notebook_problems(path) == []


def test_checker_names_each_missing_name(tmp_path):
    path = _notebook(
        tmp_path,
        "import numpy as np\nfrom ulib.app import session as nbu\nfrom ulib import notebook_utils",
        "from ulib.data.datasets import load_openmoji, build_dataset\nimport ulib.io.models as models\nmodels.x",
        "nbu.setup(1)\ny = nbu.no_such_helper(2)\n%time z = nbu.also_missing()",
        "import ulib.absorbing\nulib.eval.stats.no_such_function\nnp.anything",
        "from ulib.data import datasets as D\nD.build_dataset\nD.np.zeros",  # numpy is datasets' own business
        "def f(:\n  pass",
    )
    problems = notebook_problems(path)
    expected = [
        ("cell 2 of 7, line 3", "notebook_utils"),
        ("cell 3 of 7, line 1", "load_openmoji"),
        ("cell 3 of 7, line 2", "ulib.io has no attribute or submodule 'models'"),
        ("cell 4 of 7, line 2", "no_such_helper"),
        ("cell 4 of 7, line 3", "also_missing"),
        ("cell 5 of 7, line 1", "ulib.absorbing"),
        ("cell 5 of 7, line 2", "no_such_function"),
        ("cell 6 of 7, line 3", "defined in numpy"),
        ("cell 7 of 7, line 1", "cannot parse"),
    ]
    assert len(problems) == len(expected), "\n".join(problems)
    for problem, (where, name) in zip(problems, expected):
        assert problem.startswith(where) and name in problem, (problem, where, name)


def test_magics_and_shell_lines_are_set_aside():
    assert python_source("%%writefile x.py\nimport ulib.nothing") is None
    assert python_source("  %time y = f()\n!ls\nx = %env\nz?\n# why?") == "  y = f()\npass\npass\nz\n# why?"
    assert python_source("%%capture out\nimport ulib").splitlines() == ["", "import ulib"]
