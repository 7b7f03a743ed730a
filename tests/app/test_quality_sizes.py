"""ulib.app.measuring.quality_sizes: samples, reference and bootstrap draws of the quality notebooks, by profile."""
from types import SimpleNamespace

from ulib.app import measuring
from ulib.eval.intervals import DEFAULT_DRAWS


def session(profile: str):
    return SimpleNamespace(cfg=SimpleNamespace(profile=profile))


def test_fig6_takes_more_samples_per_temperature_where_the_profile_says():
    """Notebook 07's bias figures are shares: the demo samples 800 per temperature (300 per setting elsewhere),
    within its test split's 1,108 images for a floor at the same n; smoke stays small; an n_samples override sets
    both; a GPU profile uses its n_samples for both."""
    demo = measuring.quality_sizes(session("demo"))
    assert (demo["n_samples"], demo["n_temperature"], demo["draws"]) == (300, 800, DEFAULT_DRAWS)
    assert measuring.quality_sizes(session("smoke"))["n_temperature"] == 40
    assert measuring.quality_sizes(session("demo"), 50) == {**demo, "n_samples": 50, "n_temperature": 50}
    gpu = measuring.quality_sizes(session("ffhq"))
    assert gpu["n_temperature"] == gpu["n_samples"] == 2000
