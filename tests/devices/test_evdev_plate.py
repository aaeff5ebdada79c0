"""The Wii Balance Board driver, fed real ``struct input_event`` bytes through real pipes.

There is no ``/dev/uinput`` here, so the driver's opener hands it the read end
of an ``os.pipe()`` per (re)connection; the test writes what the kernel would
write. Everything after the file descriptor is the production path: the reader
thread, ``select``, the parser, the calibration, the ring buffer, the states.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from evdev_streams import CORE_AXES, HAT0X, HAT0Y, HAT1X, HAT1Y, BoardStream, button, dropped

from vrbalance.balance.cop import compute_cop
from vrbalance.clock import MonotonicClock
from vrbalance.config.plates import PlateSpec
from vrbalance.devices import discovery
from vrbalance.devices.driver import ForcePlate, PlateState
from vrbalance.devices.evdev_plate import EvdevPlate, FdSource, open_plate
from vrbalance.devices.input_events import EV_ABS, EV_SYN, SYN_REPORT, encode_event, encode_report
from vrbalance.errors import ConfigError, DeviceError

N_PER_UNIT = 0.01 * 9.80665


class PipeBoard:
    """Opens a fresh pipe per connection, like a board that is replugged."""

    def __init__(self) -> None:
        self.write_fd: int | None = None
        self.opens = 0
        self.paths: list[str] = []

    def opener(self, path: str) -> FdSource:
        read_fd, write_fd = os.pipe()
        self.write_fd = write_fd
        self.opens += 1
        self.paths.append(path)
        return FdSource(read_fd, name=path)

    def send(self, data: bytes) -> None:
        assert self.write_fd is not None
        os.write(self.write_fd, data)

    def unplug(self) -> None:
        fd, self.write_fd = self.write_fd, None
        if fd is not None:
            os.close(fd)


@pytest.fixture
def board() -> PipeBoard:
    pipe = PipeBoard()
    yield pipe
    pipe.unplug()


def _plate(wii: PlateSpec, board: PipeBoard, **kwargs: object) -> EvdevPlate:
    return EvdevPlate("/dev/input/event7", wii, opener=board.opener, **kwargs)


def test_reports_become_newton_frames_in_the_core_frame(
    wii: PlateSpec, board: PipeBoard, wait_until: Callable[..., None]
) -> None:
    clock = MonotonicClock()
    plate = _plate(wii, board, clock=clock, wait_for_first_frame=False)
    with plate:
        assert plate.state is PlateState.CONNECTING
        t_before = clock.now_s()
        # 20 kg on the top-right cell (front-right: patient faces away from the button).
        board.send(encode_report(50.0, {HAT0X: 2000, HAT0Y: 0, HAT1X: 0, HAT1Y: 0}))
        wait_until(lambda: plate.state is PlateState.STREAMING)
        (frame,) = plate.drain()
    assert frame.channels == pytest.approx((0.0, 2000 * N_PER_UNIT, 0.0, 0.0))
    assert frame.device_time_s == pytest.approx(50.0)
    assert frame.received_time_s is not None and frame.received_time_s >= t_before
    cop = compute_cop([frame.channels], wii.geometry)
    x, y = cop.cop_m[0]
    assert x > 0.2 and y > 0.1  # over the front-right cell
    assert cop.vertical_force_n[0] == pytest.approx(20 * 9.80665)
    assert plate.state is PlateState.CLOSED


def test_a_swaying_person_streams_every_report(
    wii: PlateSpec, board: PipeBoard, wait_until: Callable[..., None]
) -> None:
    stream = BoardStream()
    loads = [(170 + i, 175 - i, 165 + i, 176 - i) for i in range(50)]
    with _plate(wii, board, wait_for_first_frame=False) as plate:
        board.send(stream.stream(10.0, 100.0, loads))
        wait_until(lambda: plate.stats().frames >= 50)
        frames = plate.drain()
        stats = plate.stats()
    assert [f.seq for f in frames] == list(range(50))
    assert [f.device_time_s for f in frames] == pytest.approx([10.0 + i / 100 for i in range(50)])
    total = [sum(f.channels) for f in frames]
    assert total == pytest.approx([686.0] * 50, abs=0.5)  # 70 kg, in the kernel's 10 g steps
    assert stats.parser.frames == 50 and stats.io_errors == 0


def test_stalls_when_reports_stop_and_resumes_when_they_come_back(
    wii: PlateSpec, board: PipeBoard, wait_until: Callable[..., None]
) -> None:
    events = []
    plate = _plate(wii, board, stall_after_s=0.05, wait_for_first_frame=False)
    plate._on_event = events.append
    with plate:
        board.send(encode_report(1.0, dict.fromkeys(CORE_AXES, 100)))
        wait_until(lambda: plate.state is PlateState.STREAMING)
        wait_until(lambda: plate.state is PlateState.STALLED)
        board.send(encode_report(2.0, {HAT1X: 120}))
        wait_until(lambda: plate.state is PlateState.STREAMING)
    kinds = [e.kind for e in events]
    assert kinds[:4] == ["plate_connecting", "plate_streaming", "plate_stalled", "plate_streaming"]


def test_unplug_is_lost_and_a_replug_reconnects(
    wii: PlateSpec, board: PipeBoard, wait_until: Callable[..., None]
) -> None:
    with _plate(wii, board, wait_for_first_frame=False) as plate:
        board.send(encode_report(1.0, dict.fromkeys(CORE_AXES, 100)))
        wait_until(lambda: plate.state is PlateState.STREAMING)
        board.unplug()  # EOF: what ENODEV is for a real device
        wait_until(lambda: plate.state in (PlateState.LOST, PlateState.CONNECTING))
        wait_until(lambda: board.opens == 2 and board.write_fd is not None)
        board.send(encode_report(3.0, dict.fromkeys(CORE_AXES, 200)))
        wait_until(lambda: plate.state is PlateState.STREAMING)
        frames = plate.drain()
        events = [e.kind for e in plate.drain_events()]
        stats = plate.stats()
    assert "plate_lost" in events and "plate_reconnected" in events
    assert frames[-1].channels == pytest.approx([200 * N_PER_UNIT] * 4)
    assert stats.io_errors == 1 and stats.reconnects == 1
    # Parser counts are not double-counted across the reconnect.
    assert stats.parser.frames == stats.frames == 2


def test_syn_dropped_recovery_through_the_driver(
    wii: PlateSpec, board: PipeBoard, wait_until: Callable[..., None]
) -> None:
    with _plate(wii, board, wait_for_first_frame=False) as plate:
        board.send(encode_report(1.0, dict.fromkeys(CORE_AXES, 100)))
        board.send(
            dropped(1.1)
            + encode_event(1.1, EV_ABS, HAT1Y, 5000)
            + encode_event(1.1, EV_SYN, SYN_REPORT, 0)
            + encode_report(1.2, {HAT0X: 300})  # partial: withheld
            + encode_report(1.3, {HAT0X: 301, HAT0Y: 302, HAT1X: 303, HAT1Y: 304})
        )
        wait_until(lambda: plate.stats().frames >= 2)
        frames = plate.drain()
        events = plate.drain_events()
    assert [f.channels for f in frames] == [
        pytest.approx([100 * N_PER_UNIT] * 4),
        pytest.approx([v * N_PER_UNIT for v in (303, 301, 304, 302)]),
    ]
    (drop,) = [e for e in events if e.kind == "plate_events_dropped"]
    assert drop.severity == "warning" and "waiting for every cell" in drop.message


def test_the_button_is_an_event_and_a_ready_signal(
    wii: PlateSpec, board: PipeBoard, wait_until: Callable[..., None]
) -> None:
    import threading

    with _plate(wii, board, wait_for_first_frame=False) as plate:
        assert not plate.wait_for_button(0.0)
        board.send(button(4.0, True) + button(4.2, False))
        wait_until(lambda: plate.button_pressed is False)
        # That press came before anyone waited: it is not a "ready" for a later wait.
        assert not plate.wait_for_button(0.0)
        result: list[bool] = []
        waiter = threading.Thread(target=lambda: result.append(plate.wait_for_button(10.0)))
        waiter.start()
        t = 6.0
        while waiter.is_alive():  # the patient presses until the session notices
            board.send(button(t, True) + button(t + 0.1, False))
            t += 1.0
            waiter.join(0.05)
        events = [e for e in plate.drain_events() if e.kind == "plate_button"]
    assert result == [True]
    assert [e.values["pressed"] for e in events[:3]] == [True, False, True]
    assert events[0].values["device_time_s"] == pytest.approx(4.0)
    assert plate.button_presses >= 2


def test_hold_repeat_keeps_an_empty_board_sending_for_the_tare(
    wii: PlateSpec, board: PipeBoard, wait_until: Callable[..., None]
) -> None:
    with _plate(wii, board, hold_repeat_s=0.01, wait_for_first_frame=False) as plate:
        board.send(encode_report(1.0, dict.fromkeys(CORE_AXES, 3)))
        wait_until(lambda: plate.stats().frames >= 5)
        frames = plate.drain()
    assert all(f.channels == pytest.approx([3 * N_PER_UNIT] * 4) for f in frames)
    assert frames[0].device_time_s == pytest.approx(1.0)
    assert all(f.device_time_s is None for f in frames[1:])  # held, not reported


def test_first_frame_timeout_names_the_device(wii: PlateSpec, board: PipeBoard) -> None:
    plate = _plate(wii, board, first_frame_timeout_s=0.05)
    with pytest.raises(DeviceError, match=r"no complete report from input device '/dev/input/"):
        plate.open()
    assert plate.state is PlateState.CLOSED


def _fake_sysfs(tmp_path: Path, devices: dict[int, str], *, readable: bool = True) -> tuple:
    """A /sys and /dev laid out as the kernel does for input devices and hid-wiimote."""
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    (dev_root / "input").mkdir(parents=True)
    for number, name in devices.items():
        device = sys_root / "class" / "input" / f"event{number}" / "device"
        hid = device / "device"
        (hid / "power_supply" / "wiimote_battery_00:1e:35:aa:bb:cc").mkdir(parents=True)
        (device / "name").write_text(name + "\n")
        node = dev_root / "input" / f"event{number}"
        node.write_bytes(b"")
        node.chmod(0o600 if readable else 0o000)
        if name == discovery.BALANCE_BOARD_NAME:
            (hid / "bboard_calib").write_text(
                "0ea7:0fba:0ca4:0d23:1522:1634:1338:13b3:1b9f:1cac:19cf:1a48\n"
            )
            (hid / "power_supply" / "wiimote_battery_00:1e:35:aa:bb:cc" / "capacity").write_text(
                "78\n"
            )
    return sys_root, dev_root


def test_port_auto_finds_the_board_by_name_and_reads_its_battery(
    wii: PlateSpec, board: PipeBoard, tmp_path: Path, wait_until: Callable[..., None]
) -> None:
    sys_root, dev_root = _fake_sysfs(
        tmp_path, {3: "AT Translated Set 2 keyboard", 11: discovery.BALANCE_BOARD_NAME}
    )
    plate = EvdevPlate(
        "auto",
        wii,
        opener=board.opener,
        sys_root=sys_root,
        dev_root=dev_root,
        wait_for_first_frame=False,
    )
    with plate:
        assert board.paths == [str(dev_root / "input" / "event11")]
        assert plate.battery_percent == 78
        events = plate.drain_events()
    assert any(e.kind == "plate_battery" and e.values["battery_percent"] == 78 for e in events)
    (found,) = discovery.find_input_plates(sys_root=sys_root, dev_root=dev_root)
    zero, mid, top = discovery.board_calibration(found)
    assert zero == (0x0EA7, 0x0FBA, 0x0CA4, 0x0D23) and top[3] == 0x1A48
    assert all(z < m < t for z, m, t in zip(zero, mid, top, strict=True))


def test_port_auto_without_a_board_lists_what_it_found(
    wii: PlateSpec, board: PipeBoard, tmp_path: Path
) -> None:
    sys_root, dev_root = _fake_sysfs(tmp_path, {3: "AT Translated Set 2 keyboard"})
    plate = EvdevPlate("auto", wii, opener=board.opener, sys_root=sys_root, dev_root=dev_root)
    with pytest.raises(DeviceError, match=r"no input device named 'Nintendo Wii .*event3 \(AT"):
        plate.open()


def test_permission_denied_says_join_the_input_group(tmp_path: Path, wii: PlateSpec) -> None:
    if os.geteuid() == 0:
        pytest.skip("root opens any device")
    node = tmp_path / "event9"
    node.write_bytes(b"")
    node.chmod(0)
    with pytest.raises(DeviceError, match=r"'input' group \(sudo usermod -aG input"):
        EvdevPlate(str(node), wii).open()


def test_a_missing_device_node_is_a_clear_error(wii: PlateSpec) -> None:
    with pytest.raises(DeviceError, match=r"input device '/dev/input/event97' does not exist"):
        EvdevPlate("/dev/input/event97", wii).open()


def test_a_plate_without_an_evdev_table_is_refused(six_axis: PlateSpec) -> None:
    with pytest.raises(ConfigError, match=r"generic-six-axis.*no \[evdev\] table"):
        EvdevPlate("auto", six_axis)


def test_open_plate_picks_the_transport_from_the_port(wii: PlateSpec) -> None:
    assert discovery.is_input_port("auto") and discovery.is_input_port("/dev/input/event3")
    assert not discovery.is_input_port("/dev/ttyUSB0") and not discovery.is_input_port("loop://")
    with pytest.raises(DeviceError, match="event98' does not exist"):
        open_plate(wii, "/dev/input/event98")
    with pytest.raises(DeviceError, match="serial port '/dev/ttyNOPE0' does not exist"):
        open_plate(wii, "/dev/ttyNOPE0")
    assert issubclass(EvdevPlate, ForcePlate)


def test_eof_is_enodev_like(board: PipeBoard) -> None:
    source = board.opener("/dev/input/event1")
    board.unplug()
    assert source.read(24) == b""  # the driver turns this into ENODEV
    source.close()
    with pytest.raises(OSError) as info:
        source.fileno()
    assert info.value.errno == errno.EBADF


@pytest.mark.hardware
def test_a_real_balance_board_streams(wii: PlateSpec) -> None:
    if os.environ.get("VRBALANCE_HARDWARE") != "1":
        pytest.skip("set VRBALANCE_HARDWARE=1 with a paired Wii Balance Board switched on")
    with EvdevPlate("auto", wii, hold_repeat_s=0.05) as plate:
        import time

        deadline = time.monotonic() + 3.0
        frames = []
        while time.monotonic() < deadline and len(frames) < 20:
            frames += plate.drain()
            time.sleep(0.02)
    assert len(frames) >= 20
    assert all(len(f.channels) == 4 and min(f.channels) >= 0.0 for f in frames)
    stamped = [f for f in frames if f.device_time_s is not None and f.received_time_s is not None]
    # CLOCK_MONOTONIC stamps: the kernel's time precedes the read by well under a second.
    assert all(0.0 <= f.received_time_s - f.device_time_s < 1.0 for f in stamped)


def test_guided_calibration_fits_per_cell_gains_on_top_of_the_kernels_values(
    wii: PlateSpec, board: PipeBoard
) -> None:
    """Tare and known-mass steps on an EvdevPlate; the mass moves when the steps say so."""
    import random
    import threading
    import time

    from vrbalance.devices.calibration import calibration_positions, fit_calibration
    from vrbalance.devices.guided_calibration import GuidedCalibration

    mass_kg = 20.0
    # This board's cells read 4-8 % off (a kernel unit is not exactly 10 g on them).
    factors = (1.06, 0.95, 1.08, 0.93)
    positions = dict(calibration_positions(wii))
    cells = wii.geometry.cell_positions_m
    a, b = abs(cells[0][0]), abs(cells[0][1])
    where: list[tuple[float, float] | None] = [None]
    stop = threading.Event()

    def cell_forces() -> list[float]:
        if where[0] is None:
            return [0.0] * 4
        x, y = where[0]
        w = mass_kg * 9.80665
        return [
            w / 4 * (1 + x / a * (1 if cx > 0 else -1)) * (1 + y / b * (1 if cy > 0 else -1))
            for cx, cy in cells
        ]

    def feeder() -> None:
        rng = random.Random(3)
        stream = BoardStream()
        t = 0.0
        while not stop.is_set():
            noisy = [
                f * k + rng.uniform(-0.15, 0.15)
                for f, k in zip(cell_forces(), factors, strict=True)
            ]
            # Each cell's zero has drifted by 30 g since the factory calibration.
            data = stream.report(t, [max(v, 0.0) + 0.3 for v in noisy])
            if data and board.write_fd is not None:
                board.send(data)
            t += 0.01
            time.sleep(0.01)

    def say(line: str) -> None:
        # The operator moves the mass as soon as the step asks for it.
        for name, xy in positions.items():
            if f"at the {name} " in line:
                where[0] = xy

    plate = EvdevPlate("/dev/input/event7", wii, opener=board.opener, hold_repeat_s=0.02)
    thread = threading.Thread(target=feeder, daemon=True)
    thread.start()  # writes once the plate has opened its pipe
    with plate:
        try:
            tare, loads = GuidedCalibration(
                plate,
                plate.plate,
                plate.calibration,
                mass_kg=mass_kg,
                interactive=False,
                tare_s=0.3,
                record_s=0.3,
                step_timeout_s=20.0,
                say=say,
            ).run()
        finally:
            # The board stops before the plate closes its end of the pipe (a write
            # after that is a broken pipe in the feeder thread, not a board).
            stop.set()
            thread.join()
    fitted = fit_calibration(plate.plate, tare, loads, base=plate.calibration)
    nominal = 0.0980665
    assert fitted.gains == pytest.approx([nominal / k for k in factors], rel=0.01)
    assert fitted.offsets_counts == pytest.approx([3.0] * 4, abs=1.5)  # 30 g tared per cell
    assert fitted.residual_max_n < 1.0
