"""The VQGAN's building blocks (paper section 3.1), layer for layer the official ones: GroupNorm and swish,
ResBlock, AttnBlock, Downsample, Upsample.

`ulib.vq.model` stacks them into the Encoder and the Generator. Attribute names (`norm1`, `conv1`, `q`, `proj_out`,
...) follow the official code (samb-t/unleashing-transformers, from taming-transformers): they are the last parts of
the state-dict keys a released checkpoint holds. Shapes: feature maps (B, C, H, W).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

GROUPS = 32  # GroupNorm groups everywhere, as in the official code (the default of `norm_groups`)


def normalize(channels: int, groups: int = GROUPS) -> nn.GroupNorm:
    """GroupNorm(groups, eps 1e-6). With one channel per group it is InstanceNorm, which removes each
    channel's per-image mean: a narrow model (nf=32 at 32 groups) then cannot carry an image's colours to
    the output (measured: sepia reconstructions), so small profiles use fewer groups."""
    return nn.GroupNorm(num_groups=groups, num_channels=channels, eps=1e-6, affine=True)


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class ResBlock(nn.Module):
    """norm → swish → conv3x3 → norm → swish → conv3x3, plus the skip path.

    `conv_out` (1x1) always exists, because the official checkpoints hold its weights for every block, but it
    is applied to the skip path only when in_channels != out_channels; otherwise the skip is the identity.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, groups: int = GROUPS):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = normalize(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = normalize(out_channels, groups)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.conv_out = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H, W)
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        skip = self.conv_out(x) if self.in_channels != self.out_channels else x
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the h*w positions of a feature map, with a residual connection.

    out = x + proj_out(softmax(q k^T * C**-0.5) v), q/k/v are 1x1 convs of GroupNorm(x).
    """

    def __init__(self, channels: int, groups: int = GROUPS):
        super().__init__()
        self.channels = channels
        self.norm = normalize(channels, groups)
        self.q = nn.Conv2d(channels, channels, kernel_size=1)
        self.k = nn.Conv2d(channels, channels, kernel_size=1)
        self.v = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        B, C, H, W = x.shape
        h = self.norm(x)
        # (B, 1, HW, C): one head, the positions are the sequence
        q, k, v = (conv(h).reshape(B, 1, C, H * W).transpose(2, 3) for conv in (self.q, self.k, self.v))
        # scaled_dot_product_attention's default scale is 1/sqrt(last dim) = C**-0.5, the official scale
        a = F.scaled_dot_product_attention(q, k, v)  # (B, 1, HW, C)
        a = a.transpose(2, 3).reshape(B, C, H, W)
        return x + self.proj_out(a)


class Downsample(nn.Module):
    """Halve the resolution: zero-pad right and bottom by one, then a 3x3 conv with stride 2 and no padding."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H/2, W/2)
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour x2, then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, 2H, 2W)
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
