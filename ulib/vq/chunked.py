"""Decode and encode large batches in chunks, so evaluation fits the card: `decode_chunked`, `encode_chunked`.

At 256 px the paper's VQGAN (nf=128, ch_mult 1,1,2,2,4) holds 128-channel maps of 256 x 256 at its full-resolution
stage: 8.4 M values per image, 34 MB in fp32, and about five of them alive at once inside a ResBlock
(input, GroupNorm output, sigmoid, swish product, conv output). A batch of 256 images thus needs 40-45 GB, and
each of its maps holds exactly 2**31 values, where CUDA kernels that index with 32-bit integers break. So a batch
is split into chunks whose size comes from the free memory (`chunk_size`) and the chunks are written into one output.

Every layer works per image (convolutions, GroupNorm, attention over one image's positions, the quantiser's nearest
code), so a chunk computes what one call computes. Bit for bit where the convolution kernel does not depend on the
batch size (the CPU's native convolution: tested); oneDNN and cuDNN may pick another algorithm for another batch
size (oneDNN does for a single small image), which changes the float rounding (~1e-6), not the images.
"""
from __future__ import annotations

from typing import Sequence

import torch

INDEX_LIMIT = 2**31  # elements one tensor may hold where kernels index with int32: batch x C x H x W < 2**31
MAPS_ALIVE = 5  # full-size feature maps alive at once in a ResBlock (x, norm, sigmoid, swish, conv out)
SAFETY = 0.5  # share of the free memory the estimate may fill (cuDNN workspaces, fragmentation, its own error)
HOST_BUDGET_BYTES = 4 * 2**30  # CPU / MPS: no free-memory query; budget the activations as if this were free


def peak_map_elements(nf: int, ch_mult: Sequence[int], img_size: int, n_channels: int = 3) -> int:
    """Values per image of the largest feature map the encoder or the decoder makes.

    Level i works at resolution img_size / 2**i; its maps have nf * ch_mult[i] channels, and it also receives (the
    encoder, after a Downsample) or hands on (the decoder, before an Upsample) maps with the neighbouring level's
    channels at its resolution: nf * max(ch_mult[i-1] or 1, ch_mult[i], ch_mult[i+1]) x (img_size / 2**i)**2.
    (Attention runs at the low resolutions only: 16 x 16 in the paper, a (256 x 256) matrix per image.)
    """
    mult = (1, *ch_mult)  # the encoder's conv_in gives nf channels at full resolution: 'ch_mult[-1]' of level 0
    per_level = [nf * max(mult[i: i + 3]) * (img_size // 2**i) ** 2 for i in range(len(ch_mult))]
    return max(per_level + [n_channels * img_size**2])


def free_memory(device: torch.device) -> int:
    """Bytes a new tensor can take on `device`: on CUDA the driver's free memory plus what PyTorch's caching
    allocator holds unused; elsewhere `HOST_BUDGET_BYTES` (no portable query for host or MPS memory)."""
    device = torch.device(device)
    if device.type != "cuda":
        return HOST_BUDGET_BYTES
    free, _ = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def _check_max_batch(max_batch) -> None:
    if max_batch is not None and (isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1):
        raise ValueError(f"max_batch={max_batch!r}; expected a positive integer (images per chunk) or None")


def chunk_size(batch: int, *, map_elements: int, element_bytes: int = 4, device="cpu", max_batch: int | None = None,
               free_bytes: int | None = None) -> int:
    """Images per chunk for a batch of `batch`, between 1 and batch.

    max_batch=None sizes it from memory: floor(SAFETY x free / (map_elements x element_bytes x MAPS_ALIVE)), the
    bytes one image's peak activations take (`peak_map_elements` x bytes per value x maps alive at once); free is
    `free_bytes` when given, else `free_memory(device)` (CUDA: the free memory now; CPU/MPS: a fixed 4 GiB budget,
    so small images go in one chunk and 256 px ones in chunks of 12). Whatever max_batch, no chunk makes a map of
    2**31 values or more: chunk x map_elements < INDEX_LIMIT.
    """
    _check_max_batch(max_batch)
    if batch < 1:
        return max(batch, 0)
    index_cap = max(1, (INDEX_LIMIT - 1) // map_elements)
    if max_batch is None:
        free = free_memory(device) if free_bytes is None else free_bytes
        max_batch = max(1, int(SAFETY * free) // (map_elements * element_bytes * MAPS_ALIVE))
    return max(1, min(batch, max_batch, index_cap))


def vqgan_chunk_size(vqgan, batch: int, max_batch: int | None) -> int:
    """`chunk_size` for `vqgan` (a `VQAutoEncoder`) at its image size, dtype and device; for a stand-in without
    them (a test's, a notebook's), the whole batch or max_batch."""
    _check_max_batch(max_batch)
    p = next(vqgan.parameters(), None) if isinstance(vqgan, torch.nn.Module) else None
    geometry = [getattr(vqgan, name, None) for name in ("nf", "ch_mult", "img_size")]
    if p is None or None in geometry:
        return max(1, min(batch, max_batch or batch))
    elements = peak_map_elements(*geometry, getattr(vqgan, "n_channels", 3))
    return chunk_size(batch, map_elements=elements, element_bytes=p.element_size(), device=p.device,
                      max_batch=max_batch)


def _chunked(fn, x: torch.Tensor, size: int) -> torch.Tensor:
    """fn over x[0:size], x[size:2 size], ... written into one tensor: the result of fn(x), chunk by chunk."""
    n = x.shape[0]
    if size >= n:
        return fn(x)
    first = fn(x[:size])
    out = first.new_empty((n, *first.shape[1:]))
    out[:size] = first
    del first
    for start in range(size, n, size):
        out[start: start + size] = fn(x[start: start + size])
    return out


def decode_chunked(vqgan, indices: torch.Tensor, *, max_batch: int | None = None) -> torch.Tensor:
    """`vqgan.decode(indices)` (index grids (B, h, w) or (B, h*w) -> images (B, C, H, W)), chunk by chunk
    (`chunk_size`; max_batch caps the images per chunk). The same images, dtype and device as one call."""
    return _chunked(vqgan.decode, indices, vqgan_chunk_size(vqgan, len(indices), max_batch))


def encode_chunked(vqgan, images: torch.Tensor, *, max_batch: int | None = None) -> torch.Tensor:
    """`vqgan.encode(images)` (images (B, C, H, W) -> index grids (B, h, w)), chunk by chunk; the same indices."""
    return _chunked(vqgan.encode, images, vqgan_chunk_size(vqgan, len(images), max_batch))
