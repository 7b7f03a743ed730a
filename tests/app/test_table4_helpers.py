"""The notebook helpers behind Table 4's held-out checks (notebook 05): likelihoods on test grids
(`splits.split_tokens`), FID against the test images (`measuring.quality_meter_on_test`), and memorisation of
several sample
sets against one pair of splits whose features are extracted once (`measuring.memorisation`)."""
import shutil

import pytest
import torch

from ulib.app import measuring, session, splits
from ulib.data.datasets import build_dataset
from ulib.eval import memorisation as MEM
from ulib.eval import quality as Q
from ulib.io.rundir import RunDir
from ulib.profiles import get_profile
from ulib.train.vqgan import train_vqgan

from helpers import TINY


@pytest.fixture(scope="module")
def sess(tmp_path_factory):
    """A smoke sess (OpenMoji split by family into train / validation / test) with a VQGAN trained 2 steps."""
    run = RunDir(tmp_path_factory.mktemp("table4") / "run")
    train_vqgan(run, get_profile("smoke", [*TINY, "vqgan_train.steps=2"]), show_progress=False)
    return session.setup("smoke", str(run.path), "cpu", 0, [])


def test_split_tokens_encode_the_split_in_split_images_order(sess):
    s = sess
    vq = session.vqgan(s)
    tokens = splits.split_tokens(s, vq, "test", 30, batch_size=7)  # batches of 7: the order survives batching
    images = splits.split_images(s, "test", 30)
    assert tokens.shape == (30, s.cfg.latent_size ** 2) and tokens.dtype == torch.long
    with torch.no_grad():
        expected = vq.encode(images.float().div(127.5).sub(1)).reshape(30, -1)
    assert torch.equal(tokens, expected)
    # n beyond the split: all of it, each image once (the dataset's own images, in another order)
    ds = build_dataset(s.cfg.data, "val", train_transforms=False)
    val = splits.split_tokens(s, vq, "val", len(ds) + 100)
    with torch.no_grad():
        direct = vq.encode(torch.stack([ds[i] for i in range(len(ds))])).reshape(len(ds), -1)
    assert sorted(map(tuple, val.tolist())) == sorted(map(tuple, direct.tolist()))


def test_quality_meter_on_test_scores_against_every_test_image(sess):
    s = sess
    meter = measuring.quality_meter(s, 200)
    test = measuring.quality_meter_on_test(s, meter)
    held = splits.split_images(s, "test")
    assert test.n_reference == len(held) and test.space is meter.space and test.holdout is None
    assert test.reference_name == splits.split_name(s, "test")
    assert test.reference_name.startswith(f"{len(held)} test images")
    torch.testing.assert_close(test.ref_features, Q.extract(meter.space, held)[0])
    d = test.difference(held[:20], held[20:40], draws=5, seed=0)
    assert d["n_a"] == 20 and "fid_p" in d


def test_memorisation_extracts_the_splits_once_and_scores_as_the_report_does(sess, monkeypatch):
    s = sess
    meter = measuring.quality_meter(s, 200)
    train, held = splits.split_images(s, "train"), splits.split_images(s, "test")
    samples = [train[:30], held[:30]]  # copies of training images, then unseen images
    expected = [MEM.memorisation_report(meter.space, x, train, held, seed=0).row for x in samples]
    calls = []
    real = measuring.extract
    monkeypatch.setattr(measuring, "extract", lambda space, x, *a: calls.append(len(x)) or real(space, x, *a))
    rows = [measuring.memorisation(s, meter, x, seed=0) for x in samples]
    assert calls == [len(train), len(held)], "the splits' features: extracted once for both sample sets"
    assert [r[0].row for r in rows] == expected and all(torch.equal(r[1], train) for r in rows)
    assert rows[0][0].row["pix_near_copy_share"] == 1.0 and rows[1][0].row["pix_near_copy_share"] < 1.0


def test_quality_meter_on_test_falls_back_to_validation_without_a_test_split(tmp_path, sess):
    """Without a test split the held-out images are the validation split's, named as such."""
    run = RunDir(tmp_path / "r")
    shutil.copytree(sess.run.path, run.path, ignore=shutil.ignore_patterns("results"))
    s = session.setup("smoke", str(run.path), "cpu", 0, ["data.test_fraction=0"])
    assert not splits.has_test_split(s)
    test = measuring.quality_meter_on_test(s, measuring.quality_meter(s, 200))
    assert test.reference_name.startswith(f"{len(splits.split_images(s, 'val'))} validation images")


def test_outside_reference_is_training_images_the_reference_does_not_hold(sess):
    """Fig. 6's bias floor: n training images of the reference's mix, none of them in the reference."""
    s = sess
    meter = measuring.quality_meter(s, 200)
    train = splits.split_images(s, "train")
    outside = measuring.outside_reference(s, meter, 25)
    assert outside.shape[0] == 25 and outside.dtype == torch.uint8
    ds = build_dataset(s.cfg.data, "train", train_transforms=False)
    assert len(meter.reference_index) == 200 and not set(meter.reference_index) & set(meter.outside_reference_index)
    assert sorted(meter.reference_index + meter.outside_reference_index) == list(range(len(ds)))
    expected = torch.stack([ds[i] for i in meter.outside_reference_index[:25]])
    torch.testing.assert_close(outside.float().div(127.5).sub(1), expected, atol=1 / 127.5, rtol=0)
    torch.testing.assert_close(Q.extract(meter.space, torch.stack([ds[i] for i in meter.reference_index]))[0],
                               meter.ref_features, msg="the reference is the complement of those images")
    assert torch.equal(outside, measuring.outside_reference(s, meter, 25)), "a fixed, seeded order"
    with pytest.raises(ValueError, match="outside the reference"):
        measuring.outside_reference(s, meter, len(train))
