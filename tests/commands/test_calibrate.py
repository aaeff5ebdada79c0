"""``vrbalance calibrate plate`` end to end against a simulated plate with known gains."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pytest

from vrbalance.cli import main
from vrbalance.config.plates import load_plate
from vrbalance.devices.calibration import Calibration, calibration_positions, load_calibration
from vrbalance.devices.pty_server import SimulatedPlateServer
from vrbalance.devices.simulator import StaticLoad

PLACES = ("centre", "front-left", "front-right", "back-left", "back-right")


@pytest.fixture(autouse=True)
def _private_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRBALANCE_DATA", str(tmp_path / "data"))


def _true_calibration(plate_id: str) -> Calibration:
    """The simulated plate's 'real' scale: gains 5-15 % off the nominal ones."""
    nominal = load_calibration(plate_id)
    factors = (1.1, 0.9, 1.05, 0.95, 1.15, 0.92)[: nominal.n_channels]
    return dataclasses.replace(
        nominal,
        gains=tuple(g * f for g, f in zip(nominal.gains, factors, strict=True)),
        offsets_counts=tuple(o + 500.0 * i for i, o in enumerate(nominal.offsets_counts)),
    )


def _run(args: list[str]) -> int:
    return main(["calibrate", "plate", *args])


_STEP = re.compile(r"Step \d+/\d+: put the [0-9.]+ kg mass at the ([a-z-]+) \(")


class _Operator:
    """The person at the plate: puts the mass where the calibration asks, when it asks.

    It reads the terminal (it stands in for ``sys.stdout``, passing everything
    on to pytest's capture) and, at each "Step k/n: put the mass at ..." line,
    moves the simulated plate's mass there; at a prompt it presses Enter. The
    mass then stays put until the next step, however long the procedure takes
    on a loaded machine: a load script on fixed times would move it on while
    a late procedure is still recording the previous place.

    Parameters
    ----------
    sim : SimulatedPlateServer
        Started with a plate that is empty.
    mass_kg : float
    misplaced_m : dict, optional
        Place name -> (dx, dy) the operator puts the mass off its mark, m.
    """

    def __init__(
        self,
        sim: SimulatedPlateServer,
        mass_kg: float,
        terminal: TextIO,
        misplaced_m: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        self._sim = sim
        self._mass_kg = mass_kg
        self._terminal = terminal
        self._misplaced_m = misplaced_m or {}
        self._positions = dict(calibration_positions(sim.plate))
        self._line = ""
        self.placed: list[str] = []
        self.prompts: list[str] = []

    def write(self, text: str) -> int:
        self._line += text
        *lines, self._line = self._line.split("\n")
        for line in lines:
            if (match := _STEP.search(line)) is not None:
                name = match.group(1)
                x, y = self._positions[name]
                dx, dy = self._misplaced_m.get(name, (0.0, 0.0))
                self._sim.signal.place((x + dx, y + dy), self._mass_kg)
                self.placed.append(name)
        return self._terminal.write(text)

    def input(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return ""

    def __getattr__(self, name: str) -> Any:  # flush, isatty, encoding...
        return getattr(self._terminal, name)


def _operator(
    monkeypatch: pytest.MonkeyPatch, sim: SimulatedPlateServer, mass_kg: float, **kwargs: Any
) -> _Operator:
    operator = _Operator(sim, mass_kg, sys.stdout, **kwargs)
    monkeypatch.setattr(sys, "stdout", operator)
    monkeypatch.setattr("builtins.input", operator.input)
    return operator


_EMPTY = [StaticLoad(0.0, None)]


@pytest.mark.slow
@pytest.mark.parametrize("plate_id", ["generic-six-axis"])  # the Wii plate: interactive test
def test_non_interactive_calibration_recovers_the_plates_gains(
    plate_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plate = load_plate(plate_id)
    true = _true_calibration(plate_id)
    out = tmp_path / "cal.toml"
    with SimulatedPlateServer(
        plate, protocol="binary", rate_hz=200, loads=_EMPTY, calibration=true, seed=1
    ) as sim:
        operator = _operator(monkeypatch, sim, 20.0)
        status = _run(
            [
                "--port", sim.port_path, "--plate", plate_id, "--protocol", "binary",
                "--non-interactive", "--mass-kg", "20", "--tare-s", "0.4", "--record-s", "0.4",
                "--step-timeout-s", "10", "--out", str(out),
            ]
        )  # fmt: skip
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert operator.placed == list(PLACES) and operator.prompts == []
    assert "Step 6/6: put the 20 kg mass at the back-right" in captured.out
    assert "fit accepted" in captured.out
    fitted = load_calibration(out)
    assert fitted.method == "fit" and fitted.mass_kg == 20.0
    fitted_idx = [0, 1, 2, 3] if plate_id == "wii-balance-board" else [2, 3, 4]
    np.testing.assert_allclose(
        np.array(fitted.gains)[fitted_idx], np.array(true.gains)[fitted_idx], rtol=5e-3
    )
    np.testing.assert_allclose(fitted.offsets_counts, true.offsets_counts, atol=2.0)
    assert fitted.residual_max_n < 1.0


@pytest.mark.slow
def test_interactive_calibration_prompts_each_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plate = load_plate("wii-balance-board")
    with SimulatedPlateServer(plate, rate_hz=200, loads=_EMPTY, seed=2) as sim:
        # The operator puts the mass where the step says, then presses Enter.
        operator = _operator(monkeypatch, sim, 15.0)
        status = _run(
            [
                "--port", sim.port_path, "--mass-kg", "15", "--tare-s", "0.3",
                "--record-s", "0.3", "--out", str(tmp_path / "cal.toml"),
            ]
        )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    prompts = operator.prompts
    assert len(prompts) == 6 and "plate is empty" in prompts[0]
    assert operator.placed == list(PLACES)
    np.testing.assert_allclose(
        load_calibration(tmp_path / "cal.toml").gains, load_calibration(plate.id).gains, rtol=5e-3
    )


def test_default_output_goes_to_the_data_folder_not_the_shipped_one(tmp_path: Path) -> None:
    from vrbalance.devices.calibration import user_calibration_path

    assert user_calibration_path("wii-balance-board") == (
        tmp_path / "data" / "calibrations" / "wii-balance-board.toml"
    )


def test_nonexistent_port_is_an_error_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    status = _run(["--port", "/dev/ttyVRB_NOPE", "--non-interactive", "--mass-kg", "20"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(
        "vrbalance calibrate: error: serial port '/dev/ttyVRB_NOPE' does not exist"
    )
    assert "Traceback" not in err


def test_non_interactive_needs_the_mass(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["--port", "/dev/ttyVRB_NOPE", "--non-interactive"]) == 2
    assert "--mass-kg: required with --non-interactive" in capsys.readouterr().err


def test_a_typed_mass_that_is_not_a_number_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("builtins.input", lambda prompt: "twenty")
    assert _run(["--port", "/dev/ttyVRB_NOPE"]) == 2
    err = capsys.readouterr().err
    assert "--mass-kg: expected a number of kg, got 'twenty'" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_fit_that_is_off_is_rejected_and_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plate = load_plate("wii-balance-board")
    out = tmp_path / "cal.toml"
    with SimulatedPlateServer(plate, rate_hz=200, loads=_EMPTY, seed=3) as sim:
        # The operator puts the mass 6 cm off the front-right mark (still nearest to it).
        operator = _operator(monkeypatch, sim, 20.0, misplaced_m={"front-right": (-0.06, 0.0)})
        status = _run(
            [
                "--port", sim.port_path, "--non-interactive", "--mass-kg", "20",
                "--tare-s", "0.3", "--record-s", "0.3", "--step-timeout-s", "5",
                "--out", str(out),
            ]
        )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2
    assert operator.placed == list(PLACES)
    assert "fit rejected: largest residual" in err
    assert not out.exists()
