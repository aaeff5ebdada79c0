"""Issue 7's last line: the simulated plate's scripted loss of balance, through the
real loop, calms the world within one tick.

Real parts only: the simulator writes ASCII frames on a pseudo-terminal, the
driver's reader thread parses them into its ring buffer, the balance loop
drains it, estimates, judges (safety monitor in the same tick) and publishes.
The lockstep tests run that on a manual clock (exact and repeatable: see
``safety_rig.LockstepClock``); the ``slow`` ones on the real monotonic clock
as ``vrbalance run`` runs: the plate simulated and read in the plate process,
the loop in its own thread.

Which trigger a fall sets off first depends on the simulated person (today the
XCoM margin, after its 0.1 s dwell, or with a steady head the CoP leaving the
base of support). The tests do not hard-code it: an oracle written apart from
the monitor (``conftest.first_plate_trigger_tick``) reads the states the
monitor judged and names the tick and trigger that must calm; the monitor must
agree exactly, and the probe's latency must be the dwell and not a tick more.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from safety_rig import LOOP_RATE_HZ, Rig, crossing_predicate, first_plate_trigger_tick

from vrbalance.devices.head import ScriptedHeadSource, SwayScript
from vrbalance.director.envelope import MonitorThresholds, SafetyEnvelope
from vrbalance.director.monitor import PlateStatus, Response, Trigger
from vrbalance.realtime.loop import LoopState
from vrbalance.realtime.pipeline import TickResult

#: When the scripted event happens, s from the start of the simulation.
ONSET_S = 2.0
#: How long a lockstep run goes on, s on the manual clock.
RUN_UNTIL_S = 3.0
#: The trigger a loss of balance may set off first on the plate.
FALL_TRIGGERS = ("margin_at_edge", "cop_off_bos", "cop_jump", "load_collapse", "contact_lost")

RigFactory = Callable[..., Rig]

#: For the real-time tests on a shared 2-core machine: the stale-plate limit at its
#: hard cap (0.2 s instead of 0.05 s). The plate is read in the plate process, as
#: `vrbalance run` reads it, out of reach of this process's GIL and at real-time
#: priority where the system grants it; where it does not (an unprivileged
#: developer), a reader starved of CPU for a moment would otherwise calm the world
#: before the scripted event (the monitor doing its job, but not the thing under
#: test). Everything else default, the driver's stall detection included.
SHARED_MACHINE_ENVELOPE = SafetyEnvelope(monitor=MonitorThresholds(plate_stale_s=0.2))


def _quiet_load_n(rig: Rig, onset_s: float = ONSET_S) -> float:
    """Mean vertical load before the onset (the standing load the monitor learns)."""
    loads = [
        r.state.vertical_force_n
        for r in rig.quiet_results(onset_s)
        if r.state.vertical_force_n is not None
    ]
    return statistics.fmean(loads)


def _assert_quiet_part_is_quiet(rig: Rig, onset_s: float = ONSET_S) -> None:
    quiet = rig.quiet_results(onset_s)
    assert len(quiet) >= 100  # 0.4 s at 250 Hz at the very least
    noisy = [(r.state.tick, r.verdict) for r in quiet if r.verdict.response or r.verdict.triggers]
    assert noisy == [], "a trigger fired on quiet stance"


def _first_calm(rig: Rig) -> tuple[int, TickResult]:
    """Index in the published results, and the result, of the first calm verdict."""
    for i, result in enumerate(rig.published.results):
        if result.verdict.calm:
            return i, result
    raise AssertionError("no calm verdict was published")


def _assert_published_in_its_tick(rig: Rig, index: int, result: TickResult) -> None:
    """The tick that judged the state published that state with its (calm) verdict."""
    probe = rig.probe
    k = probe.states.index(result.state)
    assert probe.verdicts[k] is result.verdict  # the very verdict of that state, no copy
    assert result.verdict.tick == result.state.tick
    assert not rig.published.results[index - 1].verdict.calm


def _assert_calm_where_the_oracle_says(rig: Rig, onset_s: float = ONSET_S) -> tuple[str, int]:
    """First calm: the oracle's tick and trigger, published in its tick, dwell and no more.

    Returns the trigger's name and the index of the calm result.
    """
    tick, name = first_plate_trigger_tick(rig.probe.states, rig.envelope)
    assert name in FALL_TRIGGERS
    index, result = _first_calm(rig)
    assert result.state.tick == tick
    assert result.verdict.cause is Trigger(name)
    _assert_published_in_its_tick(rig, index, result)
    th = rig.envelope.monitor
    crossed = crossing_predicate(name, rig.envelope)
    if crossed is not None:
        dwell_s = th.margin_dwell_s if name == "margin_at_edge" else 0.0
        report = rig.probe.latency(crossed=crossed, dwell_s=dwell_s)
        assert report.calm_tick == tick
        if rig.lockstep is not None or dwell_s == 0.0:
            # The probe counts the dwell in ticks of the mean spacing: exact only
            # when ticks are evenly spaced (a real thread may skip deadlines).
            assert report.ticks_after_dwell == 0
        if name == "margin_at_edge":
            assert report.latency_s >= th.margin_dwell_s - 1e-9
            event = next(e for e in result.verdict.events if e.kind in ("calm", "stop_trial"))
            assert event.values["crossing_tick"] == report.crossing_tick
        else:
            assert report.latency_ticks == 0
    return name, index


# ------------------------------------------------------------------- lockstep (exact)
def test_scripted_fall_calms_in_the_tick_the_trigger_fires(rig_factory: RigFactory) -> None:
    rig = rig_factory(f"fall@{ONSET_S}s")
    rig.loop.run(until_s=RUN_UNTIL_S)
    _assert_quiet_part_is_quiet(rig)
    name, index = _assert_calm_where_the_oracle_says(rig)
    results = rig.published.results
    if name == "margin_at_edge":
        # Lockstep ticks are evenly spaced: the dwell is exactly ceil(0.1 s * 250 Hz) ticks.
        th = rig.envelope.monitor
        report = rig.probe.latency(edge_margin_m=th.edge_margin_m, dwell_s=th.margin_dwell_s)
        assert report.dwell_ticks == math.ceil(th.margin_dwell_s * LOOP_RATE_HZ) == 25
        assert report.ticks_after_dwell == 0
        assert report.latency_s == pytest.approx(th.margin_dwell_s)
        crossing = results[index - report.dwell_ticks]
        assert crossing.state.tick == report.crossing_tick
    else:
        crossing = results[index]
    # The crossing state was made from the fall's frames: it drained frames written
    # after the onset (without a head the state changes only when frames arrive).
    assert crossing.plate_frames
    assert min(f.device_time_s for f in crossing.plate_frames) >= ONSET_S
    assert crossing.t_s < ONSET_S + 0.5
    # Latched: every later verdict keeps the world calm; the latest snapshot says so.
    assert all(r.verdict.calm for r in results[index:])
    latest = rig.loop.latest.get()
    assert latest is results[-1] and latest.verdict.stop_trial


def test_lockstep_runs_are_exact_repeats(rig_factory: RigFactory) -> None:
    runs = []
    for _ in range(2):
        rig = rig_factory(f"fall@{ONSET_S}s", seed=7)
        rig.loop.run(until_s=ONSET_S + 0.6)
        runs.append(
            [
                (r.tick, r.t_s, tuple(f.seq for f in r.plate_frames), r.state, r.verdict.response)
                for r in rig.published.results
            ]
        )
        rig.__exit__(None, None, None)  # free the pty before the second run
    assert runs[0] == runs[1]
    assert any(response >= Response.CALM for *_, response in runs[0])


def test_fall_under_a_steady_head_is_caught_by_the_plate_in_its_tick(
    rig_factory: RigFactory,
) -> None:
    # With a head pose the XCoM comes from the head, which here keeps swaying
    # quietly (say the patient catches a rail): the plate's CoP must still act.
    rig = rig_factory(f"fall@{ONSET_S}s", head=ScriptedHeadSource(SwayScript(seed=3)))
    rig.loop.run(until_s=RUN_UNTIL_S)
    _assert_quiet_part_is_quiet(rig)
    assert all(s.com_source == "head" for s in rig.probe.states)
    name, index = _assert_calm_where_the_oracle_says(rig)
    assert name != "margin_at_edge"  # the head's XCoM never left the base of support
    assert rig.published.results[index].verdict.response is Response.STOP_TRIAL


def test_demo_person_falls_with_plate_and_head_and_is_calmed_in_its_tick(
    rig_factory: RigFactory,
) -> None:
    # The configuration of `vrbalance demo` and `vrbalance run --simulate`: the
    # head is the simulated person's own, so it falls with the CoP.
    rig = rig_factory(f"fall@{ONSET_S}s", head="person")
    rig.loop.run(until_s=RUN_UNTIL_S)
    _assert_quiet_part_is_quiet(rig)
    states = rig.probe.states
    assert all(s.com_source == "head" for s in states)
    tick, name = first_plate_trigger_tick(states, rig.envelope)
    index, result = _first_calm(rig)
    _assert_published_in_its_tick(rig, index, result)
    # The oracle knows the margin and plate triggers; a head trigger may only come
    # earlier (the head falls too). Either way within half a second of the onset.
    assert tick is not None and result.state.tick <= tick
    if result.state.tick < tick:
        assert result.verdict.cause in (Trigger.HEAD_FALL_VELOCITY, Trigger.HEAD_HEIGHT_DROP)
    else:
        assert result.verdict.cause is Trigger(name)
    assert ONSET_S < result.t_s < ONSET_S + 0.5
    stop = next(r for r in rig.published.results if r.verdict.stop_trial)
    assert stop.t_s < ONSET_S + 0.8  # stopped well before the person is down (~0.7 s)


def test_step_off_stops_the_trial_in_the_crossing_tick(rig_factory: RigFactory) -> None:
    rig = rig_factory(f"stepoff@{ONSET_S}s")
    rig.loop.run(until_s=RUN_UNTIL_S)
    _assert_quiet_part_is_quiet(rig)
    name, index = _assert_calm_where_the_oracle_says(rig)
    assert name == "load_collapse"  # the load fades over 0.4 s: 60 % comes before 0 %
    results = rig.published.results
    fraction = rig.envelope.monitor.load_collapse_fraction
    verdict = results[index].verdict
    assert verdict.response is Response.STOP_TRIAL
    event = next(e for e in verdict.events if e.kind == "load_collapse")
    standing_n = event.values["standing_force_n"]
    assert standing_n == pytest.approx(_quiet_load_n(rig), rel=0.02)
    assert results[index].state.vertical_force_n < fraction * standing_n
    assert results[index - 1].state.vertical_force_n >= fraction * standing_n
    # Off the plate a little later: contact lost is raised too (and the trial stays stopped).
    kinds = [e.kind for r in results for e in r.verdict.events]
    assert kinds.index("load_collapse") < kinds.index("contact_lost")
    assert results[-1].state.plate_loaded is False


def test_unplug_reaches_the_monitor_in_the_next_tick_and_the_loop_keeps_going(
    rig_factory: RigFactory,
) -> None:
    rig = rig_factory(f"unplug@{ONSET_S}s")
    rig.loop.run(until_s=RUN_UNTIL_S)
    results = rig.published.results
    guard = rig.guard
    _assert_quiet_part_is_quiet(rig)
    # The driver's plate_lost event and status reach the monitor in the first tick
    # at or after the unplug (on the lockstep clock the driver has seen it by then).
    lost_tick, lost_event = next((k, e) for k, e in guard.device_events if e.kind == "plate_lost")
    assert lost_event.source == "device" and lost_event.severity == "warning"
    first_after = next(r for r in results if r.t_s >= ONSET_S)
    assert lost_tick == first_after.state.tick
    assert guard.statuses[lost_tick] is PlateStatus.LOST
    assert all(s is PlateStatus.STREAMING for s in guard.statuses[:lost_tick])
    assert first_after.verdict.stop_trial
    assert first_after.verdict.cause is Trigger.PLATE_LOST
    assert not any(r.verdict.calm for r in results if r.state.tick < lost_tick)
    # The loop carried on at its rate without the plate: no skipped deadline, the
    # estimator kept publishing, the plate data only aged.
    after = [r for r in results if r.state.tick >= lost_tick]
    assert len(after) == math.ceil((RUN_UNTIL_S - first_after.t_s) * LOOP_RATE_HZ - 1e-6)
    assert [r.tick for r in results] == list(range(len(results)))
    assert all(not r.plate_frames for r in after)
    ages = [r.state.plate_age_s for r in after]
    assert ages == sorted(ages) and ages[-1] > 0.9
    assert all(r.verdict.response is Response.STOP_TRIAL for r in after)
    assert rig.loop.health().skipped == 0


# ------------------------------------------------------- real time, the plate process
@pytest.mark.slow
def test_real_thread_fall_calms_in_the_tick_the_monitor_must(
    rig_factory: RigFactory, record_property: Callable[[str, object], None]
) -> None:
    onset_s = 1.5
    rig = rig_factory(
        f"fall@{onset_s}s",
        lockstep=False,
        envelope=SHARED_MACHINE_ENVELOPE,
    )
    rig.loop.start()
    assert rig.loop.state is LoopState.RUNNING
    assert rig.loop.join(timeout_s=onset_s + 1.0) is False  # still running: it only stops when told
    rig.loop.stop()
    _assert_quiet_part_is_quiet(rig, onset_s)
    # Exact on whatever ticks the thread managed (skips included): the oracle and
    # the monitor read the same states.
    name, index = _assert_calm_where_the_oracle_says(rig, onset_s)
    results = rig.published.results
    if name == "margin_at_edge":
        event = next(e for e in results[index].verdict.events if e.kind == "calm")
        # The first tick past the dwell, whatever the spacing of the ticks was.
        dwell_s = rig.envelope.monitor.margin_dwell_s
        assert results[index - 1].t_s - event.values["crossing_t_s"] < dwell_s
    # For the record (no timing assertion): newest frame of the calm tick -> published.
    frames = results[index].plate_frames
    if frames:
        wall_ms = 1e3 * (rig.published.wall_s[index] - frames[-1].received_time_s)
        record_property("frame_to_calm_published_ms", round(wall_ms, 3))


@pytest.mark.slow
def test_real_thread_unplug_and_replug_keep_the_loop_running(rig_factory: RigFactory) -> None:
    unplug_s = 1.0
    rig = rig_factory(
        f"unplug@{unplug_s}s,replug@1.4s",
        lockstep=False,
        envelope=SHARED_MACHINE_ENVELOPE,
    )
    rig.loop.start()
    rig.loop.join(timeout_s=2.4)
    rig.loop.stop()
    results = rig.published.results
    guard = rig.guard
    kinds = [e.kind for _, e in guard.device_events]
    lost = kinds.index("plate_lost")
    assert kinds[:2] == ["plate_connecting", "plate_streaming"]
    assert kinds[lost : lost + 3] == ["plate_lost", "plate_connecting", "plate_reconnected"]
    # Lost reaches the status (in the tick the event is seen, or the one before)
    # and stops the trial in that tick.
    lost_tick = guard.statuses.index(PlateStatus.LOST)
    event_tick = next(k for k, e in guard.device_events if e.kind == "plate_lost")
    assert event_tick - lost_tick in (0, 1)
    by_tick = {r.state.tick: r for r in results}
    assert by_tick[lost_tick].verdict.stop_trial
    assert Trigger.PLATE_LOST in by_tick[lost_tick].verdict.triggers
    # Nothing calmed before the unplug; if a starved reader thread let the frames
    # go stale before it saw the loss, the stale-plate trigger calmed first.
    first_calm = next(r for r in results if r.verdict.calm)
    assert first_calm.state.tick == lost_tick or first_calm.verdict.cause in (
        Trigger.PLATE_STALE,
        Trigger.PLATE_STALLED,
    )
    # "Before the unplug" in the plate's own time (its frames' device time counts
    # from the plate's start; the loop starts a moment later, however long that is).
    last_plugged_tick = max(
        r.state.tick
        for r in results
        if any(f.device_time_s is not None and f.device_time_s < unplug_s for f in r.plate_frames)
    )
    assert first_calm.state.tick >= last_plugged_tick
    # The loop ran through the outage, and frames flow again after the replug while
    # the verdict stays latched (only an operator reset lifts it).
    back_tick = next(k for k, e in guard.device_events if e.kind == "plate_reconnected")
    outage = [r for r in results if lost_tick <= r.state.tick < back_tick]
    assert len(outage) > 0.5 * 0.4 * LOOP_RATE_HZ
    assert rig.loop.state is LoopState.STOPPED and rig.loop.health().ticks == len(results)
    after = [r for r in results if r.state.tick > back_tick]
    assert any(r.plate_frames for r in after)
    assert after[-1].state.plate_age_s < 0.2
    assert all(s is PlateStatus.STREAMING for s in guard.statuses[back_tick + 1 :])
    assert all(r.verdict.stop_trial for r in results if r.state.tick >= lost_tick)


# ------------------------------------------------------------------- the world follows
#: Frames the world runs, one every 4 loop ticks (62.5 frames/s beside 250 Hz).
TICKS_PER_FRAME = 4
#: Calm frames rendered: past the park's 0.5 s fade of its (frozen) distractors.
CALM_FRAMES = 40


@dataclass(frozen=True)
class WorldRun:
    """What an offscreen world following the loop showed, frame by frame."""

    calm_tick: int
    frames: list[dict[str, Any]]

    @property
    def first_calm(self) -> int:
        return next(i for i, f in enumerate(self.frames) if f["verdict_calm"])


@pytest.fixture(scope="module")
def world_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorldRun]:
    """Fall at 1 s; the park at level 10 renders offscreen beside the lockstep loop."""
    from vrbalance.world.app import WorldApp

    onset_s = 1.0
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VRBALANCE_DATA", str(tmp_path_factory.mktemp("data")))
        with Rig(f"fall@{onset_s}s") as rig:
            clock = rig.lockstep
            assert clock is not None
            period_s = 1.0 / LOOP_RATE_HZ
            t0 = clock.now_s()
            frames: list[dict[str, Any]] = []
            # Park at its highest level: the surround sways (4 deg roll), the path
            # flows, distractors pass. No overlay: it moves with the CoP marker.
            with WorldApp(
                output="offscreen",
                size_px=(96, 54),
                scene="park",
                level=10,
                state_source=rig.loop.latest,
                overlay=False,
                clock=rig.clock,
            ) as app:
                k = 0
                while len(frames) < 400 and sum(f["verdict_calm"] for f in frames) < CALM_FRAMES:
                    t_s = t0 + k * period_s
                    clock.advance_to(t_s)
                    rig.loop.tick(k, t_s)  # the loop's own step, by hand between frames
                    k += 1
                    if k % TICKS_PER_FRAME:
                        continue
                    seen = rig.loop.latest.get()  # what the frame task will read
                    app.step_frames(1, dt_s=TICKS_PER_FRAME * period_s)
                    scene = app.scene
                    root = scene._distractor_root
                    frames.append(
                        {
                            "tick": seen.state.tick,
                            "verdict_calm": seen.verdict.calm,
                            "scene_calm": scene.calmed,
                            "surround_hpr": tuple(scene.surround.getHpr(app.render)),
                            "camera_roll": app.head_node.getR(app.render),
                            "flow_m": scene.flow_distance_m,
                            "distractors_shown": not root.isHidden(),
                            "distractors_alpha": root.getColorScale()[3],
                            "distractors_at": tuple(
                                tuple(c.getPos(app.render)) for c in root.getChildren()
                            ),
                            "image": app.image(),
                        }
                    )
            calm_tick = next(r.state.tick for r in rig.published.results if r.verdict.calm)
    yield WorldRun(calm_tick, frames)


@pytest.mark.render
@pytest.mark.slow
def test_offscreen_world_goes_calm_on_the_next_frame(world_run: WorldRun) -> None:
    frames = world_run.frames
    first = world_run.first_calm
    # The first frame after the calm verdict was published is the one that read it.
    assert frames[first - 1]["tick"] < world_run.calm_tick <= frames[first]["tick"]
    before, calm = frames[:first], frames[first:]
    assert len(before) > 50 and len(calm) == CALM_FRAMES
    # Before: the world moves (roll of the surround, optic flow, distractors passing).
    assert not any(f["scene_calm"] for f in before)
    assert max(abs(f["surround_hpr"][2]) for f in before) > 1.0  # deg
    assert before[-1]["flow_m"] > before[-2]["flow_m"] > before[0]["flow_m"]
    assert before[-1]["distractors_at"] != before[-2]["distractors_at"]
    assert all(f["distractors_shown"] for f in before)
    assert not np.array_equal(before[-1]["image"], before[-2]["image"])
    # On that very frame and every one after: calm, horizon level (surround and camera).
    for f in calm:
        assert f["scene_calm"]
        assert f["surround_hpr"] == (0.0, 0.0, 0.0)
        assert f["camera_roll"] == 0.0
    # Perturbations frozen from that frame on: no optic flow, distractors stand still
    # (they may fade out: alpha only, never up, gone after about half a second).
    assert all(f["flow_m"] == calm[0]["flow_m"] for f in calm)
    assert all(f["distractors_at"] == calm[0]["distractors_at"] for f in calm)
    alphas = [f["distractors_alpha"] if f["distractors_shown"] else 0.0 for f in calm]
    assert alphas == sorted(alphas, reverse=True)
    gone = next(i for i, f in enumerate(calm) if not f["distractors_shown"])
    frame_s = TICKS_PER_FRAME / LOOP_RATE_HZ
    assert gone * frame_s <= 0.5 + frame_s + 1e-9  # the fade starts on the frame after
    # Then the picture is still (the read-back may lag a frame: compare from gone + 2).
    still = calm[gone + 2 :]
    assert len(still) >= 3
    for f in still[1:]:
        assert np.array_equal(f["image"], still[0]["image"])


@pytest.mark.render
@pytest.mark.slow
def test_offscreen_world_moves_nothing_on_the_frame_that_goes_calm(world_run: WorldRun) -> None:
    frames = world_run.frames
    first = world_run.first_calm
    assert frames[first]["flow_m"] == frames[first - 1]["flow_m"]
