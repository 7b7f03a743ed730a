"""ulib.data.families and data.split_by / data.test_fraction: held-out by design (issue #22 item 1)."""
import hashlib
import json
import math
from collections import Counter

import numpy as np
import pytest

from ulib.config import Config, DataConfig
from ulib.data import datasets, openmoji
from ulib.data.datasets import build_dataset, dataset_fingerprint, openmoji_split, random_split, split_indices
from ulib.data.families import collapse_duplicates, family_key, group_split, split_groups
from ulib.data.openmoji import FONT_SCALE, RENDERER_VERSION, has_raqm, openmoji_version
from ulib.overrides import apply_overrides, missing_keys


def test_family_keys_on_real_examples():
    assert family_key("1F44D") == family_key("1F44D-1F3FD") == "1F44D"  # 👍 👍🏽
    # 🧑‍🚒 👨‍🚒 👩‍🚒: one design in three genders
    assert family_key("1F9D1-200D-1F692") == family_key("1F468-200D-1F692") == family_key("1F469-200D-1F692")
    assert family_key("1F469-1F3FF-200D-1F692") == "1F9D1-200D-1F692"
    # 🏃 🏃‍♀️ 🏃‍♂️ and with a skin tone
    runners = ["1F3C3", "1F3C3-200D-2640-FE0F", "1F3C3-200D-2642-FE0F", "1F3C3-1F3FB-200D-2640-FE0F"]
    assert {family_key(n) for n in runners} == {"1F3C3"}
    assert family_key("1F468-200D-1F9B0") == family_key("1F468-200D-1F9B1")  # 👨‍🦰 👨‍🦱
    assert family_key("1F44D") != family_key("1F44E")  # 👍 👎 are different designs
    assert family_key("1F3FB") == "1F3FB" and family_key("2640-FE0F") == "2640-FE0F"  # nothing but modifiers
    assert family_key("1F468-200D-1F469-200D-1F467") == "1F9D1-200D-1F469-200D-1F467"  # only the lead is read


def test_group_split_keeps_groups_whole_seeded_and_sized():
    rng = np.random.default_rng(0)
    keys = [f"g{k}" for k in rng.integers(0, 300, 2000)]
    sizes = Counter(keys)
    train, val, test = group_split(keys, (0.1, 0.2), seed=5)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(2000))
    sides = [{keys[i] for i in s} for s in (train, val, test)]
    assert all(a.isdisjoint(b) for a, b in [(sides[0], sides[1]), (sides[0], sides[2]), (sides[1], sides[2])])
    biggest = max(sizes.values())
    assert abs(len(val) - 200) <= biggest and abs(len(test) - 400) <= biggest
    again = group_split(list(keys), (0.1, 0.2), seed=5)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    assert not np.array_equal(val, group_split(keys, (0.1, 0.2), seed=6)[1])
    assert len(group_split(keys, (0.1, 0.0), seed=5)[2]) == 0
    for bad in [(-0.1, 0.0), (0.5, 0.5), (math.nan, 0.1)]:
        with pytest.raises(ValueError, match="fractions"):
            group_split(keys, bad, seed=0)


def test_collapse_duplicates_and_split_groups():
    a, b = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 7, np.uint8)
    c = a.copy()
    c[0, 0, 0] = 1  # one value off: not identical
    labels = collapse_duplicates(np.stack([a, b, a, c, b]))
    assert labels.tolist() == [0, 1, 0, 2, 1]
    # families x, y; item 3 of family z draws like item 0 of x: x and z become one group
    groups = split_groups(["x", "x", "y", "z", "z"], [0, 1, 2, 0, 3])
    assert groups.tolist() == [0, 0, 1, 0, 0]


def _straddling(images, train, other) -> int:
    """How many images of `other` have a pixel-identical image in `train`."""
    seen = {hashlib.sha256(images[i].tobytes()).digest() for i in train}
    return sum(hashlib.sha256(images[i].tobytes()).digest() in seen for i in other)


def test_family_split_on_openmoji_16(moji16):
    images, names = moji16
    cfg = DataConfig(img_size=16, split_by="family", val_fraction=0.05, test_fraction=0.05)
    sides = openmoji_split(names, images, cfg)
    assert sorted(np.concatenate(sides).tolist()) == list(range(len(names)))
    fams = [{family_key(names[i]) for i in s} for s in sides]
    assert fams[0].isdisjoint(fams[1]) and fams[0].isdisjoint(fams[2]) and fams[1].isdisjoint(fams[2])
    train, val, test = sides
    assert _straddling(images, train, val) == _straddling(images, train, test) == _straddling(images, val, test) == 0
    for got, frac in [(len(val), 0.05), (len(test), 0.05)]:
        assert abs(got - frac * len(names)) <= max(Counter(family_key(n) for n in names).values())
    r_train, r_val = split_indices(len(names), 0.05, 0)
    counts = Counter(family_key(n) for n in names)
    print(f"\n16 px: {len(names)} emoji, {len(counts)} families, largest {counts.most_common(1)}, "
          f"{collapse_duplicates(images).max() + 1} distinct renders; val images with a pixel-identical training "
          f"image: random {_straddling(images, r_train, r_val)}/{len(r_val)}, family 0/{len(val)}")


@pytest.fixture
def fake_openmoji(monkeypatch, moji16):
    monkeypatch.setattr(openmoji, "load_openmoji", lambda size, cache_dir: moji16)  # openmoji.build reads it
    return moji16


def test_build_dataset_splits(fake_openmoji):
    _, names = fake_openmoji
    base = DataConfig(img_size=16)
    with pytest.raises(ValueError, match="test_fraction"):
        build_dataset(base, "test")
    old_train, old_val = split_indices(len(names), base.val_fraction, base.split_seed)
    assert build_dataset(base, "val").indices == old_val.tolist()  # the default split is today's split
    assert build_dataset(base, "train").indices == old_train.tolist()
    fam = DataConfig(img_size=16, split_by="family", test_fraction=0.1)
    parts = [set(build_dataset(fam, s).indices) for s in ("train", "val", "test")]
    assert sum(map(len, parts)) == len(names) and set().union(*parts) == set(range(len(names)))
    rec = datasets.split_record(fam)
    assert [rec[s]["count"] for s in ("train", "val", "test")] == [len(p) for p in parts]
    assert rec["val"]["names"] == sorted(names[i] for i in parts[1])
    assert datasets.split_record(DataConfig(dataset="folder", path="x")) is None
    with pytest.raises(ValueError, match="split_by"):
        build_dataset(DataConfig(dataset="folder", path="x", split_by="family"), "train")


def test_random_split_with_test_keeps_validation():
    train, val, test = random_split(1000, 0.05, 0.1, seed=3)
    assert np.array_equal(val, split_indices(1000, 0.05, 3)[1]) and len(test) == 100 and len(train) == 850
    assert set(train).isdisjoint(test) and set(val).isdisjoint(test)


def test_fingerprint_unchanged_at_defaults():
    cfg = DataConfig()
    old_facts = dict(dataset=cfg.dataset, img_size=cfg.img_size, val_fraction=cfg.val_fraction,
                     split_seed=cfg.split_seed, openmoji=openmoji_version(), renderer=RENDERER_VERSION,
                     font_scale=FONT_SCALE, sequences=has_raqm())  # today's facts, without the new settings
    old = hashlib.sha256(json.dumps(old_facts, sort_keys=True).encode()).hexdigest()[:16]
    assert dataset_fingerprint(cfg) == old
    assert dataset_fingerprint(DataConfig(split_by="family")) != old
    assert dataset_fingerprint(DataConfig(test_fraction=0.1)) != old


def test_old_config_json_and_validation():
    d = Config().to_dict()
    del d["data"]["split_by"], d["data"]["test_fraction"]
    assert missing_keys(d, Config) == []  # added later with safe defaults: no warning
    assert Config.from_dict(d).data == DataConfig()
    del d["data"]["split_seed"]
    assert missing_keys(d, Config) == ["data.split_seed"]
    for over, match in [({"data.split_by": "families"}, "split_by"),
                        ({"data.split_by": "family", "data.dataset": "folder", "data.path": "x"}, "split_by"),
                        ({"data.test_fraction": -0.1}, "test_fraction"),
                        ({"data.test_fraction": math.nan}, "test_fraction"),
                        ({"data.test_fraction": 0.95}, "test_fraction")]:
        with pytest.raises(ValueError, match=match):
            apply_overrides(Config(), over)
    apply_overrides(Config(), {"data.split_by": "family", "data.test_fraction": 0.05})


def test_commit_stage_records_the_split(fake_openmoji, tmp_path):
    from ulib.io.rundir import RunDir
    from ulib.train.batch_plan import batch_plan
    from ulib.train.resume import commit_stage

    run = RunDir(tmp_path / "run")
    cfg = apply_overrides(Config(), {"data.img_size": 16, "vqgan.disc_layers": 2, "data.split_by": "family",
                                        "data.test_fraction": 0.05})
    commit_stage(run, cfg, "vqgan", batch_plan(8, 0, 1, "vqgan_train"))
    rec = json.loads(run.split_file.read_text())
    assert rec["split_by"] == "family" and {"train", "val", "test"} <= set(rec)
    assert sum(rec[s]["count"] for s in ("train", "val", "test")) == len(fake_openmoji[1])
    assert rec["test"]["sha256"] == hashlib.sha256("\n".join(rec["test"]["names"]).encode()).hexdigest()
