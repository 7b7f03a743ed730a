"""The VQGAN's building blocks (ulib.vq.blocks): attention by its formula, the ResBlock's skip path, resizing."""
import torch

from ulib.vq.blocks import AttnBlock, Downsample, ResBlock, Upsample


def test_attention_equals_the_explicit_formula():
    torch.manual_seed(0)
    blk = AttnBlock(32)
    for p in blk.parameters():  # non-trivial weights everywhere
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(2, 32, 4, 5)
    B, C, H, W = x.shape
    h = blk.norm(x)
    q = blk.q(h).reshape(B, C, H * W).transpose(1, 2)  # (B, HW, C)
    k = blk.k(h).reshape(B, C, H * W)  # (B, C, HW)
    v = blk.v(h).reshape(B, C, H * W).transpose(1, 2)  # (B, HW, C)
    attn = torch.softmax(q @ k * C**-0.5, dim=-1)  # (B, HW, HW)
    expected = x + blk.proj_out((attn @ v).transpose(1, 2).reshape(B, C, H, W))
    torch.testing.assert_close(blk(x), expected, atol=1e-5, rtol=1e-5)


def test_resblock_conv_out_only_when_channels_change():
    torch.manual_seed(0)
    same = ResBlock(32, 32)
    x = torch.randn(1, 32, 4, 4)
    before = same(x)
    with torch.no_grad():
        same.conv_out.weight.mul_(10.0).add_(1.0)
    torch.testing.assert_close(same(x), before)
    same(x).sum().backward()
    assert same.conv_out.weight.grad is None and same.conv1.weight.grad is not None

    grow = ResBlock(32, 64)
    grow(x).sum().backward()
    assert grow.conv_out.weight.shape == (64, 32, 1, 1) and grow.conv_out.weight.grad is not None


def test_downsample_halves_and_upsample_doubles_the_side():
    assert Downsample(32)(torch.zeros(1, 32, 16, 16)).shape == (1, 32, 8, 8)
    assert Upsample(32)(torch.zeros(1, 32, 8, 8)).shape == (1, 32, 16, 16)
