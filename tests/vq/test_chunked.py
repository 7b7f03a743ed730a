"""Chunked decode and encode (ulib.vq.chunked): the same images and tokens as one call, chunk sizes from the free
memory and the 2**31-element limit, and the evaluation paths going through them."""
import contextlib

import pytest
import torch

from ulib.vq import chunked
from ulib.vq.chunked import INDEX_LIMIT, chunk_size, decode_chunked, encode_chunked, peak_map_elements
from ulib.vq.model import VQAutoEncoder

SMALL = dict(nf=32, ch_mult=(1, 2), res_blocks=1, attn_resolutions=(8,), codebook_size=16, emb_dim=8)
PAPER_256 = dict(nf=128, ch_mult=(1, 1, 2, 2, 4), img_size=256)


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return VQAutoEncoder(16, **SMALL).eval()


@contextlib.contextmanager
def native_conv():
    """The CPU's native convolution, whose result does not depend on the batch size (oneDNN, the default, takes
    another algorithm for a single small image: the rounding differs by ~1e-6)."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


@pytest.mark.parametrize("max_batch", [1, 2, 3])
def test_chunks_give_the_same_images_and_tokens(small, max_batch):
    x = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad(), native_conv():
        tokens, images = small.encode(x), small.decode(small.encode(x))
        got_tokens = encode_chunked(small, x, max_batch=max_batch)
        got_images = decode_chunked(small, tokens, max_batch=max_batch)
        flat = decode_chunked(small, tokens.flatten(1), max_batch=max_batch)  # (B, h*w) is accepted as by decode
    assert torch.equal(got_tokens, tokens) and got_tokens.dtype == torch.int64
    assert torch.equal(got_images, images) and got_images.dtype == images.dtype
    assert torch.equal(flat, images)
    with torch.no_grad():  # the default kernels: the same tokens, images within float rounding
        assert torch.equal(encode_chunked(small, x, max_batch=max_batch), tokens)
        torch.testing.assert_close(decode_chunked(small, tokens, max_batch=max_batch), small.decode(tokens),
                                   rtol=0, atol=1e-5)


def test_decode_is_called_once_per_chunk(small, monkeypatch):
    calls = []
    decode = small.decode
    monkeypatch.setattr(small, "decode", lambda t: calls.append(len(t)) or decode(t))
    with torch.no_grad():
        decode_chunked(small, torch.zeros(5, 8, 8, dtype=torch.long), max_batch=2)
    assert calls == [2, 2, 1]


@pytest.mark.parametrize("bad", [0, -3, 1.5, True])
def test_bad_max_batch_is_named(small, bad):
    with pytest.raises(ValueError, match="max_batch"):
        decode_chunked(small, torch.zeros(2, 8, 8, dtype=torch.long), max_batch=bad)
    with pytest.raises(ValueError, match="max_batch"):
        chunk_size(4, map_elements=10, max_batch=bad)


def test_peak_map_at_the_papers_256px_decoder():
    # level 0: 128 channels x 256 x 256 = 2**23 values per image; level 1: 128 * 2 (its neighbour) x 128**2 = 2**22
    assert peak_map_elements(**PAPER_256) == 128 * 256 * 256 == 2**23
    # ch_mult (1, 2): level 1's 2 nf channels are upsampled to full resolution before level 0's first ResBlock
    assert peak_map_elements(32, (1, 2), 16) == 64 * 16 * 16


def test_chunk_size_from_free_memory_and_the_index_limit():
    elements = peak_map_elements(**PAPER_256)
    per_image = elements * 4 * chunked.MAPS_ALIVE  # fp32 bytes of the maps alive at once: 167,772,160
    # 24 GB free: floor(0.5 * 24e9 / 167772160) = 71 images per chunk
    assert chunk_size(256, map_elements=elements, free_bytes=24 * 10**9) == 71 == int(0.5 * 24e9) // per_image
    assert chunk_size(50, map_elements=elements, free_bytes=24 * 10**9) == 50  # a smaller batch in one go
    # 80 GB: 238 images; 1 TB would allow 2980, but 256 x 2**23 = 2**31 values: 255 is the most a chunk may hold
    assert chunk_size(256, map_elements=elements, free_bytes=80 * 10**9) == 238
    assert chunk_size(256, map_elements=elements, free_bytes=10**12) == 255
    assert 255 * elements < INDEX_LIMIT <= 256 * elements
    assert chunk_size(256, map_elements=elements, max_batch=1000) == 255, "the index limit holds for max_batch too"
    assert chunk_size(256, map_elements=elements, free_bytes=1) == 1, "at least one image"
    assert chunk_size(256, map_elements=elements, max_batch=7) == 7


def test_cuda_sizes_from_mem_get_info(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (40 * 10**9, 80 * 10**9))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 2 * 10**9)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 10**9)
    assert chunked.free_memory(torch.device("cuda", 0)) == 41 * 10**9  # free + cached but unused
    elements = peak_map_elements(**PAPER_256)
    assert chunk_size(256, map_elements=elements, device="cuda") == int(0.5 * 41e9) // (elements * 20) == 122
    # the CPU has no such query: a fixed budget of 4 GiB, so 12 images of 256 px per chunk
    assert chunk_size(256, map_elements=elements, device="cpu") == 12


def test_sample_images_decodes_in_chunks(monkeypatch):
    from ulib.models import from_modules
    from ulib.sample.api import sample_images

    from helpers import tiny_config, tiny_transformer
    cfg = tiny_config()
    torch.manual_seed(0)
    vq = VQAutoEncoder.from_config(cfg.vqgan, cfg.data.img_size).eval()
    side = vq.latent_shape[0]
    net = tiny_transformer(K=cfg.vqgan.codebook_size, L=side * side).eval()
    models = from_modules(vq, net, cfg)
    calls = []
    decode = vq.decode
    with native_conv():
        whole = sample_images(models, 5, steps=2, seed=0)
        monkeypatch.setattr(vq, "decode", lambda t: calls.append(len(t)) or decode(t))
        monkeypatch.setattr(chunked, "HOST_BUDGET_BYTES", 1)  # room for one image per chunk
        assert torch.equal(sample_images(models, 5, steps=2, seed=0), whole)
    assert calls == [1] * 5


def test_latent_encode_goes_through_chunks(small, monkeypatch):
    from ulib.train.latents import encode_split
    images = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    calls = []
    encode = small.encode
    with native_conv():
        whole = encode_split(small, images, "cpu", batch_size=5, progress=False, both=True)
        monkeypatch.setattr(small, "encode", lambda x: calls.append(len(x)) or encode(x))
        monkeypatch.setattr(chunked, "HOST_BUDGET_BYTES", 1)
        got = encode_split(small, images, "cpu", batch_size=5, progress=False, both=True)
    assert calls == [1] * 10, "each image and its mirror image one by one"
    assert all(torch.equal(a, b) for a, b in zip(got, whole))


def test_a_stand_in_without_the_vqgans_geometry_decodes_whole_or_by_max_batch():
    calls = []

    class Pixels:  # a test's or notebook's stand-in: decode only, no parameters, no nf / ch_mult / img_size
        def decode(self, t):
            calls.append(len(t))
            return t.float()[:, None]

    t = torch.arange(10).view(5, 1, 2)
    assert torch.equal(decode_chunked(Pixels(), t), t.float()[:, None]) and calls == [5]
    assert torch.equal(decode_chunked(Pixels(), t, max_batch=2), t.float()[:, None]) and calls == [5, 2, 2, 1]
