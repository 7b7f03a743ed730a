"""ulib.eval.inception: the fixed-seed random stand-in for torch-fidelity's InceptionV3 (loading the standard file:
test_metrics.py and test_weights_safety.py)."""
import torch

from ulib.eval.inception import random_inception_state_dict


def test_random_inception_is_fixed_and_leaves_global_rng_alone():
    before = torch.get_rng_state()
    a, b = random_inception_state_dict(0), random_inception_state_dict(0)
    assert torch.equal(torch.get_rng_state(), before)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = random_inception_state_dict(1)
    assert not torch.equal(a["Conv2d_1a_3x3.conv.weight"], c["Conv2d_1a_3x3.conv.weight"])
    assert a["fc.weight"].shape == (1008, 2048)
