"""The heel-to-toe walk: measures against the simulated walker's ground truth, end to end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from vrbalance.balance.geometry import Body
from vrbalance.clock import ManualClock
from vrbalance.director.envelope import SafetyEnvelope
from vrbalance.errors import ConfigError
from vrbalance.exercises.sim import SIM_START_S, SimulatedWalker
from vrbalance.exercises.walk import walk_measures
from vrbalance.sessions.protocol import load_protocol, read_protocol
from vrbalance.sessions.recorder import read_rows
from vrbalance.sessions.runner import SessionResult, check_protocol
from vrbalance.sessions.summary import measures_dict, summarize_folder

RunProtocol = Callable[..., SessionResult]


def _trajectory(walker: SimulatedWalker, rate_hz: float = 90.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(0.0, walker.walk_end_s + 3.0, 1.0 / rate_hz)
    return t, np.array([walker.position_at(float(v)) for v in t])


@pytest.mark.parametrize(
    ("length_m", "side_steps", "stops"),
    [(3.0, (), ()), (4.0, (1.5, 6.0), (2.0,)), (6.0, (9.0,), (1.0, 3.0, 10.0))],
)
def test_measures_find_the_walkers_true_steps_side_steps_stops_and_deviation(
    length_m: float, side_steps: tuple[float, ...], stops: tuple[float, ...]
) -> None:
    walker = SimulatedWalker(
        length_m, 1.6, ManualClock(), side_steps_at_m=side_steps, stops_at_m=stops, seed=4
    )
    truth = walker.truth()
    m = walk_measures(*_trajectory(walker), length_m)
    assert m is not None
    assert m.steps == truth.steps == 2 * walker.steps_each_way
    assert m.side_steps == truth.side_steps == len(side_steps)
    assert m.stops == truth.stops == len(stops)
    assert m.lateral_rms_m == pytest.approx(truth.lateral_rms_m, rel=0.05)
    assert m.lateral_max_m == pytest.approx(truth.lateral_max_m, rel=0.02)
    assert m.distance_m == pytest.approx(2 * length_m, rel=0.01)
    # Time: from setting off to arriving back (the analysis smooths the edges).
    assert m.time_s == pytest.approx(walker.walk_end_s - SIM_START_S, abs=1.0)
    assert m.reached_end and m.returned


def test_standing_still_or_too_short_is_not_a_walk() -> None:
    t = np.arange(0, 10, 0.01)
    still = np.column_stack([0.005 * np.sin(t), np.zeros_like(t), np.full_like(t, 1.6)])
    assert walk_measures(t, still, 4.0) is None
    assert walk_measures(t[:100], still[:100], 4.0) is None
    with pytest.raises(ValueError, match=r"expected shape \(n, 3\)"):
        walk_measures(t, still[:, :2], 4.0)


def test_a_walk_cut_short_is_measured_as_far_as_it_went() -> None:
    walker = SimulatedWalker(4.0, 1.6, ManualClock(), seed=1)
    t, pos = _trajectory(walker)
    keep = t < 12.0  # about 3.3 m out of the 8 m out and back
    m = walk_measures(t[keep], pos[keep], 4.0)
    assert m is not None and not m.reached_end and not m.returned
    assert m.steps == walker.truth(until_s=12.0).steps


def test_protocol_fields_of_a_walk_are_checked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def write(extra: str) -> str:
        path = tmp_path / "w.toml"
        path.write_text(
            'title = "w"\n[[trials]]\nname = "w"\nscene = "tandem_walk"\ntask = "tandem_walk"\n'
            f"duration_s = 30.0\n{extra}\n"
        )
        return str(path)

    with pytest.raises(
        ConfigError, match=r"\[trials.1\] walk_length_m: the walking line must be 3-6 m"
    ):
        read_protocol(write("plate = false\nwalk_length_m = 7.0"))
    with pytest.raises(ConfigError, match=r"\[trials.1\] plate: a tandem walk leaves the plate"):
        read_protocol(write("walk_length_m = 4.0\nplate = true"))
    trial = read_protocol(write("walk_length_m = 4.0")).trials[0]
    assert trial.plate is False and trial.walk_length_m == 4.0
    # The envelope caps the line: 4 m by default, refused before anything starts.
    protocol = load_protocol(write("walk_length_m = 5.0"), with_baseline=False)
    with pytest.raises(
        ConfigError, match="walking line 5 m exceeds the envelope's max_walk_length_m 4 m"
    ):
        check_protocol(protocol, SafetyEnvelope())
    check_protocol(protocol, SafetyEnvelope(max_walk_length_m=5.0))


def test_tandem_walk_protocol_end_to_end_matches_the_walker(run_protocol: RunProtocol) -> None:
    # Level 9: on a high beam the simulated walker side-steps on the way back and
    # stops half-way out; the director's rule (no stop) judges the walk a failure.
    result = run_protocol("tandem_walk", trials=1, level=9, seconds_scale=0.5)
    (trial,) = result.trials
    assert trial.end_reason.value == "completed"
    measures = measures_dict(summarize_folder(result.folder))
    events = read_rows(result.folder / "events.csv")
    # Head only: no plate rows, no plate triggers, no safety events at all.
    assert read_rows(result.folder / "plate.csv") == []
    assert not [e for e in events if e["source"] == "safety" and e["severity"] != "info"]
    assert [e["kind"] for e in events].count("exercise_plan") == 1
    body = Body(height_m=1.70, mass_kg=70.0)
    walker = SimulatedWalker(
        3.0, body.eye_height_m, ManualClock(), side_steps_at_m=(4.5,), stops_at_m=(1.5,), seed=3
    )
    truth = walker.truth()
    assert measures[(0, "walk_steps")] == truth.steps == 24
    assert measures[(0, "walk_side_steps")] == truth.side_steps == 1
    assert measures[(0, "walk_stops")] == truth.stops == 1
    rms = measures[(0, "walk_lateral_rms_m")]
    assert rms == pytest.approx(truth.lateral_rms_m, rel=0.1)
    assert measures[(0, "walk_completed")] == 1.0
    assert measures[(0, "min_margin_xcom_m")] is None  # no margin while walking
    assert trial.exercise_success is False and trial.exercise_reason == "1 stops"
    assert measures[(0, "exercise_success")] == 0.0
    # The report: its own section and chart, no percentile for the walk.
    from vrbalance.report.html import measures_from_html, session_report

    text = session_report(result.folder).read_text()
    section = text[text.index("<h2>Exercises</h2>") :]
    assert "<h3>Heel-to-toe walk</h3>" in section and 'alt="tandem walk head path"' in section
    assert "No published norm exists" in section
    assert "tandem walk task (the reference is quiet stance)" in text
    reported = {(i, n): v for i, n, v, _ in measures_from_html(text)}
    assert reported[(0, "walk_steps")] == 24 and reported[(0, "walk_stops")] == 1
    # Replay through the same pipeline, corridor included: the same states, no event.
    from vrbalance.sessions.replay import replay_session

    replayed = replay_session(result.folder)
    assert replayed.identical
    assert [e.kind for e in replayed.safety_events if e.severity != "info"] == []


def test_director_judges_an_exercise_by_its_own_rule() -> None:
    from vrbalance.director.director import Baseline, SuccessCriteria, TrialOutcome, judge

    outcome = TrialOutcome(
        "tandem_walk", 9, 0.0, None, None, exercise_success=False, exercise_reason="1 stops"
    )
    assert judge(outcome, None, SuccessCriteria()) == (False, "1 stops")
    # The quiet-stance baseline's sway is not what a walk is judged by.
    ok = replace(outcome, exercise_success=True, exercise_reason="fine")
    assert judge(ok, Baseline(0.01, 0.05), SuccessCriteria()) == (True, "fine")
    # Safety still comes first.
    unsafe = replace(ok, safety_triggered=True)
    assert judge(unsafe, None, SuccessCriteria()) == (False, "safety trigger")
