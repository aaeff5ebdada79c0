"""GuidedCalibration: the steps on a real (simulated) plate, with injected prompt and output."""

from __future__ import annotations

import pytest

from vrbalance.config.plates import PlateSpec
from vrbalance.devices.calibration import load_calibration
from vrbalance.devices.driver import ForcePlate
from vrbalance.devices.guided_calibration import GuidedCalibration
from vrbalance.devices.pty_server import SimulatedPlateServer
from vrbalance.devices.simulator import parse_load_script
from vrbalance.errors import DeviceError


def test_a_mass_that_never_arrives_times_out_saying_what_was_seen(wii: PlateSpec) -> None:
    lines: list[str] = []
    loads = parse_load_script("empty@0s", wii, 20.0)
    with (
        SimulatedPlateServer(wii, rate_hz=200, loads=loads, seed=0) as sim,
        ForcePlate(sim.port_path, wii) as device,
    ):
        guided = GuidedCalibration(
            device,
            wii,
            load_calibration(wii.id),
            mass_kg=20.0,
            interactive=False,
            tare_s=0.2,
            step_timeout_s=0.7,
            say=lines.append,
            progress=lambda label, fraction: None,
        )
        with pytest.raises(
            DeviceError,
            match=r"centre: timed out after 0.7 s on .*ttySIM0 \(last steady reading: -?0.0 N",
        ):
            guided.run()
    assert lines[0].startswith("Calibrating wii-balance-board on ")
    assert lines[-1].startswith("Step 2/6: put the 20 kg mass at the centre (x +0.0 cm")


def test_interactive_steps_ask_before_each_recording(wii: PlateSpec) -> None:
    prompts: list[str] = []
    # The plate stays empty: the operator's first Enter tares, the second finds no
    # mass, but interactively any steady load is recorded; the fit (not run here)
    # would then reject it.
    with (
        SimulatedPlateServer(wii, rate_hz=200, loads=[], seed=0) as sim,
        ForcePlate(sim.port_path, wii) as device,
    ):
        tare, loads = GuidedCalibration(
            device,
            wii,
            load_calibration(wii.id),
            mass_kg=10.0,
            interactive=True,
            tare_s=0.1,
            record_s=0.1,
            prompt=lambda text: prompts.append(text) or "",
            say=lambda line: None,
            progress=lambda label, fraction: None,
        ).run()
    assert len(prompts) == 6
    assert tare.shape[1] == 4 and len(loads) == 5
    assert [r.position_m for r in loads][1] == (-0.2165, 0.119)
