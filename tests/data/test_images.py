"""ulib.data.images: pixels to tensors and back."""
import numpy as np
import pytest
import torch

from ulib.data.images import ArrayImageDataset, tensor_to_uint8


def test_tensor_to_uint8_round_trip():
    u = np.random.default_rng(0).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    x = torch.stack([ArrayImageDataset(u)[i] for i in range(4)])  # (4, 3, 5, 6) in [-1, 1]
    back = tensor_to_uint8(x)
    assert back.dtype == np.uint8 and back.shape == (4, 5, 6, 3)
    np.testing.assert_array_equal(back, u)
    np.testing.assert_array_equal(tensor_to_uint8(x[0]), u[0])
    assert tensor_to_uint8(torch.full((1, 3, 2, 2), 5.0)).min() == 255  # clamped
    assert tensor_to_uint8(torch.full((1, 3, 2, 2), -5.0)).max() == 0
    with pytest.raises(ValueError, match="shape"):
        tensor_to_uint8(torch.zeros(2, 4, 3, 3))
