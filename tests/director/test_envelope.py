"""The safety envelope: hard caps no path can exceed, TOML and flags, level limits."""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
from pathlib import Path

import pytest
import tomli_w
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from vrbalance.director.envelope import (
    HARD_CAPS,
    MonitorThresholds,
    SafetyEnvelope,
    add_envelope_arguments,
    allowed_levels,
    check_trial_plan,
    default_envelope,
    envelope_from_args,
    level_violations,
)
from vrbalance.errors import ConfigError


def within_caps(env: SafetyEnvelope) -> bool:
    """Every field of ``env`` is inside :data:`HARD_CAPS` (the property under test)."""
    m = env.monitor
    c = HARD_CAPS
    return all(
        (
            all(0 <= level <= c.max_level for _, level in env.max_levels),
            0 <= env.other_max_level <= c.max_level,
            0 <= env.max_surround_tilt_deg <= c.max_surround_tilt_deg,
            0 <= env.max_surround_rate_dps <= c.max_surround_rate_dps,
            0 <= env.max_optic_flow_mps <= c.max_optic_flow_mps,
            env.min_passing_distance_m >= c.min_passing_distance_m,
            0 < env.max_trial_s <= c.max_trial_s,
            env.max_trial_s <= env.max_session_s <= c.max_session_s,
            env.min_rest_s >= c.min_rest_s,
            0 <= m.margin_dwell_s <= c.max_margin_dwell_s,
            m.margin_dwell_s <= m.stop_dwell_s <= c.max_stop_dwell_s,
            0 <= m.edge_margin_m <= m.warn_margin_m,
            m.head_down_velocity_mps <= c.max_head_down_velocity_mps,
            m.head_drop_m <= c.max_head_drop_m,
            0 < m.head_stale_s <= c.max_head_stale_s,
            0 < m.plate_stale_s <= c.max_plate_stale_s,
            m.load_collapse_fraction >= c.min_load_collapse_fraction,
            m.cop_jump_m <= c.max_cop_jump_m,
        )
    )


def test_defaults_and_shipped_file_agree_and_respect_the_caps() -> None:
    shipped = default_envelope()
    assert shipped == SafetyEnvelope()
    assert within_caps(shipped)
    assert shipped.max_level("park") == 10
    assert shipped.max_level("unknown_scene") == 3


def test_toml_round_trip(tmp_path: Path) -> None:
    env = SafetyEnvelope(
        max_levels={"park": 4, "crowd": 0},
        max_optic_flow_mps=1.0,
        allowed_stances=("feet_apart", "tandem"),
        monitor=MonitorThresholds(margin_dwell_s=0.05),
    )
    path = tmp_path / "patient.toml"
    path.write_bytes(tomli_w.dumps(env.to_dict()).encode())
    back = SafetyEnvelope.from_toml(path)
    assert back == env
    assert back.max_level("crowd") == 0


# field path in TOML, value beyond the cap, the cap's name
CAP_TABLE = [
    (("visual", "max_surround_tilt_deg"), 10.5, "max_surround_tilt_deg = 10"),
    (("visual", "max_surround_rate_dps"), 31.0, "max_surround_rate_dps = 30"),
    (("visual", "max_optic_flow_mps"), 3.5, "max_optic_flow_mps = 3"),
    (("visual", "min_passing_distance_m"), 0.2, "min_passing_distance_m = 0.4"),
    (("time", "max_trial_s"), 900.0, "max_trial_s = 600"),
    (("time", "max_session_s"), 7200.0, "max_session_s = 5400"),
    (("time", "min_rest_s"), 5.0, "min_rest_s = 10"),
    (("levels", "park"), 31, "max_level = 30"),
    (("levels", "other"), 99, "max_level = 30"),
    (("monitor", "margin_dwell_s"), 0.3, "max_margin_dwell_s = 0.25"),
    (("monitor", "stop_dwell_s"), 1.5, "max_stop_dwell_s = 1"),
    (("monitor", "head_down_velocity_mps"), 1.2, "max_head_down_velocity_mps = 1"),
    (("monitor", "head_drop_m"), 0.4, "max_head_drop_m = 0.3"),
    (("monitor", "head_stale_s"), 0.3, "max_head_stale_s = 0.25"),
    (("monitor", "plate_stale_s"), 0.5, "max_plate_stale_s = 0.2"),
    (("monitor", "load_collapse_fraction"), 0.2, "min_load_collapse_fraction = 0.3"),
    (("monitor", "cop_jump_m"), 0.2, "max_cop_jump_m = 0.1"),
]


@pytest.mark.parametrize(("where", "value", "cap"), CAP_TABLE)
def test_toml_value_beyond_a_cap_names_file_field_cap_and_value(
    tmp_path: Path, where: tuple[str, str], value: float, cap: str
) -> None:
    doc = SafetyEnvelope().to_dict()
    doc[where[0]][where[1]] = value
    path = tmp_path / "bad.toml"
    path.write_bytes(tomli_w.dumps(doc).encode())
    with pytest.raises(ConfigError, match=rf"bad\.toml.*{where[1]}: {value!r}.*hard cap {cap}"):
        SafetyEnvelope.from_toml(path)


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"visual": {"max_optic_flow": 1.0}}, r"bad\.toml \[visual\]: unknown field\(s\) max_opt"),
        ({"colour": {}}, r"bad\.toml: unknown field\(s\) colour"),
        ({"visual": {"max_optic_flow_mps": True}}, r"max_optic_flow_mps: expected a number"),
        ({"levels": {"park": 2.5}}, r"\[levels\] park: expected an integer"),
        ({"stances": {"allowed": []}}, r"allowed_stances: expected a non-empty list"),
        ({"stances": {"allowed": ["Feet Apart"]}}, r"stance names are lower_case"),
        (
            {"stances": {"allowed": ["feet_apart", "moonwalk"]}},
            r"bad\.toml \[stances\] allowed: unknown stance 'moonwalk'; the stance library "
            r"has feet_apart, feet_together, semi_tandem, tandem, single_left, single_right",
        ),
        ({"stances": {"allowed": ["tandem\n"]}}, r"stance names are lower_case words, got 'tan"),
        ({"levels": {"park\n": 2}}, r"scene names are lower_case words, got 'park\\n'"),
        ({"monitor": {"warn_margin_m": 0.005}}, r"\[monitor\] warn_margin_m: expected a value"),
        ({"monitor": {"edge_margin_m": -0.01}}, r"\[monitor\] edge_margin_m: expected a value"),
        ({"time": {"max_trial_s": 300.0, "max_session_s": 200.0}}, r"max_session_s: expected"),
    ],
)
def test_toml_errors_name_file_table_and_field(tmp_path: Path, doc: dict, match: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(tomli_w.dumps(doc).encode())
    with pytest.raises(ConfigError, match=match):
        SafetyEnvelope.from_toml(path)


def test_keyword_and_replace_paths_are_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"max_optic_flow_mps: 4.0 exceeds the hard cap"):
        SafetyEnvelope(max_optic_flow_mps=4.0)
    with pytest.raises(ConfigError, match=r"margin_dwell_s: 1.0 exceeds the hard cap"):
        MonitorThresholds(margin_dwell_s=1.0, stop_dwell_s=1.0)
    with pytest.raises(ConfigError, match=r"max_surround_tilt_deg: 11 exceeds the hard cap"):
        dataclasses.replace(SafetyEnvelope(), max_surround_tilt_deg=11)
    with pytest.raises(ConfigError, match=r"max_levels.park: 40 exceeds the hard cap max_level"):
        SafetyEnvelope(max_levels={"park": 40})


def test_a_tampered_monitor_is_rechecked_by_the_envelope() -> None:
    monitor = MonitorThresholds()
    object.__setattr__(monitor, "margin_dwell_s", 5.0)
    with pytest.raises(ConfigError, match=r"\[monitor\] margin_dwell_s: 5.0 exceeds the hard cap"):
        SafetyEnvelope(monitor=monitor)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_envelope_arguments(parser)
    return parser.parse_args(argv)


def test_flags_override_the_file() -> None:
    env = envelope_from_args(
        _parse(
            [
                "--max-level",
                "park=4",
                "--max-optic-flow-mps",
                "1.0",
                "--allowed-stances",
                "feet_apart,tandem",
            ]
        )
    )
    assert env.max_level("park") == 4 and env.max_level("stairs") == 10
    assert env.max_optic_flow_mps == 1.0
    assert env.allowed_stances == ("feet_apart", "tandem")


def test_flag_beyond_a_cap_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"--max-surround-tilt-deg: 45.0 exceeds the hard cap"):
        envelope_from_args(_parse(["--max-surround-tilt-deg", "45"]))
    with pytest.raises(ConfigError, match=r"--max-level: expected SCENE=N, got 'park'"):
        envelope_from_args(_parse(["--max-level", "park"]))


# -- property: no construction path exceeds the caps --------------------------------------

_any_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)


def _value_for(name: str) -> st.SearchStrategy:
    # Mostly plausible numbers: 0 to 2.5 times the default (so on both sides of
    # the caps), sometimes garbage (NaN, inf, bool, text, None).
    default = getattr(SafetyEnvelope(), name, None)
    if default is None:
        default = getattr(MonitorThresholds(), name)
    scaled = st.floats(0.0, 2.5).map(lambda k: round(default * k, 4))
    return st.one_of(scaled, scaled, scaled, scaled, _any_number)


_ENV_FIELDS = (
    "max_surround_tilt_deg",
    "max_surround_rate_dps",
    "max_optic_flow_mps",
    "min_passing_distance_m",
    "max_trial_s",
    "max_session_s",
    "min_rest_s",
)
_MON_FIELDS = tuple(f.name for f in dataclasses.fields(MonitorThresholds))


def _some_fields(names: tuple[str, ...]) -> st.SearchStrategy:
    """Up to three of ``names`` with values (several fields wrong at once hide nothing)."""
    pair = st.sampled_from(names).flatmap(lambda n: st.tuples(st.just(n), _value_for(n)))
    return st.lists(pair, max_size=3).map(dict)


@settings(max_examples=400, deadline=None)
@given(
    env_values=_some_fields(_ENV_FIELDS),
    mon_values=_some_fields(_MON_FIELDS),
    levels=st.dictionaries(
        st.sampled_from(["park", "stairs", "crowd", "beach"]),
        st.one_of(
            st.integers(-1, 40),
            st.integers(0, 30),
            st.integers(0, 30),
            st.integers(0, 9),
            st.integers(0, 9),
            st.integers(0, 9),
            _any_number,
        ),
        max_size=3,
    ),
    path=st.sampled_from(["kwargs", "dict", "toml", "flags", "replace"]),
)
def test_no_constructed_envelope_exceeds_the_hard_caps(
    env_values: dict, mon_values: dict, levels: dict, path: str
) -> None:
    try:
        if path == "kwargs":
            env = SafetyEnvelope(
                max_levels=levels, monitor=MonitorThresholds(**mon_values), **env_values
            )
        elif path in ("dict", "toml"):
            doc = {"levels": levels, "visual": {}, "time": {}, "monitor": mon_values}
            for name, value in env_values.items():
                doc["time" if name in ("max_trial_s", "max_session_s", "min_rest_s") else "visual"][
                    name
                ] = value
            if path == "dict":
                env = SafetyEnvelope.from_dict(doc, where="hyp.toml")
            else:
                try:
                    text = tomli_w.dumps(doc)
                except (TypeError, ValueError):
                    assume(False)  # None cannot be written to TOML at all
                with tempfile.TemporaryDirectory() as folder:
                    file = Path(folder) / "hyp.toml"
                    file.write_text(text, encoding="utf-8")
                    env = SafetyEnvelope.from_toml(file)
        elif path == "flags":
            argv = []
            for name, value in env_values.items():
                argv += [f"--{name.replace('_', '-')}", str(value)]
            for scene, level in levels.items():
                argv += ["--max-level", f"{scene}={level}"]
            try:
                args = _parse(argv)
            except SystemExit:
                event("rejected by argparse")
                return
            env = envelope_from_args(args)
        else:
            env = dataclasses.replace(SafetyEnvelope(), max_levels=levels, **env_values)
            env = dataclasses.replace(env, monitor=dataclasses.replace(env.monitor, **mon_values))
    except ConfigError:
        event("rejected with ConfigError")
        return
    event(f"accepted via {path}")
    assert within_caps(env)
    for value in (env.max_surround_tilt_deg, env.max_trial_s, env.monitor.margin_dwell_s):
        assert isinstance(value, float) and math.isfinite(value)


# -- scene ladders against the envelope ---------------------------------------------------


def _ladder(name: str, values: list[float], **fixed: float) -> list[dict[str, float]]:
    return [{name: v, **fixed} for v in values]


@pytest.mark.parametrize(
    ("levels", "env", "scene", "expected"),
    [
        (_ladder("optic_flow_mps", [0.0, 0.5, 1.0, 1.4, 1.6, 2.0]), SafetyEnvelope(), "park", 4),
        (
            _ladder("optic_flow_mps", [0.0, 0.5, 1.0]),
            SafetyEnvelope(max_levels={"park": 2}),
            "park",
            2,
        ),
        (_ladder("passing_distance_m", [2.0, 1.5, 1.0, 0.8, 0.6]), SafetyEnvelope(), "crowd", 4),
        (_ladder("surround_roll_deg", [0, 1, 2, 3, 4]), SafetyEnvelope(), "park", 4),
        (_ladder("sway_pitch_deg", [0, 1, 2, 3, 4]), SafetyEnvelope(), "park", 4),
        (_ladder("surround_rate_dps", [0, 5, 10, 15]), SafetyEnvelope(), "park", 3),
        # 3 deg at 0.5 Hz peaks at 9.4 deg/s (fits 10); at 0.6 Hz 11.3 deg/s (does not).
        (
            _ladder("surround_freq_hz", [0.1, 0.5, 0.6], surround_roll_deg=3.0),
            SafetyEnvelope(),
            "park",
            2,
        ),
        # Non-monotone ladder: level 3 breaks it, level 4 would fit: stop at 2.
        (_ladder("optic_flow_mps", [0.0, 1.0, 2.0, 1.0]), SafetyEnvelope(), "park", 2),
        (_ladder("optic_flow_mps", [2.0, 1.0]), SafetyEnvelope(), "park", 0),
        (_ladder("fog_density", [0.0, 0.9, 5.0]), SafetyEnvelope(), "park", 3),
        (_ladder("optic_flow_mps", [0.0] * 12), SafetyEnvelope(), "beach", 3),
    ],
)
def test_allowed_levels(levels: list, env: SafetyEnvelope, scene: str, expected: int) -> None:
    assert allowed_levels(levels, env, scene) == expected


def test_level_violations_say_why() -> None:
    why = level_violations({"optic_flow_mps": 2.0, "passing_distance_m": 0.5}, SafetyEnvelope())
    assert why == [
        "optic_flow_mps 2 > max_optic_flow_mps 1.4",
        "passing_distance_m 0.5 < min_passing_distance_m 0.8",
    ]


def test_check_trial_plan() -> None:
    env = SafetyEnvelope()
    check_trial_plan(
        env, stance="feet_apart", duration_s=60.0, session_elapsed_s=600.0, rest_s=45.0
    )
    with pytest.raises(ConfigError, match="stance 'tandem' is not allowed"):
        check_trial_plan(env, stance="tandem", duration_s=30.0)
    with pytest.raises(ConfigError, match="trial duration 200 s exceeds"):
        check_trial_plan(env, stance="feet_apart", duration_s=200.0)
    with pytest.raises(ConfigError, match="session would last 2730 s"):
        check_trial_plan(env, stance="feet_apart", duration_s=60.0, session_elapsed_s=2670.0)
    with pytest.raises(ConfigError, match="rest of 10 s"):
        check_trial_plan(env, stance="feet_apart", duration_s=60.0, rest_s=10.0)
