"""Handing data between threads without putting locks in the balance loop's way.

Two shapes cover vrbalance's traffic:

* :class:`LatestValue` - one writer (the balance loop) publishes immutable
  snapshots; any number of readers (the renderer, the operator overlay) take
  the newest one whenever they like. Publishing replaces one reference to a
  frozen ``(seq, value)`` pair; in CPython a reference assignment and read are
  atomic, so a reader always gets a consistent pair without a lock, and the
  sequence number tells it whether anything new arrived since its last look.
* :class:`RingBuffer` - one producer thread (a device reader) pushes every
  sample; one consumer (the loop) drains all of them each tick. It is bounded:
  if the consumer stops draining, the oldest items are dropped and counted,
  never memory without end. A short lock makes the drop count exact; both
  sides hold it for a few hundred nanoseconds.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Published(Generic[T]):
    """One published snapshot.

    Attributes
    ----------
    seq : int
        1 for the first publication, +1 for each later one.
    value : T
        The published (immutable) object.
    """

    seq: int
    value: T


class LatestValue(Generic[T]):
    """Single-writer, many-reader holder of the newest snapshot.

    Only one thread may call :meth:`publish`; readers may call anything else
    from any thread at any time. Publish immutable objects (frozen
    dataclasses): readers share them.

    Examples
    --------
    >>> latest = LatestValue[str]()
    >>> latest.get() is None
    True
    >>> latest.publish("a")
    1
    >>> latest.latest()
    Published(seq=1, value='a')
    """

    __slots__ = ("_current",)

    def __init__(self) -> None:
        self._current: Published[T] | None = None

    def publish(self, value: T) -> int:
        """Make ``value`` the newest snapshot; return its sequence number."""
        current = self._current
        seq = 1 if current is None else current.seq + 1
        self._current = Published(seq, value)  # one atomic reference swap
        return seq

    def latest(self) -> Published[T] | None:
        """The newest ``(seq, value)`` pair, or ``None`` before the first publish."""
        return self._current

    def get(self) -> T | None:
        """The newest value, or ``None`` before the first publish."""
        current = self._current
        return None if current is None else current.value

    @property
    def seq(self) -> int:
        """Sequence number of the newest snapshot (0 before the first)."""
        current = self._current
        return 0 if current is None else current.seq

    def newer_than(self, seq: int) -> Published[T] | None:
        """The newest snapshot if its sequence number is above ``seq``, else ``None``."""
        current = self._current
        if current is None or current.seq <= seq:
            return None
        return current


@dataclass(frozen=True, slots=True)
class RingCounts:
    """Counters of a :class:`RingBuffer`.

    Attributes
    ----------
    pushed : int
        Items pushed since creation.
    drained : int
        Items handed out by :meth:`RingBuffer.drain`.
    dropped : int
        Oldest items discarded because the buffer was full.
    pending : int
        Items waiting now.
    """

    pushed: int
    drained: int
    dropped: int
    pending: int


class RingBuffer(Generic[T]):
    """Bounded FIFO for one producer thread and one consumer thread.

    Parameters
    ----------
    capacity : int
        Most items held; when full, a push drops the oldest item (counted in
        :attr:`dropped`). Size it to cover the longest gap between drains you
        tolerate, e.g. 2000 frames = 2 s of a 1 kHz plate.

    Raises
    ------
    ValueError
        If ``capacity`` is not an int >= 1.
    """

    __slots__ = ("_capacity", "_drained", "_dropped", "_items", "_lock", "_pushed")

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        self._capacity = capacity
        self._items: deque[T] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._pushed = 0
        self._drained = 0
        self._dropped = 0

    @property
    def capacity(self) -> int:
        """The most items held."""
        return self._capacity

    @property
    def dropped(self) -> int:
        """Oldest items discarded so far because the buffer was full."""
        return self._dropped

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: T) -> None:
        """Append one item (producer side); drops the oldest if full."""
        with self._lock:
            if len(self._items) == self._capacity:
                self._dropped += 1
            self._items.append(item)
            self._pushed += 1

    def push_many(self, items: Iterable[T]) -> None:
        """Append several items in order under one lock (e.g. one read's frames)."""
        batch = list(items)
        if not batch:
            return
        with self._lock:
            overflow = len(self._items) + len(batch) - self._capacity
            if overflow > 0:
                self._dropped += overflow
            self._items.extend(batch)
            self._pushed += len(batch)

    def drain(self) -> list[T]:
        """Remove and return every item pushed since the last drain, oldest first."""
        with self._lock:
            if not self._items:
                return []
            out = list(self._items)
            self._items.clear()
            self._drained += len(out)
        return out

    def counts(self) -> RingCounts:
        """A consistent snapshot of the counters."""
        with self._lock:
            return RingCounts(
                pushed=self._pushed,
                drained=self._drained,
                dropped=self._dropped,
                pending=len(self._items),
            )
