"""FixedRateLoop: absolute deadlines, skip policy, errors, life cycle (ManualClock, no sleeps)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vrbalance.clock import ManualClock, MonotonicClock
from vrbalance.realtime.loop import FixedRateLoop, LoopState


def test_ticks_fall_exactly_on_absolute_deadlines() -> None:
    clock = ManualClock(start_s=10.0)
    seen: list[tuple[int, float, float]] = []
    loop = FixedRateLoop(lambda k, t: seen.append((k, t, clock.now_s())), rate_hz=250, clock=clock)
    loop.run(max_ticks=1000)
    assert [k for k, _, _ in seen] == list(range(1000))
    for k, t_s, now_s in seen:
        assert t_s == 10.0 + k * 0.004
        assert now_s == pytest.approx(t_s, abs=1e-12)
        assert now_s >= t_s
    assert loop.state is LoopState.STOPPED


def test_no_drift_over_100k_ticks_even_with_jittery_steps() -> None:
    # Steps that use up varying parts of the period must not shift later deadlines.
    clock = ManualClock()
    last: list[float] = []

    def step(k: int, t_s: float) -> None:
        clock.advance((k % 7) * 0.0001)  # 0..0.6 ms of work, under the 1 ms period
        last.append(clock.now_s())

    loop = FixedRateLoop(step, rate_hz=1000, clock=clock)
    loop.run(max_ticks=100_000)
    stats = loop.stats()
    assert stats.ticks == 100_000
    assert stats.overruns == 0 and stats.skipped == 0
    # tick 99_999 starts at 99.999 s exactly (to float rounding), not later
    assert last[-1] == pytest.approx(99.999 + (99_999 % 7) * 0.0001, abs=1e-9)
    assert stats.period_error_max_s is not None and stats.period_error_max_s < 1e-9
    assert stats.achieved_rate_hz == pytest.approx(1000.0, rel=1e-9)


def test_overrun_is_counted_and_missed_deadlines_are_skipped_not_burst() -> None:
    clock = ManualClock()
    calls: list[tuple[int, float, float]] = []

    def step(k: int, t_s: float) -> None:
        calls.append((k, t_s, clock.now_s()))
        if k == 3:
            clock.advance(0.035)  # 3.5 periods of 10 ms: deadlines 4, 5, 6 pass

    loop = FixedRateLoop(step, rate_hz=100, clock=clock)
    loop.run(max_ticks=6)
    ticks = [k for k, _, _ in calls]
    assert ticks == [0, 1, 2, 3, 7, 8]
    # tick 7 runs at its own deadline (70 ms), not at once after the overrun (65 ms)
    assert calls[4][1] == pytest.approx(0.07) and calls[4][2] == pytest.approx(0.07)
    stats = loop.stats()
    assert stats.overruns == 1
    assert stats.skipped == 3
    assert stats.worst_overrun_s == pytest.approx(0.035 - 0.010)
    assert stats.ticks == 6
    # a skip is not period error: intervals are whole numbers of periods
    assert stats.period_error_max_s == pytest.approx(0.0, abs=1e-12)
    health = loop.health()
    assert (health.ticks, health.overruns, health.skipped) == (6, 1, 3)


def test_step_ending_exactly_on_next_deadline_is_not_an_overrun() -> None:
    clock = ManualClock()
    loop = FixedRateLoop(lambda k, t: clock.advance(0.5), rate_hz=2, clock=clock)
    loop.run(max_ticks=4)
    assert loop.stats().overruns == 0
    assert clock.now_s() == pytest.approx(2.0)


def test_late_start_is_lateness_not_a_skip() -> None:
    clock = ManualClock()

    def step(k: int, t_s: float) -> None:
        if k == 0:
            clock.advance(0.0015)  # ends 0.5 ms after deadline 1 -> overrun, skip 1

    loop = FixedRateLoop(step, rate_hz=1000, clock=clock)
    loop.run(max_ticks=3)
    stats = loop.stats()
    assert (stats.overruns, stats.skipped) == (1, 1)
    assert stats.lateness_max_s == pytest.approx(0.0, abs=1e-12)


def test_until_s_stops_before_that_deadline() -> None:
    clock = ManualClock()
    seen: list[int] = []
    FixedRateLoop(lambda k, t: seen.append(k), rate_hz=10, clock=clock).run(until_s=0.5)
    assert seen == [0, 1, 2, 3, 4]


def test_start_s_sets_deadline_zero() -> None:
    clock = ManualClock(start_s=1.0)
    seen: list[float] = []
    FixedRateLoop(lambda k, t: seen.append(t), rate_hz=4, clock=clock).run(max_ticks=2, start_s=2.0)
    assert seen == [2.0, 2.25]
    assert clock.now_s() == pytest.approx(2.25)


def test_exception_in_step_stops_and_is_reraised_from_run() -> None:
    clock = ManualClock()

    def step(k: int, t_s: float) -> None:
        if k == 5:
            raise ZeroDivisionError("boom at tick 5")

    loop = FixedRateLoop(step, rate_hz=100, clock=clock)
    with pytest.raises(ZeroDivisionError, match="boom at tick 5"):
        loop.run()
    assert loop.state is LoopState.FAILED
    assert loop.stats().ticks == 5
    loop.stop()  # already reported: stop does not raise it twice


def test_exception_in_threaded_step_is_reraised_from_stop_once() -> None:
    clock = ManualClock()

    def step(k: int, t_s: float) -> None:
        if k == 2:
            raise KeyError("tick 2")

    loop = FixedRateLoop(step, rate_hz=100, clock=clock).start()
    with pytest.raises(KeyError, match="tick 2"):
        loop.join(timeout_s=10)
    assert loop.state is LoopState.FAILED
    loop.stop()  # idempotent, already reported


def test_exception_reraised_from_context_manager_exit() -> None:
    clock = ManualClock()
    failed = threading.Event()

    def step(k: int, t_s: float) -> None:
        if k == 1:
            failed.set()
            raise RuntimeError("in the loop thread")

    with pytest.raises(RuntimeError, match="in the loop thread"):  # noqa: SIM117
        with FixedRateLoop(step, rate_hz=100, clock=clock):
            assert failed.wait(10)


def test_a_failing_with_body_is_not_masked_by_the_loops_own_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    failed = threading.Event()

    def step(k: int, t_s: float) -> None:
        if k == 1:
            failed.set()
            raise RuntimeError("in the loop thread")

    # The body's error explains what went wrong: it propagates, the loop's is logged.
    with pytest.raises(KeyError, match="the body's own"):  # noqa: SIM117
        with FixedRateLoop(step, rate_hz=100, clock=clock, name="masked"):
            assert failed.wait(10)
            raise KeyError("the body's own")
    (record,) = [r for r in caplog.records if "also failed" in r.getMessage()]
    assert record.getMessage() == "loop 'masked' also failed while the with-body raised"
    assert record.exc_info is not None and "in the loop thread" in str(record.exc_info[1])


def test_stop_is_idempotent_and_loop_single_use() -> None:
    clock = ManualClock()
    stop_at = 50
    loop = FixedRateLoop(
        lambda k, t: loop.request_stop() if k == stop_at else None, rate_hz=100, clock=clock
    )
    loop.start()
    assert loop.join(timeout_s=10)
    loop.stop()
    loop.stop()
    loop.close()
    assert loop.state is LoopState.STOPPED
    assert loop.health().ticks == stop_at + 1
    with pytest.raises(RuntimeError, match="single use"):
        loop.start()


def test_stop_before_start_and_stop_from_inside_step() -> None:
    clock = ManualClock()
    never = FixedRateLoop(lambda k, t: None, rate_hz=100, clock=clock)
    never.stop()
    assert never.state is LoopState.STOPPED

    loop = FixedRateLoop(lambda k, t: loop.stop(), rate_hz=100, clock=clock)
    loop.start()
    assert loop.join(timeout_s=10)
    assert loop.health().ticks == 1


def test_stop_from_another_thread_ends_a_real_clock_loop() -> None:
    # A real clock, but synchronised on events, not sleeps: the step sets an
    # event after 3 ticks; the test then stops the loop.
    ticked = threading.Event()

    def step(k: int, t_s: float) -> None:
        if k >= 3:
            ticked.set()

    loop = FixedRateLoop(step, rate_hz=1000, clock=MonotonicClock())
    with loop:
        assert ticked.wait(10)
    assert loop.state is LoopState.STOPPED
    assert loop.stats().ticks >= 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate_hz": 0}, "rate_hz must be a finite number > 0, got 0"),
        ({"rate_hz": float("nan")}, "rate_hz must be a finite number > 0, got nan"),
        ({"rate_hz": True}, "rate_hz must be a finite number > 0, got True"),
        ({"rate_hz": 100, "spin_s": -1e-3}, "spin_s must be a finite number >= 0, got -0.001"),
        ({"rate_hz": 100, "stats_window": 1}, "stats_window must be an int >= 2, got 1"),
    ],
)
def test_bad_arguments_name_the_value(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FixedRateLoop(lambda k, t: None, clock=ManualClock(), **kwargs)  # type: ignore[arg-type]


def test_stats_window_keeps_recent_percentiles_and_whole_run_maxima() -> None:
    clock = ManualClock()

    def step(k: int, t_s: float) -> None:
        if k == 1:
            clock.advance(0.0)  # nothing; the jitter is injected below by a late start

    loop = FixedRateLoop(step, rate_hz=100, clock=clock, stats_window=8)
    # make tick 2 start 3 ms late by moving the clock ahead of it in tick 1
    orig = loop._step

    def late(k: int, t_s: float) -> None:
        orig(k, t_s)
        if k == 1:
            clock.advance(0.013 - (clock.now_s() - t_s))  # end 3 ms after deadline 2

    loop._step = late
    loop.run(max_ticks=20)
    stats = loop.stats()
    assert stats.window_ticks == 8
    assert stats.overruns == 1 and stats.skipped == 1
    assert stats.worst_overrun_s == pytest.approx(0.003)
    # the overrun's tick is outside the 8-tick window: recent percentiles are clean
    assert stats.period_error_p99_s == pytest.approx(0.0, abs=1e-12)
    assert stats.step_p50_s == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    rate_hz=st.sampled_from([50.0, 250.0, 1000.0, 333.0]),
    t0_s=st.floats(min_value=0.0, max_value=1e5),
    work=st.lists(st.floats(min_value=0.0, max_value=3.5), min_size=1, max_size=60),
)
def test_schedule_invariants_for_any_step_durations(
    rate_hz: float, t0_s: float, work: list[float]
) -> None:
    """Any step durations (in periods): on-deadline starts, skip to first future deadline."""
    clock = ManualClock(start_s=t0_s)
    period = 1.0 / rate_hz
    log: list[tuple[int, float, float, float]] = []

    def step(k: int, t_s: float) -> None:
        start = clock.now_s()
        clock.advance(work[len(log)] * period)
        log.append((k, t_s, start, clock.now_s()))

    loop = FixedRateLoop(step, rate_hz=rate_hz, clock=clock)
    loop.run(max_ticks=len(work))
    assert len(log) == len(work)
    overruns = skipped = 0
    for i, (k, t_s, start, end) in enumerate(log):
        assert t_s == t0_s + k * period  # the scheduled time is exact
        assert start >= t_s  # never early
        assert start - t_s < 1e-9 * max(1.0, t0_s)  # and, with a ManualClock, never late
        if i + 1 < len(log):
            k_next = log[i + 1][0]
            # the next tick is the first deadline not before the step's end
            assert t0_s + k_next * period >= end - 1e-9 * max(1.0, t0_s)
            assert t0_s + (k_next - 1) * period <= end + 1e-9 * max(1.0, t0_s)
            if k_next > k + 1:
                overruns += 1
                skipped += k_next - k - 1
    stats = loop.stats()
    # gaps between logged ticks are exactly the overruns and skips; nothing is
    # counted after the last tick (no deadline after it was going to run)
    assert (stats.overruns, stats.skipped) == (overruns, skipped)
    assert stats.ticks + stats.skipped == log[-1][0] + 1
