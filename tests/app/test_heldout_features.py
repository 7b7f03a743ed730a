"""A feature space trained without a run's test families (notebook 12): the names option of the recipe, and the
space trained once into the run directory."""
import pytest

from ulib.app import measuring, session, splits
from ulib.data.openmoji import load_openmoji
from ulib.eval import features as EF

from helpers import CACHE, TINY

TINY_RECIPE = EF.FeatureRecipe(epochs=1, limit=24, batch_size=16)


def test_training_items_take_the_named_emoji_in_load_order_then_the_limit():
    names = ["a", "b", "c", "d", "e"]
    assert EF.training_items(names) == [0, 1, 2, 3, 4]
    assert EF.training_items(names, ["e", "b", "d"]) == [1, 3, 4]
    assert EF.training_items(names, ["e", "b", "d"], limit=2) == [1, 3]
    with pytest.raises(ValueError, match="not OpenMoji emoji"):
        EF.training_items(names, ["b", "zz"])
    with pytest.raises(ValueError, match="empty"):
        EF.training_items(names, [])
    assert EF.names_digest(["b", "a"]) == EF.names_digest(["a", "b"]) != EF.names_digest(["a"])


def test_train_feature_net_on_named_emoji_records_which(tmp_path):
    _, all_names = load_openmoji(32, CACHE)
    chosen = all_names[100:400:3]
    net, report = EF.train_feature_net(TINY_RECIPE, CACHE, show_progress=False, names=chosen)
    assert report["n_emoji"] == 24 and report["names_sha256"] == EF.names_digest(chosen[:24])
    assert report["recipe"] == TINY_RECIPE.to_dict()


@pytest.fixture
def sess(tmp_path):
    return session.setup("smoke", str(tmp_path / "run"), "cpu", 0, TINY)


def test_openmoji_space_without_the_test_split_is_trained_once_and_never_sees_it(sess):
    s = sess
    test = set(splits.split_names(s, "test"))
    assert test and not test & set(splits.split_names(s, "train")), "a family split: test names are not trained on"
    space, report = measuring.openmoji_space(s, TINY_RECIPE)
    _, all_names = load_openmoji(TINY_RECIPE.size, CACHE)
    kept = [n for n in all_names if n not in test]
    assert report["names_sha256"] == EF.names_digest(kept[:TINY_RECIPE.limit]) and report["train_seconds"] > 0
    path = s.run.path / "features" / "without_test" / EF.WEIGHTS_FILE
    assert space.features == "openmoji" and space.info["weights"] == str(path)
    mtime = path.stat().st_mtime_ns
    again, _ = measuring.openmoji_space(s, TINY_RECIPE)  # load if present
    assert path.stat().st_mtime_ns == mtime and again.info["sha256"] == space.info["sha256"]
    measuring.openmoji_space(s, EF.FeatureRecipe(epochs=1, limit=20, batch_size=16))  # another recipe: trained again
    assert path.stat().st_mtime_ns != mtime
    every, r_all = measuring.openmoji_space(s, TINY_RECIPE, without=())
    assert r_all["names_sha256"] == EF.names_digest(all_names[:TINY_RECIPE.limit])
    assert set(all_names[:TINY_RECIPE.limit]) & test, "the first emoji hold test ones, so the two spaces differ"
    assert every.info["weights"] == str(s.run.path / "features" / "all" / EF.WEIGHTS_FILE)
