"""ulib.eval.reconstruction: hand cases of PSNR, SSIM and codebook usage (LPIPS: with the nearest neighbours, in
test_metrics.py)."""
import numpy as np
import pytest
import torch

from ulib.eval import reconstruction as R


def test_psnr_hand_case():
    x = torch.zeros(2, 3, 8, 8)  # 0.5 on the [0, 1] scale
    assert torch.allclose(R.psnr(x + 0.2, x), torch.tensor(20.0))  # diff 0.1 -> mse 0.01 -> 20 dB
    assert torch.equal(R.psnr(x, x), torch.tensor([100.0, 100.0]))


def test_ssim_hand_cases():
    c1, c2 = 0.01**2, 0.03**2
    x = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.allclose(R.ssim(x, x), torch.ones(2))
    # constant images a, b (on [0, 1]): no variance, SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b = 0.25, 0.75
    ca, cb = torch.full((1, 3, 16, 16), 2 * a - 1), torch.full((1, 3, 16, 16), 2 * b - 1)
    assert R.ssim(ca, cb).item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-6)
    # 11x11 images: one window position; compare with the weighted statistics written out in numpy
    y = torch.rand(1, 1, 11, 11, generator=torch.Generator().manual_seed(1))
    z = (y + 0.3 * torch.rand(1, 1, 11, 11, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    u, v = y[0, 0].double().numpy(), z[0, 0].double().numpy()
    mu, mv = (w * u).sum(), (w * v).sum()
    su, sv, suv = (w * (u - mu) ** 2).sum(), (w * (v - mv) ** 2).sum(), (w * (u - mu) * (v - mv)).sum()
    want = (2 * mu * mv + c1) * (2 * suv + c2) / ((mu**2 + mv**2 + c1) * (su + sv + c2))
    assert R.ssim(y * 2 - 1, z * 2 - 1).item() == pytest.approx(want, rel=1e-5)
    assert R.ssim(y * 2 - 1, z * 2 - 1).item() == pytest.approx(R.ssim(z * 2 - 1, y * 2 - 1).item())  # symmetric


def test_codebook_usage():
    u = R.codebook_usage(torch.tensor([2, 2, 0, 0]))
    assert u == {"codes_used": 2, "codebook_size": 4, "codebook_usage": 0.5, "perplexity": pytest.approx(2.0)}
