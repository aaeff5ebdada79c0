"""Protocol files: every shipped one loads; errors name file, trial and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from vrbalance.errors import ConfigError
from vrbalance.sessions.protocol import list_protocols, load_protocol, read_protocol

SHIPPED = {
    "baseline",
    "single_leg",
    "tandem",
    "weight_shifts",
    "step_ups",
    "park_walk",
    "crowd",
    "mctsib",
    "los",
    "sot",
}


def test_every_required_protocol_is_shipped_and_loads() -> None:
    assert set(list_protocols()) >= SHIPPED
    for name in list_protocols():
        protocol = load_protocol(name)
        assert protocol.trials, name
        assert protocol.trials[0].name == "Baseline", name  # baseline starts every session


def test_baseline_is_quiet_stance_eyes_open_30_s() -> None:
    (trial,) = load_protocol("baseline").trials
    assert (trial.stance, trial.eyes, trial.duration_s, trial.task) == (
        "feet_apart",
        "open",
        30.0,
        "quiet",
    )


def test_sot_has_six_conditions_sway_referenced_in_3_and_6() -> None:
    trials = load_protocol("sot", with_baseline=False).trials
    assert [t.condition for t in trials] == [c for c in range(1, 7) for _ in range(3)]
    sway_ref = {t.condition for t in trials if t.surround == "sway_referenced"}
    assert sway_ref == {3, 6}
    assert {t.condition for t in trials if t.eyes == "closed"} == {2, 5}


def test_mctsib_is_eyes_by_surface_30_s() -> None:
    trials = load_protocol("mctsib", with_baseline=False).trials
    assert [(t.eyes, t.surface) for t in trials] == [
        ("open", "firm"),
        ("closed", "firm"),
        ("open", "foam"),
        ("closed", "foam"),
    ]
    assert all(
        t.duration_s == 30.0 and t.scene == ("blank" if t.eyes == "closed" else "park")
        for t in trials
    )


def test_los_has_8_targets_and_director_protocols_adapt() -> None:
    (los,) = load_protocol("los", with_baseline=False).trials
    assert los.targets == 8 and los.assessment == "los"
    for name in ("park_walk", "crowd", "step_ups"):
        assert all(t.director for t in load_protocol(name, with_baseline=False).trials)


def test_seconds_scale_shortens_every_duration() -> None:
    full = load_protocol("los")
    quick = load_protocol("los", seconds_scale=0.1)
    assert [t.duration_s for t in quick.trials] == pytest.approx(
        [0.1 * t.duration_s for t in full.trials]
    )
    assert quick.trials[-1].target_time_s == pytest.approx(0.8)
    with pytest.raises(ConfigError, match=r"--seconds-scale: expected a value in \[0.001, 1\]"):
        load_protocol("baseline", seconds_scale=0.0)


def test_unknown_protocol_lists_the_shipped_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown protocol 'nope'; shipped protocols: .*baseline"
    ):
        load_protocol("nope")


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "custom.toml"
    path.write_text('title = "Custom"\n' + body)
    return path


def test_errors_name_file_trial_and_field(tmp_path: Path) -> None:
    ok = '[[trials]]\nname = "a"\nscene = "park"\nduration_s = 5.0\n'
    path = _write(
        tmp_path,
        ok + '[[trials]]\nname = "b"\nscene = "park"\nduration_s = 5.0\nstance = "on_one_toe"\n',
    )
    with pytest.raises(ConfigError, match=r"custom.toml \[trials.2\] stance: expected one of"):
        read_protocol(path)
    path = _write(tmp_path, ok + "durration_s = 3\n")
    with pytest.raises(ConfigError, match=r"\[trials.1\]: unknown field\(s\) durration_s"):
        read_protocol(path)
    path = _write(tmp_path, '[[trials]]\nname = "a"\nscene = "park"\n')
    with pytest.raises(ConfigError, match=r"\[trials.1\] duration_s: required field is missing"):
        read_protocol(path)
    path = _write(tmp_path, '[[trials]]\nname = "a"\nscene = "park"\nduration_s = 0.0\n')
    with pytest.raises(
        ConfigError, match=r"custom.toml \[trials.1\] duration_s: expected a value in \(0, 600\]"
    ):
        read_protocol(path)
    path = _write(
        tmp_path,
        '[[trials]]\nname = "a"\nscene = "park"\nduration_s = 5.0\n'
        'kind = "assessment"\nassessment = "sot"\n',
    )
    with pytest.raises(ConfigError, match=r"\[trials.1\] condition: a SOT trial needs condition"):
        read_protocol(path)
    path = _write(
        tmp_path,
        '[[trials]]\nname = "a"\nscene = "park"\nduration_s = 10.0\n'
        'kind = "assessment"\nassessment = "los"\ntargets = 8\ntarget_time_s = 8.0\n',
    )
    with pytest.raises(ConfigError, match=r"8 targets x 8 s do not fit in 10 s"):
        read_protocol(path)


def test_custom_protocol_by_path_gets_baseline_first(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[[trials]]\nname = "a"\nscene = "crowd"\nduration_s = 5.0\nrepeat = 2\ndirector = true\n',
    )
    protocol = load_protocol(path)
    assert [t.name for t in protocol.trials] == ["Baseline", "a #1", "a #2"]
    assert protocol.name == "custom"
