"""Calibration files, counts -> newtons, and the least-squares fit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from vrbalance.balance.cop import compute_cop
from vrbalance.config.plates import PlateSpec, SerialSpec
from vrbalance.devices.calibration import (
    GRAVITY_M_S2,
    Calibration,
    CalibrationRejected,
    FrameConverter,
    LoadRecord,
    calibration_positions,
    fit_calibration,
    load_calibration,
    write_calibration,
)
from vrbalance.devices.simulator import PlateSignal, StaticLoad
from vrbalance.errors import ConfigError
from vrbalance.samples import RawFrame


@pytest.mark.parametrize("plate_id", ["wii-balance-board", "generic-six-axis"])
def test_shipped_calibrations_load_and_match_their_plate(plate_id: str) -> None:
    cal = load_calibration(plate_id)
    assert cal.plate_id == plate_id
    assert cal.method == "nominal"
    assert all(g > 0 for g in cal.gains)


def test_write_then_load_round_trip(tmp_path: Path) -> None:
    cal = Calibration(
        "wii-balance-board",
        "cells4",
        "2026-11-25T10:00:00+00:00",
        "fit",
        (1.0, 2.0, 3.0, 4.0),
        (1e-4, 1.1e-4, 0.9e-4, 1e-4),
        mass_kg=20.0,
        residual_rms_n=0.3,
        residual_max_n=0.5,
        residuals_n=(0.1, -0.5),
    )
    path = write_calibration(cal, tmp_path / "sub" / "wii.toml")
    assert load_calibration(path) == cal


def test_loader_errors_name_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    text = (
        'plate_id = "x"\nkind = "cells4"\ndate = "2026-01-01"\nmethod = "fit"\n'
        "offsets_counts = [0, 0, 0, 0]\ngains = [1e-4, 1e-4, -1e-4, 1e-4]\n"
    )
    path.write_text(text)
    with pytest.raises(
        ConfigError, match=r"bad\.toml gains\[2\]: expected a value > 0, got -0\.0001"
    ):
        load_calibration(path)
    path.write_text(text.replace("-1e-4", "1e-4") + "gain_typo = 1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: unknown field\(s\) gain_typo"):
        load_calibration(path)
    path.write_text(text.replace("[1e-4, 1e-4, -1e-4, 1e-4]", "[1e-4]"))
    with pytest.raises(ConfigError, match=r"bad\.toml gains: expected 4 numbers, got 1"):
        load_calibration(path)
    # Finite but absurd: an overflow to infinite forces later, refused now by name.
    path.write_text(text.replace("-1e-4", "1e308"))
    with pytest.raises(
        ConfigError, match=r"bad\.toml gains\[2\]: 1e\+308 per count is beyond any balance plate"
    ):
        load_calibration(path)
    path.write_text(text.replace("[0, 0, 0, 0]", "[0, 0, 1e300, 0]").replace("-1e-4", "1e-4"))
    with pytest.raises(ConfigError, match=r"bad\.toml offsets_counts\[2\]: expected a value in"):
        load_calibration(path)


def test_converter_applies_offsets_gains_and_channel_map(wii: PlateSpec) -> None:
    swapped = dataclasses.replace(wii, serial=SerialSpec("ascii", 115200, (3, 2, 1, 0)))
    cal = Calibration("wii-balance-board", "cells4", "d", "fit", (10, 20, 30, 40), (1, 2, 3, 4))
    frame = FrameConverter(swapped, cal).convert(RawFrame(7, 0.5, 1.5, (11, 22, 33, 44)))
    # Core channel 0 is wire channel 3: (44 - 40) * 4.
    assert frame.channels == (16.0, 9.0, 4.0, 1.0)
    assert (frame.seq, frame.device_time_s, frame.received_time_s, frame.kind) == (
        7,
        0.5,
        1.5,
        "cells4",
    )
    conv = FrameConverter(swapped, cal)
    back = conv.core_to_counts(conv.counts_to_core([[11, 22, 33, 44]]))
    np.testing.assert_allclose(back, [[11, 22, 33, 44]])


def test_converter_rejects_a_calibration_of_the_other_kind(wii: PlateSpec) -> None:
    with pytest.raises(ConfigError, match="is for a six_axis plate, plate 'wii-balance-board'"):
        FrameConverter(wii, load_calibration("generic-six-axis"))


def _record(
    plate: PlateSpec,
    true_cal: Calibration,
    mass_kg: float,
    *,
    moved_m: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, list[LoadRecord]]:
    """Simulated counts of a tare and a known mass at each calibration position."""

    def counts(position: tuple[float, float] | None, n: int = 100) -> np.ndarray:
        signal = PlateSignal(
            plate,
            true_cal,
            rate_hz=100.0,
            loads=[StaticLoad(0.0, position, mass_kg)],
            seed=seed,
        )
        return np.array([signal.next_counts() for _ in range(n)])

    tare = counts(None)
    loads = []
    for i, (_, (x, y)) in enumerate(calibration_positions(plate)):
        actual = (x + moved_m, y) if i == 2 else (x, y)  # the mass slid off its mark
        loads.append(LoadRecord((x, y), mass_kg, counts(actual)))
    return tare, loads


def test_fit_recovers_known_cell_gains(wii: PlateSpec) -> None:
    true = Calibration(
        "wii-balance-board",
        "cells4",
        "d",
        "fit",
        (5000, -2000, 300, 12),
        (1.2e-4, 0.8e-4, 1.05e-4, 0.95e-4),
    )
    tare, loads = _record(wii, true, 20.0)
    cal = fit_calibration(wii, tare, loads, date="2026-11-25T12:00:00+00:00")
    np.testing.assert_allclose(cal.gains, true.gains, rtol=2e-3)
    np.testing.assert_allclose(cal.offsets_counts, true.offsets_counts, atol=1.0)
    assert cal.residual_max_n < 0.5
    assert len(cal.residuals_n) == 15
    # The fitted calibration reads a 20 kg mass at the front-right cell correctly.
    conv = FrameConverter(wii, cal)
    forces = conv.counts_to_core(loads[2].counts)
    cop = compute_cop(forces, wii.geometry)
    np.testing.assert_allclose(cop.vertical_force_n.mean(), 20.0 * GRAVITY_M_S2, rtol=1e-3)
    np.testing.assert_allclose(np.nanmean(cop.cop_m, axis=0), loads[2].position_m, atol=1e-3)


def test_fit_recovers_six_axis_fz_mx_my_gains(six_axis: PlateSpec) -> None:
    nominal = load_calibration("generic-six-axis")
    gains = list(nominal.gains)
    gains[2:5] = [1.1e-4, 0.9e-5, 1.2e-5]
    true = dataclasses.replace(nominal, gains=tuple(gains))
    tare, loads = _record(six_axis, true, 10.0)
    cal = fit_calibration(six_axis, tare, loads, base=nominal)
    np.testing.assert_allclose(cal.gains, true.gains, rtol=2e-3)


def test_fit_rejects_a_mass_that_was_off_its_mark(wii: PlateSpec) -> None:
    tare, loads = _record(wii, load_calibration("wii-balance-board"), 20.0, moved_m=-0.08)
    with pytest.raises(
        CalibrationRejected, match=r"fit rejected: largest residual .* N exceeds 3\.92 N"
    ):
        fit_calibration(wii, tare, loads)


def test_fit_rejects_a_cell_wired_backwards(wii: PlateSpec) -> None:
    nominal = load_calibration("wii-balance-board")
    tare, loads = _record(wii, nominal, 20.0)
    flipped = [
        LoadRecord(
            r.position_m,
            r.mass_kg,
            r.counts * np.array([1, 1, -1, 1]) + tare.mean(0) * [0, 0, 2, 0],
        )
        for r in loads
    ]
    with pytest.raises(
        CalibrationRejected, match=r"channel 2 \(core order\) got gain -.*expected > 0"
    ):
        fit_calibration(wii, tare, flipped, max_residual_n=1e9)


def test_fit_needs_loads_off_a_line(wii: PlateSpec) -> None:
    tare, loads = _record(wii, load_calibration("wii-balance-board"), 20.0)
    with pytest.raises(CalibrationRejected, match="need at least 3 loads"):
        fit_calibration(wii, tare, loads[:2])
