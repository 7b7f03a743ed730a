"""Inpainting and editing with the absorbing prior (paper section 4.5, Fig. 7).

An image is encoded to tokens, the tokens under the user's mask are replaced by the mask token, and the
reverse process fills them in while the other tokens stay fixed (the network sees them at every step).

1. Pixel mask -> latent mask. Token (i, j) is decoded from the f x f pixel block [i*f, (i+1)*f) x
   [j*f, (j+1)*f), f = 2**(len(ch_mult)-1) the downsampling factor; it is regenerated when its block touches
   the mask (a max-pool with kernel and stride f). `dilate` grows the latent mask by that many cells in
   every direction (a (2d+1) x (2d+1) max-pool), to give the decoder's wider receptive field some room.
2. Sample with the tokens outside the latent mask given (`sample_tokens(x_start=...)`, method 'random'). With m of
   the L tokens masked, x is a typical x_t at t/T = m/L (the forward process masks each token with probability
   t/T), so the reverse process starts at t_0 = round(T * m / L) (half up, `ulib.sample.absorbing.start_time`),
   at least 1. `steps` means what it means everywhere: S evenly spaced steps over T (default T); those at or
   above t_0 reveal nothing and cost nothing, so an image takes about S * t_0 / T of them. Images with different
   m start at different times in one batch. `precision` is the prior's forward pass, as in `sample_images`:
   'fp32', 'bf16' (a bf16 copy of the prior) or 'auto' (bf16 on GPUs that have it natively,
   `ulib.device.sampling_dtype`); the VQGAN encodes and decodes in fp32.
3. Decode the tokens; `paste_back=True` puts the original pixels back outside the pixel mask.

An empty mask is an error (ValueError naming the images): there is nothing to regenerate, and silently
returning the VQGAN reconstruction (which is not the input) would hide the mistake.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ulib.config import downsampling_factor
from ulib.device import sampling_dtype
from ulib.sample.absorbing import start_time
from ulib.sample.api import sample_tokens


@dataclass
class InpaintResult:
    images: torch.Tensor  # (B, C, H, W) decoded result (original pixels outside the mask if paste_back)
    tokens: torch.Tensor  # (B, h, w) tokens after sampling; equal to `original_tokens` outside latent_mask
    latent_mask: torch.Tensor  # (B, h, w) bool, the regenerated token positions
    original_tokens: torch.Tensor  # (B, h, w) the encoded input
    start_times: list[int]  # t_0 of each image


def latent_mask(pixel_mask: torch.Tensor, factor: int, dilate: int = 0) -> torch.Tensor:
    """Pixel mask (B, 1, H, W) or (H, W), nonzero = regenerate -> latent mask (B, H/f, W/f) bool (B = 1 for (H, W)).

    A cell is True when any pixel of its f x f block is; then `dilate` cells are added in every direction.
    """
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor={factor!r}; allowed: an integer >= 1 (the VQGAN's downsampling factor)")
    if not isinstance(dilate, int) or dilate < 0:
        raise ValueError(f"dilate={dilate!r}; allowed: an integer >= 0 (latent cells)")
    m = _as_b1hw(pixel_mask)
    H, W = m.shape[-2:]
    if H % factor or W % factor:
        raise ValueError(f"pixel mask of size {H}x{W} is not divisible by the downsampling factor {factor}")
    cells = F.max_pool2d((m != 0).float(), factor, stride=factor)  # (B, 1, h, w): block touches the mask
    if dilate:
        cells = F.max_pool2d(cells, 2 * dilate + 1, stride=1, padding=dilate)  # grow by `dilate` cells
    return cells[:, 0] > 0


@torch.no_grad()
def inpaint(vqgan, model, images: torch.Tensor, pixel_mask: torch.Tensor, *, num_timesteps: int, mask_id: int,
            steps: int | None = None, temperature: float = 1.0, dilate: int = 0, paste_back: bool = False,
            generator: torch.Generator | None = None, precision: str = "auto") -> InpaintResult:
    """Regenerate the masked part of images (B, C, H, W) in [-1, 1]; pixel_mask (B, 1, H, W) or (H, W).

    vqgan: `ulib.vq.model.VQAutoEncoder` (encode/decode); model: the absorbing prior, tokens (B, L) -> logits.
    """
    if images.dim() != 4:
        raise ValueError(f"images of shape {tuple(images.shape)}; expected (B, C, H, W)")
    if mask_id < vqgan.codebook_size:
        raise ValueError(f"mask_id={mask_id} is a real code of the codebook (size {vqgan.codebook_size}); "
                         f"the absorbing prior's mask id is codebook_size = {vqgan.codebook_size}")
    sampling_dtype(images.device, precision)  # a bad precision stops here, before any encoding
    B, _, H, W = images.shape
    pm = _as_b1hw(pixel_mask).to(images.device)
    if pm.shape[-2:] != (H, W) or pm.shape[0] not in (1, B):
        raise ValueError(f"pixel mask of shape {tuple(pixel_mask.shape)} for images of shape {tuple(images.shape)}; "
                         f"allowed: (1 or {B}, 1, {H}, {W}) or ({H}, {W})")
    pm = (pm != 0).expand(B, 1, H, W)
    factor = downsampling_factor(vqgan.ch_mult)
    lmask = latent_mask(pm, factor, dilate)  # (B, h, w)
    counts = lmask.flatten(1).sum(1)
    empty = [i for i in range(B) if counts[i] == 0]
    if empty:
        raise ValueError(f"the mask of image(s) {empty} is empty: nothing to regenerate")

    original = vqgan.encode(images)  # (B, h, w)
    L = original[0].numel()
    x = torch.where(lmask, torch.full_like(original, mask_id), original).flatten(1)  # (B, L): mask id to fill
    # the prior in `precision` as `sample_tokens` runs it (bf16: a bf16 copy, `ulib.sample.precision`)
    tokens = sample_tokens(model, x_start=x, num_timesteps=num_timesteps, mask_id=mask_id, steps=steps,
                           temperature=temperature, generator=generator, precision=precision).view_as(original)
    starts = [start_time(int(c), L, num_timesteps) for c in counts]  # t_0 of each image, the sampler's rule
    new = vqgan.decode(tokens)
    if paste_back:
        new = torch.where(pm, new, images)  # original pixels wherever the pixel mask is off
    return InpaintResult(new, tokens, lmask, original, starts)


def _as_b1hw(mask: torch.Tensor) -> torch.Tensor:
    if mask.dim() == 2:
        return mask[None, None]
    if mask.dim() == 4 and mask.shape[1] == 1:
        return mask
    raise ValueError(f"pixel mask of shape {tuple(mask.shape)}; allowed: (B, 1, H, W) or (H, W)")
