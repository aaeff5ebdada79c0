"""The social-force crowd: hard safety constraints, forces, determinism, level changes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vrbalance.world.crowd import (
    MAX_PEDESTRIANS,
    CrowdLevel,
    CrowdModel,
    SocialForceParams,
    pedestrian_forces,
    pedestrian_forces_reference,
)

PARAMS = SocialForceParams()
HARDEST = CrowdLevel(
    pedestrian_count=MAX_PEDESTRIANS,
    walking_speed_mps=1.6,
    passing_distance_m=0.6,
    crossing_directions=8,
    stop_turn_rate_hz=0.5,
    head_on=True,
)


def _pair_and_patient_distances(model: CrowdModel) -> tuple[float, float]:
    """Independent of the model's own check: all active pairs, plain numpy."""
    st_ = model.state()
    p = st_.position_m[st_.active]
    to_patient = float(np.min(np.linalg.norm(p, axis=1))) if len(p) else math.inf
    if len(p) < 2:
        return math.inf, to_patient
    d = np.linalg.norm(p[:, None, :] - p[None, :, :], axis=2)
    d[np.diag_indices(len(p))] = np.inf
    return float(d.min()), to_patient


def _assert_safe(model: CrowdModel, step: int) -> None:
    pair, patient = _pair_and_patient_distances(model)
    assert pair >= PARAMS.min_separation_m, f"step {step}: pair {pair:.4f} m apart"
    assert patient >= model.level.passing_distance_m, (
        f"step {step}: {patient:.4f} m from the patient, passing distance "
        f"{model.level.passing_distance_m} m"
    )
    st_ = model.state()
    speed = np.linalg.norm(st_.velocity_mps, axis=1)[st_.active]
    limit = PARAMS.max_speed_factor * st_.desired_speed_mps[st_.active]
    assert np.all(speed <= limit * (1 + 1e-12)), f"step {step}: speed above 1.3 x desired"


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    passing_m=st.floats(0.5, 3.0),
    directions=st.integers(1, 8),
    rate_hz=st.floats(0.0, 1.0),
    area_m=st.floats(9.0, 18.0),
)
def test_no_collision_and_passing_distance_hold_at_max_density(
    seed: int, passing_m: float, directions: int, rate_hz: float, area_m: float
) -> None:
    level = CrowdLevel(
        pedestrian_count=MAX_PEDESTRIANS,
        walking_speed_mps=1.6,
        passing_distance_m=passing_m,
        crossing_directions=directions,
        stop_turn_rate_hz=rate_hz,
        head_on=True,
    )
    model = CrowdModel(level, seed=seed, area_radius_m=area_m)
    _assert_safe(model, 0)
    for k in range(1, 121):
        model.step(1.0 / 30.0)  # two sub-steps each
        _assert_safe(model, k)


def test_constraints_hold_over_a_long_crowded_run() -> None:
    # 200 people on a 9 m plaza (0.8 per m²): contacts happen all the time.
    model = CrowdModel(HARDEST, seed=7, area_radius_m=9.0)
    for k in range(1200):  # 20 s at 60 Hz
        model.step(1.0 / 60.0)
        if k % 5 == 0:
            _assert_safe(model, k)
    _assert_safe(model, 1200)
    assert model.active_count > 150


@settings(max_examples=5, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    changes=st.lists(
        st.tuples(
            st.integers(0, MAX_PEDESTRIANS),
            st.floats(0.5, 4.0),
            st.integers(1, 8),
            st.floats(0.4, 2.0),
            st.booleans(),
        ),
        min_size=2,
        max_size=5,
    ),
)
def test_constraints_hold_across_live_level_changes(
    seed: int, changes: list[tuple[int, float, int, float, bool]]
) -> None:
    model = CrowdModel(HARDEST, seed=seed, area_radius_m=10.0)
    for count, passing_m, directions, speed, head_on in changes:
        model.set_level(
            CrowdLevel(
                pedestrian_count=count,
                walking_speed_mps=speed,
                passing_distance_m=passing_m,
                crossing_directions=directions,
                stop_turn_rate_hz=0.3,
                head_on=head_on,
            )
        )
        _assert_safe(model, 0)
        for k in range(1, 31):
            model.step(1 / 30)
            _assert_safe(model, k)


def test_level_change_to_larger_passing_distance_clears_the_circle() -> None:
    model = CrowdModel(HARDEST, seed=3, area_radius_m=10.0)
    for _ in range(120):
        model.step(1 / 60)
    wider = CrowdLevel(
        pedestrian_count=MAX_PEDESTRIANS,
        passing_distance_m=4.0,
        crossing_directions=4,
    )
    model.set_level(wider)
    _assert_safe(model, 0)
    for k in range(60):
        model.step(1 / 60)
        _assert_safe(model, k)


@pytest.mark.parametrize("passing_m", [0.8, 1.0, 2.0, 3.0])
def test_head_on_walker_comes_straight_then_deflects_at_passing_distance(passing_m: float) -> None:
    level = CrowdLevel(pedestrian_count=1, passing_distance_m=passing_m, head_on=True)
    model = CrowdModel(level, seed=11)
    start = model.state().position_m[0].copy()
    assert start[1] > 5.0, "the head-on walker starts in front of the patient"
    heading_in = -start / np.linalg.norm(start)
    v_start = model.state().velocity_mps[0]
    assert np.dot(v_start, heading_in) > 0.95 * np.linalg.norm(v_start), "walks at the patient"
    closest = math.inf
    lateral_abeam = None
    for _ in range(60 * 40):
        model.step(1 / 60)
        p = model.state().position_m[0]
        closest = min(closest, float(np.linalg.norm(p)))
        along = float(np.dot(p, heading_in))
        if lateral_abeam is None and along >= 0.0:  # level with the patient
            lateral_abeam = abs(heading_in[0] * p[1] - heading_in[1] * p[0])
        if along > 3.0:
            break
    else:
        pytest.fail("the head-on walker never got past the patient")
    assert closest >= passing_m
    assert closest < passing_m + 0.6, f"deflected too early: closest {closest:.2f} m"
    assert lateral_abeam is not None and lateral_abeam >= passing_m, "went round, not through"


def test_same_seed_same_crowd_other_seed_other_crowd() -> None:
    a = CrowdModel(HARDEST, seed=5)
    b = CrowdModel(HARDEST, seed=5)
    c = CrowdModel(HARDEST, seed=6)
    for _ in range(90):
        for m in (a, b, c):
            m.step(1 / 45)
    sa, sb, sc = a.state(), b.state(), c.state()
    np.testing.assert_array_equal(sa.position_m, sb.position_m)
    np.testing.assert_array_equal(sa.gait_phase_rad, sb.gait_phase_rad)
    assert not np.allclose(sa.position_m, sc.position_m)


def test_a_long_frame_is_split_into_the_same_sub_steps() -> None:
    a = CrowdModel(HARDEST, seed=9)
    b = CrowdModel(HARDEST, seed=9)
    for _ in range(30):
        a.step(1 / 30)
        b.step(1 / 60)
        b.step(1 / 60)
    np.testing.assert_allclose(a.state().position_m, b.state().position_m, atol=1e-12)


def test_trajectory_barely_depends_on_frame_rate() -> None:
    level = CrowdLevel(pedestrian_count=1, passing_distance_m=1.0, head_on=True)
    a = CrowdModel(level, seed=2)
    b = CrowdModel(level, seed=2)
    for _ in range(3 * 60):
        a.step(1 / 60)
    for _ in range(3 * 90):
        b.step(1 / 90)
    gap = np.linalg.norm(a.state().position_m[0] - b.state().position_m[0])
    assert gap < 0.02


def test_vectorised_forces_match_the_pairwise_reference() -> None:
    rng = np.random.default_rng(0)
    n = 14
    pos = rng.uniform(-4.0, 4.0, (n, 2))
    vel = rng.normal(0.0, 1.0, (n, 2))
    vel[3] = 0.0  # a standing pedestrian: circular potential
    ang = rng.uniform(0, 2 * np.pi, n)
    desired = np.stack((np.cos(ang), np.sin(ang)), axis=1)
    fast = pedestrian_forces(pos, vel, desired, PARAMS)
    slow = pedestrian_forces_reference(pos, vel, desired, PARAMS)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)
    assert np.abs(fast).max() > 0.01, "the configuration must actually interact"


def test_forces_respect_the_cutoff_like_the_reference() -> None:
    pos = np.array([[0.0, 0.0], [5.9, 0.0], [0.0, 6.1]])
    vel = np.zeros((3, 2))
    desired = np.tile([1.0, 0.0], (3, 1))
    fast = pedestrian_forces(pos, vel, desired, PARAMS)
    np.testing.assert_allclose(fast, pedestrian_forces_reference(pos, vel, desired, PARAMS))
    assert fast[2, 0] == 0.0 and fast[2, 1] == 0.0


def test_repulsion_points_away_and_is_stronger_in_view_and_ahead_of_a_walker() -> None:
    # b stands at the origin; a at 1 m in front of or behind a's own desired direction.
    still = np.zeros((2, 2))
    east = np.tile([1.0, 0.0], (2, 1))
    in_view = pedestrian_forces(np.array([[-1.0, 0.0], [0.0, 0.0]]), still, east, PARAMS)[0]
    behind = pedestrian_forces(np.array([[1.0, 0.0], [0.0, 0.0]]), still, east, PARAMS)[0]
    assert in_view[0] < 0.0 and behind[0] > 0.0, "pushed away from the other"
    assert abs(in_view[0]) == pytest.approx(abs(behind[0]) / PARAMS.behind_weight)
    # b walks east at 1.34 m/s: 3 m ahead of b is repelled more than 3 m behind.
    moving = np.array([[0.0, 0.0], [1.34, 0.0]])
    # (Beyond the end of b's step s = v * delta_t = 2.68 m: on the segment itself the
    # elliptical potential is flat along the line, a known property of the 1995 model.)
    ahead = pedestrian_forces(np.array([[3.0, 0.0], [0.0, 0.0]]), moving, -east, PARAMS)[0]
    behind_b = pedestrian_forces(np.array([[-3.0, 0.0], [0.0, 0.0]]), moving, east, PARAMS)[0]
    assert abs(ahead[0]) > abs(behind_b[0])


def test_freeze_stops_everyone_deterministically() -> None:
    model = CrowdModel(HARDEST, seed=1)
    for _ in range(30):
        model.step(1 / 60)
    model.freeze()
    before = model.state()
    for _ in range(30):
        model.step(1 / 60)
    after = model.state()
    np.testing.assert_array_equal(before.position_m, after.position_m)
    assert np.all(after.velocity_mps == 0.0)
    assert np.all(after.gait_amplitude == 0.0)
    np.testing.assert_array_equal(before.gait_phase_rad, after.gait_phase_rad)
    model.unfreeze()
    model.step(0.5)
    assert not np.array_equal(model.state().position_m, after.position_m)


def test_stops_and_turns_happen_only_when_the_level_asks() -> None:
    def stopped_fraction(rate_hz: float) -> float:
        level = CrowdLevel(pedestrian_count=60, crossing_directions=1, stop_turn_rate_hz=rate_hz)
        model = CrowdModel(level, seed=4)
        count = 0
        for _ in range(240):
            model.step(1 / 60)
            st_ = model.state()
            speed = np.linalg.norm(st_.velocity_mps[st_.active], axis=1)
            count += int(np.count_nonzero(speed < 0.3))
        return count / (240 * 60)

    assert stopped_fraction(0.0) < 0.01
    assert stopped_fraction(1.0) > 0.05


def test_crossing_directions_set_the_headings() -> None:
    for k in (1, 2, 4):
        level = CrowdLevel(pedestrian_count=80, crossing_directions=k, passing_distance_m=1.0)
        model = CrowdModel(level, seed=8)
        st_ = model.state()
        ang = np.arctan2(st_.velocity_mps[:, 1], st_.velocity_mps[:, 0])[st_.active]
        allowed = np.arange(k) * 2 * np.pi / k
        off = np.abs(np.angle(np.exp(1j * (ang[:, None] - allowed[None, :])))).min(axis=1)
        assert np.all(off < 1e-9), f"{k} directions"
        used = {int(np.argmin(np.abs(np.angle(np.exp(1j * (a - allowed)))))) for a in ang}
        assert used == set(range(k))


def test_gait_phase_advances_one_cycle_per_stride() -> None:
    level = CrowdLevel(pedestrian_count=1, crossing_directions=1, passing_distance_m=0.5)
    model = CrowdModel(level, seed=12)
    p0 = model.state().position_m[0].copy()
    phase0 = model.state().gait_phase_rad[0]
    model.step(0.5)
    st_ = model.state()
    walked = np.linalg.norm(st_.position_m[0] - p0)
    turned = (st_.gait_phase_rad[0] - phase0) % (2 * np.pi)
    stride = model._stride_m[0]
    assert turned == pytest.approx(2 * np.pi * walked / stride % (2 * np.pi), abs=1e-6)
    assert st_.gait_amplitude[0] > 0.9


def test_fewer_pedestrians_leave_at_the_rim_more_enter_there() -> None:
    model = CrowdModel(CrowdLevel(pedestrian_count=100, crossing_directions=4), seed=2)
    model.set_level(CrowdLevel(pedestrian_count=10, crossing_directions=4))
    assert model.active_count == 100, "nobody vanishes on the spot"
    for _ in range(60 * 30):
        model.step(1 / 30)
    assert model.active_count == 10
    model.set_level(CrowdLevel(pedestrian_count=50, crossing_directions=4))
    model.step(1 / 60)
    st_ = model.state()
    fresh = st_.active[10:50]
    assert fresh.any()
    r = np.linalg.norm(st_.position_m[10:50][fresh], axis=1)
    assert np.all(r > 0.95 * model.area_radius_m), "newcomers enter at the rim"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pedestrian_count", 201),
        ("pedestrian_count", 2.5),
        ("walking_speed_mps", 0.0),
        ("passing_distance_m", 0.2),
        ("crossing_directions", 9),
        ("stop_turn_rate_hz", -1.0),
        ("head_on", 1),
    ],
)
def test_bad_level_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"CrowdLevel.{field}: expected"):
        CrowdLevel(**{field: value})


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="dt_s: expected a finite non-negative time, got -1"):
        CrowdModel(CrowdLevel(), seed=0).step(-1.0)
    with pytest.raises(ValueError, match="seed: expected a non-negative integer"):
        CrowdModel(CrowdLevel(), seed=-3)
    with pytest.raises(ValueError, match="exceeds capacity 10"):
        CrowdModel(CrowdLevel(pedestrian_count=20), seed=0, capacity=10)


def test_an_empty_square_steps_and_fills_when_asked() -> None:
    model = CrowdModel(CrowdLevel(pedestrian_count=0), seed=0)
    model.step(0.5)
    assert model.active_count == 0
    assert model.violations() == (math.inf, math.inf)
    model.set_level(CrowdLevel(pedestrian_count=3))
    model.step(1 / 60)
    assert model.active_count == 3
