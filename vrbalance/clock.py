"""Injected time.

The balance loop, safety monitor and director never read the system clock
themselves: they are handed a :class:`Clock`. Production uses
:class:`MonotonicClock`; tests and replay use :class:`ManualClock`, whose time
moves only when told, so timing behaviour is exact and repeatable.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A monotonic time source in seconds (arbitrary epoch)."""

    def now_s(self) -> float:
        """Return the current time in seconds."""
        ...

    def sleep_s(self, duration_s: float) -> None:
        """Block for about ``duration_s`` seconds (may return early, never much late)."""
        ...


class MonotonicClock:
    """The host's monotonic clock (``time.perf_counter``, ns resolution on Linux)."""

    __slots__ = ()

    def now_s(self) -> float:
        return time.perf_counter()

    def sleep_s(self, duration_s: float) -> None:
        if duration_s > 0.0:
            time.sleep(duration_s)


class ManualClock:
    """A clock that only moves when :meth:`advance` or :meth:`sleep_s` is called.

    ``sleep_s`` advances the time instead of blocking, so a fixed-rate loop
    driven by it runs as fast as the CPU allows while seeing perfect timing.
    """

    __slots__ = ("_t_s",)

    def __init__(self, start_s: float = 0.0) -> None:
        self._t_s = float(start_s)

    def now_s(self) -> float:
        return self._t_s

    def advance(self, duration_s: float) -> None:
        if duration_s < 0.0:
            raise ValueError(f"a clock cannot go back: advance({duration_s!r})")
        self._t_s += duration_s

    def sleep_s(self, duration_s: float) -> None:
        if duration_s > 0.0:
            self._t_s += duration_s
