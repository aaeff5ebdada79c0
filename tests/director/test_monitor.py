"""The safety monitor: every trigger fires, none fires on clean quiet stance, same-tick calm."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vrbalance.balance.state import BalanceState
from vrbalance.director.envelope import MonitorThresholds, SafetyEnvelope
from vrbalance.director.monitor import (
    TRIGGER_RESPONSE,
    HeadsetStatus,
    MonitorMemory,
    MonitorStatus,
    PlateStatus,
    Response,
    SafetyMonitor,
    Trigger,
    evaluate,
    plate_status,
)
from vrbalance.director.probe import MonitorProbe, synthetic_stream

ENV = SafetyEnvelope()


def run(
    name: str,
    *,
    envelope: SafetyEnvelope = ENV,
    status: MonitorStatus | None = None,
    rate_hz: float = 250.0,
) -> tuple[MonitorProbe, int | None]:
    scenario = synthetic_stream(name, rate_hz=rate_hz)
    probe = MonitorProbe(SafetyMonitor(envelope, status=status))
    probe.run(scenario.states)
    return probe, scenario.onset_tick


def fired(probe: MonitorProbe) -> set[Trigger]:
    return {t for v in probe.verdicts for t in v.triggers}


# Scenario -> (trigger that must fire, response it must reach, the latest tick
# after onset it may take at 250 Hz: 0 for instantaneous conditions).
TRIGGER_TABLE = [
    ("near_edge", Trigger.MARGIN_NEAR_EDGE, Response.WARN, 0),
    ("lean_out", Trigger.MARGIN_AT_EDGE, Response.CALM, 120),
    ("lean_out", Trigger.MARGIN_AT_EDGE_LONG, Response.STOP_TRIAL, 250),
    ("head_fall", Trigger.HEAD_FALL_VELOCITY, Response.STOP_TRIAL, 40),
    ("head_fall", Trigger.HEAD_HEIGHT_DROP, Response.STOP_TRIAL, 60),
    ("head_drop_slow_fall", Trigger.HEAD_HEIGHT_DROP, Response.STOP_TRIAL, 150),
    ("step_off", Trigger.CONTACT_LOST, Response.STOP_TRIAL, 0),
    ("load_collapse", Trigger.LOAD_COLLAPSE, Response.STOP_TRIAL, 0),
    ("cop_jump", Trigger.COP_JUMP, Response.STOP_TRIAL, 0),
    ("cop_off_bos", Trigger.COP_OFF_BOS, Response.STOP_TRIAL, 0),
    ("plate_stale", Trigger.PLATE_STALE, Response.CALM, 0),
    ("head_stale", Trigger.HEAD_STALE, Response.CALM, 0),
    ("head_lost", Trigger.HEAD_LOST, Response.CALM, 0),
]


@pytest.mark.parametrize(("scenario", "trigger", "response", "max_ticks"), TRIGGER_TABLE)
def test_every_stream_trigger_fires(
    scenario: str, trigger: Trigger, response: Response, max_ticks: int
) -> None:
    probe, onset = run(scenario)
    assert onset is not None
    first = next(v.tick for v in probe.verdicts if trigger in v.triggers)
    assert onset <= first <= onset + max_ticks
    assert TRIGGER_RESPONSE[trigger] == response
    assert probe.verdicts[first].response >= response
    # Nothing fires before the condition starts.
    assert all(v.response == Response.NONE for v in probe.verdicts[:onset])
    # The onset event names the trigger, with the tick and response in its values.
    event = next(e for e in probe.events if e.kind == trigger.value)
    assert event.source == "safety"
    assert event.values["tick"] == first
    assert event.values["response"] == TRIGGER_RESPONSE[trigger].label


def test_slow_descent_is_a_drop_not_a_fall_velocity() -> None:
    probe, _ = run("head_drop_slow_fall")
    assert Trigger.HEAD_HEIGHT_DROP in fired(probe)
    assert Trigger.HEAD_FALL_VELOCITY not in fired(probe)


@pytest.mark.parametrize(
    ("status", "trigger"),
    [
        (MonitorStatus(plate=PlateStatus.LOST), Trigger.PLATE_LOST),
        (MonitorStatus(plate=PlateStatus.STALLED), Trigger.PLATE_STALLED),
        (MonitorStatus(headset=HeadsetStatus.UNFOCUSED), Trigger.HEADSET_UNFOCUSED),
        (MonitorStatus(headset=HeadsetStatus.LOST), Trigger.HEADSET_LOST),
        (MonitorStatus(emergency_stop=True), Trigger.EMERGENCY_STOP),
        (MonitorStatus(trial_elapsed_s=ENV.max_trial_s + 0.01), Trigger.TRIAL_TIME_LIMIT),
        (MonitorStatus(session_elapsed_s=ENV.max_session_s + 1), Trigger.SESSION_TIME_LIMIT),
    ],
)
def test_every_status_trigger_fires_on_the_first_tick(
    status: MonitorStatus, trigger: Trigger
) -> None:
    state = synthetic_stream("quiet").states[0]
    memory, verdict = evaluate(MonitorMemory(), state, status, ENV)
    assert trigger in verdict.triggers
    assert verdict.response == TRIGGER_RESPONSE[trigger]
    assert memory.latched == TRIGGER_RESPONSE[trigger]
    kinds = [e.kind for e in verdict.events]
    assert kinds == [trigger.value, TRIGGER_RESPONSE[trigger].label]


def test_every_trigger_is_covered_by_a_test() -> None:
    status_triggers = {
        Trigger.PLATE_LOST,
        Trigger.PLATE_STALLED,
        Trigger.HEADSET_UNFOCUSED,
        Trigger.HEADSET_LOST,
        Trigger.EMERGENCY_STOP,
        Trigger.TRIAL_TIME_LIMIT,
        Trigger.SESSION_TIME_LIMIT,
    }
    # Walking triggers: tests/director/test_monitor_walk.py.
    walking_triggers = {Trigger.LEFT_CORRIDOR, Trigger.HEAD_SPEED}
    status_triggers |= walking_triggers
    assert {row[1] for row in TRIGGER_TABLE} | status_triggers == set(Trigger)


def test_quiet_synthetic_stream_triggers_nothing() -> None:
    probe, _ = run("quiet")
    assert fired(probe) == set()
    assert probe.events == []


def test_bds_quiet_stance_triggers_nothing(bds_trials: dict[str, list[BalanceState]]) -> None:
    assert len(bds_trials) == 12  # eyes open/closed x firm/foam x 3, subject 1
    for name, states in bds_trials.items():
        probe = MonitorProbe(SafetyMonitor(ENV))
        probe.run(states)
        assert fired(probe) == set(), name
        assert probe.first_tick(Response.WARN) is None, name


def test_bds_trial_with_a_lean_out_appended_is_caught(
    bds_trials: dict[str, list[BalanceState]],
) -> None:
    # The same real stream, but from 30 s the XCoM margin collapses: the monitor must
    # stay quiet before and calm 0.1 s (10 ticks at 100 Hz) after the crossing.
    states = bds_trials["BDS00001"][:4000]
    edited = [dataclasses.replace(s, margin_xcom_m=-0.02) if s.tick >= 3000 else s for s in states]
    probe = MonitorProbe(SafetyMonitor(ENV))
    probe.run(edited)
    report = probe.latency(
        edge_margin_m=ENV.monitor.edge_margin_m, dwell_s=ENV.monitor.margin_dwell_s
    )
    assert report.crossing_tick == 3000
    assert report.dwell_ticks == 10
    assert report.ticks_after_dwell == 0


@pytest.mark.parametrize("rate_hz", [100.0, 250.0, 1000.0])
@pytest.mark.parametrize("dwell_s", [0.0, 0.004, 0.1, 0.25])
def test_calm_comes_in_the_tick_the_dwell_expires(rate_hz: float, dwell_s: float) -> None:
    env = SafetyEnvelope(
        monitor=MonitorThresholds(margin_dwell_s=dwell_s, stop_dwell_s=max(dwell_s, 0.5))
    )
    # Only the XCoM leaves: the CoP stays inside, so no contact trigger competes.
    states = [
        dataclasses.replace(s, margin_cop_m=0.05)
        for s in synthetic_stream("lean_out", rate_hz=rate_hz).states
    ]
    probe = MonitorProbe(SafetyMonitor(env))
    probe.run(states)
    report = probe.latency(edge_margin_m=env.monitor.edge_margin_m, dwell_s=dwell_s)
    assert report.crossing_tick is not None
    assert report.ticks_after_dwell == 0
    assert report.latency_ticks == math.ceil(dwell_s * rate_hz - 1e-9)
    if dwell_s == 0.0:
        assert report.calm_tick == report.crossing_tick  # the very same tick
    calm = next(e for e in probe.events if e.kind == "calm")
    assert calm.values["cause"] == "margin_at_edge"
    assert calm.values["crossing_tick"] == report.crossing_tick
    assert calm.values["latency_ticks"] == report.latency_ticks


@pytest.mark.parametrize("scenario", ["step_off", "load_collapse", "cop_jump", "head_lost"])
def test_instant_triggers_respond_in_the_crossing_tick(scenario: str) -> None:
    probe, onset = run(scenario)
    assert probe.first_tick(Response.CALM) == onset


def test_calm_latches_until_reset() -> None:
    # The XCoM leans out and comes back; the CoP stays put (no contact trigger).
    lean = [
        dataclasses.replace(s, margin_cop_m=0.05, cop_m=(0.0, 0.02))
        for s in synthetic_stream("lean_out").states
    ]
    quiet = synthetic_stream("quiet", duration_s=1.0).states
    monitor = SafetyMonitor(ENV)
    verdicts = [monitor.step(s) for s in lean[:375]]
    assert verdicts[-1].calm and not verdicts[-1].stop_trial
    # The patient recovers: quiet states again, later times. Still calm (latched).
    base_t = lean[374].t_s
    for i, s in enumerate(quiet):
        v = monitor.step(dataclasses.replace(s, tick=400 + i, t_s=base_t + (i + 1) / 250))
    assert v.calm and v.cause is Trigger.MARGIN_AT_EDGE
    assert v.triggers == frozenset()
    monitor.request_reset()
    v = monitor.step(dataclasses.replace(quiet[0], tick=700, t_s=base_t + 2.0))
    assert v.response == Response.NONE
    assert [e.kind for e in v.events] == ["monitor_reset"]
    assert v.events[0].values["previous_response"] == "calm"


def test_warn_does_not_latch() -> None:
    states = synthetic_stream("near_edge", duration_s=1.2, onset_s=1.0).states
    monitor = SafetyMonitor(ENV)
    for s in states:
        v = monitor.step(s)
    assert v.response == Response.WARN
    v = monitor.step(dataclasses.replace(states[0], tick=len(states), t_s=states[-1].t_s + 0.004))
    assert v.response == Response.NONE


def test_emergency_stop_request_latches_and_cannot_be_undone_by_status() -> None:
    monitor = SafetyMonitor(ENV)
    states = synthetic_stream("quiet").states
    assert monitor.step(states[0]).response == Response.NONE
    monitor.request_emergency_stop()
    v = monitor.step(states[1])
    assert v.stop_trial and v.cause is Trigger.EMERGENCY_STOP
    assert v.events[-1].severity == "alarm"
    monitor.set_status(MonitorStatus(emergency_stop=False))
    assert monitor.step(states[2]).stop_trial
    monitor.request_reset()
    assert monitor.step(states[3]).response == Response.NONE


def test_calm_escalates_to_stop_with_a_second_event() -> None:
    probe, _ = run("lean_out")
    responses = [e.kind for e in probe.events if e.kind in ("calm", "stop_trial")]
    assert responses == ["calm", "stop_trial"]


def test_head_only_session_ignores_the_plate_but_not_the_head() -> None:
    status = MonitorStatus(plate=PlateStatus.NONE)
    probe, _ = run("step_off", status=status)
    assert fired(probe) == set()
    probe, onset = run("head_fall", status=status)
    stop = probe.first_tick(Response.STOP_TRIAL)
    assert stop is not None and onset is not None and stop > onset


def test_plate_only_session_without_head_is_quiet() -> None:
    states = [
        dataclasses.replace(s, head_position_m=None, head_age_s=None)
        for s in synthetic_stream("quiet").states
    ]
    probe = MonitorProbe(SafetyMonitor(ENV, status=MonitorStatus(head_expected=False)))
    probe.run(states)
    assert fired(probe) == set()


def test_contact_lost_needs_a_loaded_plate_first() -> None:
    # Before the patient steps on, an unloaded plate is not a step off.
    states = [
        dataclasses.replace(
            s, plate_loaded=False, vertical_force_n=3.0, cop_m=None, margin_cop_m=None
        )
        for s in synthetic_stream("quiet").states
    ]
    probe = MonitorProbe(SafetyMonitor(ENV))
    probe.run(states[:50])
    assert Trigger.CONTACT_LOST not in fired(probe)


def test_onset_events_are_not_repeated_while_a_trigger_flickers() -> None:
    states = synthetic_stream("quiet", duration_s=1.0).states
    flicker = [dataclasses.replace(s, margin_xcom_m=0.02 if s.tick % 2 else 0.08) for s in states]
    probe = MonitorProbe(SafetyMonitor(ENV))
    probe.run(flicker)
    assert [e.kind for e in probe.events] == ["margin_near_edge"]


def test_evaluate_is_pure() -> None:
    states = synthetic_stream("head_fall").states
    memory = MonitorMemory()
    status = MonitorStatus()
    outputs = []
    for s in states[:300]:
        memory, verdict = evaluate(memory, s, status, ENV)
        outputs.append((memory, verdict))
    again = MonitorMemory()
    for s, (mem, ver) in zip(states[:300], outputs, strict=True):
        again, v2 = evaluate(again, s, status, ENV)
        assert again == mem and v2 == ver


def test_monitor_has_no_off_switch() -> None:
    names = {f.name for f in dataclasses.fields(MonitorThresholds)}
    names |= {f.name for f in dataclasses.fields(MonitorStatus)}
    names |= set(dir(SafetyMonitor))
    assert not any(
        word in n for n in names for word in ("disable", "enable", "bypass", "mute", "skip")
    )


_opt_float = st.one_of(st.none(), st.floats(-1.0, 2.0, allow_nan=False))
_pair = st.one_of(st.none(), st.tuples(st.floats(-0.3, 0.3), st.floats(-0.3, 0.3)))


@st.composite
def _states(draw: st.DrawFn) -> list[BalanceState]:
    n = draw(st.integers(1, 40))
    out = []
    t = 0.0
    for i in range(n):
        t += draw(st.sampled_from([0.001, 0.004, 0.01]))
        head = draw(
            st.one_of(
                st.none(),
                st.tuples(st.floats(-0.3, 0.3), st.floats(-0.3, 0.3), st.floats(0.2, 2.0)),
            )
        )
        out.append(
            BalanceState(
                tick=i,
                t_s=t,
                stance="feet_apart",
                cop_m=draw(_pair),
                vertical_force_n=draw(st.one_of(st.none(), st.floats(0.0, 1500.0))),
                plate_loaded=draw(st.booleans()),
                margin_xcom_m=draw(_opt_float),
                margin_cop_m=draw(_opt_float),
                head_position_m=head,
                head_age_s=draw(st.one_of(st.none(), st.floats(0.0, 0.5))),
                plate_age_s=draw(st.one_of(st.none(), st.floats(0.0, 0.5))),
            )
        )
    return out


@settings(max_examples=80, deadline=None)
@given(
    states=_states(),
    plate=st.sampled_from(list(PlateStatus)),
    headset=st.sampled_from(list(HeadsetStatus)),
)
def test_response_never_drops_without_reset_and_covers_active_triggers(
    states: list[BalanceState], plate: PlateStatus, headset: HeadsetStatus
) -> None:
    monitor = SafetyMonitor(ENV, status=MonitorStatus(plate=plate, headset=headset))
    latched = Response.NONE
    for s in states:
        v = monitor.step(s)
        wanted = max((TRIGGER_RESPONSE[t] for t in v.triggers), default=Response.NONE)
        assert v.response >= wanted
        assert v.response >= latched
        if v.response >= Response.CALM:
            latched = v.response
        for e in v.events:
            assert e.source == "safety" and e.t_s == s.t_s


@pytest.mark.parametrize("scenario", [row[0] for row in TRIGGER_TABLE])
def test_every_safety_event_is_json_ready(scenario: str) -> None:
    probe, _ = run(scenario)
    assert probe.events
    for e in probe.events:
        json.dumps(e.to_dict())


def test_director_package_imports_with_engines_and_devices_blocked() -> None:
    # Layer rule: safety and director logic never need Panda3D, OpenXR or pyserial.
    code = (
        "import sys\n"
        "for name in ('panda3d', 'direct', 'xr', 'serial'):\n"
        "    sys.modules[name] = None\n"
        "import vrbalance.director, vrbalance.director.probe\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_time_going_back_restarts_timers_but_keeps_the_latch() -> None:
    lean = [dataclasses.replace(s, margin_cop_m=0.05) for s in synthetic_stream("lean_out").states]
    monitor = SafetyMonitor(ENV)
    for s in lean[:370]:
        v = monitor.step(s)
    assert v.calm
    v = monitor.step(synthetic_stream("quiet").states[0])  # t_s = 0 again
    assert v.calm and v.cause is Trigger.MARGIN_AT_EDGE
    assert monitor.memory.edge_since_s is None
    # A fresh run after time went back still measures its dwell from scratch.
    monitor.request_reset()
    probe = MonitorProbe(monitor)
    probe.run(lean)
    assert probe.latency(edge_margin_m=0.01, dwell_s=0.1).ticks_after_dwell == 0


@pytest.mark.parametrize(
    ("state_name", "expected", "trigger"),
    [
        (None, PlateStatus.NONE, None),
        ("none", PlateStatus.NONE, None),
        ("connecting", PlateStatus.STREAMING, Trigger.PLATE_STALE),  # frames due: judged by age
        ("streaming", PlateStatus.STREAMING, Trigger.PLATE_STALE),
        ("stalled", PlateStatus.STALLED, Trigger.PLATE_STALLED),
        ("lost", PlateStatus.LOST, Trigger.PLATE_LOST),
        ("closed", PlateStatus.LOST, Trigger.PLATE_LOST),
    ],
)
def test_plate_status_maps_every_driver_state(
    state_name: str | None, expected: PlateStatus, trigger: Trigger | None
) -> None:
    """The shared mapping, and what the monitor then does with a plate that sends nothing."""
    assert plate_status(state_name) is expected
    state = dataclasses.replace(synthetic_stream("quiet").states[0], plate_age_s=None)
    status = MonitorStatus(plate=plate_status(state_name), head_expected=False)
    _, verdict = evaluate(MonitorMemory(), state, status, ENV)
    if trigger is None:  # no plate: no plate trigger at all
        plate_triggers = {Trigger.PLATE_STALE, Trigger.PLATE_STALLED, Trigger.PLATE_LOST}
        assert not plate_triggers & set(verdict.triggers)
    else:
        assert trigger in verdict.triggers


def test_plate_status_covers_the_drivers_states_and_names_an_unknown_one() -> None:
    from vrbalance.devices.driver import PlateState

    # Every state the driver can be in has a meaning (an unknown one would raise).
    assert {plate_status(s.value) for s in PlateState} <= set(PlateStatus)
    with pytest.raises(ValueError, match=r"plate state: expected one of .* got 'unplugged'"):
        plate_status("unplugged")


def test_safety_warning_speaks_in_session_time(caplog: pytest.LogCaptureFixture) -> None:
    """The operator reads session time, as in the reports, not the loop clock's uptime."""
    state = dataclasses.replace(synthetic_stream("quiet").states[0], t_s=1168.829)
    status = MonitorStatus(plate=PlateStatus.LOST, trial_elapsed_s=2.04, session_elapsed_s=47.25)
    with caplog.at_level("WARNING", logger="vrbalance.director.monitor"):
        evaluate(MonitorMemory(), state, status, ENV)
    (line,) = [r.getMessage() for r in caplog.records if "safety" in r.getMessage()]
    assert "at 47.2 s into the session (2.0 s into the trial)" in line
    assert "1168" not in line
