"""The runner on the simulated patient: operator controls, safety stops, end reasons, records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vrbalance.sessions.recorder import read_rows, read_sidecar
from vrbalance.sessions.runner import DEFAULT_RATE_HZ, Command, EndReason, OperatorControls


@pytest.mark.slow
def test_operator_pause_repeat_skip_stop(
    run_session: Callable[..., Any], quiet: Callable[..., Any]
) -> None:
    controls = OperatorControls()
    controls.send(Command.PAUSE, at_trial_s=0.2, trial=0)
    controls.send(Command.RESUME, at_trial_s=0.7, trial=0)
    controls.send(Command.REPEAT, at_trial_s=0.3, trial=1)
    controls.send(Command.SKIP, at_trial_s=0.2, trial=2)
    controls.send(Command.STOP, at_trial_s=0.2, trial=3)
    result = run_session(
        [quiet("a", 1.0), quiet("b", 1.0), quiet("c", 1.0), quiet("d", 1.0)], controls=controls
    )
    assert [t.trial.name for t in result.trials] == ["a", "b", "b", "c"]
    assert [t.end_reason for t in result.trials] == [
        EndReason.COMPLETED,
        EndReason.OPERATOR_ABORT,
        EndReason.OPERATOR_ABORT,
        EndReason.OPERATOR_ABORT,
    ]
    assert result.end_reason is EndReason.OPERATOR_ABORT
    events = read_rows(result.folder / "events.csv")
    # Trial "a" ran 1 s of active time around a 0.5 s pause. Checked on the loop's
    # own tick times (a busy machine may skip deadlines, moving when things happen
    # but not the rule): the pause and the resume land on the first ticks at or
    # after 0.2 s and 0.7 s of trial time, and the trial ends on the first tick
    # whose active (unpaused) time reaches its 1 s.
    first = result.trials[0]
    times = [float(s["t_s"]) for s in read_rows(result.folder / "state.csv") if s["trial"] == "0"]
    ops = {e["kind"]: float(e["t_s"]) for e in events if e["trial"] == "0"}
    for kind, at_s in (("pause", 0.2), ("resume", 0.7)):
        i = times.index(ops[kind])
        assert times[i] - first.start_t_s >= at_s > times[i - 1] - first.start_t_s
    assert ops["resume"] - ops["pause"] >= 0.5
    paused_s = ops["resume"] - ops["pause"]
    done_s = 1.0 - 0.5 / DEFAULT_RATE_HZ  # the runner's rule: half a tick before the end

    def active(t_s: float) -> float:
        return t_s - first.start_t_s - paused_s

    assert first.end_t_s == times[-1]
    assert active(times[-1]) >= done_s > active(times[-2])
    operator = [(e["trial"], e["kind"]) for e in events if e["source"] == "operator"]
    assert operator == [
        ("0", "pause"),
        ("0", "resume"),
        ("1", "repeat"),
        ("2", "skip"),
        ("3", "stop"),
    ]
    meta = read_sidecar(result.folder)
    assert meta["end_reason"] == "operator_abort"
    assert [t["end_reason"] for t in read_rows(result.folder / "trials.csv")] == [
        "completed",
        "operator_abort",
        "operator_abort",
        "operator_abort",
    ]


@pytest.mark.slow
def test_a_fall_is_a_safety_stop_and_the_session_goes_on(
    run_session: Callable[..., Any], quiet: Callable[..., Any]
) -> None:
    result = run_session(
        [quiet("fall", 4.0), quiet("next", 0.3)], script="fall@0.4s", seconds_scale=0.05
    )
    fall, nxt = result.trials
    assert fall.end_reason is EndReason.SAFETY_STOP
    assert fall.end_t_s - fall.start_t_s < 3.0  # stopped well before the planned 4 s
    assert fall.safety_triggered
    # The session goes on after a stop; this trial ends before its scripted fall.
    assert nxt.end_reason is EndReason.COMPLETED and result.end_reason is EndReason.COMPLETED
    events = read_rows(result.folder / "events.csv")
    alarms = [e for e in events if e["source"] == "safety" and e["severity"] == "alarm"]
    assert alarms and all(e["trial"] == "0" for e in alarms)
    states = read_rows(result.folder / "state.csv")
    assert "stop_trial" in {s["response"] for s in states}


@pytest.mark.slow
def test_emergency_stop_ends_the_trial_as_operator_abort(
    run_session: Callable[..., Any], quiet: Callable[..., Any]
) -> None:
    controls = OperatorControls()
    controls.send(Command.EMERGENCY_STOP, at_trial_s=0.3, trial=0)
    result = run_session([quiet("estop", 3.0)], controls=controls, seconds_scale=0.05)
    (trial,) = result.trials
    assert trial.end_reason is EndReason.OPERATOR_ABORT
    # Counted in loop ticks, not wall seconds: on a busy machine the loop may skip
    # deadlines, which moves tick times but not the order of ticks. The command is
    # applied on the first tick at or after 0.3 s of trial time ...
    states = read_rows(result.folder / "state.csv")
    events = read_rows(result.folder / "events.csv")
    (pressed,) = [e for e in events if e["source"] == "operator"]
    assert pressed["kind"] == "emergency_stop"
    tick_times = [float(s["t_s"]) for s in states]
    pressed_i = tick_times.index(float(pressed["t_s"]))
    assert (
        tick_times[pressed_i] - trial.start_t_s >= 0.3 > tick_times[pressed_i - 1] - trial.start_t_s
    )
    # ... and the monitor stops the trial on the very next tick, which is the last one.
    assert len(states) == pressed_i + 2
    assert [s["estop"] for s in states[pressed_i:]] == ["0", "1"]
    assert states[-1]["response"] == "stop_trial"
    assert trial.end_t_s == tick_times[-1]


def test_commands_are_typed() -> None:
    with pytest.raises(TypeError, match=r"command: expected Command, got 'skip'"):
        OperatorControls().send("skip")  # type: ignore[arg-type]


@pytest.mark.slow
def test_director_adapts_between_trials_from_where_the_last_session_ended(
    run_session: Callable[..., Any], quiet: Callable[..., Any]
) -> None:
    trials = [
        quiet("Baseline", 0.6),
        quiet("walk 1", 0.4, director=True, level=None),
        quiet("walk 2", 0.4, director=True, level=None),
    ]
    result = run_session(trials, start_levels={"park": 3})
    levels = [t.level for t in result.trials]
    assert levels[:2] == [1, 3]  # the director trials start where the last session ended
    assert levels[2] in (2, 3)  # a failure lowers by one; one success does not raise yet
    events = read_rows(result.folder / "events.csv")
    director = [e for e in events if e["source"] == "director"]
    assert [e["kind"] for e in director[:2]] == ["reset", "baseline"]
    outcomes = [e["message"] for e in director if e["kind"] == "trial_outcome"]
    assert len(outcomes) == 2 and "at level 3 of park" in outcomes[0]
    rows = read_rows(result.folder / "trials.csv")
    assert [r["director"] for r in rows] == ["0", "1", "1"]
    ends = [e for e in events if e["kind"] == "trial_end"]
    assert len(ends) == 3 and all('"ticks":' in e["values_json"] for e in ends)


def test_a_failure_closes_the_recording_as_failed_and_propagates(
    tmp_path: Any, quiet: Callable[..., Any]
) -> None:
    from vrbalance.clock import MonotonicClock
    from vrbalance.config.plates import load_plate
    from vrbalance.samples import PlateFrame
    from vrbalance.sessions.protocol import Protocol
    from vrbalance.sessions.runner import SessionRunner
    from vrbalance.sessions.store import Patient

    class WrongPlate:
        """A plate whose driver hands out six-axis frames for a four-cell plate (a bug)."""

        plate_id = "wii-balance-board"
        plate = load_plate("wii-balance-board")

        def open_trial(self, index: int, trial: Any) -> tuple[Any, None]:
            return self, None

        def drain(self) -> list[PlateFrame]:
            return [PlateFrame(1, None, 0.0, (0.0, 0.0, 700.0, 0.0, 0.0, 0.0), "six_axis")]

        def drain_events(self) -> list[Any]:
            return []

        def close_trial(self) -> None:
            return None

        def close(self) -> None:
            return None

    folder = tmp_path / "P" / "s"
    runner = SessionRunner(
        Protocol("p", "p", "", (quiet("a", 0.5),)),
        Patient("P", mass_kg=71.0),  # the plate's 700 N: the load check lets it start
        folder=folder,
        session_id="s",
        devices=WrongPlate(),
        clock=MonotonicClock(),
    )
    with pytest.raises(ValueError, match=r"plate frame seq 1: expected kind 'cells4'"):
        runner.run()
    meta = read_sidecar(folder)
    assert meta["status"] == "failed" and meta["end_reason"] == "error"
    (end,) = [e for e in read_rows(folder / "events.csv") if e["kind"] == "session_end"]
    assert end["severity"] == "alarm" and "ValueError" in end["message"]


def test_an_unplugged_plate_is_plate_lost_through_the_shared_mapping(
    run_session: Callable[..., Any], quiet: Callable[..., Any]
) -> None:
    """The driver's ``lost`` reaches the monitor as ``plate_lost`` (``plate_status``)."""
    result = run_session([quiet("unplug", 4.0)], script="unplug@0.5s", seconds_scale=0.05)
    (trial,) = result.trials
    events = read_rows(result.folder / "events.csv")
    kinds = [(e["source"], e["kind"]) for e in events]
    assert ("safety", "plate_lost") in kinds, kinds
    assert trial.end_t_s - trial.start_t_s < 3.0
    states = read_rows(result.folder / "state.csv")
    assert states[-1]["response"] == "stop_trial"


class _TunedWorld:
    """A rendering world (not the NullWorld) that notes the GIL switch interval per frame."""

    def __init__(self) -> None:
        self.switch_intervals_s: list[float] = []

    def begin_trial(self, trial: Any, level: int) -> None:
        return None

    def frame(self, state: Any, calm: bool, surround_pitch_rad: float) -> None:
        import sys

        self.switch_intervals_s.append(sys.getswitchinterval())

    def end_trial(self) -> None:
        return None

    def close(self) -> None:
        return None


def test_the_loop_thread_is_tuned_when_the_runner_renders(run_with_world, quiet) -> None:
    """RECOMMENDED_TUNING reaches the loop beside a renderer; the NullWorld runs untuned."""
    import sys

    from vrbalance.realtime.pipeline import RECOMMENDED_TUNING

    before_s = sys.getswitchinterval()
    world = _TunedWorld()
    run_with_world(world, [quiet("a", 0.4)], render_fps=100.0)
    # While the loop ran (with the tuning), the process-wide switch interval was the
    # recommended one; it is restored after.
    assert world.switch_intervals_s
    assert RECOMMENDED_TUNING["gil_switch_interval_s"] in world.switch_intervals_s
    assert sys.getswitchinterval() == before_s


def test_start_gate_hands_its_newest_frame_to_the_first_judged_tick() -> None:
    from vrbalance.samples import PlateFrame
    from vrbalance.sessions.runner import _GateCarryOver

    def frame(seq: int) -> PlateFrame:
        return PlateFrame(seq, None, seq * 0.01, (100.0, 100.0, 100.0, 100.0))

    class Plate:
        def __init__(self, batches: list[list[PlateFrame]]) -> None:
            self.batches = batches

        def drain(self) -> list[PlateFrame]:
            return self.batches.pop(0) if self.batches else []

        def drain_events(self) -> list[Any]:
            return []

    carry = _GateCarryOver(Plate([[frame(1), frame(2)], [], [frame(3)]]))
    assert carry.hold_newest() is True  # gate tick with frames: keeps only the newest
    assert carry.hold_newest() is False  # a gate tick without frames keeps what it had
    # First judged tick: the held frame, then whatever arrived since.
    assert [f.seq for f in carry.drain()] == [2, 3]
    assert carry.drain() == []  # handed over once


def test_no_trial_starts_with_a_stale_plate(
    run_session: Callable[..., Any], quiet: Callable[..., Any]
) -> None:
    """A 100 Hz plate under the 250 Hz loop sends nothing in most ticks: the first
    judged tick must still see a frame, or every other trial would open calm."""
    # The default time scale: 0.3 s rests between trials (the rest is not what is tested).
    result = run_session([quiet(f"q{i}", 0.5) for i in range(4)])
    events = read_rows(result.folder / "events.csv")
    assert [e["kind"] for e in events].count("inputs_streaming") == 4
    # The first judged tick of every trial has a fresh frame. (Later ticks may go
    # stale when this shared machine starves the plate's thread for 50 ms: that
    # is the monitor doing its job, not the start gate's failure.)
    first: dict[str, str] = {}
    for row in read_rows(result.folder / "state.csv"):
        first.setdefault(row["trial"], row["t_s"])
    assert len(first) == 4
    stale_at_start = [
        e
        for e in events
        if e["kind"] in ("plate_stale", "calm") and e["t_s"] == first.get(e["trial"])
    ]
    assert stale_at_start == []


def test_every_shipped_protocol_is_checked_against_the_default_envelope() -> None:
    """All but the narrow-stance protocols fit a new patient; those two say how to allow them."""
    from vrbalance.director.envelope import default_envelope
    from vrbalance.errors import ConfigError
    from vrbalance.sessions.protocol import list_protocols, load_protocol
    from vrbalance.sessions.runner import check_protocol

    envelope = default_envelope()
    refused = {}
    for name in list_protocols():
        try:
            check_protocol(load_protocol(name), envelope, patient_id="P1")
        except ConfigError as exc:
            refused[name] = str(exc)
    assert sorted(refused) == ["single_leg", "tandem"]
    assert refused["tandem"].endswith(
        "run: vrbalance patient set-envelope P1 --allowed-stances feet_apart,feet_together,tandem"
    )


class _PitchWorld(_TunedWorld):
    """A rendering world that notes the surround pitch it is asked to show."""

    def __init__(self) -> None:
        super().__init__()
        self.pitches_rad: list[float] = []

    def frame(self, state: Any, calm: bool, surround_pitch_rad: float) -> None:
        self.pitches_rad.append(surround_pitch_rad)


def test_the_sway_referenced_surround_never_tilts_past_the_envelope(tmp_path, quiet) -> None:
    """A lean of about 5 deg in SOT 3: the surround follows it only up to max_surround_tilt_deg."""
    import math

    from vrbalance.balance.geometry import Body
    from vrbalance.clock import MonotonicClock
    from vrbalance.sessions.protocol import Protocol
    from vrbalance.sessions.runner import SessionRunner, SimulatedDevices
    from vrbalance.sessions.store import Patient

    patient = Patient("T1", height_m=1.70, mass_kg=70.0)
    clock = MonotonicClock()
    world = _PitchWorld()
    trial = quiet("SOT 3", 1.5, surround="sway_referenced")
    lean = "lean@0.1s:y=0.08:ramp=0.3:hold=5"  # CoM 8 cm forward of 0.94 m: about 5 deg
    SessionRunner(
        Protocol(name="t", title="t", description="", trials=(trial,)),
        patient,
        folder=tmp_path / "s",
        session_id="s",
        devices=SimulatedDevices("wii-balance-board", Body(1.70, 70.0), clock, seed=3,
                                 extra_script=lean),
        clock=clock,
        world=world,
        render_fps=60.0,
        seconds_scale=0.05,
    ).run()  # fmt: skip
    cap_rad = math.radians(3.0)  # the default envelope's max_surround_tilt_deg
    assert max(abs(p) for p in world.pitches_rad) == pytest.approx(cap_rad)


class _CallLog:
    """A rendering world that logs the runner's calls, and a desktop-style head wrapper."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.wrapped: list[Any] = []

    def begin_trial(self, trial: Any, level: int) -> None:
        self.calls.append(("begin", trial.name))

    def frame(self, state: Any, calm: bool, surround_pitch_rad: float) -> None:
        self.calls.append(("frame", (state is not None, calm)))

    def end_trial(self) -> None:
        self.calls.append(("end", None))

    def wrap_head(self, head: Any) -> Any:
        self.wrapped.append(head)
        return head

    def close(self) -> None:
        self.calls.append(("close", None))


def test_the_world_keeps_drawing_calm_through_the_rest_and_may_wrap_the_head(
    run_with_world, quiet
) -> None:
    """Between trials the window stays alive (and a headset keeps its frame loop), calm."""
    world = _CallLog()
    # The envelope's 30 s rest, scaled by 0.01: 0.3 s.
    run_with_world(world, [quiet("a", 0.3), quiet("b", 0.3)], render_fps=50.0)
    names = [c[0] for c in world.calls]
    first_end, second_begin = names.index("end"), names.index("begin", 1)
    rest = world.calls[first_end + 1 : second_begin]
    # 0.3 s of rest at 50 frames/s: a dozen frames at least, each without a state and calm.
    assert len(rest) >= 10 and set(rest) == {("frame", (False, True))}
    # Each trial's head (the simulated person's) went through the world's wrapper.
    assert len(world.wrapped) == 2 and all(h is not None for h in world.wrapped)


class _RecenterCounter(_CallLog):
    def recenter(self) -> None:
        self.calls.append(("recenter", None))


def test_recenter_is_refused_during_a_walk_and_recorded(run_with_world, quiet) -> None:
    """The walking corridor is judged where the line is painted: the view must not move."""
    from vrbalance.sessions.recorder import read_rows
    from vrbalance.sessions.runner import Command, OperatorControls

    controls = OperatorControls()
    controls.send(Command.RECENTER, at_trial_s=0.1, trial=0)
    controls.send(Command.RECENTER, at_trial_s=0.1, trial=1)
    world = _RecenterCounter()
    from dataclasses import replace

    walk = replace(
        quiet("walk", 0.6), scene="tandem_walk", task="tandem_walk", plate=False, walk_length_m=3.0
    )
    result = run_with_world(world, [walk, quiet("stand", 0.4)], render_fps=50.0, controls=controls)
    events = read_rows(result.folder / "events.csv")
    refused = [e for e in events if e["kind"] == "command_refused"]
    assert [e["trial"] for e in refused] == ["0"]
    assert "recenter refused during a walk" in refused[0]["message"]
    # The standing trial's recentre reached the view, the walk's never did.
    assert [c for c in world.calls if c[0] == "recenter"] == [("recenter", None)]
    recorded = [e["trial"] for e in events if (e["source"], e["kind"]) == ("operator", "recenter")]
    assert recorded == ["0", "1"]
