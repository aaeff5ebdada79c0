"""The balance loop: devices -> estimator -> safety monitor -> snapshot, every tick.

:class:`BalanceLoop` is the composition the whole product runs (demo, clinic
session, replay). Each tick, at ``t_s`` on the injected clock, it

1. drains the plate's ring buffer (every frame received since the last tick);
2. asks the head-pose source for the pose at ``t_s`` (OpenXR locates the head
   at that very time; other sources return their newest pose);
3. calls the estimator: ``update(t_s, plate_frames, head) -> BalanceState``;
4. calls the safety monitor on that state *in the same tick*:
   ``step(state) -> verdict``;
5. publishes ``TickResult(state, verdict, ...)`` through a :class:`LatestValue`
   (the renderer and overlay read it without locks) and hands it to the sinks
   (recorder callbacks) in order.

It runs in a thread of the main process while Panda3D renders in the main
thread (docs/realtime.md explains why a thread and not a process, with
figures from ``benchmarks/bench_loop.py``). Sinks run on the loop thread and
must be cheap: wrap anything that writes files in :class:`QueueSink`, which
moves the work to its own thread.

Errors are never swallowed: an exception from a source, the estimator, the
monitor or a sink stops the loop and is re-raised from :meth:`BalanceLoop.stop`
(or :meth:`BalanceLoop.run`). Sources report tracking loss by returning
``None``, not by raising. A :class:`QueueSink` whose consumer fails keeps the
loop (and so the safety monitor) running and raises from its own ``close``.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar, runtime_checkable

from vrbalance.balance.state import BalanceState
from vrbalance.clock import Clock
from vrbalance.devices.head import HeadPoseSource
from vrbalance.realtime.loop import (
    DEFAULT_SPIN_S,
    FixedRateLoop,
    LoopHealth,
    LoopState,
    LoopStats,
    close_after_with,
)
from vrbalance.realtime.publish import LatestValue
from vrbalance.samples import HeadPose, PlateFrame

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Keyword arguments of :class:`BalanceLoop` that the product should pass
#: when the balance loop shares the process with the renderer (measured in
#: ``benchmarks/bench_loop.py``, explained in docs/realtime.md): 1 µs timer
#: slack, ``SCHED_FIFO`` 10 where the system grants it, and a 0.5 ms GIL switch
#: interval so a Python-heavy render thread cannot hold the loop off for 5 ms.
RECOMMENDED_TUNING: dict[str, float | int] = {
    "timer_slack_ns": 1000,
    "fifo_priority": 10,
    "gil_switch_interval_s": 0.0005,
}


@runtime_checkable
class Estimator(Protocol):
    """Fuses one tick's samples into a :class:`BalanceState`.

    :class:`vrbalance.balance.estimator.BalanceEstimator` is the product's.
    """

    def update(
        self, t_s: float, plate_frames: Sequence[PlateFrame], head: HeadPose | None
    ) -> BalanceState:
        """Return the state at ``t_s`` (s) from the frames since the last tick and the head."""
        ...


@runtime_checkable
class PlateFeed(Protocol):
    """Anything the loop can drain plate frames from (a driver, a ring buffer)."""

    def drain(self) -> list[PlateFrame]:
        """Every frame received since the last call, oldest first."""
        ...


@runtime_checkable
class Monitor(Protocol):
    """A safety monitor: judges each state in the same tick.

    :class:`vrbalance.director.monitor.SafetyMonitor` is the product's; a
    plain callable ``(state) -> verdict`` is accepted as well.
    """

    def step(self, state: BalanceState) -> object:
        """Return the verdict (any object) for ``state``."""
        ...


@dataclass(frozen=True, slots=True)
class TickResult:
    """What one tick produced: the snapshot readers and recorders receive.

    Attributes
    ----------
    tick : int
        Deadline index of the tick (gaps mean skipped deadlines).
    t_s : float
        Scheduled time of the tick on the loop's clock, in s.
    state : BalanceState
        The estimator's output.
    verdict : object or None
        The safety monitor's verdict on ``state`` (same tick); ``None`` when
        the loop runs without a monitor.
    plate_frames : tuple of PlateFrame
        Frames drained this tick (so a recorder writes every sample).
    head : HeadPose or None
        The head pose the estimator was given.
    """

    tick: int
    t_s: float
    state: BalanceState
    verdict: object | None
    plate_frames: tuple[PlateFrame, ...]
    head: HeadPose | None


Sink = Callable[[TickResult], object]


def _monitor_function(monitor: object) -> Callable[[BalanceState], object]:
    step = getattr(monitor, "step", None)
    if callable(step):
        return step
    if callable(monitor):
        return monitor
    raise TypeError(
        f"monitor: expected an object with step(state) or a callable, got {type(monitor).__name__}"
    )


class BalanceLoop:
    """Run plate + head -> estimator -> monitor -> publish at a fixed rate.

    Parameters
    ----------
    estimator : Estimator
        ``update(t_s, plate_frames, head) -> BalanceState``.
    clock : Clock
        The session clock (also the timebase of samples' ``received_time_s``).
    rate_hz : float
        Tick rate in Hz (default 250; up to 1000 for a 1 kHz plate).
    plate : PlateFeed, optional
        Drained every tick; without it the estimator gets no frames.
    head : HeadPoseSource, optional
        Asked for the pose at each tick's time; without it, ``head=None``.
    monitor : Monitor or callable, optional
        Safety monitor, called every tick on the new state.
    sinks : iterable of callable ``(TickResult) -> object``
        Called on the loop thread after publishing, in order: keep them cheap.
    spin_s : float
        Spin window of the underlying :class:`FixedRateLoop`, in s.
    name : str
        Thread name.
    timer_slack_ns, fifo_priority : int, optional
        Operating-system tuning of the loop thread, see
        :mod:`vrbalance.realtime.priority` (off by default).
    gil_switch_interval_s : float, optional
        GIL switch interval while the loop runs (process-wide), in s.
        :data:`RECOMMENDED_TUNING` gives the measured choice for the product.

    Raises
    ------
    TypeError
        If the estimator has no ``update``, the plate no ``drain``, the head
        source no ``pose_at``, the monitor is neither, or a sink is not callable.

    Examples
    --------
    >>> with QueueSink(recorder.write) as sink, BalanceLoop(  # doctest: +SKIP
    ...     estimator, clock=MonotonicClock(), plate=plate, head=head,
    ...     monitor=monitor, sinks=[sink]) as loop:
    ...     app.run()  # Panda3D in the main thread reads loop.latest.get()
    """

    def __init__(
        self,
        estimator: Estimator,
        *,
        clock: Clock,
        rate_hz: float = 250.0,
        plate: PlateFeed | None = None,
        head: HeadPoseSource | None = None,
        monitor: Monitor | Callable[[BalanceState], object] | None = None,
        sinks: Iterable[Sink] = (),
        spin_s: float = DEFAULT_SPIN_S,
        name: str = "vrbalance-balance-loop",
        timer_slack_ns: int | None = None,
        fifo_priority: int | None = None,
        gil_switch_interval_s: float | None = None,
    ) -> None:
        if not callable(getattr(estimator, "update", None)):
            raise TypeError(
                f"estimator: expected an object with update(t_s, plate_frames, head), "
                f"got {type(estimator).__name__}"
            )
        if plate is not None and not callable(getattr(plate, "drain", None)):
            raise TypeError(f"plate: expected an object with drain(), got {type(plate).__name__}")
        if head is not None and not callable(getattr(head, "pose_at", None)):
            raise TypeError(
                f"head: expected an object with pose_at(t_s), got {type(head).__name__}"
            )
        self._update = estimator.update
        self._drain = plate.drain if plate is not None else None
        self._pose_at = head.pose_at if head is not None else None
        self._judge = _monitor_function(monitor) if monitor is not None else None
        self._sinks: tuple[Sink, ...] = tuple(sinks)
        for i, sink in enumerate(self._sinks):
            if not callable(sink):
                raise TypeError(f"sinks[{i}]: expected a callable, got {type(sink).__name__}")
        self.clock = clock
        #: The newest :class:`TickResult`, for readers in any thread.
        self.latest: LatestValue[TickResult] = LatestValue()
        self._loop = FixedRateLoop(
            self.tick,
            rate_hz=rate_hz,
            clock=clock,
            spin_s=spin_s,
            name=name,
            timer_slack_ns=timer_slack_ns,
            fifo_priority=fifo_priority,
            gil_switch_interval_s=gil_switch_interval_s,
        )

    # ------------------------------------------------------------------ tick
    def tick(self, tick: int, t_s: float) -> TickResult:
        """Run one tick now (the loop's step; also usable to drive it by hand).

        Parameters
        ----------
        tick : int
            Tick index.
        t_s : float
            Tick time on the clock, in s.

        Returns
        -------
        TickResult
            What was published.
        """
        frames = self._drain() if self._drain is not None else []
        head = self._pose_at(t_s) if self._pose_at is not None else None
        state = self._update(t_s, frames, head)
        verdict = self._judge(state) if self._judge is not None else None
        result = TickResult(tick, t_s, state, verdict, tuple(frames), head)
        self.latest.publish(result)
        for sink in self._sinks:
            sink(result)
        return result

    # ------------------------------------------------------------- life cycle
    @property
    def state(self) -> LoopState:
        """Life-cycle state of the underlying loop."""
        return self._loop.state

    @property
    def rate_hz(self) -> float:
        """Nominal tick rate in Hz."""
        return self._loop.rate_hz

    def run(self, max_ticks: int | None = None, until_s: float | None = None) -> None:
        """Run in the calling thread (replay, tests); see :meth:`FixedRateLoop.run`."""
        self._loop.run(max_ticks, until_s)

    def start(self, max_ticks: int | None = None, until_s: float | None = None) -> Self:
        """Run in a daemon thread; see :meth:`FixedRateLoop.start`."""
        self._loop.start(max_ticks, until_s)
        return self

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for a threaded run to end on its own; re-raises a tick's exception."""
        return self._loop.join(timeout_s)

    def stop(self, timeout_s: float | None = 5.0) -> None:
        """Stop and join (idempotent); re-raises a tick's exception once."""
        self._loop.stop(timeout_s)

    close = stop

    def __enter__(self) -> Self:
        if self._loop.state is LoopState.CREATED:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.__exit__(exc_type, exc, tb)

    # ------------------------------------------------------------- statistics
    def health(self) -> LoopHealth:
        """Overruns and skips so far: cheap, for the operator overlay every frame."""
        return self._loop.health()

    def stats(self) -> LoopStats:
        """Full timing statistics (sorts the ring: call it seconds apart)."""
        return self._loop.stats()


class SinkState(enum.Enum):
    """Life cycle of a :class:`QueueSink`."""

    CREATED = "created"
    RUNNING = "running"
    FAILED = "failed"
    CLOSED = "closed"


_CLOSE = object()


class QueueSink(Generic[T]):
    """Move a slow consumer (file, database writer) off the loop thread.

    Calling the sink puts the item on an unbounded queue (a C-level
    ``SimpleQueue.put``, about a microsecond) and returns; a worker thread
    feeds the consumer in order. The recorder must lose nothing, so the queue
    is unbounded unless ``max_backlog`` is given; :attr:`backlog` shows how far
    the consumer lags.

    If the consumer raises, the worker keeps the exception, logs it, and
    discards later items (counted in :attr:`dropped`) so the balance loop and
    its safety monitor keep running; :meth:`close` re-raises it.

    Parameters
    ----------
    consumer : callable ``(item) -> object``
        Called on the worker thread with each item, in order.
    max_backlog : int, optional
        Drop (and count) items while this many are waiting.
    name : str
        Worker thread name.
    """

    def __init__(
        self,
        consumer: Callable[[T], object],
        *,
        max_backlog: int | None = None,
        name: str = "vrbalance-sink",
    ) -> None:
        if not callable(consumer):
            raise TypeError(f"consumer: expected a callable, got {type(consumer).__name__}")
        if max_backlog is not None and (
            isinstance(max_backlog, bool) or not isinstance(max_backlog, int) or max_backlog < 1
        ):
            raise ValueError(f"max_backlog must be an int >= 1 or None, got {max_backlog!r}")
        self._consumer = consumer
        self._max_backlog = max_backlog
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._name = name
        self._thread: threading.Thread | None = None
        self._state = SinkState.CREATED
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._error_reported = False
        self._closing = False
        self._delivered = 0
        self._dropped = 0

    @property
    def state(self) -> SinkState:
        """Life-cycle state."""
        return self._state

    @property
    def delivered(self) -> int:
        """Items the consumer has returned from."""
        return self._delivered

    @property
    def dropped(self) -> int:
        """Items not delivered: over ``max_backlog``, after a consumer failure, or after close."""
        return self._dropped

    @property
    def backlog(self) -> int:
        """Items waiting for the consumer (approximate while running)."""
        return self._queue.qsize()

    @property
    def error(self) -> BaseException | None:
        """The consumer's exception, if it failed."""
        return self._error

    def start(self) -> Self:
        """Start the worker thread; items put before this wait in the queue."""
        with self._lock:
            if self._state is not SinkState.CREATED:
                raise RuntimeError(
                    f"sink {self._name!r} cannot start in state {self._state.value!r}"
                )
            self._state = SinkState.RUNNING
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()
        return self

    def __call__(self, item: T) -> None:
        """Queue ``item`` for the consumer (the loop-thread side: never blocks)."""
        if (
            self._closing
            or self._state is SinkState.FAILED
            or (self._max_backlog is not None and self._queue.qsize() >= self._max_backlog)
        ):
            self._dropped += 1
            return
        self._queue.put(item)

    def _work(self) -> None:
        get = self._queue.get
        while True:
            item = get()
            if item is _CLOSE:
                return
            if self._error is not None:
                self._dropped += 1
                continue
            try:
                self._consumer(item)  # type: ignore[arg-type]
            except Exception as exc:
                self._error = exc
                self._state = SinkState.FAILED
                logger.error(
                    "sink %r: consumer failed, later items are dropped: %r", self._name, exc
                )
                continue
            self._delivered += 1

    def close(self, timeout_s: float | None = 30.0) -> None:
        """Deliver what is queued, stop the worker (idempotent); re-raise the consumer's error.

        Raises
        ------
        Exception
            The consumer's exception, once.
        RuntimeError
            If the backlog was not delivered within ``timeout_s``.
        """
        with self._lock:
            thread = self._thread
            if not self._closing:
                self._closing = True
                if self._state is not SinkState.FAILED:
                    self._state = SinkState.CLOSED
                if thread is not None:
                    self._queue.put(_CLOSE)
                else:  # never started: what was queued will never be delivered
                    self._dropped += self._queue.qsize()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                raise RuntimeError(
                    f"sink {self._name!r} did not deliver its backlog within {timeout_s} s"
                )
        if self._error is not None and not self._error_reported:
            self._error_reported = True
            raise self._error

    def __enter__(self) -> Self:
        if self._state is SinkState.CREATED:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        close_after_with(self.close, exc, f"sink {self._name!r}")
