"""Side leg raises and tai chi: measures against the simulated person's script."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vrbalance.devices.simulator import PersonParams, StandingPerson, parse_script
from vrbalance.errors import ConfigError
from vrbalance.exercises.coach import FULL_SHIFT_M, load_sequence, read_sequence
from vrbalance.exercises.leg_raise import leg_raise_measures
from vrbalance.exercises.live import exercise_success, tai_chi_target
from vrbalance.exercises.plan import ExercisePlan, raise_schedule
from vrbalance.exercises.sim import leg_raise_script, tai_chi_script
from vrbalance.exercises.tracking import tracking_measures

RATE_HZ = 100.0


def _perform(script: str, seconds: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The simulated person on the plate performing ``script``: times and CoP (no threads)."""
    person = StandingPerson(PersonParams(), rate_hz=RATE_HZ, script=parse_script(script), seed=seed)
    n = int(seconds * RATE_HZ)
    t = np.arange(n) / RATE_HZ
    cop = np.array([person.step()[3:5] for _ in range(n)])
    return t, cop - np.asarray(PersonParams().stance_cop_m)


def test_tracking_finds_an_exactly_known_lag_and_error() -> None:
    t = np.arange(0, 40, 0.01)
    target = np.column_stack([0.05 * np.sin(2 * np.pi * t / 10), 0.02 * np.cos(2 * np.pi * t / 7)])
    late = np.column_stack([np.interp(t - 0.8, t, target[:, k]) for k in range(2)])
    m = tracking_measures(t, late, t, target, tolerance_m=0.02)
    assert m is not None
    assert m.lag_s == pytest.approx(0.8, abs=0.02)
    assert m.lag_correlation == pytest.approx(1.0, abs=0.01)
    err = np.hypot(*(late - target).T)[t > 1]
    assert m.rms_error_m == pytest.approx(float(np.sqrt(np.mean(err**2))), rel=0.05)
    assert m.time_within_pct == pytest.approx(
        100 * np.mean(np.hypot(*(late - target).T) <= 0.02), abs=1
    )
    assert m.max_excursion_m == pytest.approx(m.target_max_excursion_m, rel=0.01)
    early = tracking_measures(t, target, t + 0.5, target, tolerance_m=0.02)
    assert early is not None and early.lag_s == pytest.approx(-0.5, abs=0.02)
    assert tracking_measures(t[:100], late[:100], t, target, 0.02) is None


def test_a_known_injected_lag_shows_through_the_simulated_body() -> None:
    plan = ExercisePlan(
        task="tai_chi", level=5, sequence="weight_shifts", tempo=1.0, tolerance_m=0.03
    )
    seq = load_sequence("weight_shifts")
    lags = {}
    for lag_s in (0.5, 1.5):
        t, cop = _perform(tai_chi_script(plan, 31.0, lag_s=lag_s), 31.0)
        m = tracking_measures(t, cop, t, tai_chi_target(plan, t), plan.tolerance_m)
        assert m is not None
        lags[lag_s] = m.lag_s
        # The person reaches the coach's full shift (7 cm) either way.
        assert m.max_excursion_m == pytest.approx(FULL_SHIFT_M[0], abs=0.012)
        assert m.target_max_excursion_m == pytest.approx(FULL_SHIFT_M[0], abs=1e-6)
    # The body adds its own delay (sensorimotor and muscle), the same both times:
    # the difference is the injected second.
    assert lags[1.5] - lags[0.5] == pytest.approx(1.0, abs=0.1)
    assert 0.5 <= lags[0.5] <= 1.1  # the body adds about 0.45 s
    assert seq.label_at(7.0) == "shift left, turn left"


def test_leg_raises_are_counted_and_timed_against_the_script() -> None:
    plan = ExercisePlan(task="leg_raise", level=4, repetitions=3, hold_s=4.0, rest_s=2.0)
    script, truth = leg_raise_script(plan, 60.0)
    assert [s for s, _ in truth] == ["left"] * 3 + ["right"] * 3
    t, cop = _perform(script, 60.0)
    quiet = cop[: int(2 * RATE_HZ)]
    quiet_rms = float(np.sqrt(np.mean(np.sum((quiet - quiet.mean(axis=0)) ** 2, axis=1))))
    found = leg_raise_measures(t, cop, None, foot_offset_m=0.085, min_hold_s=2.0)
    assert found is not None and found.source == "cop"
    assert [r.side for r in found.raises] == [s for s, _ in truth]
    cues = raise_schedule(plan, 60.0)
    for r, cue in zip(found.raises, cues, strict=True):
        # The hold runs from reaching the stance foot to leaving it: the hold
        # plus the tails of the shifts (smoothstep ramps, body dynamics).
        assert r.hold_s == pytest.approx(plan.hold_s + 0.6, abs=0.4)
        assert cue.up_s < r.start_s < cue.up_s + 2.0  # the shift takes 1.2 s
        # On one foot the simulated person sways more than in quiet stance: its
        # CoP overshoots the shift and settles over about 2 s (a real one too).
        assert r.sway_rms_m is not None and quiet_rms < r.sway_rms_m < 0.02
    m = found.as_measures()
    assert m["raise_reps_left"] == m["raise_reps_right"] == 3
    assert exercise_success(plan, m) == (True, "3 raises per side held 4 s")
    short = replace(plan, repetitions=4)
    assert exercise_success(short, m) == (False, "3 of 4 left raises")


def test_leg_raises_from_the_head_alone() -> None:
    t = np.arange(0, 20, 0.01)
    x = np.where((t > 3) & (t < 8), 0.07, 0.0) + np.where((t > 11) & (t < 15), -0.07, 0.0)
    head = np.column_stack([x, np.zeros_like(t), np.full_like(t, 1.6)])
    found = leg_raise_measures(t, None, head, foot_offset_m=0.085, min_hold_s=1.0)
    assert found is not None and found.source == "head"
    assert [r.side for r in found.raises] == ["left", "right"]
    # The 0.2 s smoothing rounds the edges of these instant shifts.
    assert [r.hold_s for r in found.raises] == pytest.approx([5.0, 4.0], abs=0.25)
    assert found.raises[0].sway_velocity_mps is None and found.raises[0].trunk_lean_deg is None


def test_sequence_files_are_checked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.toml"
    path.write_text(
        'title = "x"\n[[keyframes]]\nt_s = 0.0\n[[keyframes]]\nt_s = 2.0\ncop_x = 1.5\n'
    )
    with pytest.raises(ConfigError, match=r"\[keyframes.2\] cop_x"):
        read_sequence(path)
    path.write_text('title = "x"\n[[keyframes]]\nt_s = 2.0\n[[keyframes]]\nt_s = 1.0\n')
    with pytest.raises(ConfigError, match="keyframes must be in increasing time"):
        read_sequence(path)
    with pytest.raises(ConfigError, match="unknown tai chi sequence 'nope'; shipped: single_leg"):
        load_sequence("nope")


def test_a_head_only_leg_raise_trial_gets_the_simulated_persons_head_and_no_plate() -> None:
    from vrbalance.balance.geometry import Body
    from vrbalance.clock import MonotonicClock
    from vrbalance.sessions.protocol import load_protocol
    from vrbalance.sessions.runner import SimulatedDevices

    clock = MonotonicClock()
    devices = SimulatedDevices("wii-balance-board", Body(height_m=1.7), clock, seed=2)
    trial = load_protocol("leg_raises", with_baseline=False, seconds_scale=0.1).trials[0]
    trial = replace(trial, plate=False, level=1)
    try:
        plate, head = devices.open_trial(0, trial)
        assert plate is None and head is not None
        # The first raise (left leg up: the body over the right foot) starts 0.6 s
        # in and takes 1.2 s: poll the head until it has moved right, or give up.
        start = head.pose_at(clock.now_s())
        deadline = clock.now_s() + 15.0
        moved = 0.0
        while clock.now_s() < deadline and moved < 0.05:
            pose = head.pose_at(clock.now_s())
            if pose is not None and start is not None:
                moved = pose.position_m[0] - start.position_m[0]
            clock.sleep_s(0.02)
        assert moved >= 0.05
    finally:
        devices.close()


def test_tai_chi_without_a_plate_is_tracked_by_the_head() -> None:
    from vrbalance.exercises.live import HEAD_TARGET_GAIN, exercise_measures

    plan = ExercisePlan(
        task="tai_chi", level=5, sequence="weight_shifts", tempo=1.0, tolerance_m=0.03
    )
    t = np.arange(0.0, 30.0, 0.01)
    late = tai_chi_target(plan, t - 0.7)  # the head follows 0.7 s late
    head = np.column_stack([HEAD_TARGET_GAIN * late + [0.01, 0.05], np.full(t.size, 1.6)])
    m = exercise_measures(plan, t + 100.0, None, head)
    assert m["track_by_head"] == 1.0
    assert m["track_lag_s"] == pytest.approx(0.7, abs=0.03)
    # Distances in head metres: the excursion is the CoP target's times the gain.
    assert m["track_max_excursion_m"] == pytest.approx(HEAD_TARGET_GAIN * 0.07, rel=0.02)
