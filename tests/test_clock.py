"""The injected clocks."""

from __future__ import annotations

import itertools

import pytest

from vrbalance.clock import Clock, ManualClock, MonotonicClock


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(1.0)
    assert clock.now_s() == 1.0
    clock.sleep_s(0.25)
    clock.advance(0.5)
    clock.sleep_s(-1.0)  # a negative sleep is a no-op, as for a real clock
    assert clock.now_s() == 1.75
    with pytest.raises(ValueError, match=r"a clock cannot go back: advance\(-0.1\)"):
        clock.advance(-0.1)


def test_clocks_satisfy_protocol_and_monotonic_is_monotonic() -> None:
    assert isinstance(ManualClock(), Clock)
    clock = MonotonicClock()
    assert isinstance(clock, Clock)
    readings = [clock.now_s() for _ in range(1000)]
    assert all(b >= a for a, b in itertools.pairwise(readings))
