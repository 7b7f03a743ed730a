"""splits.split_name (ulib/app/splits.py): every table and sentence names its image set exactly (count, split, how
it was split)."""
import pytest

from ulib.app import session, splits
from ulib.data.datasets import build_dataset

from helpers import CACHE


def _session(tmp_path, *extra):
    return session.setup("smoke", str(tmp_path / "run"), "cpu", 0, [f"data.cache_dir={CACHE}", *extra])


def test_family_split_names_count_and_the_other_splits(tmp_path):
    s = _session(tmp_path)  # smoke: split by family, with a test split
    n_val = len(build_dataset(s.cfg.data, "val", train_transforms=False))
    assert splits.split_name(s, "val") == (f"{n_val} validation images (whole design families, none of them in the "
                                        "training or test split)")
    assert splits.split_name(s, "val", n_val + 5) == splits.split_name(s, "val")  # n beyond the split: all of it
    assert splits.split_name(s, "val", 3).startswith(f"the first 3 of the {n_val} validation images (")
    assert "none of them in the training or validation split" in splits.split_name(s, "test")
    assert "none of them in the validation or test split" in splits.split_name(s, "train")


def test_random_split_and_no_test_split_say_so(tmp_path):
    s = _session(tmp_path, "data.split_by=random", "data.test_fraction=0")
    assert splits.split_name(s, "val").endswith("validation images (a random split by image: variants of one emoji "
                                             "can sit on both sides)")
    s = _session(tmp_path / "b", "data.test_fraction=0")
    assert splits.split_name(s, "val").endswith("(whole design families, none of them in the training split)")
    with pytest.raises(ValueError, match="allowed: train, val, test"):
        splits.split_name(s, "holdout")
