"""The README tells the truth about the project: its layout lists everything, its demo numbers are the profile's."""
import re

from ulib.profiles import get_profile

from helpers import ROOT


def layout_section(readme: str) -> str:
    start = readme.index("## Layout")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def test_layout_section_names_every_module_and_notebook():
    layout = layout_section((ROOT / "README.md").read_text())
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", layout))
    stems = {p.stem for p in (ROOT / "ulib").rglob("*.py") if not p.stem.startswith("__")}
    assert len(stems) > 40  # the scan found the package
    missing = sorted(stems - words)
    assert not missing, f"README's Layout section does not mention these ulib modules: {missing}"
    numbers = {p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert len(numbers) >= 11
    listed = set(re.findall(r"\b(\d\d) [a-zA-Z]", layout))
    assert numbers <= listed, f"notebooks missing from the Layout section: {sorted(numbers - listed)}"


def test_layout_check_catches_a_missing_module():
    layout = "## Layout\n\nulib/ config, data\n"
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", layout_section(layout + "\n## Tests\n")))
    assert {"config", "data", "vqgan"} - words == {"vqgan"}


def test_readme_demo_sampling_settings_are_the_demo_profiles():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"sampled at temperature ([0-9.]+) \((\d+) steps", readme)
    assert m, "README no longer states the demo's sampling settings in the expected words"
    sample = get_profile("demo").sample
    assert float(m.group(1)) == sample.temperature
    assert int(m.group(2)) == sample.steps
