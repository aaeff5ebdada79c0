"""Thread tuning: applied to the calling thread only, restored, refusals reported."""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from vrbalance.clock import ManualClock
from vrbalance.realtime.loop import FixedRateLoop
from vrbalance.realtime.priority import (
    ThreadTuning,
    restore_current_thread,
    tune_current_thread,
)

T = TypeVar("T")

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux prctl/sched only")


def _slack_ns() -> int:
    return int(ctypes.CDLL(None).prctl(30, 0, 0, 0, 0))  # PR_GET_TIMERSLACK


def _in_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread (thread-local tuning must not leak) and return its result."""
    out: list[T] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(10)
    return out[0]


@linux
def test_timer_slack_is_set_for_this_thread_only_and_restored() -> None:
    main_before = _slack_ns()

    def body() -> tuple[int, int, int, ThreadTuning]:
        before = _slack_ns()
        tuning = tune_current_thread(timer_slack_ns=1000)
        during = _slack_ns()
        restore_current_thread(tuning)
        return before, during, _slack_ns(), tuning

    before, during, after, tuning = _in_thread(body)  # type: ignore[misc]
    assert during == 1000 and tuning.timer_slack_ns == 1000
    assert after == before == tuning.previous_timer_slack_ns
    assert _slack_ns() == main_before


@linux
def test_fifo_is_applied_and_restored_or_the_refusal_is_reported() -> None:
    def body() -> tuple[ThreadTuning, int, int]:
        tuning = tune_current_thread(fifo_priority=5)
        during = os.sched_getscheduler(0)
        restore_current_thread(tuning)
        return tuning, during, os.sched_getscheduler(0)

    tuning, during, after = _in_thread(body)  # type: ignore[misc]
    if tuning.fifo_priority is None:
        assert any("SCHED_FIFO 5 refused" in note for note in tuning.notes)
        assert during == after == os.SCHED_OTHER
    else:
        assert during == os.SCHED_FIFO
        assert after == os.SCHED_OTHER
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the test thread untouched


def test_bad_requests_are_rejected_before_the_loop_starts() -> None:
    with pytest.raises(ValueError, match=r"fifo_priority must be an int within \[1, 99\]"):
        FixedRateLoop(lambda k, t: None, rate_hz=10, clock=ManualClock(), fifo_priority=0)
    with pytest.raises(ValueError, match="timer_slack_ns must be an int >= 1 or None, got 0"):
        tune_current_thread(timer_slack_ns=0)


@linux
def test_loop_records_its_tuning_and_leaves_the_caller_as_it_was() -> None:
    before = _slack_ns()
    loop = FixedRateLoop(lambda k, t: None, rate_hz=100, clock=ManualClock(), timer_slack_ns=2000)
    loop.run(max_ticks=3)
    assert loop.tuning is not None and loop.tuning.timer_slack_ns == 2000
    assert _slack_ns() == before


def test_gil_switch_interval_is_set_while_running_and_restored() -> None:
    before = sys.getswitchinterval()
    seen: list[float] = []
    loop = FixedRateLoop(
        lambda k, t: seen.append(sys.getswitchinterval()),
        rate_hz=100,
        clock=ManualClock(),
        gil_switch_interval_s=0.0005,
    )
    loop.run(max_ticks=2)
    assert seen == [pytest.approx(0.0005)] * 2
    assert sys.getswitchinterval() == before
    with pytest.raises(ValueError, match="gil_switch_interval_s must be a finite number > 0"):
        FixedRateLoop(lambda k, t: None, rate_hz=1, clock=ManualClock(), gil_switch_interval_s=0)
