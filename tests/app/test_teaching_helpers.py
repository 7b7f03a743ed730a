"""The notebook helpers of the lessons (#23): the setup banner, the GAN phase's settings, the reading table, the
scale beside the paper's, and varied images for pictures."""
import pytest
import torch
from PIL import Image

from ulib.app import gan_variants, outputs, readings, session, splits
from ulib.data.datasets import build_dataset, split_sides
from ulib.eval.categories import emoji_categories
from ulib.eval.extractors import to_uint8
from ulib.profiles import get_profile
from ulib.trained import prior_from_config

from helpers import TINY


@pytest.fixture
def sess(tmp_path):
    return session.setup("smoke", str(tmp_path / "run"), "cpu", 0, TINY, banner=False)


def test_setup_prints_one_banner_with_the_grid_the_run_and_the_credit(tmp_path, capsys):
    s = session.setup("smoke", str(tmp_path / "run"), "cpu", 0, TINY)
    out = capsys.readouterr().out
    cfg = s.cfg
    assert out == session.setup_banner(s) + "\n"
    h = cfg.latent_size
    assert f"profile smoke | device cpu | openmoji {cfg.data.img_size}px -> {h}x{h} = {h * h} tokens" in out
    assert f"K = {cfg.vqgan.codebook_size} codes, T = {cfg.prior.total_steps}" in out
    assert str(s.run.path) in out and "load if present, else train" in out
    assert "OpenMoji" in out and "CC BY-SA 4.0" in out
    session.setup("smoke", str(tmp_path / "run"), "cpu", 0, TINY, banner=False)
    assert capsys.readouterr().out == ""


def test_banner_credits_openmoji_only_when_the_data_is_openmoji(tmp_path):
    s = session.setup("smoke", str(tmp_path / "run"), "cpu", 0, [*TINY, "data.dataset=folder", "data.split_by=random",
                                                             f"data.path={tmp_path}"], banner=False)
    assert "OpenMoji" not in session.setup_banner(s) and "folder" in session.setup_banner(s)


def test_gan_phase_by_profile_or_as_given():
    assert gan_variants.gan_phase(get_profile("smoke")) == (4, get_profile("smoke").vqgan_train.lr)
    assert gan_variants.gan_phase(get_profile("demo")) == (100, 1e-4)
    assert gan_variants.gan_phase(get_profile("study")) == (400, 1e-4)
    ffhq = get_profile("ffhq")
    assert gan_variants.gan_phase(ffhq) == (20_000, ffhq.vqgan_train.lr)
    assert gan_variants.gan_phase(get_profile("demo"), 7, 3e-5) == (7, 3e-5)
    with pytest.raises(ValueError, match="must be >= 0"):
        gan_variants.gan_phase(get_profile("demo"), -1)


def test_reading_lists_the_notebooks_claims_then_the_given_rows(sess, capsys):
    s = sess
    readings.claim(s, "99_test", "a", "A claim", "Table 9: 1.0", ("measured", "0.5 [0.4, 0.6]"), show=False)
    table = readings.reading(s, "99_test", [{"what": "size", "paper": "big", "this run": "small"}])
    assert table == [{"what": "A claim", "paper": "Table 9: 1.0", "this run": "0.5 [0.4, 0.6]", "verdict": "measured"},
                     {"verdict": "measured", "what": "size", "paper": "big", "this run": "small"}]
    out = capsys.readouterr().out
    assert "| what | paper | this run | verdict |" in out and "| A claim | Table 9: 1.0 |" in out
    with pytest.raises(ValueError, match="keys must be"):
        readings.reading(s, "99_test", [{"what": "x", "paper": "y"}])
    with pytest.raises(ValueError, match="no verdicts recorded"):
        readings.reading(s, "98_nothing")


def test_scale_rows_set_this_run_beside_the_papers_settings(sess):
    rows = {r["what"]: r for r in readings.scale_rows(sess)}
    cfg, paper = sess.cfg, get_profile("ffhq")
    assert set(rows) == {"images", "codebook and T", "prior", "training"}
    assert rows["images"]["paper"] == "256x256 px -> 16x16 = 256 tokens"
    assert rows["codebook and T"]["this run"] == f"K = {cfg.vqgan.codebook_size}, T = {cfg.prior.total_steps}"
    millions = sum(p.numel() for p in prior_from_config(paper).parameters()) / 1e6
    assert f"{millions:.1f}M parameters" in rows["prior"]["paper"] and 70 < millions < 85
    assert f"prior {cfg.prior_train.steps:,} steps" in rows["training"]["this run"]


def test_varied_images_take_the_first_of_each_category_in_the_seeded_order(sess):
    s = sess
    images, names = splits.varied_images(s, "test", per_category=2)
    assert names == [c for c in ("Smileys & Emotion", "Animals & Nature", "Food & Drink", "Objects") for _ in (0, 1)]
    assert images.dtype == torch.uint8 and images.shape == (8, 3, s.cfg.data.img_size, s.cfg.data.img_size)
    ds = build_dataset(s.cfg.data, "all", train_transforms=False)
    test = split_sides(s.cfg.data, ds)["test"]
    perm = torch.randperm(len(test), generator=torch.Generator().manual_seed(s.seed)).tolist()
    faces = [test[j] for j in perm if emoji_categories([ds.names[test[j]]])[0] == 0][:2]
    assert torch.equal(images[:2], to_uint8(torch.stack([ds[i] for i in faces])))
    with pytest.raises(ValueError, match="allowed"):
        splits.varied_images(s, "test", ("Dinosaurs",))


def test_save_grid_enlarges_by_the_shorter_side(sess):
    """A 32x64 canvas is enlarged as a 32-px emoji is (4x), not by its width (2x)."""
    wide = torch.zeros(1, 3, 32, 64)
    square = torch.zeros(1, 3, 32, 32)
    w_wide, h_wide = Image.open(outputs.save_grid(sess, wide, "wide")).size
    w_sq, h_sq = Image.open(outputs.save_grid(sess, square, "square")).size
    assert h_wide == h_sq and h_wide >= 128 and w_wide > 1.8 * w_sq
