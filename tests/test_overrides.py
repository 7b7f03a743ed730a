"""Typed values from JSON and the command line (ulib/overrides.py): overrides converted to the fields' types
(optional ones too), unknown keys refused, a config rebuilt from its dict, mappings merged."""
import pytest

from ulib.config import Config
from ulib.overrides import apply_overrides, convert_value, merge
from ulib.profiles import get_profile


def test_overrides_convert_types_and_reject_unknown_keys():
    cfg = get_profile("demo", ["prior.n_layers=2", "data.flip=true", "vqgan.ch_mult=1,2", "prior_train.lr=1e-3"])
    assert cfg.prior.n_layers == 2 and cfg.data.flip is True and cfg.vqgan.ch_mult == (1, 2)
    assert cfg.prior_train.lr == 1e-3
    with pytest.raises(ValueError, match=r"unknown config key 'prior.nlayers'.*allowed"):
        get_profile("demo", ["prior.nlayers=2"])
    with pytest.raises(ValueError, match="prior.n_layers: expected an int, got 'two'"):
        get_profile("demo", ["prior.n_layers=two"])
    with pytest.raises(ValueError, match="expected a bool"):
        get_profile("demo", ["data.flip=maybe"])
    with pytest.raises(ValueError, match="is a section"):
        get_profile("demo", ["prior=3"])
    with pytest.raises(ValueError, match="not of the form"):
        get_profile("demo", ["prior.n_layers"])
    with pytest.raises(ValueError, match="unknown profile 'imagenet'"):
        get_profile("imagenet")


def test_values_convert_to_optional_types():
    """X | None fields (a sampler's Options may have them; `--option KEY=VALUE` converts through here)."""
    assert convert_value("none", int | None, "k") is None and convert_value("NULL", float | None, "k") is None
    assert convert_value(None, str | None, "k") is None
    assert convert_value("3", int | None, "k") == 3 and convert_value("2.5", float | None, "k") == 2.5
    assert convert_value("off", bool | None, "k") is False
    with pytest.raises(ValueError, match="--option cap: expected an int, got 'many'"):
        convert_value("many", int | None, "--option cap")
    with pytest.raises(TypeError, match="unsupported field type"):
        convert_value("1", int | float | None, "k")


def test_config_round_trips_through_a_dict():
    cfg = get_profile("ffhq", ["seed=3"])
    assert Config.from_dict(cfg.to_dict()) == cfg
    d = cfg.to_dict()
    d["prior"]["bogus"] = 1
    with pytest.raises(ValueError, match="prior.bogus"):
        Config.from_dict(d)


def test_a_dict_of_overrides_gives_a_new_validated_config():
    cfg = Config()
    new = apply_overrides(cfg, {"prior.n_layers": "2", "sample.temperature": 0.5})
    assert type(new) is Config and (new.prior.n_layers, new.sample.temperature) == (2, 0.5)
    assert cfg.prior.n_layers == 8  # the given config is left alone
    with pytest.raises(ValueError, match=r"sample.temperature=0.0; allowed"):
        apply_overrides(cfg, {"sample.temperature": 0})


def test_merge_merges_nested_mappings_and_replaces_everything_else():
    base = {"a": {"x": 1, "y": 2}, "b": 3}
    assert merge(base, {"a": {"y": 5}, "b": {"z": 1}, "c": 4}) == {"a": {"x": 1, "y": 5}, "b": {"z": 1}, "c": 4}
    assert base == {"a": {"x": 1, "y": 2}, "b": 3}  # the base is left alone
