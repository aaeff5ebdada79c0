"""SimulatedPlateServer: a raw pty, a stable path, scripted unplug/replug and stalls."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import serial

from vrbalance.config.plates import PlateSpec
from vrbalance.devices.driver import ForcePlate, PlateState
from vrbalance.devices.pty_server import BANNER, SimulatedPlateServer


def test_port_is_raw_so_binary_bytes_pass_unchanged(wii: PlateSpec) -> None:
    # Bytes a cooked tty would translate or act on: CR, LF, ^C, ^S/^Q, ^D, DEL.
    payload = bytes([0x0D, 0x0A, 0x03, 0x13, 0x11, 0x04, 0x7F, 0x00, 0xFF, 0x0D])
    # Stalled from the start: only the test's bytes go through.
    stalled = "stall@0s:duration=60"
    with SimulatedPlateServer(wii, protocol="binary", rate_hz=1, script=stalled, seed=0) as sim:
        port = serial.serial_for_url(sim.port_path, timeout=1.0)
        try:
            assert sim._write(payload)
            assert port.read(len(payload)) == payload
        finally:
            port.close()


def test_ascii_server_prints_its_banner_first(wii: PlateSpec) -> None:
    with SimulatedPlateServer(wii, rate_hz=50, seed=0) as sim:
        # Opened before the banner is read: pyserial's open flushes, so read raw.
        fd = os.open(sim.port_path, os.O_RDONLY | os.O_NOCTTY)
        try:
            data = b""
            while len(data) < len(BANNER) + 10:
                data += os.read(fd, 4096)
        finally:
            os.close(fd)
    assert data.startswith(BANNER)


def test_plate_id_keyword_and_defaults() -> None:
    with SimulatedPlateServer(plate_id="generic-six-axis", seed=0) as sim:
        assert (sim.plate.id, sim.protocol, sim.rate_hz) == ("generic-six-axis", "binary", 1000.0)
        path = sim.port_path
        assert os.path.islink(path)
    assert not os.path.exists(path)
    sim.stop()  # idempotent
    with pytest.raises(ValueError, match="give plate or plate_id, not both"):
        SimulatedPlateServer("wii-balance-board", plate_id="generic-six-axis")


def test_scripted_unplug_and_replug_keep_the_path(
    wii: PlateSpec, wait_until: Callable[..., None]
) -> None:
    with (
        SimulatedPlateServer(wii, rate_hz=200, script="unplug@0.4s,replug@0.8s", seed=0) as sim,
        ForcePlate(sim.port_path, sim.plate) as plate,
    ):
        wait_until(lambda: plate.state is PlateState.LOST, 2.0)
        assert not os.path.exists(sim.port_path)
        wait_until(
            lambda: plate.state is PlateState.STREAMING and plate.stats().reconnects == 1, 2.0
        )
        kinds = [e.kind for e in plate.drain_events()]
    assert kinds[-3:] == ["plate_lost", "plate_connecting", "plate_reconnected"]


def test_scripted_stall_shows_as_stalled_then_streaming(
    wii: PlateSpec, wait_until: Callable[..., None]
) -> None:
    with (
        SimulatedPlateServer(wii, rate_hz=200, script="stall@0.3s:duration=0.4", seed=0) as sim,
        ForcePlate(sim.port_path, sim.plate, stall_after_s=0.1) as plate,
    ):
        wait_until(lambda: plate.state is PlateState.STALLED, 2.0)
        wait_until(lambda: plate.state is PlateState.STREAMING, 2.0)
        kinds = [e.kind for e in plate.drain_events()]
        assert sim.frames_unsent > 0
    assert kinds == ["plate_connecting", "plate_streaming", "plate_stalled", "plate_streaming"]
