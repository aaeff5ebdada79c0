"""ForcePlate end to end: real bytes through pseudo-terminals and pyserial's loop://."""

from __future__ import annotations

import dataclasses
import functools
import operator
import os
import re
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
import serial

from vrbalance.balance.cop import compute_cop
from vrbalance.clock import ManualClock
from vrbalance.config.plates import PlateSpec
from vrbalance.devices.calibration import FrameConverter, load_calibration
from vrbalance.devices.driver import ForcePlate, PlateState
from vrbalance.devices.protocols import AsciiLineProtocol, ParserStats, encode_binary_frame
from vrbalance.devices.pty_server import SimulatedPlateServer
from vrbalance.errors import DeviceError, ProtocolError
from vrbalance.samples import PlateFrame


def _six_axis_counts(n: int) -> list[tuple[int, ...]]:
    # ~700 N on Fz, CoP moving along x; counts through the nominal calibration.
    return [
        (1200 + i, -800 - i, 30000 + 7_000_000, 500 + 10 * i, -700 - 35_000 * i, 100)
        for i in range(n)
    ]


def test_binary_six_axis_frames_through_a_pty_into_cop(
    six_axis: PlateSpec, pty_pair: tuple[int, str], wait_until: Callable[..., None]
) -> None:
    master, path = pty_pair
    clock = ManualClock(100.0)
    rows = _six_axis_counts(20)
    stream = bytearray(b"".join(encode_binary_frame(i, 1000 * i, c) for i, c in enumerate(rows)))
    stream[5 * 37 + 20] ^= 0x04  # a bit flip in frame 5
    stream = (
        b"\x00\xa5\x5a\xff garbage"
        + bytes(stream[: 12 * 37 + 9])
        + b"\xa5"
        + bytes(stream[12 * 37 + 9 :])
    )
    with ForcePlate(path, six_axis, clock=clock, wait_for_first_frame=False) as plate:
        for i in range(0, len(stream), 50):  # in pieces, as a UART delivers them
            os.write(master, stream[i : i + 50])
        wait_until(lambda: plate.stats().frames >= 18)
        frames = plate.drain()
        stats = plate.stats()
        assert plate.state is PlateState.STREAMING
    assert [f.seq for f in frames] == [i for i in range(20) if i not in (5, 12)]
    assert stats.parser.crc_failures == 2
    assert stats.parser.frames_missed == 2
    assert stats.io_errors == 0 and stats.parse_errors == 0
    assert all(f.received_time_s == 100.0 and f.kind == "six_axis" for f in frames)
    assert frames[3].device_time_s == pytest.approx(0.003)
    expected = FrameConverter(six_axis, load_calibration("generic-six-axis")).counts_to_core(
        [rows[f.seq] for f in frames]
    )
    np.testing.assert_allclose([f.channels for f in frames], expected)
    cop = compute_cop([f.channels for f in frames], six_axis.geometry)
    # Fz = 700 N, My = -0.35 N*m per step -> x = 0.5 mm per step; Mx tiny -> y ~ 0.
    np.testing.assert_allclose(cop.cop_m[:, 0], [0.0005 * f.seq for f in frames], atol=1e-6)
    np.testing.assert_allclose(cop.vertical_force_n, 700.0, atol=0.01)


def test_ascii_lines_with_banner_and_crlf_through_a_pty(
    wii: PlateSpec, pty_pair: tuple[int, str], wait_until: Callable[..., None]
) -> None:
    master, path = pty_pair
    cal = load_calibration("wii-balance-board")
    # 686.5 N with the CoP 5 cm right and 2 cm forward of centre.
    cells = np.array(wii.geometry.cell_positions_m)
    from vrbalance.devices.simulator import cell_forces

    forces = cell_forces(686.5, 0.05, 0.02, cells)
    counts = tuple(
        int(c) for c in np.rint(FrameConverter(wii, cal).core_to_counts(forces[None])[0])
    )
    lines = [
        AsciiLineProtocol.encode(i, 10_000 * i, counts).replace(b"\n", b"\r\n") for i in range(10)
    ]
    with ForcePlate(path, wii, wait_for_first_frame=False) as plate:
        os.write(master, b"34,99,1\r\nHX711 x4 ready\r\n# scale 1.0\r\n" + b"".join(lines))
        wait_until(lambda: plate.stats().frames >= 10)
        frames = plate.drain()
        assert plate.stats().parser.banner_lines == 2
    cop = compute_cop([f.channels for f in frames], wii.geometry)
    np.testing.assert_allclose(cop.cop_m, [[0.05, 0.02]] * 10, atol=2e-5)
    np.testing.assert_allclose(cop.vertical_force_n, 686.5, atol=0.01)


def test_loop_url_and_ring_buffer_overflow(wii: PlateSpec, wait_until: Callable[..., None]) -> None:
    with ForcePlate("loop://", wii, buffer_frames=10, wait_for_first_frame=False) as plate:
        plate.serial_port.write(
            b"\n" + b"".join(AsciiLineProtocol.encode(i, i, (1, 2, 3, 4)) for i in range(50))
        )
        wait_until(lambda: plate.stats().frames >= 50)
        frames = plate.drain()
        assert plate.drain() == []
        stats = plate.stats()
    assert [f.seq for f in frames] == list(range(40, 50))
    assert stats.overflowed == 40


def test_simulated_plates_stream_in_both_protocols(
    wii: PlateSpec, wait_until: Callable[..., None]
) -> None:
    for protocol in ("ascii", "binary"):
        with (
            SimulatedPlateServer(wii, protocol=protocol, rate_hz=500, seed=0) as sim,
            ForcePlate(sim.port_path, sim.plate, protocol=protocol) as plate,
        ):
            wait_until(lambda p=plate: p.stats().frames >= 100)
            frames = plate.drain()
            events = [e.kind for e in plate.drain_events()]
        cop = compute_cop([f.channels for f in frames], wii.geometry)
        assert cop.loaded.all()
        np.testing.assert_allclose(cop.vertical_force_n.mean(), 686.5, rtol=0.01)
        assert np.abs(cop.cop_m[:, 0]).max() < 0.02 and 0.0 < cop.cop_m[:, 1].mean() < 0.04
        assert events[:2] == ["plate_connecting", "plate_streaming"]
        seqs = [f.seq for f in frames]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_unplug_and_replug_mid_stream_resumes(
    six_axis: PlateSpec, wait_until: Callable[..., None]
) -> None:
    # How fast it resumes is a figure of benchmarks/bench_serial.py (replug ->
    # streaming, target < 1 s); this test checks what happens, with deadlines
    # only long enough to tell a hang from a busy machine.
    with (
        SimulatedPlateServer(six_axis, rate_hz=1000, seed=0) as sim,
        ForcePlate(sim.port_path, sim.plate) as plate,
    ):
        wait_until(lambda: plate.stats().frames > 200)
        sim.unplug()
        wait_until(lambda: plate.state is PlateState.LOST)
        plate.drain()
        time.sleep(0.3)  # the plate stays unplugged for a while: nothing arrives
        assert plate.drain() == []
        sim.replug()
        wait_until(lambda: plate.state is PlateState.STREAMING)
        wait_until(lambda: len(plate.drain()) > 0)
        events = plate.drain_events()
        stats = plate.stats()
    kinds = [e.kind for e in events]
    assert kinds == [
        "plate_connecting",
        "plate_streaming",
        "plate_lost",
        "plate_connecting",
        "plate_reconnected",
    ]
    lost = events[2]
    assert lost.severity == "warning" and lost.values["port"] == sim.port_path
    assert events[4].values["downtime_s"] > 0.25
    assert stats.io_errors == 1 and stats.reconnects == 1


class _ReadCountingClock(ManualClock):
    """A ManualClock that counts its reads, so a test can wait for the reader to poll."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def now_s(self) -> float:
        self.reads += 1
        return super().now_s()


def test_stall_is_detected_on_the_injected_clock(
    wii: PlateSpec, pty_pair: tuple[int, str], wait_until: Callable[..., None]
) -> None:
    master, path = pty_pair
    clock = _ReadCountingClock()
    with ForcePlate(path, wii, clock=clock, stall_after_s=0.1, wait_for_first_frame=False) as plate:
        os.write(master, b"\n" + AsciiLineProtocol.encode(0, 0, (1, 2, 3, 4)))
        wait_until(lambda: plate.state is PlateState.STREAMING)
        clock.advance(0.05)
        # 50 ms of clock is not a stall: checked once the reader has looked at the
        # advanced clock in a few more polls (not after a guessed sleep).
        reads = clock.reads
        wait_until(lambda: clock.reads >= reads + 3)
        assert plate.state is PlateState.STREAMING
        clock.advance(0.06)
        wait_until(lambda: plate.state is PlateState.STALLED)
        os.write(master, AsciiLineProtocol.encode(1, 1000, (1, 2, 3, 4)))
        wait_until(lambda: plate.state is PlateState.STREAMING)
        kinds = [e.kind for e in plate.drain_events()]
    assert kinds == ["plate_connecting", "plate_streaming", "plate_stalled", "plate_streaming"]
    assert [e.kind for e in plate.drain_events()] == ["plate_closed"]
    assert plate.state is PlateState.CLOSED


def test_nonexistent_port_names_it() -> None:
    plate = ForcePlate("/dev/ttyVRBALANCE_NOPE", _wii())
    with pytest.raises(DeviceError, match=r"serial port '/dev/ttyVRBALANCE_NOPE' does not exist"):
        plate.open()
    assert plate.state is PlateState.CLOSED


def _wii() -> PlateSpec:
    from vrbalance.config.plates import load_plate

    return load_plate("wii-balance-board")


def test_busy_port_names_it(wii: PlateSpec, pty_pair: tuple[int, str]) -> None:
    _, path = pty_pair
    holder = serial.serial_for_url(path, exclusive=True)
    try:
        with pytest.raises(DeviceError, match=rf"serial port '{path}' is busy: another program"):
            ForcePlate(path, wii).open()
    finally:
        holder.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root opens any device")
def test_permission_denied_says_join_dialout(wii: PlateSpec, pty_pair: tuple[int, str]) -> None:
    _, path = pty_pair
    os.chmod(path, 0)
    with pytest.raises(DeviceError, match=r"permission denied .* 'dialout' group"):
        ForcePlate(path, wii).open()


def _open_timing_out_after_bytes(
    plate: ForcePlate,
    clock: ManualClock,
    arrived: Callable[[ParserStats], bool] = lambda stats: stats.bytes_received > 0,
) -> None:
    """``plate.open()`` on a manual clock that passes the first-frame timeout only
    once the reader has received the bytes ``arrived`` looks for.

    On the wall clock, a reader starved of CPU for the whole timeout sees no byte
    and rightly says "no data"; a test about what the driver says of bytes it
    could not parse must first let the bytes arrive, however slow the machine.
    """

    def time_out_once_bytes_arrived() -> None:
        deadline = time.monotonic() + 10.0
        while not arrived(plate.stats().parser) and time.monotonic() < deadline:
            time.sleep(0.002)
        clock.advance(60.0)

    timer = threading.Thread(target=time_out_once_bytes_arrived, daemon=True)
    timer.start()
    try:
        plate.open()
    finally:
        timer.join()


def test_wrong_protocol_says_what_was_tried(wii: PlateSpec) -> None:
    clock = ManualClock()
    with (
        SimulatedPlateServer(wii, protocol="binary", rate_hz=500, seed=0) as sim,
        pytest.raises(
            ProtocolError,
            match=(
                r"bytes but no valid frame from serial port '.*ttySIM0' within 0.3 s: wrong baud "
                r"rate or protocol\? \(tried 115200 baud, ascii protocol, 4 channels; saw \d+ bytes"
            ),
        ),
    ):
        plate = ForcePlate(sim.port_path, sim.plate, clock=clock, first_frame_timeout_s=0.3)
        _open_timing_out_after_bytes(plate, clock)


def test_silent_port_says_no_data(wii: PlateSpec, pty_pair: tuple[int, str]) -> None:
    _, path = pty_pair
    plate = ForcePlate(path, wii, first_frame_timeout_s=0.2)
    with pytest.raises(DeviceError, match=rf"no data from serial port '{path}' within 0.2 s"):
        plate.open()
    plate.close()  # idempotent after a failed open
    assert plate.state is PlateState.CLOSED


def test_random_bytes_at_the_wrong_baud_rate_are_a_protocol_error(
    six_axis: PlateSpec, pty_pair
) -> None:
    # What a UART at the wrong baud rate delivers: a steady stream of noise.
    master, path = pty_pair
    rng = np.random.default_rng(0)
    stop = threading.Event()

    def noise() -> None:
        while not stop.wait(0.01):
            os.write(master, rng.integers(0, 256, 200, dtype=np.uint8).tobytes())

    writer = threading.Thread(target=noise, daemon=True)
    writer.start()
    try:
        with pytest.raises(
            ProtocolError,
            match=(
                rf"bytes but no valid frame from serial port '{path}' within 0.3 s: "
                r"wrong baud rate or protocol\? \(tried 921600 baud, binary protocol, "
                r"6 channels; saw \d+ bytes, \d+ CRC failures"
            ),
        ):
            clock = ManualClock()
            plate = ForcePlate(path, six_axis, clock=clock, first_frame_timeout_s=0.3)
            _open_timing_out_after_bytes(plate, clock)
    finally:
        stop.set()
        writer.join()


def test_a_failing_frames_hook_is_a_parse_error_not_a_lost_port(
    wii: PlateSpec, pty_pair: tuple[int, str], wait_until: Callable[..., None]
) -> None:
    master, path = pty_pair
    calls = []

    def hook(frames: list[PlateFrame], t_s: float) -> None:
        calls.append(len(frames))
        if len(calls) == 1:
            raise ValueError("recorder bug")

    with ForcePlate(path, wii, on_frames=hook, wait_for_first_frame=False) as plate:
        os.write(master, b"\n" + AsciiLineProtocol.encode(0, 0, (1, 2, 3, 4)))
        wait_until(lambda: plate.stats().parse_errors == 1)
        os.write(master, AsciiLineProtocol.encode(1, 1, (1, 2, 3, 4)))
        wait_until(lambda: len(calls) == 2)
        stats = plate.stats()
        kinds = [e.kind for e in plate.drain_events()]
        assert [f.seq for f in plate.drain()] == [0, 1]
        assert plate.state is PlateState.STREAMING
    assert (stats.parse_errors, stats.io_errors) == (1, 0)
    assert "plate_parse_error" in kinds and "plate_lost" not in kinds


def test_a_closed_plate_can_be_opened_again(
    wii: PlateSpec, wait_until: Callable[..., None]
) -> None:
    with SimulatedPlateServer(wii, rate_hz=200, seed=0) as sim:
        plate = ForcePlate(sim.port_path, sim.plate)
        for _ in range(2):
            with plate:
                wait_until(lambda: len(plate.drain()) > 0)
                assert plate.state is PlateState.STREAMING
            assert plate.state is PlateState.CLOSED
        kinds = [e.kind for e in plate.drain_events()]
    assert kinds == ["plate_connecting", "plate_streaming", "plate_closed"] * 2


# -- the strict ASCII protocol through the driver -------------------------------------------


def test_old_firmware_without_checksum_is_refused_with_the_fix(wii: PlateSpec) -> None:
    with (
        SimulatedPlateServer(wii, rate_hz=200, seed=0, ascii_checksum=False) as sim,
        pytest.raises(
            ProtocolError,
            match=(
                r"serial port '.*ttySIM0' sends ASCII lines without the \*HH checksum \(\d+ "
                r"lines in 0.3 s\); .* set ascii_checksum = \"optional\" in \[serial\] of "
                r".*wii-balance-board.toml"
            ),
        ),
    ):
        clock = ManualClock()
        plate = ForcePlate(sim.port_path, sim.plate, clock=clock, first_frame_timeout_s=0.3)
        _open_timing_out_after_bytes(plate, clock, lambda stats: stats.checksum_missing > 0)


def test_old_firmware_streams_when_the_plate_file_allows_it(
    wii: PlateSpec, wait_until: Callable[..., None]
) -> None:
    old = dataclasses.replace(
        wii, serial=dataclasses.replace(wii.serial, ascii_checksum="optional")
    )
    with (
        SimulatedPlateServer(old, rate_hz=200, seed=0, ascii_checksum=False) as sim,
        ForcePlate(sim.port_path, sim.plate) as plate,
    ):
        wait_until(lambda: plate.stats().frames >= 20)
        stats = plate.stats().parser
    assert stats.checksum_missing == 0 and stats.dropped == 0


def test_simulated_ascii_plate_sends_the_checksum_form(wii: PlateSpec) -> None:
    with SimulatedPlateServer(wii, rate_hz=200, seed=0, banner=False) as sim:
        fd = os.open(sim.port_path, os.O_RDONLY | os.O_NOCTTY)
        try:
            data = b""
            while data.count(b"\n") < 6:
                data += os.read(fd, 4096)
        finally:
            os.close(fd)
    for line in data.split(b"\n")[1:5]:  # whole lines (the first may be cut)
        assert re.fullmatch(rb"\$[0-9,\-]+\*[0-9A-F]{2}", line), line
        assert int(line[-2:], 16) == functools.reduce(operator.xor, line[1:-3], 0)


def test_dropped_lines_are_flagged_as_events_by_reason(
    wii: PlateSpec, pty_pair: tuple[int, str], wait_until: Callable[..., None]
) -> None:
    master, path = pty_pair
    enc = AsciiLineProtocol.encode
    bad = bytearray(enc(3, 3000, (1, 2, 3, 4)))
    bad[5] ^= 0x01  # one flipped bit
    lines = [enc(0, 0, (1, 2, 3, 4)), enc(1, 1000, (1, 2, 3, 4)), enc(1, 1000, (1, 2, 3, 4))]
    lines += [enc(2, 2000, (1, 2, 3, 4)), bytes(bad), enc(4, 4000, (1, 2, 3, 4))]
    clock = ManualClock(50.0)
    seen: list = []
    with ForcePlate(
        path, wii, clock=clock, wait_for_first_frame=False, on_event=seen.append
    ) as plate:
        os.write(master, b"\n" + b"".join(lines))
        wait_until(lambda: plate.stats().frames >= 4 and plate.stats().parser.dropped >= 2)
        # The first drop is flagged at once, later ones at most once a second (of the
        # driver's clock): a read after that second flags the rest.
        clock.advance(1.5)
        os.write(master, enc(5, 5000, (1, 2, 3, 4)))

        def flagged() -> dict[str, int]:
            total: dict[str, int] = {}
            for event in list(seen):
                if event.kind == "plate_data_rejected":
                    for key, value in event.values.items():
                        if key != "port":
                            total[key] = total.get(key, 0) + int(value)
            return total

        wait_until(lambda: flagged() == {"crc_failures": 1, "out_of_order": 1})
        wait_until(lambda: plate.stats().frames >= 5)
        events = [e for e in plate.drain_events() if e.kind == "plate_data_rejected"]
        frames = plate.drain()
    assert [f.seq for f in frames] == [0, 1, 2, 4, 5]
    assert events[0].severity == "warning" and path in events[0].message
