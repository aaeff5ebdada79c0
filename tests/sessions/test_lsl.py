"""LSL outlets with real liblsl: an inlet in the same test checks values, order and times.

LSL stays on this machine: ``LSLAPICFG`` points liblsl at a configuration
with ``ResolveScope = machine`` (discovery only to 127.0.0.1, multicast TTL 0),
IPv6 off and ``ListenAddress = 127.0.0.1``, so the tests' resolvers query
only loopback; the outlets bring their own such configuration and bind their
sockets to loopback (``test_lsl_scope.py``). Streams are found by a source id unique to the test,
so a second test run on the machine cannot cross-talk.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from vrbalance.balance.state import BalanceState
from vrbalance.clock import ManualClock, MonotonicClock
from vrbalance.director.monitor import Response, Verdict
from vrbalance.events import Event
from vrbalance.sessions.lsl import BALANCE_CHANNELS, FanOut, LslOutlets, measure_offset_s
from vrbalance.sessions.lsl_scope import MACHINE_CONFIG
from vrbalance.sessions.recorder import read_rows
from vrbalance.sessions.runner import (
    Command,
    LiveTick,
    OperatorControls,
)

pylsl = pytest.importorskip("pylsl")


@pytest.fixture(scope="module", autouse=True)
def _lsl_on_loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    cfg = tmp_path_factory.mktemp("lsl") / "lsl_api.cfg"
    cfg.write_text(MACHINE_CONFIG)  # the one the product's --lsl writes
    with pytest.MonkeyPatch.context() as mp:
        # liblsl reads its configuration once, at its first use in the process.
        mp.setenv("LSLAPICFG", str(cfg))
        yield


def _inlet(source_id: str) -> Any:
    (info,) = pylsl.resolve_byprop("source_id", source_id, 1, 10.0)
    # recover=False: a vanished outlet is an error, not an endless reconnect.
    inlet = pylsl.StreamInlet(info, max_buflen=60, recover=False)
    inlet.open_stream(10.0)
    return inlet


def _pull(inlet: Any, n: int, timeout_s: float = 10.0) -> tuple[list[Any], list[float]]:
    samples: list[Any] = []
    stamps: list[float] = []
    deadline = time.monotonic() + timeout_s
    while len(samples) < n and time.monotonic() < deadline:
        chunk, ts = inlet.pull_chunk(timeout=0.2)
        samples += chunk
        stamps += ts
    return samples, stamps


def _tick(t_s: float, tick: int, *, level: int, response: Response, **state: Any) -> LiveTick:
    verdict = Verdict(tick, t_s, response, frozenset(), None)
    snapshot = BalanceState(tick=tick, t_s=t_s, stance="feet_apart", **state)
    return LiveTick(0, "quiet", "park", level, 10.0, 1.0, True, False, False, snapshot, verdict)


def test_samples_and_markers_reach_an_inlet_with_values_order_and_mapped_times() -> None:
    clock = ManualClock(1000.0)
    source = f"vrbalance-test-{uuid.uuid4().hex}"
    with LslOutlets(clock=clock, rate_hz=250.0, source_id=source) as outlets:
        balance = _inlet(f"{source}/balance")
        markers = _inlet(f"{source}/markers")
        outlets.tick(_tick(1000.0, 0, level=3, response=Response.NONE))  # connecting-like: no
        outlets.tick(  # a tick with every value
            _tick(
                1000.004,
                1,
                level=3,
                response=Response.CALM,
                cop_m=(0.01, -0.02),
                vertical_force_n=686.5,
                plate_loaded=True,
                com_m=(0.005, 0.03),
                xcom_m=(0.006, 0.05),
                margin_xcom_m=0.04,
                margin_cop_m=0.07,
            )
        )
        outlets.event(0, Event(1000.005, "operator", "pause", "operator paused the trial"))
        outlets.event(0, Event(1000.006, "director", "level_change", "level 3 -> 2"))
        samples, stamps = _pull(balance, 2)
        texts, marker_stamps = _pull(markers, 2)
        full = balance.info(5.0)
    offset = outlets.offset_s
    # The clock mapping: LSL time = loop time + the offset measured at start.
    assert abs(offset - (pylsl.local_clock() - 1000.0)) < 60.0
    assert stamps == pytest.approx([1000.0 + offset, 1000.004 + offset], abs=1e-6)
    assert marker_stamps == pytest.approx([1000.005 + offset, 1000.006 + offset], abs=1e-6)
    first, second = samples
    assert all(math.isnan(v) for v in first[:9]) and first[9:] == [0.0, 3.0]
    assert second == pytest.approx([0.01, -0.02, 0.005, 0.03, 0.006, 0.05, 0.04, 0.07, 686.5, 2, 3])
    assert [t[0] for t in texts] == [
        "operator/pause: operator paused the trial",
        "director/level_change: level 3 -> 2",
    ]
    # XDF-style metadata: one channel element per value, with label, unit and type.
    assert full.nominal_srate() == 250.0 and full.type() == "Balance"
    channel = full.desc().child("channels").child("channel")
    seen = []
    while not channel.empty():
        seen.append(
            (
                channel.child_value("label"),
                channel.child_value("unit"),
                channel.child_value("type"),
            )
        )
        channel = channel.next_sibling()
    assert seen == list(BALANCE_CHANNELS)
    assert full.desc().child("verdict_codes").child_value("calm") == "2"
    assert outlets.error is None


def test_offset_takes_the_tightest_bracket() -> None:
    clock = ManualClock(10.0)
    lsl_times = iter([50.0, 60.0, 70.0])

    def lsl_clock() -> float:
        clock.advance(0.5)  # reading LSL's clock takes time on the loop's clock
        return next(lsl_times)

    assert measure_offset_s(clock, lsl_clock, tries=3) == pytest.approx(50.0 - 10.25)


def test_a_session_streams_every_state_and_event_it_records(run_session: Any, quiet: Any) -> None:
    source = f"vrbalance-test-{uuid.uuid4().hex}"
    clock = MonotonicClock()
    controls = OperatorControls()
    controls.send(Command.PAUSE, trial=0, at_trial_s=0.1)
    controls.send(Command.RESUME, trial=0, at_trial_s=0.15)
    with LslOutlets(clock=clock, rate_hz=250.0, source_id=source) as outlets:
        balance = _inlet(f"{source}/balance")
        markers = _inlet(f"{source}/markers")
        result = run_session(
            [quiet("q", 0.4)],
            name="lsl",
            controls=controls,
            clock=clock,
            live=FanOut(outlets),  # as `vrbalance run --lsl` wires it
        )
        states = read_rows(result.folder / "state.csv")
        events = read_rows(result.folder / "events.csv")
        samples, stamps = _pull(balance, len(states))
        texts, marker_stamps = _pull(markers, len(events))
    assert len(samples) == len(states) > 50
    offset = outlets.offset_s
    assert stamps == pytest.approx([float(r["t_s"]) + offset for r in states], abs=1e-6)
    for sample, row in zip(samples, states, strict=True):
        for value, column in zip(sample[:2], ("cop_x_m", "cop_y_m"), strict=True):
            assert (math.isnan(value) and row[column] == "") or value == pytest.approx(
                float(row[column]), abs=1e-9
            )
        assert sample[10] == float(row["level"])
    kinds = [t[0].split(":")[0] for t in texts]
    assert kinds == [f"{e['source']}/{e['kind']}" for e in events]
    assert "operator/pause" in kinds and "session/trial_end" in kinds
    # Each marker carries its event's own time (recording order is not time order:
    # a device's event is drained on the tick after it happened).
    assert marker_stamps == pytest.approx([float(e["t_s"]) + offset for e in events], abs=1e-6)
    assert outlets.error is None
