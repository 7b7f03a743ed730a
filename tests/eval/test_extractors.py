"""ulib.eval.extractors.SPACES: feature spaces as plugins, which the CLI, compare, QualityMeter and the records
read. (The Inception weights themselves: test_weights_safety.py.)"""
import pytest
import torch

from ulib.app.cli import build_parser
from ulib.eval import compare as C
from ulib.eval import extractors as X
from ulib.eval import records as R
from ulib.eval import scoring as S
from ulib.eval.quality import QualityMeter


class ToyNet(torch.nn.Module):
    """uint8 (B, 3, H, W) -> (features (B, 4): channel means and the first pixel; logits (B, 3))."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        x = x.float()
        feats = torch.cat([x.mean((2, 3)), x[:, :1, 0, 0]], 1) * self.scale
        return feats, torch.nn.functional.one_hot(x[:, 0, 0, 0].long() % 3, 3).float()


def load_toy(weights_dir, device, *, seed, allow_unverified):
    return X.FeatureSpace(ToyNet(), "toy", {"features": "toy", "seed": seed}, ("toy_pool", "toy_logits"))


TOY = X.SpaceKind(load_toy, "a toy space of channel means")


def test_the_built_in_spaces_in_the_order_the_cli_lists_them():
    assert list(X.SPACES) == ["inception", "random-inception", "openmoji"]
    assert [name for name in X.SPACES if X.paper_scale(name)] == ["inception"] and not X.paper_scale("toy")
    assert X.SPACES["openmoji"].class_names[0] == "Smileys & Emotion"
    with pytest.raises(ValueError, match="features='toy'; allowed: inception, random-inception, openmoji$"):
        X.load_inception("toy")


def test_a_space_registered_once_reaches_the_cli_compare_the_meter_and_the_records(monkeypatch):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["compare", "a", "b", "--features", "toy"])
    monkeypatch.setitem(X.SPACES, "toy", TOY)  # the registration line
    parser = build_parser()
    assert parser.parse_args(["compare", "a", "b", "--features", "toy"]).features == "toy"
    assert parser.parse_args(["evaluate", "--run", "r", "--features", "toy"]).features == "toy"
    space = X.load_inception("toy", seed=3)
    assert space.features == "toy" and space.key == "random-seed3"

    # a figure that belongs to the toy space only: its head's class count
    classes = S.Family("classes", (S.Figure("toy_classes", False),), spaces=("toy",),
                       value=lambda p: {"toy_classes": float(len(p.ref) + len(p.fake))})
    monkeypatch.setitem(S.FAMILIES, "classes", classes)
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (24, 3, 5, 5), generator=g, dtype=torch.uint8)
    fake = torch.randint(0, 200, (20, 3, 5, 5), generator=g, dtype=torch.uint8)
    r = C.compare_images(real, fake, space, draws=2, k=3)
    assert r["features"] == "toy" and r["toy_classes"] == 44 and r["feature_info"] == {"features": "toy", "seed": 3}
    assert "\ntoy_classes " in C.format_report(r) and "toy_classes" not in C.compare_features(
        torch.randn(10, 4), torch.randn(10, 4), draws=0, k=3)
    row = QualityMeter(space, real, k=3).score(fake, draws=0)
    assert row["features"] == "toy" and row["toy_classes"] == 44 and 0 <= row["top_category_share"] <= 1

    vq = {"kind": "vqgan", "features": "toy", "time": "t", "vqgan_step": 1, "ema": True, "reference": "val",
          "n_images": 4, "rfid": 1.0, "psnr": 20.0, "ssim": 0.5, "lpips": None, "codes_used": 3,
          "codebook_size": 4, "perplexity": 2.0}
    assert "— features: toy (a toy space of channel means)" in R.render_markdown([vq])
