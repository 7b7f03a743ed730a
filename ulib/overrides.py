"""Typed values from JSON and the command line: a mapping (a checkpoint's `asdict(config)`, a config.json) or
`section.key=value` strings become the fields of nested dataclasses, each value converted to its annotated type.
An unknown key or a value of the wrong type is an error (nanoGPT's configurator rule), never a silent None.

Nothing here names `ulib.config.Config`: `Config.from_dict` builds through `build_dataclass`, and
`apply_overrides` rebuilds whatever config class it is given, so the config module can import this one.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import fields


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def convert_value(value, hint, key: str):
    """Convert `value` (from JSON or a command-line string) to the annotated type, or raise ValueError naming `key`.
    Types: bool, int, float, str, tuple[X, ...], and X | None (None, or the string 'none' / 'null')."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint):
        (inner, *more) = [a for a in typing.get_args(hint) if a is not type(None)]
        if more:
            raise TypeError(f"{key}: unsupported field type {hint}")
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            return None
        return convert_value(value, inner, key)
    if origin is tuple:
        (inner, _ellipsis) = typing.get_args(hint)
        if isinstance(value, str):
            text = value.strip().strip("()[]")
            value = [v for v in (p.strip() for p in text.split(",")) if v]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list of {inner.__name__}, got {value!r}")
        return tuple(convert_value(v, inner, key) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ValueError(f"{key}: expected a bool (true/false), got {value!r}")
    if hint in (int, float):  # a number, or its text; an int field takes no float, neither takes a bool
        name = "an int" if hint is int else "a float"
        ok = (int,) if hint is int else (int, float)
        if isinstance(value, ok) and not isinstance(value, bool):
            return hint(value)
        if isinstance(value, str):
            try:
                return hint(value)
            except ValueError:
                pass
        raise ValueError(f"{key}: expected {name}, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{key}: expected a string, got {value!r}")
    raise TypeError(f"{key}: unsupported field type {hint}")


def build_dataclass(cls, d: dict, prefix: str = ""):
    """An instance of the dataclass `cls` from the mapping `d` (nested mappings for nested dataclasses), every
    value converted to its field's type; unknown keys are an error, missing ones take their defaults."""
    if not isinstance(d, dict):
        raise ValueError(f"{prefix or 'config'}: expected a mapping, got {d!r}")
    hints = _hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown config key(s) {[prefix + u for u in unknown]}; allowed: {sorted(names)}")
    kwargs = {}
    for name, value in d.items():
        hint = hints[name]
        key = prefix + name
        if dataclasses.is_dataclass(hint):
            kwargs[name] = build_dataclass(hint, value, key + ".")
        else:
            kwargs[name] = convert_value(value, hint, key)
    return cls(**kwargs)


def merge(base: dict, update: dict) -> dict:
    """Deep-merge `update` into a copy of `base` (nested dicts merge, other values replace)."""
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def apply_overrides(cfg, overrides: list[str] | dict):
    """Apply `section.key=value` strings (or a {dotted key: value} dict) to `cfg` (a `ulib.config.Config`); return
    a new, validated config of the same class.

    >>> from ulib.config import Config
    >>> apply_overrides(Config(), ["prior.n_layers=2", "data.flip=true"]).prior.n_layers
    2
    """
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for s in overrides:
            if "=" not in s:
                raise ValueError(f"override {s!r} is not of the form section.key=value")
            k, v = s.split("=", 1)
            items.append((k.strip(), v.strip()))
    d = cfg.to_dict()
    for dotted, value in items:
        parts = dotted.split(".")
        node, cls = d, type(cfg)
        for i, part in enumerate(parts):
            hints = _hints(cls)
            if part not in hints:
                where = ".".join(parts[:i]) or "top level"
                raise ValueError(f"unknown config key {dotted!r}: {part!r} is not in {where}; allowed: {sorted(hints)}")
            hint = hints[part]
            if i == len(parts) - 1:
                if dataclasses.is_dataclass(hint):
                    raise ValueError(f"config key {dotted!r} is a section; set one of its fields, "
                                     f"e.g. {dotted}.{fields(hint)[0].name}=...")
                node[part] = convert_value(value, hint, dotted)
            else:
                if not dataclasses.is_dataclass(hint):
                    raise ValueError(f"unknown config key {dotted!r}: {'.'.join(parts[:i + 1])} is not a section")
                node, cls = node[part], hint
    return type(cfg).from_dict(d).validate()


# Keys of `ulib.config.Config` added after runs already existed, whose defaults reproduce what those runs did: an
# old config.json without them means exactly the default, so missing_keys does not report them.
ADDED_WITH_SAFE_DEFAULTS = frozenset({"data.split_by", "data.test_fraction", "data.group_pattern"})


def missing_keys(d: dict, cls, prefix: str = "") -> list[str]:
    """The dotted keys of the dataclass `cls` (`ulib.config.Config`) that the mapping `d` lacks, in field order (a
    config.json written by an older version, or edited by hand). `Config.from_dict` would silently fill them with
    defaults. Keys in ADDED_WITH_SAFE_DEFAULTS are not reported: their defaults are what older runs did."""
    out = []
    hints = _hints(cls)
    for f in fields(cls):
        if f.name not in d:
            if prefix + f.name not in ADDED_WITH_SAFE_DEFAULTS:
                out.append(prefix + f.name)
        elif dataclasses.is_dataclass(hints[f.name]) and isinstance(d[f.name], dict):
            out += missing_keys(d[f.name], hints[f.name], prefix + f.name + ".")
    return out
