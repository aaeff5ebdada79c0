"""The plate's standing load against the patient's weight (pure)."""

from __future__ import annotations

import math

import pytest

from vrbalance.samples import PlateFrame
from vrbalance.sessions.plate_check import LOAD_TOLERANCE, check_load, vertical_load_n

WEIGHT_70_KG_N = 70.0 * 9.80665


def test_vertical_load_of_four_cells_and_of_a_six_axis_plate() -> None:
    assert vertical_load_n(PlateFrame(1, None, 0.0, (100.0, 200.0, 150.0, 50.0))) == 500.0
    six = PlateFrame(1, None, 0.0, (3.0, -2.0, 686.0, 10.0, -4.0, 0.1), "six_axis")
    assert vertical_load_n(six) == 686.0


@pytest.mark.parametrize(
    "fraction", [1.0 - LOAD_TOLERANCE + 0.005, 1.0, 1.0 + LOAD_TOLERANCE - 0.005]
)
def test_a_load_within_the_tolerance_passes(fraction: float) -> None:
    check = check_load([WEIGHT_70_KG_N * fraction] * 20, 70.0)
    assert check.ok and check.n_frames == 20
    assert check.expected_n == pytest.approx(WEIGHT_70_KG_N)


@pytest.mark.parametrize(
    ("fraction", "reads"),
    [
        (1e-3, "the plate reads 0.686 N (0.07 kg)"),  # gains 1000x too small
        (0.5, "the plate reads 343 N (35 kg)"),  # half off the plate
        (1.0 + LOAD_TOLERANCE + 0.01, "the plate reads 796 N (81.2 kg)"),
    ],
)
def test_a_load_beyond_the_tolerance_names_reading_weight_and_what_to_check(
    fraction: float, reads: str
) -> None:
    check = check_load([WEIGHT_70_KG_N * fraction] * 20, 70.0, who="patient P1")
    assert not check.ok
    assert check.message == (
        f"{reads} but patient P1 weighs 686 N (70 kg); more than 15% apart, the plate "
        "cannot be trusted to see a fall: check the plate's calibration (`vrbalance "
        "calibrate plate`) and that the patient stands with both feet fully on the plate"
    )


def test_no_frames_or_no_mass() -> None:
    check = check_load([], 70.0)
    assert not check.ok and math.isnan(check.measured_n)
    assert check.message.startswith("no plate frame but the patient weighs 686 N")
    with pytest.raises(ValueError, match=r"mass_kg: expected a positive mass, got 0\.0"):
        check_load([686.0], 0.0)
