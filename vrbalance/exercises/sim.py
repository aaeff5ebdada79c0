"""The simulated person doing the exercises (demo, CI and reports without hardware).

- :class:`SimulatedWalker` is a head-pose source: a person walking the line
  heel to toe, turning and walking back, with a vertical head oscillation per
  step, lateral sway about the line, and scripted side-steps and stops. Its
  ground truth (:meth:`SimulatedWalker.truth`) is what the measures must find.
- :func:`leg_raise_script` and :func:`tai_chi_script` are scripts for the
  simulated person on the plate (:mod:`vrbalance.devices.simulator`): a leg
  raise moves the CoP onto the stance foot and holds it there; tai chi leans
  after the coach's target CoP with a known lag.

All are deterministic functions of time (and a seed), so a test can compare
the measures of a recorded run with the script that produced it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vrbalance.clock import Clock
from vrbalance.exercises.plan import RAISE_RAMP_S, ExercisePlan, raise_schedule
from vrbalance.samples import HeadPose

#: Tandem walking speed of the simulated person, m/s (healthy older adults
#: walk heel to toe at about 0.2-0.4 m/s).
SIM_WALK_SPEED_MPS = 0.3
#: Vertical head oscillation per step (peak to peak), m.
SIM_BOB_M = 0.012
#: Lateral sway of the head about the line: amplitude, m, and period, s.
SIM_SWAY_M = 0.02
SIM_SWAY_PERIOD_S = 3.7
#: Standing still before setting off, s; time to turn round at the far end, s.
SIM_START_S = 1.0
SIM_TURN_S = 2.0
#: A side-step: the head moves this far sideways in SIDE_STEP_RAMP_S, then
#: drifts back to the line over SIDE_STEP_RETURN_S.
SIM_SIDE_STEP_M = 0.12
SIDE_STEP_RAMP_S = 0.4
SIDE_STEP_RETURN_S = 4.0
#: The walker looks this far down, at the line a few steps ahead, deg.
SIM_GAZE_PITCH_DEG = -20.0
#: Length of a scripted stop, s.
SIM_STOP_S = 2.5
#: Lag of the simulated person behind the tai chi coach's target, s.
SIM_TAI_CHI_LAG_S = 0.5
#: How far the simulated leg raise moves the CoP towards the stance foot, m
#: (the foot centre is 8.5 cm from the stance centre; the CoP stays inside it).
SIM_RAISE_SHIFT_M = 0.06


@dataclass(frozen=True, slots=True)
class WalkTruth:
    """What the simulated walker really did (for the tests)."""

    steps: int
    side_steps: int
    stops: int
    lateral_rms_m: float
    lateral_max_m: float
    walk_end_s: float


class SimulatedWalker:
    """A person walking a line heel to toe, as head poses in stage space.

    Parameters
    ----------
    length_m : float
        The line's length, m (it runs from y = 0 along +y at x = 0).
    eye_height_m : float
        Standing eye height, m.
    clock : Clock
        Stamps ``received_time_s``; the walk starts at the first :meth:`pose_at`.
    step_length_m : float
        Heel-to-toe step: about one foot length, m.
    side_steps_at_m : tuple of float
        Positions along the way (0..2·length, out then back) of side-steps.
    stops_at_m : tuple of float
        Positions along the way of stops (:data:`SIM_STOP_S` each).
    speed_mps : float
        Walking speed along the line, m/s.
    seed : int
        Keyword-only; sets the phase of the sway.
    """

    def __init__(
        self,
        length_m: float,
        eye_height_m: float,
        clock: Clock,
        *,
        step_length_m: float = 0.26,
        side_steps_at_m: tuple[float, ...] = (),
        stops_at_m: tuple[float, ...] = (),
        speed_mps: float = SIM_WALK_SPEED_MPS,
        seed: int,
    ) -> None:
        self.length_m = float(length_m)
        self.eye_m = float(eye_height_m)
        self._clock = clock
        self.steps_each_way = max(1, round(self.length_m / step_length_m))
        self.step_m = self.length_m / self.steps_each_way
        self.speed = float(speed_mps)
        self.side_steps_at = tuple(sorted(side_steps_at_m))
        # A person stops with both feet down: at a step boundary.
        self.stops_at = tuple(sorted(round(s / self.step_m) * self.step_m for s in stops_at_m))
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
        self._sway_phase = float(rng.uniform(0, 2 * math.pi))
        self._t0: float | None = None
        # The timeline along the way s (0..2L): segments of (t_start, s_start, kind).
        self._plan = self._timeline()

    def _timeline(self) -> list[tuple[float, float, float, str]]:
        """``(t0, t1, s0, kind)`` pieces: ``walk`` moves s at speed, ``stop``/``turn`` hold it."""
        pieces: list[tuple[float, float, float, str]] = [(0.0, SIM_START_S, 0.0, "stand")]
        t, s = SIM_START_S, 0.0
        marks = sorted([(x, "stop") for x in self.stops_at] + [(self.length_m, "turn")])
        for at, kind in [*marks, (2 * self.length_m, "end")]:
            if at > s:
                dt = (at - s) / self.speed
                pieces.append((t, t + dt, s, "walk"))
                t, s = t + dt, at
            if kind == "end":
                break
            hold = SIM_TURN_S if kind == "turn" else SIM_STOP_S
            pieces.append((t, t + hold, s, kind))
            t += hold
        pieces.append((t, math.inf, s, "stand"))
        return pieces

    def along_at(self, t: float) -> tuple[float, bool]:
        """Distance along the way (out and back) at walk time ``t``, and whether walking."""
        for t0, t1, s0, kind in self._plan:
            if t0 <= t < t1:
                if kind == "walk":
                    return s0 + (t - t0) * self.speed, True
                return s0, False
        return 2 * self.length_m, False

    def position_at(self, t: float) -> tuple[float, float, float]:
        """Head position at walk time ``t`` (s from the first pose), m."""
        s, walking = self.along_at(t)
        y = s if s <= self.length_m else 2 * self.length_m - s
        # One head rise and fall per step: up at mid-step, down at heel strike.
        phase = (s / self.step_m) % 1.0 if walking else 0.0
        z = self.eye_m + 0.5 * SIM_BOB_M * (1.0 - math.cos(2 * math.pi * phase))
        x = SIM_SWAY_M * math.sin(2 * math.pi * t / SIM_SWAY_PERIOD_S + self._sway_phase)
        for at in self.side_steps_at:
            t_at = self.time_at(at)
            if t_at is None or t < t_at:
                continue
            dt = t - t_at
            if dt < SIDE_STEP_RAMP_S:
                u = dt / SIDE_STEP_RAMP_S
                x += SIM_SIDE_STEP_M * u * u * (3 - 2 * u)
            elif dt < SIDE_STEP_RAMP_S + SIDE_STEP_RETURN_S:
                x += SIM_SIDE_STEP_M * (1 - (dt - SIDE_STEP_RAMP_S) / SIDE_STEP_RETURN_S)
        return (x, y, z)

    def time_at(self, along_m: float) -> float | None:
        """Walk time at which the walker passes ``along_m`` (first time), s."""
        for t0, t1, s0, kind in self._plan:
            if kind == "walk" and s0 <= along_m <= s0 + (t1 - t0) * self.speed:
                return t0 + (along_m - s0) / self.speed
        return None

    @property
    def walk_end_s(self) -> float:
        """Walk time at which the walker is back at the start, s."""
        return self._plan[-1][0]

    def heading_at(self, t: float) -> float:
        """Where the walker faces at walk time ``t``: 0 along +y, pi back; turning between, rad."""
        for t0, t1, _, kind in self._plan:
            if t0 <= t < t1 and kind == "turn":
                u = (t - t0) / (t1 - t0)
                return math.pi * u * u * (3.0 - 2.0 * u)
        s, _ = self.along_at(t)
        return 0.0 if s < self.length_m else math.pi

    def pose_at(self, t_s: float) -> HeadPose | None:
        """The head pose at session time ``t_s`` (the walk starts at the first call).

        The head faces the way the walker goes (turning round at the far end)
        and looks :data:`SIM_GAZE_PITCH_DEG` down at the line.
        """
        if self._t0 is None:
            self._t0 = t_s
        t = t_s - self._t0
        yaw, pitch = self.heading_at(t), math.radians(SIM_GAZE_PITCH_DEG)
        cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
        cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
        # Yaw about z, then pitch about the head's x: q = q_yaw * q_pitch (x, y, z, w).
        quat = (cy * sp, sy * sp, sy * cp, cy * cp)
        return HeadPose(None, self._clock.now_s(), self.position_at(t), quat)

    def truth(self, until_s: float | None = None, rate_hz: float = 200.0) -> WalkTruth:
        """The walker's true steps, side-steps, stops and lateral deviation up to ``until_s``.

        Lateral deviation is taken over the walking span (first to last moving
        moment), as :func:`vrbalance.exercises.walk.walk_measures` takes it.
        """
        end = self.walk_end_s if until_s is None else min(until_s, self.walk_end_s)
        t = np.arange(SIM_START_S, end, 1.0 / rate_hz)
        x = np.array([self.position_at(float(v))[0] for v in t])
        s_end, _ = self.along_at(end)
        steps = math.floor(s_end / self.step_m + 0.5 - 1e-9)
        side = sum(1 for at in self.side_steps_at if at <= s_end)
        stops = sum(1 for at in self.stops_at if at < s_end)
        return WalkTruth(
            steps=steps,
            side_steps=side,
            stops=stops,
            lateral_rms_m=float(np.sqrt(np.mean(x**2))) if x.size else 0.0,
            lateral_max_m=float(np.abs(x).max()) if x.size else 0.0,
            walk_end_s=self.walk_end_s,
        )


def leg_raise_script(plan: ExercisePlan, duration_s: float) -> tuple[str, list[tuple[str, float]]]:
    """Simulator script of the leg raises, and the true ``(side, hold_s)`` of each.

    The person follows :func:`~vrbalance.exercises.plan.raise_schedule`: raising
    the left leg moves the CoP right, onto the right foot, by
    :data:`SIM_RAISE_SHIFT_M`, over :data:`RAISE_RAMP_S`; it is held ``hold_s``
    and the simulator's 1 s return ramp puts it down.
    """
    items: list[str] = []
    truth: list[tuple[str, float]] = []
    for cue in raise_schedule(plan, duration_s):
        sign = 1.0 if cue.side == "left" else -1.0
        items.append(
            f"lean@{cue.up_s:.4f}s:x={sign * SIM_RAISE_SHIFT_M:.4f}:y=0:ramp={RAISE_RAMP_S:.4f}"
            f":hold={plan.hold_s:.4f}"
        )
        truth.append((cue.side, plan.hold_s))
    return ",".join(items), truth


def tai_chi_script(plan: ExercisePlan, duration_s: float, lag_s: float = SIM_TAI_CHI_LAG_S) -> str:
    """Simulator script that follows the coach's target CoP ``lag_s`` late.

    One lean per keyframe interval: from the target at keyframe k to the target
    at k+1 over the interval (the simulator's smoothstep ramp is the coach's
    interpolation), started ``lag_s`` after the coach.
    """
    from vrbalance.exercises.coach import FULL_SHIFT_M, load_sequence

    seq = load_sequence(plan.sequence)
    items: list[str] = []
    period = seq.duration_s / plan.tempo
    n_loops = math.ceil(duration_s / period) if period > 0 else 1
    for loop in range(n_loops):
        for a, b in zip(seq.keyframes, seq.keyframes[1:], strict=False):
            t0 = loop * period + a.t_s / plan.tempo + lag_s
            if t0 >= duration_s:
                break
            ramp = (b.t_s - a.t_s) / plan.tempo
            x = plan.amplitude_frac * FULL_SHIFT_M[0] * b.value("cop_x")
            y = plan.amplitude_frac * FULL_SHIFT_M[1] * b.value("cop_y")
            items.append(f"lean@{t0:.4f}s:x={x:.4f}:y={y:.4f}:ramp={ramp:.4f}:hold=1000")
    return ",".join(items)


def exercise_script(trial: Any, level: int) -> str:
    """The simulator script for an exercise trial on the plate ('' for the others)."""
    from vrbalance.exercises.plan import exercise_plan

    plan = exercise_plan(trial, level)
    if plan is None:
        return ""
    if plan.task == "leg_raise":
        return leg_raise_script(plan, trial.duration_s)[0]
    if plan.task == "tai_chi":
        return tai_chi_script(plan, trial.duration_s)
    return ""


def walker_for(trial: Any, eye_height_m: float, clock: Clock, *, seed: int) -> SimulatedWalker:
    """The simulated walker of a tandem-walk trial at its level.

    Harder levels cost the simulated person its balance now and then: from
    level 6 (a beam) one side-step on the way back, from level 9 also a stop
    half-way out, so the director sees failures as it climbs.
    """
    length = float(trial.walk_length_m)
    level = int(trial.level or 1)
    side = (1.5 * length,) if level >= 6 else ()
    stops = (0.5 * length,) if level >= 9 else ()
    return SimulatedWalker(
        length, eye_height_m, clock, side_steps_at_m=side, stops_at_m=stops, seed=seed
    )
