"""Scene definition files: shipped scenes load; every error names file, level and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vrbalance.config.scenes import MIN_LEVELS, available_scenes, load_scene
from vrbalance.errors import ConfigError

PARAMS = {
    "a_m": (0.0, 1.0, False),
    "b_deg": (0.0, 10.0, False),
    "c_hz": (0.0, 1.0, False),
    "d": (0, 5, True),
    "e_mps": (0.0, 2.0, False),
    "f": (0.0, 1.0, False),
}


def _scene_text(name: str = "demo", n_levels: int = MIN_LEVELS, level_extra: str = "") -> str:
    lines = [f'name = "{name}"', 'title = "Demo"', "seed = 3", ""]
    for p, (lo, hi, integer) in PARAMS.items():
        lines += [f"[parameters.{p}]", f"min = {lo}", f"max = {hi}", 'unit = "x"']
        if integer:
            lines.append("integer = true")
        lines += ['description = "d"', ""]
    for i in range(n_levels):
        lines.append("[[levels]]")
        for p, (lo, _hi, integer) in PARAMS.items():
            lines.append(f"{p} = {int(lo) if integer else lo + 0.01 * i}")
        if i == 2 and level_extra:
            lines.append(level_extra)
        lines.append("")
    return "\n".join(lines)


def _write(tmp_path: Path, text: str, name: str = "demo") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["park", "stairs"])
def test_shipped_scene_has_ladder_and_parameters(name: str) -> None:
    scene = load_scene(name)
    assert scene.name == name
    assert scene.n_levels >= 10
    assert len(scene.parameters) >= 6
    for level in scene.levels:
        assert set(level.values) == set(scene.parameters)
    # Levels count from 1 and the object knows its range.
    assert scene.level(1).number == 1
    assert scene.level(scene.n_levels) is scene.levels[-1]


def test_park_uses_standard_names_for_the_safety_envelope() -> None:
    names = set(load_scene("park").parameters)
    assert {"optic_flow_mps", "surround_roll_deg", "surround_pitch_deg"} <= names
    assert {"surround_freq_hz", "surround_rate_dps"} <= names


def test_park_ladder_gets_harder() -> None:
    scene = load_scene("park")
    first, last = scene.level(1).values, scene.level(scene.n_levels).values
    assert last["optic_flow_mps"] > first["optic_flow_mps"]
    assert last["path_width_m"] < first["path_width_m"]
    assert last["dusk_fraction"] > first["dusk_fraction"]


def test_available_scenes_lists_shipped_files() -> None:
    assert {"park", "stairs"} <= set(available_scenes())


def test_valid_file_loads(tmp_path: Path) -> None:
    scene = load_scene(_write(tmp_path, _scene_text()))
    assert scene.seed == 3
    assert scene.level(3).values["a_m"] == pytest.approx(0.02)
    assert scene.parameters["d"].integer


def test_unknown_parameter_in_level_names_file_level_field(tmp_path: Path) -> None:
    path = _write(tmp_path, _scene_text(level_extra="optic_flow_sped = 1.0"))
    with pytest.raises(
        ConfigError, match=re.escape(f"{path} [levels.3]: unknown field(s) optic_flow_sped")
    ):
        load_scene(path)


def test_out_of_range_value_names_level_and_field(tmp_path: Path) -> None:
    text = _scene_text().replace("b_deg = 0.04", "b_deg = 40.0")
    path = _write(tmp_path, text)
    with pytest.raises(
        ConfigError,
        match=re.escape(f"{path} [levels.5] b_deg: expected a value in [0, 10], got 40.0"),
    ):
        load_scene(path)


def test_missing_parameter_in_level(tmp_path: Path) -> None:
    text = _scene_text().replace("c_hz = 0.09\n", "", 1)
    path = _write(tmp_path, text)
    with pytest.raises(
        ConfigError, match=re.escape(f"{path} [levels.10] c_hz: required field is missing")
    ):
        load_scene(path)


def test_integer_parameter_rejects_fraction(tmp_path: Path) -> None:
    text = _scene_text(level_extra="").replace("d = 0\n", "d = 1.5\n", 1)
    path = _write(tmp_path, text)
    with pytest.raises(
        ConfigError, match=re.escape(f"{path} [levels.1] d: expected an integer, got 1.5")
    ):
        load_scene(path)


def test_boolean_is_not_a_number(tmp_path: Path) -> None:
    text = _scene_text().replace("f = 0.0\n", "f = true\n", 1)
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"\[levels.1\] f: expected a number, got True"):
        load_scene(path)


def test_malformed_toml_names_file(tmp_path: Path) -> None:
    path = _write(tmp_path, _scene_text() + "\n[[levels]\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: malformed TOML")):
        load_scene(path)


def test_too_few_levels(tmp_path: Path) -> None:
    path = _write(tmp_path, _scene_text(n_levels=4))
    with pytest.raises(
        ConfigError, match=re.escape(f"{path} levels: expected at least 10 levels, got 4")
    ):
        load_scene(path)


def test_name_must_match_file_stem(tmp_path: Path) -> None:
    path = _write(tmp_path, _scene_text(name="other"))
    with pytest.raises(ConfigError, match="name: expected the file stem 'demo', got 'other'"):
        load_scene(path)


def test_unknown_parameter_field(tmp_path: Path) -> None:
    text = _scene_text().replace('unit = "x"\n', 'unit = "x"\nmaximum = 3\n', 1)
    path = _write(tmp_path, text)
    with pytest.raises(
        ConfigError, match=re.escape(f"{path} [parameters] [a_m]: unknown field(s) maximum")
    ):
        load_scene(path)


def test_min_above_max_is_rejected(tmp_path: Path) -> None:
    text = _scene_text().replace("min = 0.0\nmax = 1.0", "min = 2.0\nmax = 1.0", 1)
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"\[a_m\] max: expected max >= min \(2\), got 1"):
        load_scene(path)


def test_unknown_scene_name_lists_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown scene 'beach'; available scenes: .*park"):
        load_scene("beach")


def test_level_number_out_of_range() -> None:
    scene = load_scene("park")
    with pytest.raises(ConfigError, match=r"level must be in \[1, 10\], got 11"):
        scene.level(11)
    with pytest.raises(ConfigError, match=r"level must be in \[1, 10\], got 0"):
        scene.level(0)


def test_check_values_accepts_whole_floats_for_counts_and_rejects_unknown() -> None:
    scene = load_scene("park")
    assert scene.check_values({"distractor_count": 3.0}) == {"distractor_count": 3.0}
    with pytest.raises(ConfigError, match=r"distractor_count: expected an integer, got 2\.5"):
        scene.check_values({"distractor_count": 2.5})
    with pytest.raises(ConfigError, match=r"unknown field\(s\) speed"):
        scene.check_values({"speed": 1.0})
    with pytest.raises(ConfigError, match=r"optic_flow_mps: expected a value in \[0, 1.5\]"):
        scene.check_values({"optic_flow_mps": 9.0})


def test_default_safety_envelope_admits_most_of_each_ladder() -> None:
    """The ladders use the envelope's names; its defaults cut only the park's top sway levels."""
    from vrbalance.director.envelope import SafetyEnvelope, allowed_levels

    envelope = SafetyEnvelope()
    park, stairs = load_scene("park"), load_scene("stairs")
    assert allowed_levels([lv.values for lv in park.levels], envelope, "park") == 8
    assert allowed_levels([lv.values for lv in stairs.levels], envelope, "stairs") == 10
