"""Stage 1 networks: VQGAN autoencoder (ulib.vq.model) and patch discriminator (ulib.vq.discriminator); its blocks
and codebook: tests/vq/test_blocks.py, tests/vq/test_quantizer.py."""
import pytest
import torch

from ulib.config import VQGANConfig
from ulib.vq.discriminator import PatchDiscriminator
from ulib.vq.model import VQAutoEncoder

SMALL = dict(nf=32, ch_mult=(1, 2), res_blocks=1, attn_resolutions=(8,), codebook_size=16, emb_dim=8)


@pytest.fixture
def small():
    torch.manual_seed(0)
    return VQAutoEncoder(16, **SMALL)


def test_shapes_through_the_autoencoder(small):
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    z = small.encoder(x)
    assert z.shape == (2, 8, 8, 8)
    z_q, vq_loss, stats = small.quantize(z)
    assert z_q.shape == z.shape and vq_loss.dim() == 0
    assert small.generator(z_q).shape == (2, 3, 16, 16)

    x_hat, vq_loss, stats = small(x)
    assert x_hat.shape == x.shape
    assert stats["indices"].shape == (2, 8, 8) and stats["indices"].dtype == torch.int64
    assert isinstance(stats["codes_used"], int) and 1 <= stats["codes_used"] <= 16
    assert 1.0 <= stats["perplexity"].item() <= 16.0
    assert small.latent_shape == (8, 8)
    assert small.last_layer is small.generator.blocks[-1].weight and small.last_layer.shape == (3, 32, 3, 3)


def test_encode_decode_match_forward(small):
    small.eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    idx = small.encode(x)
    assert idx.shape == (2, 8, 8) and idx.dtype == torch.int64
    with torch.no_grad():
        x_hat, _, stats = small(x)
        assert torch.equal(stats["indices"], idx)
        torch.testing.assert_close(small.decode(idx), x_hat, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(small.decode(idx.reshape(2, 64)), x_hat, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(small.decode(idx.to(torch.uint8)), x_hat, atol=1e-5, rtol=1e-5)  # cached grids
    with pytest.raises(ValueError, match="integer dtype"):
        small.decode(idx.float())
    with pytest.raises(ValueError, match=r"\(B, 8, 8\)"):
        small.decode(idx.reshape(2, 4, 16))
    with pytest.raises(ValueError, match="allowed 0..15"):
        small.decode(torch.full((1, 8, 8), 16))


def test_block_layout_of_a_small_config():
    m = VQAutoEncoder(32, nf=32, ch_mult=(1, 2, 2), res_blocks=1, attn_resolutions=(8,), codebook_size=16, emb_dim=8)
    kinds = [type(b).__name__ for b in m.encoder.blocks]
    assert kinds == ["Conv2d", "ResBlock", "Downsample", "ResBlock", "Downsample", "ResBlock", "AttnBlock",
                     "ResBlock", "AttnBlock", "ResBlock", "GroupNorm", "Conv2d"]
    kinds = [type(b).__name__ for b in m.generator.blocks]
    assert kinds == ["Conv2d", "ResBlock", "AttnBlock", "ResBlock", "ResBlock", "AttnBlock", "Upsample",
                     "ResBlock", "Upsample", "ResBlock", "GroupNorm", "Conv2d"]


def test_paper_configuration_matches_official_keys_and_shapes(official_keys):
    ref = official_keys
    hp = ref["paper_hparams"]["vqgan"]
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        model = VQAutoEncoder(hp["img_size"], n_channels=hp["n_channels"], nf=hp["nf"], ch_mult=tuple(hp["ch_mult"]),
                              res_blocks=hp["res_blocks"], attn_resolutions=tuple(hp["attn_resolutions"]),
                              codebook_size=hp["codebook_size"], emb_dim=hp["emb_dim"], beta=hp["beta"])
    expected = {k[len("ae."):]: tuple(v) for k, v in ref["vqgan_autoencoder_keys"].items()}
    assert all(k.startswith("ae.") for k in ref["vqgan_autoencoder_keys"])
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert list(got) == list(expected)  # same keys, same order
    assert got == expected
    assert model.latent_shape == tuple(hp["latent_shape"][1:])


def test_from_config():
    cfg = VQGANConfig()
    m = VQAutoEncoder.from_config(cfg, img_size=32)
    assert m.latent_shape == (8, 8)
    assert m.quantize.embedding.weight.shape == (cfg.codebook_size, cfg.emb_dim)
    assert m.quantize.beta == cfg.beta


def test_bad_sizes_raise_value_errors():
    with pytest.raises(ValueError, match=r"img_size=30.*factor.*= 4.*ch_mult=\(1, 2, 2\)"):
        VQAutoEncoder(30, nf=32, ch_mult=(1, 2, 2))
    with pytest.raises(ValueError, match=r"nf=20.*ch_mult"):
        VQAutoEncoder(16, nf=20, ch_mult=(1, 2))
    small = VQAutoEncoder(16, **SMALL)
    with pytest.raises(ValueError, match=r"expected \(B, 3, 16, 16\)"):
        small(torch.zeros(1, 3, 32, 32))


def test_discriminator_layout_and_init():
    torch.manual_seed(0)
    d = PatchDiscriminator(nc=3, ndf=64, n_layers=3)
    shapes = {k: tuple(v.shape) for k, v in d.state_dict().items()}
    # The reference JSON lists only the autoencoder keys; these are the official `disc.main.N.*` shapes.
    expected = {
        "main.0.weight": (64, 3, 4, 4), "main.0.bias": (64,),
        "main.2.weight": (128, 64, 4, 4), "main.5.weight": (256, 128, 4, 4), "main.8.weight": (512, 256, 4, 4),
        "main.11.weight": (1, 512, 4, 4), "main.11.bias": (1,),
    }
    for i, c in ((3, 128), (6, 256), (9, 512)):
        expected.update({f"main.{i}.weight": (c,), f"main.{i}.bias": (c,), f"main.{i}.running_mean": (c,),
                         f"main.{i}.running_var": (c,), f"main.{i}.num_batches_tracked": ()})
    assert shapes == expected
    assert abs(d.main[5].weight.std().item() - 0.02) < 0.002
    assert abs(d.main[6].weight.mean().item() - 1.0) < 0.01 and d.main[6].bias.abs().max() == 0
    assert d(torch.randn(2, 3, 32, 32)).shape == (2, 1, 2, 2)
    with pytest.raises(ValueError, match="too small"):
        d(torch.randn(2, 3, 16, 16))
    small = PatchDiscriminator.from_config(VQGANConfig(ndf=16, disc_layers=2))
    assert small(torch.randn(2, 3, 16, 16)).shape == (2, 1, 2, 2)


def test_norm_groups_setting():
    ae = VQAutoEncoder(16, nf=32, ch_mult=(1, 2), res_blocks=1, attn_resolutions=(8,), codebook_size=8, emb_dim=4,
                       norm_groups=8)
    groups = {m.num_groups for m in ae.modules() if isinstance(m, torch.nn.GroupNorm)}
    assert groups == {8}
    default = VQAutoEncoder(16, nf=32, ch_mult=(1, 2), res_blocks=1, attn_resolutions=(8,), codebook_size=8, emb_dim=4)
    assert {m.num_groups for m in default.modules() if isinstance(m, torch.nn.GroupNorm)} == {32}
    with pytest.raises(ValueError, match="norm_groups=24"):
        VQAutoEncoder(16, nf=32, ch_mult=(1, 2), norm_groups=24)
