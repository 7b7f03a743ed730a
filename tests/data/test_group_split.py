"""data.split_by='group' for image folders: files sharing a data.group_pattern key stay on one side of the
seeded train / validation / test split (issue #22 item 1: "Folder datasets keep a plain seeded split, with an
option for a grouping key")."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ulib.config import Config, DataConfig
from ulib.data.datasets import build_dataset, dataset_fingerprint, path_group_keys, split_sides
from ulib.data.folders import file_list_facts, scan_images
from ulib.overrides import apply_overrides, missing_keys
from ulib.train.resume import RESUME_KEYS, config_conflicts

PATTERN = r"^(?:people/)?(\w+?)_\d+\."  # 'bob_3.png' and 'people/bob_3.png' are both bob


@pytest.fixture
def folder(tmp_path) -> Path:
    """12 people x 4 photos of 8x8 px (a third of them under people/), and 6 loose files the pattern misses."""
    root = tmp_path / "imgs"
    (root / "people").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for p in range(12):
        for k in range(4):
            sub = root / "people" if p % 3 == 0 else root
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(sub / f"person{p:02d}_{k}.png")
    for k in range(6):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / f"loose-{k}.png")
    return root


def _cfg(root, **kw) -> DataConfig:
    kw = dict(dataset="folder", path=str(root), val_fraction=0.2, test_fraction=0.2, split_by="group",
              group_pattern=PATTERN, cache_dir=str(Path(root).parent / "cache")) | kw
    return apply_overrides(Config(), {f"data.{k}": v for k, v in kw.items()}).data


def _sides_by_name(cfg) -> dict[str, set[str]]:
    files = build_dataset(cfg, "all").files
    return {split: {files[i].relative_to(cfg.path).as_posix() for i in build_dataset(cfg, split).indices}
            for split in ("train", "val", "test")}


def _person(name: str) -> str | None:
    stem = name.rsplit("/", 1)[-1]
    return stem.split("_")[0] if stem.startswith("person") else None


def test_path_group_keys():
    keys = path_group_keys(["a/x_1.png", "a/x_2.png", "b/y_1.png", "z.png"], r"^[^/]+/(\w+?)_")
    assert keys[0] == keys[1] != keys[2] and keys[3] == ("file", "z.png")
    whole = path_group_keys(["a/1.png", "a/2.png", "b/1.png"], r"^[^/]+")  # no capture group: the whole match
    assert whole[0] == whole[1] == ("group", "a") != whole[2]
    optional = path_group_keys(["q.png", "r.png"], r"(x)?\.png")  # group 1 took no part: each its own group
    assert optional == [("file", "q.png"), ("file", "r.png")]
    # a loose file whose path equals another file's key is still its own group
    assert len(set(path_group_keys(["ab", "ab_1"], r"^(ab)_"))) == 2


def test_groups_never_straddle_the_split(folder):
    cfg = _cfg(folder)
    sides = _sides_by_name(cfg)
    every = {p.relative_to(folder).as_posix() for p in scan_images(folder)}
    assert set().union(*sides.values()) == every and sum(map(len, sides.values())) == len(every) == 54
    assert all(sides[s] for s in sides), {s: len(v) for s, v in sides.items()}
    owner = {}
    for split, names in sides.items():
        for name in names:
            person = _person(name)
            if person is not None:
                assert owner.setdefault(person, split) == split, f"{person}'s photos on {owner[person]} and {split}"
    assert len(owner) == 12
    # each side is off its target by at most one group's size (4) at each of its two boundaries
    assert abs(len(sides["val"]) - round(54 * 0.2)) <= 4 and abs(len(sides["test"]) - round(54 * 0.2)) <= 4
    # a plain random split of the same folder does put one person on two sides (what the option is for)
    plain = _sides_by_name(_cfg(folder, split_by="random", group_pattern=""))
    assert any(len({s for s, names in plain.items() for n in names if _person(n) == p}) > 1 for p in owner)


def test_group_split_is_seeded(folder):
    first = _sides_by_name(_cfg(folder, split_seed=3))
    assert _sides_by_name(_cfg(folder, split_seed=3)) == first
    assert any(_sides_by_name(_cfg(folder, split_seed=s))["val"] != first["val"] for s in (4, 5, 6))
    ds = build_dataset(_cfg(folder), "all")
    assert {k: v.tolist() for k, v in split_sides(_cfg(folder), ds).items()} == \
        {k: v.tolist() for k, v in split_sides(_cfg(folder), ds).items()}


def test_group_pattern_in_fingerprint_and_checkpoint_keys(folder):
    plain = DataConfig(dataset="folder", path=str(folder), img_size=8)
    root = folder.resolve()
    old = dict(dataset="folder", img_size=8, val_fraction=plain.val_fraction, split_seed=0, path=str(root),
               files=[list(f) for f in file_list_facts(root, scan_images(root))])
    assert dataset_fingerprint(plain) == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    grouped = _cfg(folder, test_fraction=0.0)
    assert len({dataset_fingerprint(c) for c in (plain, grouped, _cfg(folder, test_fraction=0.0,
                                                                       group_pattern=r"^(\w+?)_"))}) == 3
    d = Config().to_dict()
    del d["data"]["group_pattern"]
    assert missing_keys(d, Config) == []  # older runs: the default is what they did
    saved = Config(data=grouped).to_dict()
    other = Config(data=_cfg(folder, test_fraction=0.0, group_pattern=r"^(\w+?)_"))
    assert any("data.group_pattern" in c for c in config_conflicts(saved, other, RESUME_KEYS["VQGAN"]))


@pytest.mark.parametrize("over, match", [
    ({"group_pattern": ""}, "needs data.group_pattern"),
    ({"split_by": "group", "dataset": "openmoji"}, "needs data.dataset='folder'"),
    ({"split_by": "group", "dataset": "lsun", "group_pattern": "x"}, "needs data.dataset='folder'"),
    ({"group_pattern": "^(a"}, "not a regular expression"),
    ({"group_pattern": "x", "split_by": "random"}, "used only with data.split_by='group'"),
    ({"group_pattern": "x", "split_by": "family", "dataset": "openmoji"}, "split_by"),
    ({"split_by": "groups"}, "allowed: 'random', 'family' .*'group'"),
])
def test_config_errors(over, match):
    base = dict(dataset="folder", path="x", split_by="group", group_pattern=PATTERN)
    with pytest.raises(ValueError, match=match):
        apply_overrides(Config(), {f"data.{k}": v for k, v in (base | over).items()})


def test_split_errors(folder):
    with pytest.raises(ValueError, match="no whole group falls in the val split"):
        build_dataset(_cfg(folder, group_pattern=r"\.png$"), "val")  # one group of all 54 files
    with pytest.raises(ValueError, match="'group' with data.group_pattern"):
        build_dataset(DataConfig(dataset="folder", path=str(folder), split_by="group"), "train")  # unvalidated
    with pytest.raises(ValueError, match="'group' with data.group_pattern"):
        build_dataset(DataConfig(split_by="group", group_pattern="x"), "train")
