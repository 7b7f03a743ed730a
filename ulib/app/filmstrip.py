"""Pictures of the reverse process, for people who read rather than run (notebooks 03 and 04).

`reverse_states` runs any step sampler (`sample(x, callback)`, as every sampler of `ulib.sample` has) and keeps
the token grid at a few evenly spaced steps; `believed_images` decodes a partly masked grid as the network sees
it: every masked position filled with its most likely code under p(x_0 | x_t), the still-masked cells dimmed;
`filmstrip` draws both rows, one column per kept step; `reveal_order` records the step that wrote each position.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ulib.app.outputs import token_picture
from ulib.sample.trace import StepTrace


@torch.no_grad()
def reverse_states(sampler, x: torch.Tensor, frames: int = 6) -> list[tuple[int, int, torch.Tensor]]:
    """Run `sampler.sample(x)` from the start state x (B, L) and keep `frames` states, evenly spaced over its
    steps, the start and the end included: [(step, steps in all, x after that step)]."""
    if frames < 2:
        raise ValueError(f"frames={frames}; need at least 2 (the start and the end)")
    states = [x]
    sampler.sample(x, callback=lambda k, res: states.append(res.x))
    last = len(states) - 1
    picks = sorted({round(i * last / (frames - 1)) for i in range(frames)})
    return [(p, last, states[p]) for p in picks]


@torch.no_grad()
def believed_images(vq, net, x_t: torch.Tensor, mask_id: int, dim: float = 0.6) -> torch.Tensor:
    """Images (B, 3, H, W) in [-1, 1] of the token grids x_t (B, L): masked positions replaced by
    argmax p(x_0 | x_t) before decoding, and their cells blended towards grey by `dim` (0: not marked)."""
    masked = x_t == mask_id
    filled = torch.where(masked, net(x_t).argmax(-1), x_t) if masked.any() else x_t
    images = vq.decode(filled).clamp(-1, 1)
    h, w = vq.latent_shape
    cells = masked.view(-1, 1, h, w).float()
    cells = cells.repeat_interleave(images.shape[-2] // h, 2).repeat_interleave(images.shape[-1] // w, 3)
    return images * (1 - dim * cells)


def filmstrip(vq, net, states: list[tuple[int, int, torch.Tensor]], mask_id: int, codebook_size: int,
              image: int = 0, title: str = ""):
    """A figure with one column per state of `reverse_states` (image `image` of the batch): the token grid on
    top (one colour per code, masked cells black), below it the image the network believes in."""
    h, w = vq.latent_shape
    fig, axes = plt.subplots(2, len(states), figsize=(1.9 * len(states), 4.1), squeeze=False)
    for col, (step, steps, x) in enumerate(states):
        grid = x[image]
        masked = int((grid == mask_id).sum())
        picture = believed_images(vq, net, grid[None], mask_id)[0]
        axes[0, col].imshow(token_picture(grid.view(h, w), codebook_size, mask_id))
        axes[0, col].set_title(f"step {step}/{steps}\n{masked} of {grid.numel()} masked", fontsize=8)
        axes[1, col].imshow(((picture.permute(1, 2, 0).cpu() + 1) / 2).numpy(), interpolation="nearest")
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


@torch.no_grad()
def reveal_order(sampler, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `sampler.sample(x)` from x (B, L): (tokens (B, L), the step (B, L) long at which each position was last
    written, -1 where no step wrote it (given tokens)). A sampler that re-draws tokens (re-masking) writes a
    position many times; random order and confidence decoding write each once."""
    trace = StepTrace(x)
    tokens = sampler.sample(x, callback=trace)
    return tokens, trace.last.view(x.shape).to(x.device)
