"""The shared flag checks of the CLI (`ulib.app.flags`): `--option KEY=VALUE` read against a method's Options."""
from dataclasses import dataclass

import pytest

from ulib.app.flags import method_options
from ulib.sample import registry

from helpers import RasterSampler


@dataclass(frozen=True)
class EveryTypeOptions:
    per_step: int = 2  # int
    scale: float = 1.0  # float
    label: str = "a"  # str
    loud: bool = False  # bool
    cap: int | None = None  # X | None

    def __post_init__(self):
        if self.per_step < 1:
            raise ValueError(f"per_step={self.per_step}; must be >= 1")


class EveryTypeSampler(RasterSampler):
    Options = EveryTypeOptions


@pytest.fixture
def every_type():
    method = registry.register(registry.Method("every_type_test", EveryTypeSampler, "a test's options"))
    yield method.name
    registry.unregister(method.name)


def test_each_value_takes_its_fields_type(every_type):
    got = method_options(every_type, ["per_step=3", "scale=0.5", "label=b=c", "loud=yes", "cap=7"])
    assert got == {"per_step": 3, "scale": 0.5, "label": "b=c", "loud": True, "cap": 7}
    assert method_options(every_type, ["cap=none", "scale=2"]) == {"cap": None, "scale": 2.0}
    assert method_options(every_type, ["per_step=2", "per_step=5"]) == {"per_step": 5}  # the last one wins
    assert method_options(every_type, []) == {} and method_options("remask", []) == {}
    assert method_options("eb", [" gamma = 2.5 "]) == {"gamma": 2.5}


@pytest.mark.parametrize("pairs, message", [
    (["size=3"], r"--option size=3: --method every_type_test has no setting 'size'; allowed: per_step \(int, default "
                 r"2\), scale \(float, default 1.0\), label \(str, default 'a'\), loud \(bool, default False\), "
                 r"cap \(int \| None, default None\)"),
    (["per_step=two"], r"--option per_step: expected an int, got 'two', for --method every_type_test; allowed: "),
    (["scale=big"], r"--option scale: expected a float, got 'big'"),
    (["loud=perhaps"], r"--option loud: expected a bool \(true/false\), got 'perhaps'"),
    (["cap=lots"], r"--option cap: expected an int, got 'lots'"),
    (["per_step=0"], r"--option per_step=0; must be >= 1 \(a setting of --method every_type_test\)"),
    (["=3"], r"--option '=3'; expected KEY=VALUE, a setting of --method every_type_test: per_step"),
    (["per_step"], r"--option 'per_step'; expected KEY=VALUE"),
])
def test_a_bad_option_names_the_flag_the_key_the_method_and_what_is_allowed(every_type, pairs, message):
    with pytest.raises(ValueError, match=message):
        method_options(every_type, pairs)
