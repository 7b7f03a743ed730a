"""ulib.eval.recipe: the paper's figures stand beside ours only where they compare; the fields every record shares."""
import torch

from ulib.eval.recipe import PAPER_N_SAMPLES, checkpoint_step, data_resize, paper_results
from ulib.profiles import get_profile


def test_paper_figures_only_for_standard_features_on_the_paper_datasets():
    ffhq = get_profile("ffhq")
    paper = paper_results(ffhq, "inception")
    assert paper["fid"] == 6.11 and paper["density"] == 1.20 and paper["coverage"] == 0.80
    assert "precision" not in paper and "recall" not in paper  # not verified: left out
    assert paper["n_samples"] == PAPER_N_SAMPLES == 50_000 and paper["prdc_k"] == 3
    assert paper_results(ffhq, "random-inception") is None
    assert paper_results(get_profile("smoke"), "inception") is None
    assert paper_results(get_profile("ffhq", ["data.img_size=128"]), "inception") is None


def test_checkpoint_step_and_data_resize(tmp_path):
    torch.save({"step": 7, "model": {"w": torch.zeros(2)}}, tmp_path / "a.pt")
    torch.save({"model": {}}, tmp_path / "b.pt")
    assert checkpoint_step(tmp_path / "a.pt") == 7 and checkpoint_step(tmp_path / "b.pt") is None
    assert data_resize(get_profile("smoke")).startswith("OpenMoji rendered at 16x16")
    assert data_resize(get_profile("ffhq")).startswith("shorter side to 256 (PIL bicubic")
