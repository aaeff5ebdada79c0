"""BalanceLoop wiring: plate drain, head at tick time, estimator, same-tick verdict, sinks."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from vrbalance.balance.state import BalanceState
from vrbalance.clock import ManualClock
from vrbalance.devices.head import Fall, ScriptedHeadSource, SwayScript
from vrbalance.realtime.loop import LoopState
from vrbalance.realtime.pipeline import (
    BalanceLoop,
    Estimator,
    QueueSink,
    SinkState,
    TickResult,
)
from vrbalance.realtime.publish import RingBuffer
from vrbalance.samples import HeadPose, PlateFrame


class TinyEstimator:
    """Sums the frames' first channel and reports the head; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, int, HeadPose | None]] = []
        self._tick = 0

    def update(
        self, t_s: float, plate_frames: Sequence[PlateFrame], head: HeadPose | None
    ) -> BalanceState:
        self.calls.append((t_s, len(plate_frames), head))
        state = BalanceState(
            tick=self._tick,
            t_s=t_s,
            stance="feet_apart",
            vertical_force_n=sum(f.channels[0] for f in plate_frames) if plate_frames else None,
            head_position_m=head.position_m if head is not None else None,
            head_age_s=(t_s - head.received_time_s)
            if head is not None and head.received_time_s is not None
            else None,
        )
        self._tick += 1
        return state


@dataclass(frozen=True, slots=True)
class TinyVerdict:
    t_s: float
    alarm: bool


class TinyMonitor:
    """Alarms when the head is more than 5 cm off centre."""

    def step(self, state: BalanceState) -> TinyVerdict:
        head = state.head_position_m
        return TinyVerdict(state.t_s, head is not None and math.hypot(head[0], head[1]) > 0.05)


class FakePlate:
    """Produces one frame per ms of clock time on every drain (a 1 kHz plate)."""

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock
        self._seq = 0
        self._next_s = 0.0

    def drain(self) -> list[PlateFrame]:
        out = []
        while self._next_s <= self._clock.now_s() + 1e-12:
            out.append(PlateFrame(self._seq, None, self._next_s, (1.0, 0.0, 0.0, 0.0)))
            self._seq += 1
            self._next_s = self._seq * 0.001
        return out


def _real_estimator_and_monitor() -> tuple[Estimator, Any]:
    """The product's balance estimator (1.75 m, 70 kg, feet apart) and safety monitor.

    The monitor is told there is no plate: these tests drive the head source only.
    """
    from vrbalance.balance.estimator import BalanceEstimator
    from vrbalance.balance.geometry import Body
    from vrbalance.balance.stance import make_stance
    from vrbalance.config.plates import load_foot_template
    from vrbalance.director.monitor import MonitorStatus, PlateStatus, SafetyMonitor

    body = Body(height_m=1.75, mass_kg=70.0)
    stance = make_stance("feet_apart", body, load_foot_template("adult"))
    monitor = SafetyMonitor(status=MonitorStatus(plate=PlateStatus.NONE))
    return BalanceEstimator(stance, body), monitor


def test_every_tick_drains_plate_locates_head_estimates_and_judges() -> None:
    clock = ManualClock()
    estimator = TinyEstimator()
    assert isinstance(estimator, Estimator)
    results: list[TickResult] = []
    loop = BalanceLoop(
        estimator,
        clock=clock,
        rate_hz=250,
        plate=FakePlate(clock),
        head=ScriptedHeadSource(SwayScript(seed=1)),
        monitor=TinyMonitor(),
        sinks=[results.append],
    )
    loop.run(max_ticks=100)
    assert len(results) == 100
    assert [r.tick for r in results] == list(range(100))
    # every plate frame reached the estimator exactly once: 1 at t=0, then 4 per 4 ms tick
    assert [n for _, n, _ in estimator.calls] == [1] + [4] * 99
    assert sum(len(r.plate_frames) for r in results) == 1 + 4 * 99
    seqs = [f.seq for r in results for f in r.plate_frames]
    assert seqs == list(range(len(seqs)))
    for r in results:
        assert r.state.t_s == r.t_s == r.tick * 0.004
        assert r.head is not None and r.head.received_time_s == r.t_s  # located at tick time
        assert r.state.head_age_s == 0.0
        assert isinstance(r.verdict, TinyVerdict) and r.verdict.t_s == r.t_s
    assert loop.latest.get() is results[-1]
    assert loop.latest.seq == 100


def test_verdict_is_published_in_the_same_tick_as_the_state_that_triggered_it() -> None:
    estimator, monitor = _real_estimator_and_monitor()
    warn_margin_m = monitor.envelope.monitor.warn_margin_m
    script = SwayScript(
        seed=2, height_m=1.64, rms_ap_m=0.0, rms_ml_m=0.0, events=[Fall(start_s=0.2)]
    )
    published: list[tuple[TickResult, TickResult | None]] = []
    loop = BalanceLoop(
        estimator,
        clock=ManualClock(),
        rate_hz=100,
        head=ScriptedHeadSource(script),
        monitor=monitor,
        sinks=[lambda r: published.append((r, loop.latest.get()))],  # what readers see now
    )
    loop.run(until_s=2.0)
    # While a tick's sinks run, readers already see that tick's result, no older one.
    assert published and all(seen is result for result, seen in published)
    results = [result for result, _ in published]
    i = next(i for i, r in enumerate(results) if r.verdict.warn)  # type: ignore[union-attr]
    first, previous = results[i], results[i - 1]
    assert not previous.verdict.warn  # type: ignore[union-attr]
    first_margin, previous_margin = first.state.margin_xcom_m, previous.state.margin_xcom_m
    assert first_margin is not None and previous_margin is not None
    assert first_margin < warn_margin_m <= previous_margin  # this tick's state caused it
    # the published snapshot pairs the verdict with the very state that caused it
    assert first.verdict.tick == first.state.tick  # type: ignore[union-attr]
    assert first.verdict.t_s == first.state.t_s == first.t_s  # type: ignore[union-attr]


def test_plain_callable_monitor_and_no_devices() -> None:
    clock = ManualClock()
    loop = BalanceLoop(TinyEstimator(), clock=clock, monitor=lambda s: ("seen", s.t_s))
    loop.run(max_ticks=3)
    result = loop.latest.get()
    assert result is not None
    assert result.verdict == ("seen", 0.008)
    assert result.plate_frames == () and result.head is None


def test_real_ring_buffer_as_the_plate_feed() -> None:
    clock = ManualClock()
    ring: RingBuffer[PlateFrame] = RingBuffer(100)
    estimator = TinyEstimator()
    loop = BalanceLoop(estimator, clock=clock, plate=ring, rate_hz=100)

    def fill_then_tick(tick: int, t_s: float) -> TickResult:
        ring.push_many(PlateFrame(tick * 10 + i, None, t_s, (2.0,)) for i in range(10))
        return loop.tick(tick, t_s)

    for k in range(5):
        result = fill_then_tick(k, k * 0.01)
        assert result.state.vertical_force_n == 20.0
    assert ring.counts().drained == 50


def test_exception_in_estimator_stops_loop_and_reraises_from_stop() -> None:
    class Broken(TinyEstimator):
        def update(
            self, t_s: float, plate_frames: Sequence[PlateFrame], head: HeadPose | None
        ) -> BalanceState:
            if t_s >= 0.02:
                raise ValueError("estimator broke at 0.02 s")
            return super().update(t_s, plate_frames, head)

    loop = BalanceLoop(Broken(), clock=ManualClock(), rate_hz=100).start()
    with pytest.raises(ValueError, match=r"estimator broke at 0\.02 s"):
        loop.join(timeout_s=10)
    assert loop.state is LoopState.FAILED
    loop.stop()
    assert loop.health().ticks == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"plate": object()}, "plate: expected an object with drain"),
        ({"head": object()}, r"head: expected an object with pose_at\(t_s\)"),
        ({"monitor": 3}, "monitor: expected an object with step"),
        ({"sinks": [None]}, r"sinks\[0\]: expected a callable, got NoneType"),
    ],
)
def test_wiring_is_checked_at_construction(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        BalanceLoop(TinyEstimator(), clock=ManualClock(), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="estimator: expected an object with update"):
        BalanceLoop(object(), clock=ManualClock())  # type: ignore[arg-type]


def test_queue_sink_delivers_everything_in_order_off_the_loop_thread() -> None:
    got: list[int] = []
    threads: set[str] = set()

    def consume(r: TickResult) -> None:
        got.append(r.tick)
        threads.add(threading.current_thread().name)

    with QueueSink(consume, name="recorder") as sink:
        loop = BalanceLoop(TinyEstimator(), clock=ManualClock(), sinks=[sink])
        loop.run(max_ticks=2000)
    assert got == list(range(2000))
    assert threads == {"recorder"}
    assert sink.delivered == 2000 and sink.dropped == 0 and sink.state is SinkState.CLOSED
    sink.close()  # idempotent


def test_queue_sink_consumer_failure_keeps_loop_running_and_raises_at_close() -> None:
    delivered: list[int] = []

    def consume(r: TickResult) -> None:
        if r.tick == 10:
            raise OSError("disk full")
        delivered.append(r.tick)

    sink: QueueSink[TickResult] = QueueSink(consume).start()
    loop = BalanceLoop(TinyEstimator(), clock=ManualClock(), sinks=[sink])
    loop.run(max_ticks=100)  # the loop itself is unharmed
    assert loop.state is LoopState.STOPPED and loop.health().ticks == 100
    with pytest.raises(OSError, match="disk full"):
        sink.close()
    assert delivered == list(range(10))
    assert sink.state is SinkState.FAILED
    assert sink.delivered + sink.dropped == 99  # all but the failing one are accounted for
    sink.close()  # reported once


def test_queue_sink_max_backlog_drops_and_counts() -> None:
    release = threading.Event()
    got: list[int] = []

    def slow(item: int) -> None:
        release.wait(10)
        got.append(item)

    sink: QueueSink[int] = QueueSink(slow, max_backlog=5)  # not started: nothing consumed yet
    for i in range(8):
        sink(i)
    assert sink.dropped == 3 and sink.backlog == 5
    sink.start()
    release.set()
    sink.close()
    assert got == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="max_backlog must be an int >= 1 or None, got 0"):
        QueueSink(slow, max_backlog=0)


def test_context_manager_starts_and_stops_the_thread() -> None:
    clock = ManualClock()
    seen = threading.Event()
    loop = BalanceLoop(
        TinyEstimator(),
        clock=clock,
        sinks=[lambda r: seen.set() if r.tick >= 5 else None],
    )
    with loop:
        assert seen.wait(10)
    assert loop.state is LoopState.STOPPED
    assert loop.health().ticks >= 6
    loop.close()


def test_with_the_real_estimator_and_safety_monitor_a_fall_is_judged_in_its_tick() -> None:
    estimator, monitor = _real_estimator_and_monitor()
    script = SwayScript(seed=4, height_m=1.64, events=[Fall(start_s=2.0)])
    results: list[TickResult] = []
    loop = BalanceLoop(
        estimator,
        clock=ManualClock(),
        rate_hz=250,
        head=ScriptedHeadSource(script),
        monitor=monitor,
        sinks=[results.append],
    )
    loop.run(until_s=4.0)
    quiet = [r for r in results if 0.5 < r.t_s < 2.0]
    assert quiet and not any(r.verdict.warn for r in quiet)  # type: ignore[union-attr]
    first = next(r for r in results if r.verdict.warn)  # type: ignore[union-attr]
    assert 2.0 < first.t_s < 3.5
    assert first.verdict.tick == first.state.tick  # type: ignore[union-attr]
    assert first.verdict.t_s == first.state.t_s == first.t_s  # type: ignore[union-attr]
    assert any(r.verdict.calm for r in results)  # type: ignore[union-attr]
