"""A fixed-rate loop on absolute deadlines, with an injected clock.

The balance loop must tick at its rate (250 Hz by default, up to 1 kHz for a
1 kHz plate) whatever else the process does, and say honestly when it did not.
:class:`FixedRateLoop` calls ``step(tick, t_s)`` at ``t0 + k * period`` for
k = 0, 1, 2, ...:

* **Absolute deadlines.** Deadline k is computed as ``t0 + k * period_s``
  (one multiplication), never by adding periods, so lateness in one tick does
  not shift the next one and rounding cannot accumulate into drift.
* **Hybrid wait.** The loop sleeps (``clock.sleep_s``) until ``spin_s`` before
  the deadline, then spins on ``clock.now_s()``. Linux ``time.sleep`` wakes
  about 50-100 µs late (timer slack plus wake-up latency), occasionally ~1 ms;
  the spin absorbs the usual part of that. With a clock whose time does not
  move while spinning (:class:`vrbalance.clock.ManualClock`) the spin notices
  the stall and sleeps the remainder, so the wait reduces to
  ``sleep_s(deadline - now)`` and tests run exactly and instantly.
* **Overruns and skips.** A tick *overruns* when its step ends after the next
  deadline. The loop then does not run the missed deadlines in a burst to
  catch up (a burst would hand the balance core several ticks at the same
  instant and starve the renderer); it counts them as *skipped* and resumes at
  the first deadline still in the future (after the last tick, asked to stop
  or at ``max_ticks``, nothing is counted). Tick numbers are deadline indices,
  so a skip shows as a gap in ``tick`` and ``t_s`` is always exactly
  ``t0 + tick * period_s``. Nothing is lost by a skip: devices buffer their
  samples and the next tick drains them all.
* **Errors are never swallowed.** An exception raised by ``step`` stops the
  loop; :meth:`FixedRateLoop.run` re-raises it at once, a threaded loop keeps
  it and re-raises it from :meth:`~FixedRateLoop.stop` / :meth:`~FixedRateLoop.join`.

Statistics cost a few float operations per tick: the tick number and the
start and end times go into preallocated rings; percentiles are computed only
when :meth:`FixedRateLoop.stats` is called.
"""

from __future__ import annotations

import enum
import logging
import math
import sys
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from vrbalance.clock import Clock
from vrbalance.realtime.priority import (
    ThreadTuning,
    check_tuning,
    restore_current_thread,
    tune_current_thread,
)

logger = logging.getLogger(__name__)

StepFn = Callable[[int, float], object]

#: Default spin window before each deadline, in s. Linux ``time.sleep`` wakes
#: ~70-90 µs late (median) and ~130 µs at p99 on an idle machine (measured by
#: ``benchmarks/bench_loop.py``); 0.5 ms covers that with margin while costing
#: half a core at 1 kHz and an eighth of one at 250 Hz.
DEFAULT_SPIN_S = 0.0005

#: The longest single sleep, in s, so that :meth:`FixedRateLoop.stop` is
#: honoured within this time even at slow rates.
MAX_SLEEP_CHUNK_S = 0.05

#: Consecutive identical clock readings after which the spin concludes that the
#: clock only moves when slept on (a :class:`~vrbalance.clock.ManualClock`).
#: A real monotonic clock (ns resolution, ~80 ns per read) never repeats this often.
_STALL_READS = 3

#: Shortest sleep worth asking for, in s (below Linux's ~50 µs timer slack).
_MIN_SLEEP_S = 1e-6


def close_after_with(close: Callable[[], None], exc: BaseException | None, what: str) -> None:
    """Close a lifecycle object at the end of its ``with`` block.

    A clean exit lets ``close``'s own error (a pending step exception)
    propagate. When the body is already failing, a failure of ``close`` is
    logged instead of raised, so it cannot mask the body's exception, the one
    that explains what went wrong.

    Parameters
    ----------
    close : callable
        The object's ``close``/``stop``.
    exc : BaseException or None
        What the ``with`` body raised, if anything.
    what : str
        How to name the object in the log, e.g. ``"loop 'balance'"``.
    """
    if exc is None:
        close()
        return
    try:
        close()
    except Exception:
        logger.exception("%s also failed while the with-body raised", what)


class LoopState(enum.Enum):
    """Life cycle of a :class:`FixedRateLoop` (single use, like a thread)."""

    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class LoopHealth:
    """Counters of a loop, cheap enough to read every rendered frame.

    Read without a lock from another thread, the fields may straddle one tick
    (e.g. ``ticks`` already counted, ``overruns`` not yet): fine for an overlay.

    Attributes
    ----------
    ticks : int
        Steps run so far.
    skipped : int
        Deadlines passed over after overruns (never run).
    overruns : int
        Ticks whose step ended after the next deadline.
    worst_overrun_s : float
        Largest amount by which a step ended past the next deadline, in s
        (0.0 when there was none).
    last_lateness_s : float
        How late the last tick started after its deadline, in s.
    state : LoopState
        Where the loop is in its life cycle.
    """

    ticks: int
    skipped: int
    overruns: int
    worst_overrun_s: float
    last_lateness_s: float
    state: LoopState


@dataclass(frozen=True, slots=True)
class LoopStats:
    """A snapshot of a loop's timing statistics.

    Percentiles cover the last ``window_ticks`` ticks (the ring size); maxima
    and counters cover the whole run. All times are in seconds.

    Attributes
    ----------
    rate_hz : float
        Nominal rate.
    ticks : int
        Steps run.
    elapsed_s : float
        From the first tick's start to the last tick's start.
    achieved_rate_hz : float or None
        ``(ticks - 1) / elapsed_s``; ``None`` before two ticks.
    period_error_p50_s, period_error_p99_s : float or None
        Percentiles of ``|interval - nominal|`` where interval is the time
        between consecutive tick starts and nominal is ``period_s`` times the
        number of deadlines between them (so a skip is not counted as error;
        it is counted in ``skipped``). ``None`` before two ticks.
    period_error_max_s : float or None
        Largest such error over the whole run.
    lateness_p50_s, lateness_p99_s : float or None
        Percentiles of tick start minus its deadline (>= 0).
    lateness_max_s : float or None
        Largest lateness over the whole run.
    overruns : int
        Ticks whose step ended after the next deadline.
    worst_overrun_s : float
        Largest overrun (0.0 if none).
    skipped : int
        Deadlines never run because of overruns.
    step_p50_s, step_p99_s : float or None
        Percentiles of the time spent in ``step``.
    window_ticks : int
        How many recent ticks the percentiles cover.
    """

    rate_hz: float
    ticks: int
    elapsed_s: float
    achieved_rate_hz: float | None
    period_error_p50_s: float | None
    period_error_p99_s: float | None
    period_error_max_s: float | None
    lateness_p50_s: float | None
    lateness_p99_s: float | None
    lateness_max_s: float | None
    overruns: int
    worst_overrun_s: float
    skipped: int
    step_p50_s: float | None
    step_p99_s: float | None
    window_ticks: int


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method) of sorted data."""
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


class FixedRateLoop:
    """Call ``step(tick, t_s)`` at a fixed rate on absolute deadlines.

    Parameters
    ----------
    step : callable ``(tick: int, t_s: float) -> object``
        Work of one tick. ``tick`` is the deadline index (from 0; gaps mean
        skipped deadlines) and ``t_s = t0 + tick * period_s`` the scheduled
        time on ``clock``, in s. Its return value is ignored.
    rate_hz : float
        Tick rate in Hz (> 0).
    clock : Clock
        Time source; :class:`~vrbalance.clock.MonotonicClock` in production,
        :class:`~vrbalance.clock.ManualClock` in tests.
    spin_s : float
        Spin (busy-wait) window before each deadline, in s (>= 0). 0 means
        sleep only.
    stats_window : int
        Ring size for the percentile statistics, in ticks (default 65536:
        about 65 s at 1 kHz, 4 min at 250 Hz).
    name : str
        Thread name in :meth:`start` mode and in log messages.
    timer_slack_ns : int, optional
        Timer slack for the thread running the loop, ns (Linux; see
        :mod:`vrbalance.realtime.priority`). Restored when the loop ends.
    fifo_priority : int, optional
        ``SCHED_FIFO`` priority for that thread, if the system allows it
        (refusal is logged, not raised). Restored when the loop ends.
    gil_switch_interval_s : float, optional
        Python's GIL switch interval (``sys.setswitchinterval``) while the
        loop runs, in s; restored when it ends. It bounds how long the loop
        thread waits for the GIL when another thread runs Python (default
        5 ms, more than a 250 Hz period); 0.5 ms matches the spin window.
        Process-wide: set it only for the product's one balance loop.

    Raises
    ------
    ValueError
        If ``rate_hz``, ``spin_s`` or ``stats_window`` is out of range.

    Examples
    --------
    >>> from vrbalance.clock import ManualClock
    >>> seen = []
    >>> loop = FixedRateLoop(lambda k, t: seen.append(t), rate_hz=100, clock=ManualClock())
    >>> loop.run(max_ticks=3)
    >>> seen
    [0.0, 0.01, 0.02]
    """

    def __init__(
        self,
        step: StepFn,
        *,
        rate_hz: float,
        clock: Clock,
        spin_s: float = DEFAULT_SPIN_S,
        stats_window: int = 65536,
        name: str = "vrbalance-loop",
        timer_slack_ns: int | None = None,
        fifo_priority: int | None = None,
        gil_switch_interval_s: float | None = None,
    ) -> None:
        if gil_switch_interval_s is not None and (
            isinstance(gil_switch_interval_s, bool)
            or not isinstance(gil_switch_interval_s, int | float)
            or not (math.isfinite(gil_switch_interval_s) and gil_switch_interval_s > 0)
        ):
            raise ValueError(
                f"gil_switch_interval_s must be a finite number > 0 or None, "
                f"got {gil_switch_interval_s!r}"
            )
        if isinstance(rate_hz, bool) or not (
            isinstance(rate_hz, int | float) and math.isfinite(rate_hz) and rate_hz > 0
        ):
            raise ValueError(f"rate_hz must be a finite number > 0, got {rate_hz!r}")
        if isinstance(spin_s, bool) or not (
            isinstance(spin_s, int | float) and math.isfinite(spin_s) and spin_s >= 0
        ):
            raise ValueError(f"spin_s must be a finite number >= 0, got {spin_s!r}")
        if isinstance(stats_window, bool) or not isinstance(stats_window, int) or stats_window < 2:
            raise ValueError(f"stats_window must be an int >= 2, got {stats_window!r}")
        if not callable(step):
            raise TypeError(f"step must be callable, got {type(step).__name__}")
        check_tuning(timer_slack_ns, fifo_priority)
        self._step = step
        self._tuning_request = (timer_slack_ns, fifo_priority)
        self._switch_interval_s = gil_switch_interval_s
        #: What the OS tuning achieved (set when the loop starts running).
        self.tuning: ThreadTuning | None = None
        self.rate_hz = float(rate_hz)
        self.period_s = 1.0 / self.rate_hz
        self.spin_s = float(spin_s)
        self.name = name
        self._clock = clock

        self._state = LoopState.CREATED
        self._state_lock = threading.Lock()
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._error_reported = False

        # Statistics: rings (preallocated, overwritten round-robin) + running scalars.
        self._window = stats_window
        self._ring_tick = array("q", bytes(8 * stats_window))
        self._ring_start = array("d", bytes(8 * stats_window))
        self._ring_end = array("d", bytes(8 * stats_window))
        self._t0_s = math.nan
        self._ticks = 0
        self._skipped = 0
        self._overruns = 0
        self._worst_overrun_s = 0.0
        self._last_lateness_s = 0.0
        self._max_lateness_s = 0.0
        self._max_period_error_s = 0.0
        self._first_start_s = math.nan
        self._last_start_s = math.nan

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> LoopState:
        """The loop's life-cycle state."""
        return self._state

    @property
    def t0_s(self) -> float:
        """Time of deadline 0 on the clock, in s (NaN before the loop starts)."""
        return self._t0_s

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the loop, if any."""
        return self._error

    def deadline_s(self, tick: int) -> float:
        """Scheduled time of deadline ``tick`` on the clock, in s."""
        return self._t0_s + tick * self.period_s

    def request_stop(self) -> None:
        """Ask the loop to stop after the current tick; returns at once.

        Safe to call from ``step`` itself and from any thread.
        """
        self._stop_requested.set()

    def _begin(self) -> None:
        with self._state_lock:
            if self._state is not LoopState.CREATED:
                raise RuntimeError(
                    f"loop {self.name!r} is single use: cannot start it in state "
                    f"{self._state.value!r}"
                )
            self._state = LoopState.RUNNING

    # ------------------------------------------------------------ caller mode
    def run(
        self,
        max_ticks: int | None = None,
        until_s: float | None = None,
        *,
        start_s: float | None = None,
    ) -> None:
        """Run the loop in the calling thread until a limit or a stop request.

        Parameters
        ----------
        max_ticks : int, optional
            Stop after this many steps.
        until_s : float, optional
            Run no tick whose deadline is at or after this clock time, in s.
        start_s : float, optional
            Time of deadline 0 (default: the clock's time now).

        Raises
        ------
        Exception
            Whatever ``step`` raised (the loop is then ``FAILED``).
        RuntimeError
            If the loop was already started.
        """
        self._begin()
        self._run_body(max_ticks, until_s, start_s)
        if self._error is not None:
            self._error_reported = True
            raise self._error

    # ------------------------------------------------------------ thread mode
    def start(
        self,
        max_ticks: int | None = None,
        until_s: float | None = None,
        *,
        start_s: float | None = None,
    ) -> Self:
        """Run the loop in a daemon thread; same limits as :meth:`run`.

        Returns
        -------
        FixedRateLoop
            ``self``, for chaining.
        """
        self._begin()
        self._thread = threading.Thread(
            target=self._run_body, args=(max_ticks, until_s, start_s), name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for a threaded loop to end on its own (limit reached or failure).

        Returns
        -------
        bool
            True if the loop has ended, False if ``timeout_s`` ran out first.

        Raises
        ------
        Exception
            The exception ``step`` raised, once (later calls return quietly).
        """
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                return False
        self._raise_pending()
        return self._state in (LoopState.STOPPED, LoopState.FAILED)

    def stop(self, timeout_s: float | None = 5.0) -> None:
        """Stop the loop and wait for its thread; idempotent.

        Raises
        ------
        Exception
            The exception ``step`` raised, if it has not been raised yet.
        RuntimeError
            If the thread did not end within ``timeout_s`` (a step that hangs).
        """
        self._stop_requested.set()
        with self._state_lock:
            if self._state is LoopState.CREATED:
                self._state = LoopState.STOPPED
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                raise RuntimeError(
                    f"loop {self.name!r} did not stop within {timeout_s} s (a step is blocked)"
                )
        self._raise_pending()

    close = stop

    def __enter__(self) -> Self:
        if self._state is LoopState.CREATED:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        close_after_with(self.stop, exc, f"loop {self.name!r}")

    def _raise_pending(self) -> None:
        if self._error is not None and not self._error_reported:
            self._error_reported = True
            raise self._error

    # ---------------------------------------------------------------- the loop
    def _wait_until(self, deadline_s: float) -> float:
        """Block until ``deadline_s``; return the clock time on leaving."""
        clock = self._clock
        spin_s = self.spin_s
        now = clock.now_s()
        # Sleep phase, in chunks so that a stop request is seen at slow rates.
        # A sleep shorter than _MIN_SLEEP_S is left to the spin: the OS cannot
        # honour it, and on a ManualClock it could fall below the float's
        # resolution and never move the time.
        while (sleep_for := deadline_s - now - spin_s) > _MIN_SLEEP_S:
            if self._stop_requested.is_set():
                return now
            clock.sleep_s(min(sleep_for, MAX_SLEEP_CHUNK_S))
            now = clock.now_s()
        # Spin phase. A clock that does not move while read (ManualClock) is
        # slept to the deadline instead, so the spin cannot hang.
        same = 0
        while now < deadline_s:
            later = clock.now_s()
            if later == now:
                same += 1
                if same >= _STALL_READS:
                    clock.sleep_s(deadline_s - now)
                    later = clock.now_s()
                    same = 0
            now = later
        return now

    def _run_body(
        self, max_ticks: int | None, until_s: float | None, start_s: float | None
    ) -> None:
        clock = self._clock
        step = self._step
        period_s = self.period_s
        window = self._window
        ring_tick, ring_start, ring_end = self._ring_tick, self._ring_start, self._ring_end
        stop_flag = self._stop_requested
        t0 = clock.now_s() if start_s is None else float(start_s)
        self._t0_s = t0
        k = 0
        prev_k = -1
        prev_start = math.nan
        logger.debug("loop %r starts at %.6f s, %.1f Hz", self.name, t0, self.rate_hz)
        slack_ns, fifo = self._tuning_request
        old_switch_s = sys.getswitchinterval()
        try:
            if self._switch_interval_s is not None:
                sys.setswitchinterval(self._switch_interval_s)
            if slack_ns is not None or fifo is not None:
                self.tuning = tune_current_thread(timer_slack_ns=slack_ns, fifo_priority=fifo)
            while not stop_flag.is_set():
                if max_ticks is not None and self._ticks >= max_ticks:
                    break
                deadline = t0 + k * period_s
                if until_s is not None and deadline >= until_s:
                    break
                start = self._wait_until(deadline)
                if stop_flag.is_set():
                    break
                step(k, deadline)
                end = clock.now_s()

                # --- statistics (a handful of float ops, no allocation of note)
                n = self._ticks
                slot = n % window
                ring_tick[slot] = k
                ring_start[slot] = start
                ring_end[slot] = end
                lateness = start - deadline
                self._last_lateness_s = lateness
                if lateness > self._max_lateness_s:
                    self._max_lateness_s = lateness
                if n:
                    err = abs(start - prev_start - (k - prev_k) * period_s)
                    if err > self._max_period_error_s:
                        self._max_period_error_s = err
                else:
                    self._first_start_s = start
                self._last_start_s = start
                prev_start = start
                prev_k = k
                self._ticks = n + 1

                # --- next deadline; skip (never burst) after an overrun
                k += 1
                if stop_flag.is_set() or (max_ticks is not None and n + 1 >= max_ticks):
                    # The last tick: deadlines after it were never going to run, so
                    # neither an overrun nor skips are counted past it (ticks +
                    # skipped is then the last tick's index + 1, whatever the load).
                    break
                next_deadline = t0 + k * period_s
                if end > next_deadline:
                    overrun = end - next_deadline
                    self._overruns += 1
                    if overrun > self._worst_overrun_s:
                        self._worst_overrun_s = overrun
                    k_next = max(k + 1, math.floor((end - t0) / period_s) + 1)
                    while t0 + k_next * period_s <= end:  # float edge cases
                        k_next += 1
                    self._skipped += k_next - k
                    k = k_next
        except BaseException as exc:
            self._error = exc
            self._state = LoopState.FAILED
            logger.error("loop %r stopped by an exception in step: %r", self.name, exc)
            return
        finally:
            if self.tuning is not None:
                restore_current_thread(self.tuning)
            if self._switch_interval_s is not None:
                sys.setswitchinterval(old_switch_s)
        self._state = LoopState.STOPPED
        logger.debug("loop %r stopped after %d ticks", self.name, self._ticks)

    # -------------------------------------------------------------- statistics
    def health(self) -> LoopHealth:
        """Counters for an overlay: O(1), safe to call every rendered frame."""
        return LoopHealth(
            ticks=self._ticks,
            skipped=self._skipped,
            overruns=self._overruns,
            worst_overrun_s=self._worst_overrun_s,
            last_lateness_s=self._last_lateness_s,
            state=self._state,
        )

    def stats(self) -> LoopStats:
        """Timing statistics; sorts the ring, so call it seconds apart, not per tick.

        From another thread while the loop runs, the ring may change under the
        copy; the figures are then off by at most the ticks that ran meanwhile.
        """
        n = self._ticks
        m = min(n, self._window)
        ticks_seen: list[int] = []
        starts: list[float] = []
        ends: list[float] = []
        for i in range(n - m, n):
            slot = i % self._window
            ticks_seen.append(self._ring_tick[slot])
            starts.append(self._ring_start[slot])
            ends.append(self._ring_end[slot])
        period_s = self.period_s
        errors = sorted(
            abs(starts[i] - starts[i - 1] - (ticks_seen[i] - ticks_seen[i - 1]) * period_s)
            for i in range(1, m)
        )
        lateness = sorted(starts[i] - (self._t0_s + ticks_seen[i] * period_s) for i in range(m))
        steps = sorted(ends[i] - starts[i] for i in range(m))
        elapsed_s = (self._last_start_s - self._first_start_s) if n >= 2 else 0.0
        return LoopStats(
            rate_hz=self.rate_hz,
            ticks=n,
            elapsed_s=elapsed_s,
            achieved_rate_hz=(n - 1) / elapsed_s if n >= 2 and elapsed_s > 0 else None,
            period_error_p50_s=_percentile(errors, 50) if errors else None,
            period_error_p99_s=_percentile(errors, 99) if errors else None,
            period_error_max_s=self._max_period_error_s if n >= 2 else None,
            lateness_p50_s=_percentile(lateness, 50) if lateness else None,
            lateness_p99_s=_percentile(lateness, 99) if lateness else None,
            lateness_max_s=self._max_lateness_s if n else None,
            overruns=self._overruns,
            worst_overrun_s=self._worst_overrun_s,
            skipped=self._skipped,
            step_p50_s=_percentile(steps, 50) if steps else None,
            step_p99_s=_percentile(steps, 99) if steps else None,
            window_ticks=m,
        )
