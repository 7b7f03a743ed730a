"""The repository stands alone: no tracked file points outside it.

Users clone the repository and nothing else, so no tracked file may name a folder beside it (such as the
developers' reference folder one level up), the folder that holds this checkout, or an absolute path of one
particular machine. This file holds no such path either: its hand cases are built at run time from parts
and temporary folders, so it is scanned like every other file. Real system paths (the Chromium binary,
/dev/null) are allowed. `.ci/run` goes further and runs the
whole suite in a fresh clone with nothing beside it.
"""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from helpers import ROOT

# Absolute paths that mean the same thing on every machine that runs the kit.
SYSTEM_PREFIXES = ("/usr/", "/dev/", "/etc/", "/proc/", "/sys/", "/bin/")
# An absolute path: a '/' not preceded by a word character, '.', '~', '$', '}', '>', ')', ']', ':', '/' or
# '-' (so URLs, f-string joins like f"{run}/x", '<RUN>/x' and relative paths do not count), then at least
# one path component and a further '/'.
ABSOLUTE = re.compile(r"(?<![\w.~$}>)\]:/\-\\])/[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]*")
SIBLING_NAME = "sha" + "red"  # the developers' folder beside the checkout, in parts so this file never names it
SIBLING = "/".join(("..", SIBLING_NAME))
# its subfolders, written as a path or as pathlib parts ('NAME" / "reference')
SIBLING_SUBFOLDER = re.compile(rf"\b{SIBLING_NAME}(/|[\"']\s*/\s*[\"'])(reference|paper|hooks)\b")


def outside_paths(text: str, checkout=ROOT) -> list[str]:
    """Every place in `text` that points outside the repository (see the module docstring)."""
    found = []
    if SIBLING in text or SIBLING_SUBFOLDER.search(text):
        found.append(SIBLING)
    for here in {str(checkout.parent), str(checkout)}:
        if len(here) > 1 and here + "/" in text:
            found.append(here)
    for m in ABSOLUTE.finditer(text):
        path = m.group(0)
        if not path.startswith(SYSTEM_PREFIXES):
            found.append(path)
    return found


def _tracked_files() -> list[str]:
    r = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"not a git checkout ({r.stderr.strip()}): the tracked files cannot be listed")
    return [f for f in r.stdout.split("\0") if f]


def _readable_text(path) -> str | None:
    """A tracked file's text as a person or program would read it: for notebooks, the cells' sources and
    text outputs (not the base64 of embedded images); None for binary files."""
    raw = path.read_bytes()
    if b"\0" in raw[:4096]:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if path.suffix == ".ipynb":
        nb = json.loads(text)
        parts = []
        for cell in nb.get("cells", []):
            parts.append("".join(cell.get("source", "")))
            for out in cell.get("outputs", []):
                parts.append("".join(out.get("text", "")))
                for mime, value in out.get("data", {}).items():
                    if mime.startswith("text/"):
                        parts.append("".join(value))
        return "\n".join(parts)
    return text


def test_the_checker_finds_each_kind_of_outside_path(tmp_path):
    checkout = tmp_path / "repo"
    assert outside_paths(f'json.load(open("{SIBLING}/reference/x.json"))', checkout)
    assert outside_paths(f'here / "{SIBLING_NAME}/reference/keys.json"', checkout)
    assert outside_paths(f'here / "{SIBLING_NAME}" / "paper" / "text.txt"', checkout)
    assert outside_paths(f'REFERENCE = Path("{tmp_path}/{SIBLING_NAME}/reference/keys.json")', checkout)
    assert outside_paths(f"cd {checkout}/notebooks", checkout)
    elsewhere = f"{tmp_path}/alice/ulib/data"  # an absolute path of some machine (a temporary folder here)
    nested = tmp_path / "box" / "repo"  # a checkout whose folders do not contain `elsewhere`
    assert outside_paths(f'cache = "{elsewhere}"', nested) == [elsewhere]
    assert outside_paths(f"see `{elsewhere}/x.py`", nested) == [f"{elsewhere}/x.py"]
    for fine in ('uses `/usr/bin/chromium`', "make browser-deps >/dev/null", "https://openmoji.org/library/",
                 'f"{run}/saved_models/vqgan.th"', "<RUN>/saved_models/", "runs/demo/vqgan.pt",
                 'run_dir = "../runs/nb-smoke"', "a/b/c", "x = a / b / c"):
        assert outside_paths(fine, checkout) == [], fine


def test_no_tracked_file_points_outside_the_repository():
    offenders = {}
    for name in _tracked_files():
        path = ROOT / name
        if name == ".gitignore" or not path.is_file():
            continue  # gitignore's leading '/' anchors a pattern at the repository root, not at the disk's
        text = _readable_text(path)
        if text is None:
            continue
        found = outside_paths(text)
        if found:
            offenders[name] = sorted(set(found))[:5]
    assert not offenders, (
        "tracked files point outside the repository (users clone it alone: copy the facts in and cite "
        f"their source): {offenders}")


def test_ci_runs_the_suite_in_a_fresh_clone_with_nothing_beside_it():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "git clone" in ci and "mktemp -d" in ci and "make test" in ci


# Documents that code sometimes cites by name ("see CONVENTIONS"): a citation must point at a file the reader has.
CITED_DOCS = re.compile(r"\b(CONVENTIONS|CONTRIBUTING|CHANGELOG|DESIGN|STYLEGUIDE)(\.md)?\b")


def test_every_cited_document_is_in_the_repository():
    names = _tracked_files()
    stems = {n.rsplit("/", 1)[-1].split(".")[0] for n in names}
    missing = {}
    for name in names:
        path = ROOT / name
        if name == "tests/test_standalone.py" or not path.is_file():
            continue
        text = _readable_text(path)
        for m in CITED_DOCS.finditer(text or ""):
            if m.group(1) not in stems:
                missing.setdefault(name, set()).add(m.group(1))
    assert not missing, f"files cite documents the repository does not have: {missing}"
