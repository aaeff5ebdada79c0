"""The per-tick estimator: real frames and poses in, BalanceState out."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from vrbalance.balance.cop import PlateGeometry, cop_cells, cop_six_axis
from vrbalance.balance.estimator import BalanceEstimator
from vrbalance.balance.geometry import Body
from vrbalance.balance.stance import Stance
from vrbalance.samples import HeadPose, PlateFrame

CELLS = ((-0.2165, 0.119), (0.2165, 0.119), (-0.2165, -0.119), (0.2165, -0.119))
WII = PlateGeometry("cells4", 0.511, 0.316, CELLS)
SIX = PlateGeometry("six_axis", 0.5, 0.4)


def cells(seq: int, rx: float | None, forces: tuple[float, ...]) -> PlateFrame:
    return PlateFrame(seq=seq, device_time_s=None, received_time_s=rx, channels=forces)


def head(t: float, x: float, y: float, z: float = 1.6, tracked: bool = True) -> HeadPose:
    return HeadPose(device_time_s=None, received_time_s=t, position_m=(x, y, z), tracked=tracked)


@pytest.fixture
def est(stances: dict[str, Stance], body: Body) -> BalanceEstimator:
    return BalanceEstimator(stances["feet_apart"], body, WII)


def test_nothing_known_yet(est: BalanceEstimator) -> None:
    s = est.update(0.0, [], None)
    assert s.tick == 0 and s.t_s == 0.0 and s.stance == "feet_apart"
    assert s.cop_m is None and s.com_m is None and s.xcom_m is None
    assert s.margin_cop_m is None and s.margin_xcom_m is None and s.sway_angle_ap_rad is None
    assert s.plate_age_s is None and s.head_age_s is None and s.com_source is None
    assert not s.plate_loaded
    assert est.update(0.004, [], None).tick == 1


def test_cells_cop_and_margin(est: BalanceEstimator, stances: dict[str, Stance]) -> None:
    forces = (200.0, 180.0, 150.0, 160.0)
    s = est.update(1.0, [cells(7, 0.998, forces)], None)
    expected = cop_cells(forces, CELLS).cop_m[0]
    assert s.cop_m == pytest.approx(tuple(expected), abs=1e-15)
    assert s.vertical_force_n == pytest.approx(690.0)
    assert s.plate_loaded
    assert s.plate_age_s == pytest.approx(0.002)
    bos = stances["feet_apart"].base_of_support
    assert s.margin_cop_m == pytest.approx(bos.signed_distance(expected)[0][0], abs=1e-15)
    # Without a head the CoM comes from the low-passed CoP: on the first
    # sample it equals the CoP, with zero velocity.
    assert s.com_source == "cop"
    assert s.com_m == pytest.approx(s.cop_m) and s.com_velocity_mps == (0.0, 0.0)
    assert s.margin_xcom_m == pytest.approx(s.margin_cop_m)


def test_six_axis_plate(stances: dict[str, Stance], body: Body) -> None:
    est = BalanceEstimator(stances["feet_apart"], body, SIX)
    ch = (1.0, -2.0, 600.0, 12.0, -30.0, 0.1)
    s = est.update(0.0, [PlateFrame(1, None, 0.0, ch, "six_axis")], None)
    assert s.cop_m == pytest.approx(tuple(cop_six_axis(ch).cop_m[0]))
    assert s.cop_m == pytest.approx((0.05, 0.02))


def test_mean_of_the_ticks_frames_and_newest_age(est: BalanceEstimator) -> None:
    frames = [
        cells(1, 0.997, (100.0, 100.0, 100.0, 100.0)),
        cells(2, 0.999, (300.0, 100.0, 100.0, 100.0)),
        cells(3, 0.998, (200.0, 100.0, 100.0, 100.0)),
    ]
    s = est.update(1.0, frames, None)
    mean = cop_cells((200.0, 100.0, 100.0, 100.0), CELLS).cop_m[0]
    assert s.cop_m == pytest.approx(tuple(mean))
    assert s.vertical_force_n == pytest.approx(500.0)
    assert s.plate_age_s == pytest.approx(0.001)


def test_stepping_off_shows_as_unloaded(est: BalanceEstimator, body: Body) -> None:
    assert est.min_load_n == pytest.approx(0.05 * body.mass_kg * 9.80665)  # 34.3 N
    est.update(0.0, [cells(1, 0.0, (200.0,) * 4)], None)
    s = est.update(0.004, [cells(2, 0.004, (8.0, 8.0, 8.0, 8.0))], None)  # 32 N < 34.3 N
    assert not s.plate_loaded and s.cop_m is None and s.margin_cop_m is None
    assert s.vertical_force_n == pytest.approx(32.0)
    assert s.com_m is None and s.com_source is None
    s = est.update(0.008, [cells(3, 0.008, (0.0, 0.0, 0.0, 0.0))], None)
    assert not s.plate_loaded and s.vertical_force_n == 0.0


def test_no_new_frame_keeps_last_values_and_ages(est: BalanceEstimator) -> None:
    first = est.update(0.0, [cells(1, 0.0, (200.0, 180.0, 150.0, 160.0))], None)
    later = est.update(0.5, [], None)
    assert later.cop_m == first.cop_m and later.plate_loaded
    assert later.plate_age_s == pytest.approx(0.5)


def test_head_drives_com_xcom_and_sway_angle(
    stances: dict[str, Stance], body: Body, est: BalanceEstimator
) -> None:
    stance = stances["feet_apart"]
    ax, ay = stance.ankle_m
    ratio = body.com_per_head
    s = None
    for i in range(100):
        t = i * 0.004
        s = est.update(t, [cells(i, t, (200.0,) * 4)], head(t, 0.01, 0.02 + 0.05 * t))
    assert s is not None and s.com_source == "head"
    t = 99 * 0.004
    com_y = ay + (0.02 + 0.05 * t - ay) * ratio
    assert s.com_m == pytest.approx((ax + (0.01 - ax) * ratio, com_y))
    assert s.com_velocity_mps[1] == pytest.approx(0.05 * ratio, rel=1e-3)
    w = body.omega0_rad_s
    assert s.xcom_m == pytest.approx((s.com_m[0], com_y + s.com_velocity_mps[1] / w))
    bos = stance.base_of_support
    assert s.margin_xcom_m == pytest.approx(bos.signed_distance(s.xcom_m)[0][0])
    assert s.sway_angle_ap_rad == pytest.approx(math.asin((com_y - ay) / body.pendulum_length_m))
    assert s.head_position_m == (0.01, pytest.approx(0.02 + 0.05 * t), 1.6)
    assert s.head_age_s == pytest.approx(0.0)


def test_repeated_pose_does_not_change_velocity(est: BalanceEstimator) -> None:
    est.update(0.0, [], head(0.0, 0.0, 0.0))
    s1 = est.update(0.01, [], head(0.01, 0.0, 0.01))
    pose = head(0.02, 0.0, 0.02)
    s2 = est.update(0.02, [], pose)
    s3 = est.update(0.024, [], pose)  # same pose object again: no new sample
    assert s3.com_velocity_mps == s2.com_velocity_mps != s1.com_velocity_mps
    assert s3.head_age_s == pytest.approx(0.004)


def test_stale_head_falls_back_to_cop_and_untracked_is_ignored(est: BalanceEstimator) -> None:
    est.update(0.0, [cells(1, 0.0, (200.0,) * 4)], head(0.0, 0.0, 0.05))
    s = est.update(0.1, [cells(2, 0.1, (200.0,) * 4)], head(0.1, 0.3, 0.3, tracked=False))
    assert s.com_source == "head" and s.head_position_m == (0.0, 0.05, 1.6)
    s = est.update(0.5, [cells(3, 0.5, (200.0,) * 4)], None)  # head 0.5 s old
    assert s.com_source == "cop"
    assert s.com_m == pytest.approx((0.0, 0.0), abs=1e-12)
    s = est.update(0.6, [cells(4, 0.6, (0.0,) * 4)], None)  # stepped off too
    assert s.com_source == "head" and s.head_age_s == pytest.approx(0.6)


def test_non_finite_head_pose_is_ignored(est: BalanceEstimator) -> None:
    est.update(0.0, [], head(0.0, 0.0, 0.01))
    s = est.update(0.01, [], head(0.01, math.nan, 0.02))
    assert s.head_position_m == (0.0, 0.01, 1.6) and s.head_age_s == pytest.approx(0.01)
    s = est.update(0.02, [], head(0.02, 0.0, 0.02))
    assert all(math.isfinite(v) for v in (*s.com_m, *s.com_velocity_mps, *s.xcom_m))


def test_nan_plate_channels_read_as_unloaded(est: BalanceEstimator) -> None:
    s = est.update(0.0, [cells(1, 0.0, (math.nan, 200.0, 200.0, 200.0))], None)
    assert not s.plate_loaded and s.cop_m is None


def test_head_only_without_plate(stances: dict[str, Stance], body: Body) -> None:
    est = BalanceEstimator(stances["tandem"], body)
    s = est.update(0.0, [], head(0.0, 0.0, 0.0))
    assert s.cop_m is None and s.plate_age_s is None and s.com_source == "head"
    assert s.margin_xcom_m is not None and s.stance == "tandem"
    with pytest.raises(ValueError, match="plate frame seq 5: got plate frames but the estimator"):
        est.update(0.1, [cells(5, 0.1, (1.0,) * 4)], None)


def test_wrong_frame_kind_names_the_frame(est: BalanceEstimator) -> None:
    bad = PlateFrame(9, None, 0.0, (0.0, 0.0, 600.0, 0.0, 0.0, 0.0), "six_axis")
    with pytest.raises(
        ValueError,
        match="plate frame seq 9: expected kind 'cells4' with 4 channels, got 'six_axis' with 6",
    ):
        est.update(0.0, [bad], None)


def test_reset_and_validation(stances: dict[str, Stance], body: Body) -> None:
    est = BalanceEstimator(stances["feet_apart"], body, WII, min_load_n=50.0)
    est.update(0.0, [cells(1, 0.0, (100.0,) * 4)], head(0.0, 0.0, 0.0))
    assert est.tick == 1
    est.reset()
    s = est.update(1.0, [], None)
    assert s.tick == 0 and s.cop_m is None and s.com_m is None
    assert BalanceEstimator(stances["feet_apart"], Body(1.7), WII).min_load_n == 20.0
    with pytest.raises(ValueError, match="min_load_n: expected a positive force in N, got 0"):
        BalanceEstimator(stances["feet_apart"], body, WII, min_load_n=0.0)
    with pytest.raises(ValueError, match="max_head_age_s: expected a positive time"):
        BalanceEstimator(stances["feet_apart"], body, WII, max_head_age_s=0.0)


def test_state_is_an_immutable_snapshot(est: BalanceEstimator) -> None:
    s = est.update(0.0, [cells(1, 0.0, (200.0,) * 4)], head(0.0, 0.0, 0.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.cop_m = None  # type: ignore[misc]
    assert isinstance(s.cop_m, tuple) and isinstance(s.com_m, tuple)
    assert all(isinstance(v, float) for v in (*s.cop_m, *s.com_m, *s.xcom_m))


def test_simulated_forward_lean_reaches_the_toes(stances: dict[str, Stance], body: Body) -> None:
    """A slow lean forward at 1 kHz: the XCoM margin shrinks, then turns negative."""
    stance = stances["feet_apart"]
    est = BalanceEstimator(stance, body, WII)
    ax, ay = stance.ankle_m
    margins = []
    for i in range(3000):
        t = i / 1000.0
        theta = 0.15 * t  # rad, forward
        hx, hy = ax, ay + body.head_lever_m * math.sin(theta)
        s = est.update(t, [], head(t, hx, hy))
        margins.append(s.margin_xcom_m)
    m = np.asarray(margins)
    assert m[0] > 0.05 and m[-1] < 0.0
    # Once the front edge is the nearest, the margin only shrinks.
    front = int(np.argmax(m)) + 50
    assert np.all(np.diff(m[front:]) < 0)
