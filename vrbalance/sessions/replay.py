"""Replay a recording through the same pipeline: same estimator, same monitor, same result.

The recording holds every input the balance core and the safety monitor saw,
tagged with the tick that consumed it: the plate frames drained at each tick
(``plate.csv``), the head pose handed over (``head.csv``), the tick times and
the status the monitor was told (``state.csv``: plate status, emergency stop).
Floats are written with :func:`repr`, so they come back bit for bit. Feeding
them tick by tick, on a :class:`~vrbalance.clock.ManualClock` set to each
recorded tick time, through the same per-tick composition the runner uses
(:meth:`vrbalance.realtime.pipeline.BalanceLoop.tick`) into a fresh
:class:`~vrbalance.balance.estimator.BalanceEstimator` per trial and one
:class:`~vrbalance.director.monitor.SafetyMonitor` (reset at each trial start,
as the runner does) reproduces every :class:`BalanceState` and every safety
event exactly. :func:`replay_session` checks that and says where it differs.

A recording cut short (a crash, a kill) is replayed up to the last tick that
every stream still holds.

With a world it can also render the session again (``vrbalance replay SESSION
--render --out DIR`` writes PNG frames).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vrbalance.balance.state import BalanceState
from vrbalance.clock import ManualClock
from vrbalance.events import Event
from vrbalance.samples import HeadPose
from vrbalance.sessions.protocol import Trial
from vrbalance.sessions.recorder import (
    RecordingError,
    event_from_row,
    head_pose_from_row,
    plate_frame_from_row,
    read_rows,
    read_sidecar,
    state_from_row,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay produced and how it compares with the recording.

    Attributes
    ----------
    states : tuple of BalanceState
        Every replayed state, in order.
    safety_events : tuple of Event
        Every event the replayed monitor raised.
    recorded_safety_events : tuple of Event
        The monitor's events in the recording.
    mismatched_states : int
        Ticks whose replayed state differs from the recorded one.
    first_mismatch : str or None
        A description of the first difference.
    frames_rendered : int
        PNG frames written (0 without ``render``).
    """

    states: tuple[BalanceState, ...]
    safety_events: tuple[Event, ...]
    recorded_safety_events: tuple[Event, ...]
    mismatched_states: int
    first_mismatch: str | None
    frames_rendered: int = 0

    @property
    def identical(self) -> bool:
        """Same states and same safety events as the recording."""
        return self.mismatched_states == 0 and self.safety_events == self.recorded_safety_events


class _RecordedFeed:
    """Plate feed and head source that hand out what the recording says this tick got."""

    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.pose: HeadPose | None = None

    def drain(self) -> list[Any]:
        frames, self.frames = self.frames, []
        return frames

    def pose_at(self, t_s: float) -> HeadPose | None:
        return self.pose


def _common_prefix(
    states: list[dict[str, str]],
    plate_rows: list[dict[str, str]],
    head_rows: list[dict[str, str]],
    event_rows: list[dict[str, str]],
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The ticks every stream of a recording cut short still holds.

    The streams are separate files; a kill can land after one was written
    further than another. Replay those ticks only (at most the last flush
    interval is dropped), and the events up to the last of them.
    """

    def last(rows: list[dict[str, str]]) -> tuple[int, int] | None:
        return (int(rows[-1]["trial"]), int(rows[-1]["tick"])) if rows else None

    ends = [e for e in (last(states), last(plate_rows), last(head_rows)) if e is not None]
    if not ends:
        return states, event_rows
    cut = min(ends)
    kept = [r for r in states if (int(r["trial"]), int(r["tick"])) <= cut]
    if len(kept) < len(states):
        log.info("recording cut short: replaying %d of %d ticks", len(kept), len(states))
    t_end = float(kept[-1]["t_s"]) if kept else -math.inf
    return kept, [e for e in event_rows if float(e["t_s"]) <= t_end]


def _trial_from_meta(meta: dict[str, Any], trial_row: dict[str, str] | None) -> Trial | None:
    if trial_row is None:
        return None
    # The protocol in the sidecar has every field (an exercise's task, line, sequence).
    for planned in (meta.get("protocol") or {}).get("trials") or []:
        if planned.get("name") == trial_row["name"]:
            fields = Trial.__dataclass_fields__  # type: ignore[attr-defined]
            try:
                return Trial(**{k: v for k, v in planned.items() if k in fields})
            except TypeError:
                break  # an older sidecar: the trials.csv row below
    return Trial(
        name=trial_row["name"],
        kind=trial_row["kind"],
        scene=trial_row["scene"],
        stance=trial_row["stance"],
        duration_s=float(trial_row["planned_s"]),
        eyes=trial_row["eyes"],
        surface=trial_row["surface"],
        surround=trial_row["surround"],
        assessment=trial_row["assessment"],
        condition=int(trial_row["condition"] or 0),
    )


def replay_session(
    folder: Path,
    *,
    world: Any = None,
    out_dir: Path | None = None,
    fps: float = 5.0,
    on_progress: Callable[[float], None] | None = None,
) -> ReplayResult:
    """Feed a recording back through the estimator and the safety monitor.

    Parameters
    ----------
    folder : Path
        A session recording (complete or cut short by a crash).
    world : SessionWorld, optional
        Renders the replay; with ``out_dir``, ``fps`` frames per session-second
        are saved as ``frame_00000.png``...
    on_progress : callable, optional
        Called with the fraction done (for a progress bar).

    Raises
    ------
    FileNotFoundError, RecordingError
        Not a session folder, or damaged files.
    """
    from vrbalance.balance.estimator import BalanceEstimator
    from vrbalance.balance.geometry import Body
    from vrbalance.balance.stance import make_stance
    from vrbalance.config.plates import load_foot_template, load_plate
    from vrbalance.director.envelope import SafetyEnvelope
    from vrbalance.director.monitor import Corridor, MonitorStatus, PlateStatus, SafetyMonitor
    from vrbalance.exercises.live import plan_from_events
    from vrbalance.realtime.pipeline import BalanceLoop

    folder = Path(folder)
    meta = read_sidecar(folder)
    try:
        body = Body(**meta["body"])
        plate_id = (meta.get("plate") or {}).get("id")
        # A headset-only session (no plate) recorded its plate as None.
        geometry = load_plate(plate_id).geometry if plate_id else None
        template = load_foot_template(meta.get("foot_template", "adult"))
        envelope = SafetyEnvelope.from_dict(meta.get("envelope") or {}, where=str(folder))
        origin_s = float(meta["clock_origin_s"])
    except KeyError as exc:
        raise RecordingError(f"{folder}: sidecar lacks {exc} needed for a replay") from exc
    states = read_rows(folder / "state.csv")
    plate_rows = read_rows(folder / "plate.csv")
    head_rows = read_rows(folder / "head.csv")
    event_rows = read_rows(folder / "events.csv")
    trial_rows = {int(r["trial"]): r for r in read_rows(folder / "trials.csv")}
    if meta.get("status") == "recording":
        states, event_rows = _common_prefix(states, plate_rows, head_rows, event_rows)

    frames_at: dict[tuple[int, int], list[Any]] = {}
    for r in plate_rows:
        frames_at.setdefault((int(r["trial"]), int(r["tick"])), []).append(plate_frame_from_row(r))
    head_at = {(int(r["trial"]), int(r["tick"])): head_pose_from_row(r) for r in head_rows}
    starts: dict[int, dict[str, Any]] = {}
    for r in event_rows:
        if r["kind"] == "trial_start" and r["source"] == "session":
            starts[int(r["trial"])] = json.loads(r["values_json"] or "{}")
    recorded_events = tuple(event_from_row(r) for r in event_rows if r["source"] == "safety")
    # Walking trials: the monitor judged them with their corridor (docs/exercises.md).
    corridors: dict[int, Any] = {}
    for r in event_rows:
        plan = plan_from_events([r])
        if plan is not None and plan.task == "tandem_walk":
            corridors[int(r["trial"])] = Corridor(plan.walk_length_m)

    monitor = SafetyMonitor(envelope)
    clock = ManualClock(float(states[0]["t_s"]) if states else 0.0)
    rate_hz = float(meta.get("rate_hz", 250.0))
    feed = _RecordedFeed()
    status_now = [MonitorStatus()]

    def judge(state: BalanceState) -> Any:
        return monitor.step(state, status_now[0])

    balance: Any = None
    replayed: list[BalanceState] = []
    events: list[Event] = []
    mismatches = 0
    first: str | None = None
    current_trial: int | None = None
    estimator: Any = None
    trial_t0 = 0.0
    head_expected = True
    frame_period = 1.0 / fps
    next_frame_t = -1.0
    frames_rendered = 0
    n = len(states)
    for i, row in enumerate(states):
        trial_idx = int(row["trial"])
        t_s = float(row["t_s"])
        if trial_idx != current_trial:
            current_trial = trial_idx
            stance = make_stance(row["stance"], body, template)
            estimator = BalanceEstimator(stance, body, geometry)
            balance = BalanceLoop(
                estimator,
                clock=clock,
                rate_hz=rate_hz,
                plate=feed,
                head=feed,
                monitor=judge,
                name="replay",
            )
            monitor.request_reset()
            trial_t0 = t_s
            head_expected = bool(starts.get(trial_idx, {}).get("head_expected", True))
            if world is not None:
                trial = _trial_from_meta(meta, trial_rows.get(trial_idx))
                if trial is not None:
                    world.begin_trial(trial, int(float(row["level"] or 1)))
        if t_s > clock.now_s():
            clock.advance(t_s - clock.now_s())
        tick = int(row["tick"])
        feed.frames = frames_at.get((trial_idx, tick), [])
        feed.pose = head_at.get((trial_idx, tick))
        status_now[0] = MonitorStatus(
            plate=PlateStatus(row["plate_status"] or "none"),
            head_expected=head_expected,
            emergency_stop=row["estop"] == "1",
            trial_elapsed_s=t_s - trial_t0,
            session_elapsed_s=t_s - origin_s,
            corridor=corridors.get(trial_idx),
        )
        result = balance.tick(tick, clock.now_s())
        state, verdict = result.state, result.verdict
        events.extend(verdict.events)
        replayed.append(state)
        recorded = state_from_row(row)
        if state != recorded:
            mismatches += 1
            if first is None:
                first = f"trial {trial_idx} tick {tick}: recorded {recorded}, replayed {state}"
        if world is not None and t_s >= next_frame_t:
            next_frame_t = t_s + frame_period
            sway_ref = trial_rows.get(trial_idx, {}).get("surround") == "sway_referenced"
            pitch = (state.sway_angle_ap_rad or 0.0) if sway_ref else 0.0
            world.frame(state, verdict.calm, pitch)
            if out_dir is not None:
                world.screenshot(Path(out_dir) / f"frame_{frames_rendered:05d}.png")
            frames_rendered += 1
        if on_progress is not None and i % 250 == 0:
            on_progress(i / n)
    if on_progress is not None:
        on_progress(1.0)
    return ReplayResult(
        states=tuple(replayed),
        safety_events=tuple(events),
        recorded_safety_events=recorded_events,
        mismatched_states=mismatches,
        first_mismatch=first,
        frames_rendered=frames_rendered,
    )
