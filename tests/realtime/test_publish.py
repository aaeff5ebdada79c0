"""LatestValue and RingBuffer under a real producer thread (bounded, no sleeps)."""

from __future__ import annotations

import threading

import pytest

from vrbalance.realtime.publish import LatestValue, Published, RingBuffer


def test_latest_value_sequence_and_newer_than() -> None:
    latest: LatestValue[tuple[int, str]] = LatestValue()
    assert latest.get() is None and latest.latest() is None and latest.seq == 0
    assert latest.newer_than(0) is None
    assert latest.publish((1, "a")) == 1
    assert latest.publish((2, "b")) == 2
    assert latest.latest() == Published(2, (2, "b"))
    assert latest.newer_than(1) == Published(2, (2, "b"))
    assert latest.newer_than(2) is None


def test_latest_value_readers_see_consistent_monotonic_snapshots() -> None:
    # The writer publishes (i, i*i); readers must never see a torn pair nor go back.
    latest: LatestValue[tuple[int, int]] = LatestValue()
    n = 20_000
    done = threading.Event()
    problems: list[str] = []
    seen_counts: list[int] = []

    def reader() -> None:
        last_seq = 0
        seen = 0
        while not done.is_set() or latest.seq != last_seq:
            snap = latest.latest()
            if snap is None:
                continue
            i, sq = snap.value
            if sq != i * i or snap.seq != i:
                problems.append(f"torn snapshot {snap}")
            if snap.seq < last_seq:
                problems.append(f"went back from {last_seq} to {snap.seq}")
            if snap.seq != last_seq:
                seen += 1
            last_seq = snap.seq
        seen_counts.append(seen)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for r in readers:
        r.start()
    for i in range(1, n + 1):
        latest.publish((i, i * i))
    done.set()
    for r in readers:
        r.join(30)
    assert not problems
    assert latest.seq == n
    assert len(seen_counts) == 2 and all(c >= 1 for c in seen_counts)


def test_ring_buffer_drops_oldest_and_counts() -> None:
    ring: RingBuffer[int] = RingBuffer(3)
    for i in range(5):
        ring.push(i)
    assert ring.dropped == 2
    assert ring.drain() == [2, 3, 4]
    assert ring.drain() == []
    ring.push_many([5, 6, 7, 8])
    assert ring.drain() == [6, 7, 8]
    counts = ring.counts()
    assert (counts.pushed, counts.drained, counts.dropped, counts.pending) == (9, 6, 3, 0)


def test_ring_buffer_rejects_bad_capacity() -> None:
    with pytest.raises(ValueError, match="capacity must be an int >= 1, got 0"):
        RingBuffer(0)
    with pytest.raises(ValueError, match="capacity must be an int >= 1, got True"):
        RingBuffer(True)


def test_ring_buffer_producer_thread_no_loss_no_duplication() -> None:
    # Capacity above the total: every item must come out exactly once, in order.
    n = 50_000
    ring: RingBuffer[int] = RingBuffer(n)
    finished = threading.Event()

    def produce() -> None:
        for i in range(n):
            if i % 3 == 0:
                ring.push_many([i])
            else:
                ring.push(i)
        finished.set()

    producer = threading.Thread(target=produce)
    producer.start()
    got: list[int] = []
    while not finished.is_set():
        got.extend(ring.drain())
    got.extend(ring.drain())
    producer.join(30)
    assert got == list(range(n))
    assert ring.dropped == 0
    assert ring.counts().drained == n


def test_ring_buffer_producer_thread_overflow_drop_count_is_exact() -> None:
    # A small ring and a consumer that drains rarely: what came out plus what was
    # dropped is exactly what went in, still in order, with no duplicates.
    n = 30_000
    ring: RingBuffer[int] = RingBuffer(64)
    finished = threading.Event()

    def produce() -> None:
        for i in range(n):
            ring.push(i)
        finished.set()

    producer = threading.Thread(target=produce)
    producer.start()
    got: list[int] = []
    drains = 0
    while not finished.is_set():
        drains += 1
        if drains % 50 == 0:
            got.extend(ring.drain())
    got.extend(ring.drain())
    producer.join(30)
    assert got == sorted(set(got))
    assert len(got) + ring.dropped == n
    assert got[-1] == n - 1
    assert ring.counts().pushed == n
