"""Stage 1 losses: adaptive weight (Eq. 9c), hinge loss, DiffAugment, offline LPIPS, VQGANLoss (Eq. 9)."""
import os

import pytest
import torch

from ulib.config import VQGANConfig
from ulib.vq.diffaug import diff_augment, translate
from ulib.vq.discriminator import PatchDiscriminator, hinge_d_loss
from ulib.vq.loss import VQGANLoss, adaptive_weight
from ulib.vq.model import VQAutoEncoder
from ulib.vq.perceptual import VGG16_FILE, load_lpips

from helpers import CountingCalls


# ---- Eq. 9c ------------------------------------------------------------------------------------------------
def test_adaptive_weight_is_the_ratio_of_gradient_norms():
    w = torch.randn(3, 4, requires_grad=True)
    # d/dw a*sum(w) = a everywhere, so the norms are |a|*sqrt(12) and |b|*sqrt(12)
    a, b = 0.3, -2.0
    lam = adaptive_weight(a * w.sum(), b * w.sum(), w, max_weight=1.0, delta=0.0)
    assert lam.item() == pytest.approx(abs(a) / abs(b))
    assert not lam.requires_grad
    # with delta: |a| sqrt(12) / (|b| sqrt(12) + delta)
    lam = adaptive_weight(a * w.sum(), b * w.sum(), w, max_weight=1.0, delta=1e-4)
    assert lam.item() == pytest.approx(abs(a) * 12**0.5 / (abs(b) * 12**0.5 + 1e-4))
    # a ratio above lambda_max is clamped
    assert adaptive_weight(5.0 * w.sum(), 1.0 * w.sum(), w, max_weight=1.0).item() == pytest.approx(1.0)
    assert adaptive_weight(5.0 * w.sum(), 1.0 * w.sum(), w, max_weight=10.0).item() == pytest.approx(5.0, rel=1e-4)


def test_hinge_loss_on_hand_values():
    real = torch.tensor([2.0, 0.5, -1.0])  # relu(1 - real) = 0, 0.5, 2 -> mean 2.5/3
    fake = torch.tensor([-3.0, 0.0])  # relu(1 + fake) = 0, 1 -> mean 0.5
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5 * (2.5 / 3 + 0.5))


# ---- DiffAugment -------------------------------------------------------------------------------------------
def test_diff_augment_shape_gradient_and_seeded_determinism():
    x = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_()
    y = diff_augment(x, generator=torch.Generator().manual_seed(1))
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with torch.no_grad():
        a = diff_augment(x, "color,translation,cutout", generator=torch.Generator().manual_seed(3))
        b = diff_augment(x, "color,translation,cutout", generator=torch.Generator().manual_seed(3))
        c = diff_augment(x, "color,translation,cutout", generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(diff_augment(x, ""), x)
    with pytest.raises(ValueError, match="allowed"):
        diff_augment(x, "colour")


def test_translate_shifts_content():
    x = torch.arange(2 * 1 * 4 * 5, dtype=torch.float32).reshape(2, 1, 4, 5) + 1
    out = translate(x, dx=torch.tensor([1, -2]), dy=torch.tensor([0, 1]))
    # sample 0: one pixel right, zero column on the left
    assert torch.equal(out[0, 0, :, 1:], x[0, 0, :, :-1]) and out[0, 0, :, 0].abs().sum() == 0
    # sample 1: two pixels left and one down
    assert torch.equal(out[1, 0, 1:, :-2], x[1, 0, :-1, 2:])
    assert out[1, 0, 0].abs().sum() == 0 and out[1, 0, :, -2:].abs().sum() == 0


def test_random_translation_is_a_zero_padded_shift_of_at_most_an_eighth():
    x = torch.rand(6, 3, 16, 16) + 1  # strictly positive, so padding zeros are recognisable
    y = diff_augment(x, "translation", generator=torch.Generator().manual_seed(0))
    shifts = [(dx, dy) for dx in range(-2, 3) for dy in range(-2, 3)]  # 16 / 8 = 2 pixels at most
    for b in range(6):
        matches = [s for s in shifts if torch.equal(translate(x[b:b + 1], torch.tensor([s[0]]), torch.tensor([s[1]])),
                                                    y[b:b + 1])]
        assert len(matches) == 1
    assert any((y[b] == 0).any() for b in range(6))  # some sample was actually moved


# ---- LPIPS -------------------------------------------------------------------------------------------------
def _point_hub_at(monkeypatch, path):
    monkeypatch.setenv("TORCH_HOME", str(path))
    monkeypatch.delenv("ULIB_WEIGHTS_DIR", raising=False)
    assert torch.hub.get_dir() == os.path.join(str(path), "hub")


def test_load_lpips_without_weights_raises(tmp_path, monkeypatch):
    _point_hub_at(monkeypatch, tmp_path / "torch_home")
    empty = tmp_path / "weights"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as err:
        load_lpips(str(empty))
    msg = str(err.value)
    assert VGG16_FILE in msg and str(empty / VGG16_FILE) in msg
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints" / VGG16_FILE) in msg
    assert "perceptual_weight=0" in msg


def test_load_lpips_from_a_local_file(tmp_path, monkeypatch):
    import torchvision

    _point_hub_at(monkeypatch, tmp_path / "torch_home")
    torch.manual_seed(0)
    state = torchvision.models.vgg16(weights=None).state_dict()
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(state, weights / VGG16_FILE)
    monkeypatch.setenv("ULIB_WEIGHTS_DIR", str(weights))  # found through the environment variable

    with pytest.warns(UserWarning, match="sha256"):  # a test-made file is not torchvision's released one
        model = load_lpips(allow_unverified=True)
    assert model.official_weights is False
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    torch.testing.assert_close(getattr(model.net.slice1, "0").weight, state["features.0.weight"])
    torch.testing.assert_close(getattr(model.net.slice5, "28").bias, state["features.28.bias"])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert model(x, x).abs().max().item() < 1e-6
        assert (model(x, y) > 0).all()


# ---- Eq. 9 -------------------------------------------------------------------------------------------------
def _setup(**cfg_kwargs):
    torch.manual_seed(0)
    cfg = VQGANConfig(nf=32, ch_mult=(1, 2), attn_resolutions=(), codebook_size=16, emb_dim=8, ndf=8,
                      disc_layers=2, disc_start_step=10, **cfg_kwargs)
    ae = VQAutoEncoder.from_config(cfg, img_size=16)
    disc = PatchDiscriminator.from_config(cfg)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    return cfg, ae, disc, x



def test_vqgan_loss_before_the_discriminator_starts():
    cfg, ae, disc, x = _setup()
    counting = CountingCalls(disc)
    crit = VQGANLoss(cfg, counting, perceptual=None)
    x_hat, vq_loss, _ = ae(x)
    loss, stats = crit.generator_loss(x, x_hat, vq_loss, ae.last_layer, step=9)
    assert counting.calls == 0  # no discriminator forward at all
    assert loss.item() == pytest.approx(stats["l1"] + stats["vq"], rel=1e-5)
    assert stats["d_weight"] == 0.0 and stats["g_loss"] == 0.0 and "perceptual" not in stats
    d_loss, d_stats = crit.discriminator_loss(x, x_hat, step=9)
    assert d_loss is None and d_stats == {} and counting.calls == 0
    loss.backward()
    assert all(p.grad is None for p in disc.parameters())


def test_vqgan_loss_after_the_discriminator_starts():
    cfg, ae, disc, x = _setup(disc_weight_max=1.0)
    crit = VQGANLoss(cfg, disc)
    x_hat, vq_loss, _ = ae(x)
    g = torch.Generator().manual_seed(0)
    loss, stats = crit.generator_loss(x, x_hat, vq_loss, ae.last_layer, step=10, generator=g)
    assert set(stats) >= {"l1", "vq", "g_loss", "d_weight", "loss"}
    assert 0.0 <= stats["d_weight"] <= cfg.disc_weight_max
    expected = stats["l1"] + stats["vq"] + stats["d_weight"] * stats["g_loss"]
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    loss.backward()
    assert ae.last_layer.grad is not None

    d_loss, d_stats = crit.discriminator_loss(x, x_hat, step=10, generator=g)
    assert d_loss.requires_grad and set(d_stats) == {"d_loss", "logits_real", "logits_fake"}
    disc.zero_grad()
    ae.zero_grad()
    d_loss.backward()
    assert disc.main[0].weight.grad is not None
    assert all(p.grad is None for p in ae.parameters())  # the fake input was detached


def test_vqgan_loss_needs_lpips_when_weighted():
    cfg, _, disc, _ = _setup(perceptual_weight=1.0)
    with pytest.raises(ValueError, match="perceptual_weight=1.0"):
        VQGANLoss(cfg, disc, perceptual=None)

    class L1Perceptual(torch.nn.Module):  # a stand-in with LPIPS's (B, 1, 1, 1) output
        def forward(self, a, b):
            return (a - b).abs().mean(dim=(1, 2, 3), keepdim=True)

    cfg, ae, disc, x = _setup(perceptual_weight=0.5)
    crit = VQGANLoss(cfg, disc, perceptual=L1Perceptual())
    x_hat, vq_loss, _ = ae(x)
    loss, stats = crit.generator_loss(x, x_hat, vq_loss, ae.last_layer, step=0)
    assert stats["perceptual"] == pytest.approx(stats["l1"], rel=1e-5)
    assert loss.item() == pytest.approx(1.5 * stats["l1"] + stats["vq"], rel=1e-5)


def test_adaptive_weight_survives_fp16_underflow_with_the_loss_scale():
    w = torch.nn.Parameter(torch.ones(64))

    def losses():  # gradients of 1e-8 per weight in fp16: below its smallest subnormal (6e-8)
        rec = (w.half() * 1e-4).sum() * 1e-4
        gan = (w.half() * 2e-4).sum() * 1e-4
        return rec.float(), gan.float()

    want = 0.5  # ||d rec|| / ||d gan|| with delta negligible
    assert float(adaptive_weight(*losses(), w, delta=1e-12, scale=2.0**10)) == pytest.approx(want, rel=1e-2)
    assert float(adaptive_weight(*losses(), w, delta=1e-12)) != pytest.approx(want, rel=1e-2)
    r, g = (w * 3.0).sum(), (w * 6.0).sum()
    assert float(adaptive_weight(r, g, w, scale=1024.0)) == pytest.approx(float(adaptive_weight(r, g, w)))
