"""What the playground's buttons do (ulib/app/playground_actions.py), below the widgets: pictures as PNG bytes.
Sampling, Stop, inpainting and the step-by-step states are driven through the buttons in tests/app/test_widgets.py."""
import io

import numpy as np
import torch
from PIL import Image

from ulib.app.playground_actions import png_bytes


def decoded(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_one_uint8_picture_is_enlarged_without_a_border():
    picture = np.array([[[0, 0, 0], [10, 20, 30], [255, 255, 255]],
                        [[1, 2, 3], [4, 5, 6], [7, 8, 9]]], dtype=np.uint8)  # (H, W, 3) = (2, 3, 3)
    out = decoded(png_bytes(picture, upscale=2))
    assert out.shape == (4, 6, 3)
    assert np.array_equal(out, picture.repeat(2, axis=0).repeat(2, axis=1))


def test_images_in_minus_one_to_one_become_a_grid_with_a_white_border():
    images = torch.stack([torch.full((3, 2, 2), -1.0), torch.full((3, 2, 2), 1.0)])  # a black and a white image
    out = decoded(png_bytes(images, nrow=2))
    # one row of two 2x2 images, 1 px of padding around and between them: (1 + 2 + 1) x (1 + 2 + 1 + 2 + 1)
    assert out.shape == (4, 7, 3)
    assert (out[1:3, 1:3] == 0).all() and (out[1:3, 4:6] == 255).all()
    assert (out[0] == 255).all() and (out[:, 3] == 255).all()  # the border and the gap are white (pad 1.0)
