"""ulib.eval.categories: the CLDR category of an OpenMoji name, and histograms over categories, on hand cases."""
import numpy as np
import pytest
import torch

from ulib.eval import categories


# ---- categories ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, category", [
    ("1F600", "Smileys & Emotion"),  # grinning face
    ("1F469-1F3FD", "People & Body"),  # woman, medium skin tone: found through its base emoji
    ("1F436", "Animals & Nature"),  # dog face
    ("1F34E", "Food & Drink"),  # red apple
    ("1F1E9-1F1EA", "Flags"),  # flag of Germany
    ("2764-FE0F", "Smileys & Emotion"),  # red heart, with its variation selector
    ("E000", "OpenMoji extras"),  # private use: OpenMoji's own
    ("1F1E6", "other"),  # a lone regional indicator letter
])
def test_emoji_categories_hand_cases(name, category):
    assert categories.CATEGORIES[categories.emoji_category(name)] == category


# ---- histograms over categories (Fig. 6) --------------------------------------------------------------
def test_histogram_kl_and_entropy_hand_cases():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5])
    assert categories.histogram_entropy(p) == pytest.approx(1.0)
    assert categories.histogram_entropy([1, 1, 1, 1]) == pytest.approx(2.0)
    assert categories.histogram_kl(p, q) == pytest.approx(1.0, abs=1e-4)  # 2 * 0.5 log2(0.5 / 0.25)
    assert categories.histogram_kl(q, q) == pytest.approx(0.0, abs=1e-9)
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 4.0, 0], [0, 0, 1.0]])
    assert categories.category_histogram(logits)[:3].tolist() == [0.25, 0.5, 0.25]

