"""Validators return what they checked and pin the wording of their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from vrbalance.config.check import Fields, check_number, check_option, load_toml
from vrbalance.errors import ConfigError


def test_check_number_returns_value_in_range() -> None:
    assert check_number(2.5, "rate", min_value=0, max_value=3) == 2.5
    assert check_number(3, "n", integer=True) == 3


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (True, {}, r"f.toml rate: expected a number, got True \(bool\)"),
        ("3", {}, r"f.toml rate: expected a number, got '3' \(str\)"),
        (float("nan"), {}, r"f.toml rate: expected a finite number, got nan"),
        (5.0, {"max_value": 4}, r"f.toml rate: expected a value in \[-inf, 4\], got 5.0"),
        (0.0, {"min_value": 0, "min_inclusive": False}, r"expected a value in \(0, inf\], got 0.0"),
        (1.5, {"integer": True}, r"f.toml rate: expected an integer, got 1.5"),
    ],
)
def test_check_number_errors(value: object, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_number(value, "rate", where="f.toml", **kwargs)


def test_check_option_lists_choices() -> None:
    assert check_option("a", "mode", ["a", "b"]) == "a"
    with pytest.raises(ConfigError, match=r"x mode: expected one of 'a', 'b', got 'c'"):
        check_option("c", "mode", ["a", "b"], where="x")


def test_fields_reject_unknown_and_missing_keys() -> None:
    fields = Fields({"speed": 1.0, "sped": 2.0}, "park.toml [levels.3]")
    assert fields.number("speed", max_value=2) == 1.0
    assert fields.number("width", default=3.0) == 3.0
    with pytest.raises(ConfigError, match=r"park.toml \[levels.3\]: unknown field\(s\) sped"):
        fields.finish()
    with pytest.raises(ConfigError, match=r"park.toml \[levels.3\] fog: required field is missing"):
        Fields({}, "park.toml [levels.3]").number("fog")


def test_fields_nested_tables_and_arrays_name_their_place() -> None:
    fields = Fields({"plate": {"xs": [1.0, "a"]}, "levels": [{"a": 1}, {"a": "x"}]}, "p.toml")
    with pytest.raises(ConfigError, match=r"p.toml \[plate\] xs\[1\]: expected a number"):
        fields.table("plate").numbers("xs")
    levels = fields.tables("levels")
    assert levels[0].integer("a") == 1
    with pytest.raises(ConfigError, match=r"p.toml \[levels.2\] a: expected an integer, got 'x'"):
        levels[1].integer("a")
    with pytest.raises(ConfigError, match=r"expected 3 numbers, got 2"):
        Fields({"v": [1, 2]}, "p.toml").numbers("v", length=3)
    with pytest.raises(ConfigError, match=r"p.toml b: expected true or false, got 1"):
        Fields({"b": 1}, "p.toml").boolean("b")


def test_load_toml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("a = 1\nb = = 2\n")
    with pytest.raises(ConfigError, match=rf"{bad}: malformed TOML: .*line 2, column 5"):
        load_toml(bad)
    with pytest.raises(FileNotFoundError, match=r"missing.toml: no such file"):
        load_toml(tmp_path / "missing.toml")
    good = tmp_path / "good.toml"
    good.write_text("[a]\nb = 1\n")
    assert load_toml(good) == {"a": {"b": 1}}
