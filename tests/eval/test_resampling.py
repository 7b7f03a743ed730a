"""ulib.eval.resampling: PRDC of a resample from counts equals the `prdc` package on the resampled features."""
import numpy as np
import pytest
import torch

from ulib.eval import metrics as M
from ulib.eval.resampling import Neighbours, ResampledPRDC


def counts(index, n):
    return np.bincount(index.numpy(), minlength=n)


def sets(seed=0, n_real=60, n_fake=50, dim=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_real, dim, generator=g), 1.2 * torch.randn(n_fake, dim, generator=g) + 0.1


@pytest.mark.parametrize("m", [64, 3], ids=["neighbour-lists", "fallback-to-full-rows"])
def test_resampled_prdc_equals_the_package_on_resampled_features(m):
    """m = 3 nearest neighbours hold k + 1 = 4 copies only where items repeat: most radii take the full-row path."""
    real, fake = sets()
    resampled = ResampledPRDC(Neighbours(real, m), fake, k=3, m=m)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        ri = torch.randint(len(real), (len(real),), generator=g)
        fi = torch.randint(len(fake), (len(fake),), generator=g)
        got = resampled.figures(counts(ri, len(real)), counts(fi, len(fake)))
        assert got == pytest.approx(M.prdc(real[ri], fake[fi], k=3), abs=1e-12)
    every = resampled.figures(np.ones(len(real), int), np.ones(len(fake), int))  # counts 1: the sets themselves
    assert every == pytest.approx(M.prdc(real, fake, k=3), abs=1e-12)


def test_heavy_repeats_and_duplicate_items():
    """Items repeated many times (radius 0 once an item has k + 1 copies) and an original set holding exact
    duplicates: still the package's figures."""
    real, fake = sets(seed=2)
    real[10:15] = real[9]  # six identical reals
    resampled = ResampledPRDC(Neighbours(real), fake, k=5)
    ri = torch.cat([torch.full((20,), 3), torch.arange(40)])  # item 3 twenty times (+ once more in 0..39)
    fi = torch.cat([torch.full((10,), 7), torch.arange(40)])
    got = resampled.figures(counts(ri, len(real)), counts(fi, len(fake)))
    assert got == pytest.approx(M.prdc(real[ri], fake[fi], k=5), abs=1e-12)
    assert Neighbours(real).radii(np.ones(len(real), int), 5)[9] == 0, "six copies of item 9: its 6th distance is 0"
    with pytest.raises(ValueError, match="k \\+ 2"):
        resampled.figures(np.eye(len(real), dtype=int)[0] * 6, np.ones(len(fake), int))
