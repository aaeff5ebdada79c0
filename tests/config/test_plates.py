"""Plate and foot-template files: the shipped ones load, broken ones fail clearly."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from vrbalance.balance.cop import PlateGeometry
from vrbalance.config.plates import (
    PlateSpec,
    SerialSpec,
    list_foot_templates,
    list_plates,
    load_foot_template,
    load_plate,
)
from vrbalance.errors import ConfigError
from vrbalance.resources import data_dir

WII = """\
[plate]
id = "{id}"
name = "Test plate"
kind = "cells4"

[geometry]
width_m = 0.511
depth_m = 0.316
cell_positions_m = [[-0.2165, 0.119], [0.2165, 0.119], [-0.2165, -0.119], [0.2165, -0.119]]

[serial]
protocol = "ascii"
baud = 115200
channel_map = [0, 1, 2, 3]
"""

SIX = """\
[plate]
id = "{id}"
name = "Six"
kind = "six_axis"

[geometry]
width_m = 0.5
depth_m = 0.4
top_offset_m = -0.035

[serial]
protocol = "binary"
baud = 921600
channel_map = [5, 4, 3, 2, 1, 0]
"""

FOOT = """\
[foot]
id = "{id}"
name = "Box foot"

[outline]
points = [[0, 0], [10, 0], [10, 26], [0, 26]]
ankle = [5, 6]
"""


def write(tmp_path: Path, text: str, stem: str = "test-plate") -> Path:
    path = tmp_path / f"{stem}.toml"
    path.write_text(text.replace("{id}", stem), encoding="utf-8")
    return path


def test_shipped_plates_are_listed_and_load() -> None:
    assert {"wii-balance-board", "generic-six-axis"} <= set(list_plates())
    for ident in list_plates():
        spec = load_plate(ident)
        assert spec.id == ident and spec.path.parent == data_dir("calibration") / "plates"


def test_wii_balance_board() -> None:
    spec = load_plate("wii-balance-board")
    assert isinstance(spec, PlateSpec) and spec.kind == "cells4"
    g = spec.geometry
    assert isinstance(g, PlateGeometry)
    pos = np.array(g.cell_positions_m)
    # The cells span the Wii Balance Board's 433 x 238 mm rectangle.
    np.testing.assert_allclose(pos.max(0) - pos.min(0), [0.433, 0.238])
    assert (g.width_m, g.depth_m) == (0.511, 0.316)
    assert spec.serial == SerialSpec("ascii", 115200, (0, 1, 2, 3))


def test_generic_six_axis() -> None:
    spec = load_plate("generic-six-axis")
    assert spec.kind == spec.geometry.kind == "six_axis"
    assert spec.geometry.cell_positions_m == () and spec.geometry.top_offset_m == 0.0
    assert spec.serial == SerialSpec("binary", 921600, (0, 1, 2, 3, 4, 5))


def test_ascii_checksum_defaults_to_required_and_the_file_can_relax_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert load_plate("wii-balance-board").serial.ascii_checksum == "required"
    assert load_plate(write(tmp_path, WII)).serial.ascii_checksum == "required"
    relaxed = WII.replace("[serial]", '[serial]\nascii_checksum = "optional"')
    path = write(tmp_path, relaxed, "old-firmware")
    assert load_plate(path).serial.ascii_checksum == "optional"
    assert "ascii_checksum = 'optional'" in caplog.text and str(path) in caplog.text


def test_load_by_path_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, SIX)
    monkeypatch.chdir("/")
    spec = load_plate(path)
    assert spec.geometry.top_offset_m == -0.035
    assert spec.serial.channel_map == (5, 4, 3, 2, 1, 0)
    assert load_plate(str(path)).id == "test-plate"
    assert load_plate("wii-balance-board").id == "wii-balance-board"


def test_unknown_plate_lists_known_ones() -> None:
    with pytest.raises(FileNotFoundError, match=r"no plate file 'nope'.*known: generic-six-axis"):
        load_plate("nope")


@pytest.mark.parametrize(
    ("base", "old", "new", "match"),
    [
        (WII, 'kind = "cells4"', 'kind = "cells3"',
         r"\[plate\] kind: expected one of 'cells4', 'six_axis', got 'cells3'"),
        (WII, 'name = "Test plate"\n', 'name = "Test plate"\ncolour = "white"\n',
         r"\[plate\]: unknown field\(s\) colour"),
        (WII, "width_m = 0.511", "width_m = 0.511\nwidht_m = 0.5",
         r"\[geometry\]: unknown field\(s\) widht_m"),
        (WII, "[[-0.2165, 0.119], [0.2165, 0.119], [-0.2165, -0.119], [0.2165, -0.119]]",
         "[[-0.2165, 0.119], [0.2165, 0.119], [-0.2165, -0.119]]",
         r"\[geometry\] cell_positions_m: expected 4 \[x, y\] pairs, got 3"),
        (WII, "[0.2165, -0.119]]", "[0.2165]]",
         r"\[geometry\] cell_positions_m\[3\]: expected an \[x, y\] pair, got \[0.2165\]"),
        (WII, "[0.2165, -0.119]]", '[0.2165, "back"]]',
         r"\[geometry\] cell_positions_m\[3\]\[1\]: expected a number, got 'back'"),
        (WII, "[0.2165, -0.119]]", "[0.4, -0.119]]",
         r"\[geometry\] cell_positions_m\[3\]: \(0.4, -0.119\) lies outside"),
        (WII, "depth_m = 0.316", "depth_m = 0.316\ntop_offset_m = 0.01",
         r"\[geometry\] top_offset_m: only a six_axis plate has a top offset"),
        (WII, "depth_m = 0.316", "depth_m = -0.316",
         r"\[geometry\] depth_m: expected a value in \(0, 5\], got -0.316"),
        (WII, "width_m = 0.511\n", "",
         r"\[geometry\] width_m: required field is missing"),
        (WII, 'protocol = "ascii"', 'protocol = "modbus"',
         r"\[serial\] protocol: expected one of 'ascii', 'binary', got 'modbus'"),
        (WII, "baud = 115200", "baud = 115200.5",
         r"\[serial\] baud: expected an integer, got 115200.5"),
        (WII, "baud = 115200", "baud = true",
         r"\[serial\] baud: expected an integer, got True"),
        (WII, "channel_map = [0, 1, 2, 3]", "channel_map = [0, 1, 2]",
         r"\[serial\] channel_map: expected 4 wire channel indices for a cells4 plate, got 3"),
        (WII, "channel_map = [0, 1, 2, 3]", "channel_map = [0, 1, 1, 3]",
         r"\[serial\] channel_map: expected distinct wire channels, got \[0, 1, 1, 3\]"),
        (WII, "channel_map = [0, 1, 2, 3]", "channel_map = [0, 1, 2, -3]",
         r"\[serial\] channel_map\[3\]: expected a value in \[0, inf\], got -3"),
        (WII, 'id = "{id}"', 'id = "other"',
         r"\[plate\] id: expected the file stem 'test-plate', got 'other'"),
        (WII, "[serial]", "[serial]\nparity = 'N'",
         r"\[serial\]: unknown field\(s\) parity"),
        (WII, "[serial]", "[extra]\nx = 1\n[serial]",
         r"test-plate.toml: unknown field\(s\) extra"),
        (SIX, "top_offset_m = -0.035", "cell_positions_m = [[0, 0]]",
         r"\[geometry\] cell_positions_m: only a cells4 plate has cell positions"),
        (SIX, "channel_map = [5, 4, 3, 2, 1, 0]", "channel_map = [0, 1, 2, 3]",
         r"channel_map: expected 6 wire channel indices for a six_axis plate, got 4"),
        (SIX, "top_offset_m = -0.035", "top_offset_m = 2.0",
         r"\[geometry\] top_offset_m: expected a value in \[-1, 1\], got 2.0"),
        (WII, "[serial]", "[serial]\nascii_checksum = 'off'",
         r"\[serial\] ascii_checksum: expected one of 'required', 'optional', got 'off'"),
        (WII, "[serial]", "[serial]\nascii_checksum = false",
         r"\[serial\] ascii_checksum: expected one of 'required', 'optional', got False"),
        (SIX, "[serial]", "[serial]\nascii_checksum = 'optional'",
         r"\[serial\] ascii_checksum: only an ascii plate has one"),
    ],
)  # fmt: skip
def test_plate_file_errors_name_file_table_and_field(
    tmp_path: Path, base: str, old: str, new: str, match: str
) -> None:
    assert old in base
    path = write(tmp_path, base.replace(old, new, 1))
    with pytest.raises(ConfigError, match=match) as info:
        load_plate(path)
    assert str(path) in str(info.value)


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, WII.replace("baud = 115200", "baud = = 115200"))
    with pytest.raises(ConfigError, match=re.escape(str(path)) + ": malformed TOML"):
        load_plate(path)


def test_missing_table(tmp_path: Path) -> None:
    path = write(tmp_path, WII.split("[serial]")[0])
    with pytest.raises(ConfigError, match=r"test-plate.toml serial: required field is missing"):
        load_plate(path)


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_plate("/nonexistent/plate.toml")


def test_shipped_foot_template() -> None:
    assert "adult" in list_foot_templates()
    foot = load_foot_template()
    assert foot.name == "adult"
    assert "hand-drawn" in foot.source
    np.testing.assert_allclose(foot.outline.min(0), [-0.5, -0.5])
    np.testing.assert_allclose(foot.outline.max(0), [0.5, 0.5])
    assert foot.ankle == pytest.approx((0.0, -0.27))


def test_foot_template_from_path(tmp_path: Path) -> None:
    foot = load_foot_template(write(tmp_path, FOOT, "box"))
    assert foot.name == "box" and foot.source == ""
    assert foot.ankle == pytest.approx((0.0, 6 / 26 - 0.5))


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("ankle = [5, 6]", "ankle = [5]", r"\[outline\] ankle: expected 2 numbers, got 1"),
        ("ankle = [5, 6]", "ankle = [50, 6]", r"\[outline\] ankle: .* lies outside the foot"),
        ("[[0, 0], [10, 0], [10, 26], [0, 26]]", "[[0, 0], [10, 0]]",
         r"\[outline\] points: expected at least 3 points, got 2"),
        ("[[0, 0], [10, 0], [10, 26], [0, 26]]", "[[0, 0], [10, 0], [20, 0]]",
         r"\[outline\] vertices: polygon has zero area"),
        ('name = "Box foot"', 'name = "Box foot"\nsize = 42',
         r"\[foot\]: unknown field\(s\) size"),
    ],
)  # fmt: skip
def test_foot_template_errors(tmp_path: Path, old: str, new: str, match: str) -> None:
    path = write(tmp_path, FOOT.replace(old, new), "box")
    with pytest.raises(ConfigError, match=match) as info:
        load_foot_template(path)
    assert str(path) in str(info.value)
