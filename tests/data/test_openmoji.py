"""ulib.data.openmoji: rendering every emoji offline, the sequences flag, the cache (hit, new key, corrupt file)."""
import warnings

import numpy as np
import pytest

from ulib.data import openmoji
from ulib.data.openmoji import load_openmoji, render_openmoji


def test_render_shape_dtype_count(moji16):
    images, names = moji16
    assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[1:] == (16, 16, 3)
    assert len(images) == len(names) >= 1500  # ~4,500 with raqm, ~1,900 single codepoints without
    assert names == sorted(names) and len(set(names)) == len(names)
    assert "1F600" in names  # grinning face
    if openmoji.has_raqm():
        assert len(images) >= 4000 and any("-" in n for n in names)


def test_render_white_corners_and_no_blanks(moji16):
    images, _ = moji16
    corners = np.stack([images[:, 0, 0], images[:, 0, -1], images[:, -1, 0], images[:, -1, -1]], 1)  # (N, 4, 3)
    assert (corners == 255).all(axis=(1, 2)).mean() > 0.9  # white background, emoji rarely reach the corners
    assert (images.reshape(len(images), -1) < 250).any(axis=1).all()  # every image has ink


def test_render_deterministic_and_sequences_flag(moji16):
    images, names = moji16
    singles, single_names = render_openmoji(16, sequences=False)
    assert all("-" not in n for n in single_names)
    keep = [i for i, n in enumerate(names) if "-" not in n]
    assert single_names == [names[i] for i in keep]
    np.testing.assert_array_equal(singles, images[keep])  # same pixels on a second render


@pytest.mark.parametrize("size", [7, 257, 0, -32, 32.0, True, "32"])
def test_render_size_bounds(size):
    with pytest.raises(ValueError, match=r"size=.*8 to 256"):
        render_openmoji(size)


def test_sequences_true_without_raqm(monkeypatch):
    monkeypatch.setattr(openmoji, "has_raqm", lambda: False)
    with pytest.raises(RuntimeError, match="raqm"):
        render_openmoji(16, sequences=True)


def _fake_renderer(calls):
    def render(size, *, sequences=None):
        calls.append(size)
        rng = np.random.default_rng(size)
        return rng.integers(0, 256, (5, size, size, 3), dtype=np.uint8), [f"{i:04X}" for i in range(5)]
    return render


def test_cache_hit_and_new_key(tmp_path, monkeypatch, moji16):
    images, names = load_openmoji(16, tmp_path)  # real render, written to the cache
    path = openmoji.openmoji_cache_path(16, tmp_path, sequences=openmoji.has_raqm())
    assert path.exists() and path.name.startswith(f"openmoji-v{openmoji.openmoji_version()}-s16-seq")
    assert path.name.endswith(f"-{openmoji.RENDERER_VERSION}.npz")
    np.testing.assert_array_equal(images, moji16[0])
    calls = []
    monkeypatch.setattr(openmoji, "render_openmoji", _fake_renderer(calls))
    again, again_names = load_openmoji(16, tmp_path)  # hit: the (fake) renderer is not called
    assert calls == [] and again_names == names
    np.testing.assert_array_equal(again, images)
    small, _ = load_openmoji(8, tmp_path)  # another size -> another file
    assert calls == [8] and small.shape == (5, 8, 8, 3)
    assert len(list(tmp_path.glob("*.npz"))) == 2 and not list(tmp_path.glob("*.tmp"))


def test_corrupt_cache_is_rerendered(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(openmoji, "render_openmoji", _fake_renderer(calls))
    path = openmoji.openmoji_cache_path(16, tmp_path, sequences=openmoji.has_raqm())
    path.write_bytes(b"PK\x03\x04 this is not an npz")
    with pytest.warns(UserWarning, match="unreadable"):
        images, _ = load_openmoji(16, tmp_path)
    assert calls == [16] and images.shape == (5, 16, 16, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(load_openmoji(16, tmp_path)[0], images)  # repaired file, no warning
    assert calls == [16]
