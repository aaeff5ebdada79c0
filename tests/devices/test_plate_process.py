"""The plate read in its own process: a real child writes a real shared-memory ring.

The point of the plate process is that frames are received and stamped on
time whatever this process does with its GIL. The decisive test holds this
process's GIL in one C call for 0.5 s: frames stamped *inside* that window
can only come from another process (an in-process reader thread needs the
GIL to stamp a frame: the contrast test shows it stamps none there).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable

import pytest

from vrbalance.balance.geometry import Body
from vrbalance.clock import MonotonicClock
from vrbalance.config.plates import load_plate
from vrbalance.devices.driver import ForcePlate, PlateState
from vrbalance.devices.plate_process import PlateProcess
from vrbalance.devices.pty_server import SimulatedPlateServer
from vrbalance.devices.shared_ring import SharedFrameRing
from vrbalance.devices.simulator import PersonParams
from vrbalance.errors import DeviceError
from vrbalance.samples import PlateFrame
from vrbalance.sessions.sim import SimulatedHead

HOLD_S = 0.5
#: Only frames stamped this far inside the hold count: the clock is read in
#: bytecode around the C call, where the GIL can change hands.
EDGE_S = 0.15


def _frame(k: int) -> PlateFrame:
    if k % 2:
        return PlateFrame(k, None, 1.0 + k, (float(k), 2.0, 3.0, 4.0))
    return PlateFrame(k, 0.001 * k, 1.0 + k, (1.0, 2.0, float(k), 4.0, 5.0, 6.0), "six_axis")


def _writer(name: str, n: int) -> None:
    ring = SharedFrameRing.attach(name)
    for k in range(n):
        ring.write([_frame(k)])
    ring.set_state(2)
    ring.close()


def _hold_gil(seconds: float) -> tuple[float, float]:
    """Hold the GIL in one C call (builtin ``sum`` over a range) for about ``seconds``."""
    n = 1_000_000
    while True:
        t0 = time.perf_counter()
        sum(range(n))
        t1 = time.perf_counter()
        if t1 - t0 >= seconds:
            return t0, t1
        n = int(n * min(max(seconds / max(t1 - t0, 1e-6) * 1.2, 1.5), 50))


@pytest.fixture
def wait_for() -> Callable[..., None]:
    def wait(predicate: Callable[[], bool], timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.005)

    return wait


def test_frames_from_a_child_process_arrive_whole_in_order_and_lapping_is_counted() -> None:
    ring = SharedFrameRing.create(capacity=64)
    try:
        ctx = multiprocessing.get_context("forkserver")
        child = ctx.Process(target=_writer, args=(ring.name, 50))
        child.start()
        child.join(30)
        assert child.exitcode == 0
        frames = ring.drain()
        assert frames == [_frame(k) for k in range(50)]  # every field, None kept as None
        assert ring.state == 2 and ring.dropped == 0 and ring.drain() == []
        # A reader that falls more than a ring behind loses the oldest, counted.
        ring.write([_frame(k) for k in range(50, 250)])
        frames = ring.drain()
        assert [f.seq for f in frames] == list(range(250 - 64, 250))
        assert ring.dropped == 200 - 64
    finally:
        ring.unlink()


def test_a_slot_being_overwritten_is_dropped_not_torn() -> None:
    ring = SharedFrameRing.create(capacity=4)
    try:
        ring.write([_frame(k) for k in range(4)])
        # The writer has started slot 1 again (frame 5's index lock is set first).
        from vrbalance.devices import shared_ring as sr

        sr._INDEX.pack_into(ring._buf, sr._SLOTS_OFFSET + 1 * sr._SLOT_SIZE, sr._WRITING)
        assert [f.seq for f in ring.drain()] == [0, 2, 3]
        assert ring.dropped == 1
    finally:
        ring.unlink()


def test_the_plate_process_keeps_reading_while_this_process_holds_the_gil(
    wait_for: Callable[..., None],
) -> None:
    person = PersonParams(mass_kg=70.0, height_m=1.70)
    with PlateProcess() as proc:
        # A plate that cannot open raises here, naming the port; the process stays.
        with pytest.raises(DeviceError, match="/nonexistent/ttyUSB9"):
            proc.open_serial("wii-balance-board", "/nonexistent/ttyUSB9")
        plate, shared_person = proc.open_simulated("wii-balance-board", person, seed=1)
        assert plate.state is PlateState.STREAMING
        # The opening's events are the trial's; the failed open's are forgotten.
        assert [e.kind for e in plate.drain_events()] == ["plate_connecting", "plate_streaming"]
        wait_for(lambda: len(plate.drain()) > 0)
        t0, t1 = _hold_gil(HOLD_S)
        wait_for(lambda: proc.ring.written > 0)
        frames = plate.drain()
        inside = [f for f in frames if t0 + EDGE_S < (f.received_time_s or 0.0) < t1 - EDGE_S]
        # Stamped while this process could not run a line of Python.
        assert inside, (t0, t1, [f.received_time_s for f in frames])
        # The simulated person's pose crosses too, for the head.
        head = SimulatedHead(
            type("S", (), {"person": shared_person})(),
            Body(1.70, 70.0),
            MonotonicClock(),
            (0.0, -0.05),
        )
        first = head.pose_at(0.0)
        wait_for(lambda: head.pose_at(0.0) is not first)
        pose = head.pose_at(0.0)
        assert pose is not None and 1.4 < pose.position_m[2] < 1.7
        plate.close()
        assert plate.state is PlateState.CLOSED
        assert "plate_closed" in [e.kind for e in plate.drain_events()]
    with pytest.raises(DeviceError, match="not started"):
        proc.open_serial("wii-balance-board", "/dev/null")


def test_an_in_process_reader_stamps_nothing_while_the_gil_is_held(
    wait_for: Callable[..., None],
) -> None:
    """The contrast: the same plate read by a thread of this process."""
    clock = MonotonicClock()
    plate = load_plate("wii-balance-board")
    with (
        SimulatedPlateServer(plate, seed=1, clock=clock) as server,
        ForcePlate(server.port_path, plate, clock=clock) as driver,
    ):
        wait_for(lambda: len(driver.drain()) > 0)
        t0, t1 = _hold_gil(HOLD_S)
        frames: list[PlateFrame] = []

        def read_after_the_hold() -> bool:
            frames.extend(driver.drain())
            return any((f.received_time_s or 0.0) >= t1 for f in frames)

        wait_for(read_after_the_hold)
    # The frames written meanwhile were read after the hold, late:
    assert not [f for f in frames if t0 + EDGE_S < (f.received_time_s or 0.0) < t1 - EDGE_S]
