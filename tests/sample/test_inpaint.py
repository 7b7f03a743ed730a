"""Inpainting (ulib.sample.inpaint): pixel mask -> latent mask, start time, fixed tokens, paste-back, errors."""
import pytest
import torch

from ulib import sample_tokens
from ulib.prior.transformer import Transformer
from ulib.sample.absorbing import start_time
from ulib.sample.inpaint import inpaint, latent_mask
from ulib.vq.model import VQAutoEncoder

K, MASK, T = 16, 16, 20


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    vq = VQAutoEncoder(img_size=16, nf=32, ch_mult=(1, 2), res_blocks=1, attn_resolutions=(), codebook_size=K,
                       emb_dim=8).eval()  # factor 2: 8 x 8 tokens
    net = Transformer(codebook_size=K, block_size=64, n_emb=32, n_head=4, n_layers=2).eval()
    return vq, net


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def box(top, left, size, B=2):
    m = torch.zeros(B, 1, 16, 16, dtype=torch.bool)
    m[:, :, top:top + size, left:left + size] = True
    return m


def test_single_pixel_marks_exactly_its_cell():
    m = torch.zeros(16, 16)
    m[5, 6] = 1.0
    cells = latent_mask(m, 2)
    assert cells.shape == (1, 8, 8) and cells.dtype == torch.bool
    assert cells[0].nonzero().tolist() == [[2, 3]]


def test_pixel_on_a_cell_border_marks_only_its_own_cell():
    m = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    m[0, 0, 4, 4] = True  # first pixel of cell (1, 1) with f = 4
    assert latent_mask(m, 4)[0].nonzero().tolist() == [[1, 1]]
    m[0, 0, 4, 4], m[0, 0, 3, 3] = False, True  # last pixel of cell (0, 0)
    assert latent_mask(m, 4)[0].nonzero().tolist() == [[0, 0]]


def test_dilation_grows_by_whole_cells_and_clips_at_the_edge():
    m = torch.zeros(16, 16)
    m[5, 6] = 1
    assert latent_mask(m, 2, dilate=1)[0].nonzero().tolist() == [[r, c] for r in (1, 2, 3) for c in (2, 3, 4)]
    corner = torch.zeros(16, 16)
    corner[0, 0] = 1
    assert int(latent_mask(corner, 2, dilate=2).sum()) == 9  # 3 x 3 inside the grid, the rest clipped


def test_start_time_for_m_masked_tokens():
    assert start_time(16, 64, 100) == 25
    assert start_time(64, 64, 100) == 100
    assert start_time(1, 64, 10) == 1  # round(0.16) = 0, raised to 1
    assert start_time(5, 64, 100) == 8  # round(7.8)
    # one rule for inpainting and the sampler's x_start: the same figures per image of a batch
    assert start_time(torch.tensor([16, 64, 1, 5]), 64, 100).tolist() == [25, 100, 2, 8]  # round(1.5625) = 2
    assert start_time(torch.tensor([1, 64]), 64, 10).tolist() == [1, 10]  # the clamp, per image


def test_inpaint_changes_only_masked_tokens(models, images):
    vq, net = models
    mask = box(2, 4, 6)  # pixels 2..7 x 4..9 -> cells 1..3 x 2..4
    res = inpaint(vq, net, images, mask, num_timesteps=T, mask_id=MASK, generator=torch.Generator().manual_seed(0))
    assert res.images.shape == images.shape and res.tokens.shape == (2, 8, 8)
    assert torch.equal(res.original_tokens, vq.encode(images))
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[1:4, 2:5] = True
    assert torch.equal(res.latent_mask, expected.expand(2, 8, 8))
    assert torch.equal(res.tokens[~res.latent_mask], res.original_tokens[~res.latent_mask])
    assert (res.tokens != MASK).all()
    assert res.start_times == [start_time(9, 64, T)] * 2 == [3, 3]


def test_paste_back_keeps_pixels_outside_the_mask(models, images):
    vq, net = models
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[9:, :7] = True  # one (H, W) mask for the whole batch
    res = inpaint(vq, net, images, mask, num_timesteps=T, mask_id=MASK, steps=2, paste_back=True,
                  generator=torch.Generator().manual_seed(1))
    outside = ~mask.expand_as(images)
    assert torch.equal(res.images[outside], images[outside])
    assert torch.equal(res.images[~outside], vq.decode(res.tokens)[~outside])


def test_seeded_inpainting_is_deterministic_and_per_image_masks_differ(models, images):
    vq, net = models
    mask = torch.cat([box(0, 0, 16, B=1), box(0, 0, 2, B=1)])  # everything / one cell
    run = lambda: inpaint(vq, net, images, mask, num_timesteps=T, mask_id=MASK, steps=T,
                          generator=torch.Generator().manual_seed(2))
    a, b = run(), run()
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.images, b.images)
    assert a.start_times == [T, 1]


@pytest.mark.parametrize("steps", [None, 5])
def test_inpainting_is_sample_tokens_from_x_start_with_one_meaning_of_steps(models, images, steps):
    """inpaint = encode, mask, `sample_tokens(x_start=...)`, decode: the same tokens under one seed, and steps
    means S evenly spaced steps over T there as everywhere (those above an image's start time cost nothing)."""
    vq, net = models
    mask = torch.cat([box(0, 0, 16, B=1), box(4, 4, 12, B=1)])
    res = inpaint(vq, net, images, mask, num_timesteps=T, mask_id=MASK, steps=steps,
                  generator=torch.Generator().manual_seed(3))
    x = torch.where(res.latent_mask, torch.full_like(res.original_tokens, MASK), res.original_tokens)
    want = sample_tokens(net, x_start=x, num_timesteps=T, mask_id=MASK, steps=steps,
                         generator=torch.Generator().manual_seed(3))
    assert torch.equal(res.tokens, want)
    with pytest.raises(ValueError, match="steps=21; allowed: 1..num_timesteps=20"):
        inpaint(vq, net, images, mask, num_timesteps=T, mask_id=MASK, steps=T + 1)


def test_errors(models, images):
    vq, net = models
    kw = dict(num_timesteps=T, mask_id=MASK)
    with pytest.raises(ValueError, match="pixel mask of shape"):
        inpaint(vq, net, images, torch.ones(2, 1, 8, 8), **kw)  # wrong size
    with pytest.raises(ValueError, match="pixel mask of shape"):
        inpaint(vq, net, images, torch.ones(3, 1, 16, 16), **kw)  # wrong batch
    with pytest.raises(ValueError, match="pixel mask of shape"):
        inpaint(vq, net, images, torch.ones(2, 3, 16, 16), **kw)  # channels
    with pytest.raises(ValueError, match=r"image\(s\) \[1\] is empty"):
        inpaint(vq, net, images, torch.cat([box(0, 0, 4, B=1), box(0, 0, 0, B=1)]), **kw)
    with pytest.raises(ValueError, match="mask_id=3"):
        inpaint(vq, net, images, box(0, 0, 4), num_timesteps=T, mask_id=3)
    with pytest.raises(ValueError, match="dilate=-1"):
        latent_mask(torch.ones(16, 16), 2, dilate=-1)
    with pytest.raises(ValueError, match="not divisible"):
        latent_mask(torch.ones(15, 16), 2)


def _autocast_of(device_type: str):
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


@pytest.mark.parametrize("precision, want", [("bf16", torch.bfloat16), ("fp32", torch.float32),
                                             ("auto", torch.float32)])
def test_precision_is_the_priors_dtype_and_the_vqgan_stays_in_fp32(models, images, precision, want, monkeypatch):
    """Like `sample_images`: 'bf16' runs the prior as a bf16 copy (`ulib.sample.precision`), 'fp32' and 'auto' on a
    CPU in fp32; the caller's prior stays fp32, and the VQGAN encodes and decodes in fp32, outside autocast."""
    vq, net = models
    seen = {"prior": [], "vqgan": []}
    real_features, real_encode, real_decode = Transformer.features, vq.encode, vq.decode
    monkeypatch.setattr(Transformer, "features",
                        lambda self, x: seen["prior"].append(self.tok_emb.weight.dtype) or real_features(self, x))
    monkeypatch.setattr(vq, "encode", lambda x: seen["vqgan"].append(_autocast_of("cpu")) or real_encode(x))
    monkeypatch.setattr(vq, "decode", lambda t: seen["vqgan"].append(_autocast_of("cpu")) or real_decode(t))
    res = inpaint(vq, net, images, box(2, 4, 6), num_timesteps=T, mask_id=MASK, steps=4, precision=precision,
                  generator=torch.Generator().manual_seed(0))
    assert seen["prior"] and set(seen["prior"]) == {want}
    assert net.tok_emb.weight.dtype == torch.float32, "the caller's prior is left as it was"
    assert seen["vqgan"] == [None, None] and res.images.dtype == torch.float32
    assert torch.equal(res.tokens[~res.latent_mask], res.original_tokens[~res.latent_mask])


def test_a_bad_precision_is_refused_before_any_work(models, images, monkeypatch):
    vq, net = models
    monkeypatch.setattr(vq, "encode", lambda x: pytest.fail("encoded before the precision was checked"))
    with pytest.raises(ValueError, match=r"precision='fp16'; allowed: auto, fp32, bf16"):
        inpaint(vq, net, images, box(0, 0, 4), num_timesteps=T, mask_id=MASK, precision="fp16")
