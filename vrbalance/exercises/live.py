"""What the session asks of an exercise: its corridor, its plan, its measures, its success.

One function computes an exercise trial's measures from its samples
(:func:`exercise_measures`), whether they come from the running loop
(:class:`ExerciseTracker`, for the director after the trial) or from the
recording (:mod:`vrbalance.sessions.summary`, for the report): one number,
one computation. :func:`exercise_success` is the director's success rule per
exercise (``docs/exercises.md``), used instead of the quiet-stance comparison
with the baseline's sway, which means nothing for a walk, a leg raise or a
tai chi sequence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vrbalance.events import Event
from vrbalance.exercises.plan import ExercisePlan, exercise_plan

#: Tandem walk success: out and back, at most this many side-steps, no stop.
WALK_MAX_SIDE_STEPS = 1
WALK_MAX_STOPS = 0
#: Leg raise success: every prescribed repetition, holds at least this
#: fraction of the prescribed hold.
RAISE_MIN_HOLD_FRACTION = 0.8
#: Shortest shift onto one foot that counts as a leg raise, s (also at least half
#: the prescribed hold): a CoP overshooting under the other foot as the leg comes
#: down lasts a few tenths of a second; a raise, held, lasts longer.
MIN_RAISE_S = 0.6
#: Tai chi success: on target at least this share of the time, lag at most this.
TAI_CHI_MIN_WITHIN_PCT = 60.0
TAI_CHI_MAX_LAG_S = 1.0
#: Quiet period at the start of a tai chi trial that defines the CoP's centre, s.
TAI_CHI_QUIET_S = 1.0
#: Without a plate, tai chi is tracked by the head: a body leaning as an
#: inverted pendulum about the ankles moves the head eye height / CoM height
#: times as far as its CoM (1.58 m / 0.94 m for a 1.70 m adult, Winter's
#: proportions), so the head's target is the CoP target times this.
HEAD_TARGET_GAIN = 1.7


def foot_offset_m() -> float:
    """Distance from the stance centre to a foot's centre in the default feet-apart stance, m."""
    from vrbalance.balance.stance import DEFAULT_FEET_APART_WIDTH_M

    return DEFAULT_FEET_APART_WIDTH_M / 2.0


def tai_chi_target(plan: ExercisePlan, t_rel_s: np.ndarray) -> np.ndarray:
    """The coach's target CoP at trial-relative times, shape (n, 2), m."""
    from vrbalance.exercises.coach import load_sequence

    seq = load_sequence(plan.sequence)
    return np.array(
        [seq.target_cop_m(float(t), plan.tempo, plan.amplitude_frac) for t in t_rel_s]
    ).reshape(-1, 2)


def exercise_measures(
    plan: ExercisePlan,
    t_s: Sequence[float] | np.ndarray,
    cop_m: np.ndarray | None,
    head_m: np.ndarray | None,
) -> dict[str, float | None]:
    """The measures of one exercise trial (names carry units; see docs/exercises.md).

    Parameters
    ----------
    plan : ExercisePlan
    t_s : sequence of float, shape (n,)
        Tick times; the first is the trial's start.
    cop_m : ndarray, shape (n, 2), or None
        CoP per tick (NaN where none), m.
    head_m : ndarray, shape (n, 3), or None
        Head position per tick (NaN where none), m.
    """
    t = np.asarray(t_s, dtype=float)
    if t.size < 2:
        return {}
    if plan.task == "tandem_walk":
        from vrbalance.exercises.walk import walk_measures

        if head_m is None:
            return {}
        walk = walk_measures(t, head_m, plan.walk_length_m)
        return {} if walk is None else dict(walk.as_measures())
    if plan.task == "leg_raise":
        from vrbalance.exercises.leg_raise import leg_raise_measures

        found = leg_raise_measures(
            t,
            cop_m,
            head_m,
            foot_offset_m=foot_offset_m(),
            min_hold_s=max(MIN_RAISE_S, 0.5 * plan.hold_s),
        )
        return {} if found is None else found.as_measures()
    if plan.task == "tai_chi":
        from vrbalance.exercises.tracking import tracking_measures

        # The CoP with a plate; else the head, against the target scaled to the head.
        gain = 1.0
        xy = cop_m
        if xy is None or np.all(np.isfinite(xy), axis=1).sum() < 10:
            xy = None if head_m is None else np.asarray(head_m, dtype=float)[:, :2]
            gain = HEAD_TARGET_GAIN
        if xy is None:
            return {}
        ok = np.all(np.isfinite(xy), axis=1)
        if ok.sum() < 10:
            return {}
        rel = t - t[0]
        quiet = ok & (rel < TAI_CHI_QUIET_S * max(plan.time_scale, 0.2))
        centre = np.median(xy[quiet if quiet.any() else ok], axis=0)
        target = gain * tai_chi_target(plan, rel)
        measured = tracking_measures(rel[ok], xy[ok] - centre, rel, target, gain * plan.tolerance_m)
        if measured is None:
            return {}
        return {**measured.as_measures(), "track_by_head": 1.0 if gain != 1.0 else 0.0}
    return {}


def exercise_success(plan: ExercisePlan, measures: Mapping[str, float | None]) -> tuple[bool, str]:
    """The director's success rule for one exercise trial, and a sentence saying why."""

    def get(name: str) -> float | None:
        value = measures.get(name)
        return None if value is None or not math.isfinite(value) else float(value)

    if plan.task == "tandem_walk":
        if not get("walk_completed"):
            return False, "the walk was not completed out and back"
        side, stops = get("walk_side_steps") or 0.0, get("walk_stops") or 0.0
        if side > WALK_MAX_SIDE_STEPS:
            return False, f"{side:.0f} side-steps > {WALK_MAX_SIDE_STEPS}"
        if stops > WALK_MAX_STOPS:
            return False, f"{stops:.0f} stops"
        return True, f"walked out and back with {side:.0f} side-step(s) and no stop"
    if plan.task == "leg_raise":
        for side in ("left", "right"):
            reps = get(f"raise_reps_{side}") or 0.0
            if reps < plan.repetitions:
                return False, f"{reps:.0f} of {plan.repetitions} {side} raises"
            hold = get(f"raise_hold_{side}_s")
            if hold is None or hold < RAISE_MIN_HOLD_FRACTION * plan.hold_s:
                held = "no" if hold is None else f"{hold:.1f} s"
                need = f"{RAISE_MIN_HOLD_FRACTION:g} x {plan.hold_s:g} s"
                return False, f"{side} holds {held} < {need}"
        return True, f"{plan.repetitions} raises per side held {plan.hold_s:g} s"
    if plan.task == "tai_chi":
        within, lag = get("track_time_within_pct"), get("track_lag_s")
        if within is None or lag is None:
            return False, "tracking not measured"
        if within < TAI_CHI_MIN_WITHIN_PCT:
            return False, f"on target {within:.0f} % of the time < {TAI_CHI_MIN_WITHIN_PCT:g} %"
        if abs(lag) > TAI_CHI_MAX_LAG_S:
            return False, f"lag {lag:.2f} s > {TAI_CHI_MAX_LAG_S:g} s"
        return True, f"on target {within:.0f} % of the time, lag {lag:.2f} s"
    return False, f"unknown exercise {plan.task!r}"


class ExerciseTracker:
    """Collects one exercise trial's samples in the loop thread; judges it afterwards.

    Parameters
    ----------
    plan : ExercisePlan
    """

    def __init__(self, plan: ExercisePlan) -> None:
        from vrbalance.director.monitor import Corridor

        self.plan = plan
        self.corridor = Corridor(plan.walk_length_m) if plan.task == "tandem_walk" else None
        self._t: list[float] = []
        self._cop: list[tuple[float, float]] = []
        self._head: list[tuple[float, float, float]] = []

    def add(self, state: Any) -> None:
        """Keep one tick's CoP and head position (called by the loop, every tick)."""
        nan2 = (math.nan, math.nan)
        self._t.append(state.t_s)
        cop = state.cop_m if state.plate_loaded and state.cop_m is not None else nan2
        self._cop.append(cop)
        head = state.head_position_m
        self._head.append(head if head is not None else (math.nan, math.nan, math.nan))

    def plan_event(self, t_s: float) -> Event:
        """The ``exercise_plan`` event (the report measures against it)."""
        return Event(
            t_s,
            "session",
            "exercise_plan",
            f"{self.plan.task} plan at level {self.plan.level}",
            values=self.plan.to_values(),
        )

    def judge(self) -> tuple[dict[str, float | None], bool, str]:
        """``(measures, success, why)`` of the trial so far."""
        measures = exercise_measures(
            self.plan,
            np.asarray(self._t),
            np.asarray(self._cop, dtype=float).reshape(-1, 2),
            np.asarray(self._head, dtype=float).reshape(-1, 3),
        )
        ok, why = exercise_success(self.plan, measures)
        return measures, ok, why


def exercise_tracker(trial: Any, level: int) -> ExerciseTracker | None:
    """The tracker of an exercise trial, ``None`` for any other trial."""
    plan = exercise_plan(trial, level)
    return None if plan is None else ExerciseTracker(plan)


def plan_from_events(events: Sequence[Mapping[str, str]]) -> ExercisePlan | None:
    """The plan recorded in a trial's ``events.csv`` rows (``None``: not an exercise)."""
    import json

    for event in events:
        if event.get("kind") == "exercise_plan" and event.get("source") == "session":
            return ExercisePlan.from_values(json.loads(event.get("values_json") or "{}"))
    return None


def measures_from_rows(
    plan: ExercisePlan, rows: Sequence[Mapping[str, str]]
) -> dict[str, float | None]:
    """An exercise trial's measures from its recorded ``state.csv`` rows, with its success.

    Adds ``exercise_success`` (1 or 0) to the measures of :func:`exercise_measures`.
    """
    from vrbalance.sessions.recorder import column

    if not rows:
        return {}
    t = column(rows, "t_s")
    cop = np.column_stack([column(rows, "cop_x_m"), column(rows, "cop_y_m")])
    loaded = np.array([r.get("plate_loaded") == "1" for r in rows])
    cop[~loaded] = np.nan
    head = np.column_stack(
        [column(rows, "head_x_m"), column(rows, "head_y_m"), column(rows, "head_z_m")]
    )
    measures = exercise_measures(plan, t, cop, head)
    ok, _ = exercise_success(plan, measures)
    return {**measures, "exercise_success": 1.0 if ok else 0.0}
