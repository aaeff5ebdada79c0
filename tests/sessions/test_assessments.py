"""Assessment scores against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vrbalance.sessions.assessments import (
    directional_control_pct,
    equilibrium_score,
    los_directions_rad,
    los_summary,
    los_target,
    los_target_distance_m,
    sensory_ratios,
    sot_composite,
)


def test_equilibrium_score_is_neurocom_formula() -> None:
    theta = np.radians([-2.0, 0.5, 3.0, float("nan")])  # range 5 deg of 12.5
    assert equilibrium_score(theta) == pytest.approx(100 * (1 - 5 / 12.5))
    assert equilibrium_score(np.radians([0.0, 20.0])) == 0.0  # clipped at 0
    assert equilibrium_score(np.zeros(10)) == 100.0
    assert equilibrium_score(np.zeros(10), fell=True) == 0.0


def test_sot_composite_weights_conditions_3_to_6_per_trial() -> None:
    scores = {
        1: [90, 92, 94],
        2: [80, 80, 80],
        3: [70, 72, 74],
        4: [60, 60, 60],
        5: [50, 52, 54],
        6: [40, 40, 40],
    }
    neurocom = (92 + 80 + sum(scores[3]) + sum(scores[4]) + sum(scores[5]) + sum(scores[6])) / 14
    assert sot_composite(scores) == pytest.approx(neurocom)
    assert math.isnan(sot_composite({}))
    ratios = sensory_ratios({c: float(np.mean(v)) for c, v in scores.items()})
    assert ratios["somatosensory"] == pytest.approx(80 / 92)
    assert ratios["vestibular"] == pytest.approx(52 / 92)
    assert ratios["preference"] == pytest.approx((72 + 40) / (80 + 52))


def test_los_target_distances_follow_neurocom_limits() -> None:
    h = 1.0
    assert los_target_distance_m(0.0, h) == pytest.approx(math.tan(math.radians(8.5)))
    assert los_target_distance_m(math.pi, h) == pytest.approx(math.tan(math.radians(4.5)))
    assert los_target_distance_m(math.pi / 2, h) == pytest.approx(math.tan(math.radians(8.0)))
    assert los_directions_rad(8)[2] == pytest.approx(math.pi / 2)


def test_los_straight_reach_scores_as_expected() -> None:
    rate = 100.0
    t = np.arange(0, 6.0, 1 / rate)
    direction = math.pi / 4  # forward-right
    u = np.array([math.sin(direction), math.cos(direction)])
    # Still for 0.7 s, then a smooth reach of 0.08 m over 1 s, then hold.
    s = np.clip((t - 0.7) / 1.0, 0, 1)
    along = 0.08 * s * s * (3 - 2 * s)
    xy = np.outer(along, u) + np.array([0.01, -0.02])
    res = los_target(t, xy, 0.0, direction, target_distance_m=0.1)
    # Onset when 5 % of 0.1 m = 5 mm is passed.
    onset = t[np.flatnonzero(along >= 0.005)[0]]
    assert res.reaction_time_s == pytest.approx(onset)
    assert res.max_excursion_pct == pytest.approx(80.0, abs=0.01)
    assert res.endpoint_excursion_pct == pytest.approx(80.0, abs=1.0)
    assert res.directional_control_pct == pytest.approx(100.0, abs=1e-6)  # straight line
    assert 0.05 < res.movement_velocity_mps < 0.15
    assert res.direction_deg == pytest.approx(45.0)
    summary = los_summary([res, res])
    assert summary["los_max_excursion_pct"] == pytest.approx(80.0, abs=0.01)


def test_los_off_axis_wobble_lowers_directional_control() -> None:
    t = np.arange(0, 3.0, 0.01)
    s = np.clip(t / 1.0, 0, 1)
    along = 0.1 * s * s * (3 - 2 * s)
    across = 0.01 * np.sin(2 * math.pi * 3 * t) * (s < 1)
    xy = np.column_stack([across, along])  # direction 0 = forward (+y)
    res = los_target(t, xy, 0.0, 0.0, 0.1)
    assert res.directional_control_pct < 90.0


def test_los_no_movement_gives_nan_reaction_time() -> None:
    t = np.arange(0, 2.0, 0.01)
    res = los_target(t, np.zeros((t.size, 2)), 0.0, 0.0, 0.1)
    assert math.isnan(res.reaction_time_s) and res.max_excursion_pct == 0.0


def test_los_fast_way_back_is_not_the_primary_movement() -> None:
    rate = 250.0
    t = np.arange(0, 8.0, 1 / rate)
    lean = np.clip((t - 0.6) / 1.2, 0, 1)  # slow reach to 6 cm
    back = np.clip((t - 3.4) / 0.5, 0, 1)  # twice as fast back to the centre
    along = 0.06 * (lean * lean * (3 - 2 * lean)) * (1 - back * back * (3 - 2 * back))
    rng = np.random.default_rng(0)
    xy = np.column_stack([rng.normal(0, 2e-4, t.size), along + rng.normal(0, 2e-4, t.size)])
    res = los_target(t, xy, 0.0, 0.0, 0.1)
    assert res.endpoint_excursion_pct == pytest.approx(60.0, abs=3.0)
    assert res.max_excursion_pct == pytest.approx(60.0, abs=1.0)
    assert res.directional_control_pct > 80.0  # jitter is smoothed, not counted as path
    assert 0.6 < res.reaction_time_s < 1.0


Leg = tuple[float, float] | tuple[float, float, float]


def _legs(
    rate_hz: float, hold_s: float, legs: list[Leg], speed_mps: float
) -> tuple[np.ndarray, np.ndarray]:
    """A scripted path: still for ``hold_s``, then straight legs at one speed, then still.

    Each leg is ``(dx, dy)`` or ``(dx, dy, pause_s)``: a pause after it lets a
    reversal reach its turning point exactly (the 0.1 s smoothing would
    otherwise cut the tip). Returns ``(t, xy)``: a path whose on- and
    off-target lengths are known exactly.
    """
    points = [np.zeros(2)]
    for leg in legs:
        dx, dy = leg[0], leg[1]
        start = points[-1]
        n = max(1, round(math.hypot(dx, dy) / speed_mps * rate_hz))
        for k in range(1, n + 1):
            points.append(start + np.array([dx, dy]) * k / n)
        pause_s = leg[2] if len(leg) == 3 else 0.0
        points.extend([points[-1]] * int(pause_s * rate_hz))
    hold = int(hold_s * rate_hz)
    xy = np.vstack([np.zeros((hold, 2)), np.array(points), np.repeat(points[-1:], 200, axis=0)])
    return np.arange(xy.shape[0]) / rate_hz, xy


@pytest.mark.parametrize(
    ("legs", "expected_pct"),
    [
        # Straight to 8 cm: no extraneous movement.
        ([(0.0, 0.08)], 100.0),
        # 2 cm sideways first, then 8 cm forward: on 8, off 2 -> 100·6/8.
        ([(0.02, 0.0), (0.0, 0.08)], 75.0),
        # 3 cm the wrong way (backward), then 9 cm forward to +6 cm: on 9, off 3.
        ([(0.0, -0.03, 0.3), (0.0, 0.09)], 100.0 * 6.0 / 9.0),
        # 1 cm sideways and back, then 6 cm forward: on 6, off 2.
        ([(0.01, 0.0, 0.3), (-0.01, 0.0), (0.0, 0.06)], 100.0 * 4.0 / 6.0),
    ],
)
def test_los_directional_control_of_scripted_paths(legs: list[Leg], expected_pct: float) -> None:
    """Paths whose on- and off-target lengths are known give NeuroCom's DCL exactly."""
    t, xy = _legs(100.0, 0.5, legs, speed_mps=0.1)
    res = los_target(t, xy, 0.0, 0.0, target_distance_m=0.1)  # target straight ahead
    assert res.directional_control_pct == pytest.approx(expected_pct, abs=0.5)


def test_los_directional_control_stays_in_its_range() -> None:
    """More extraneous than intended movement scores 0, never a negative percentage."""
    # 4 cm forward while zig-zagging ±2 cm sideways: 16 cm across, 4 cm on target.
    zigzag = [(0.02, 0.005), (-0.04, 0.01), (0.04, 0.01), (-0.04, 0.01), (0.02, 0.005)]
    t, xy = _legs(100.0, 0.5, zigzag, speed_mps=0.1)
    res = los_target(t, xy, 0.0, 0.0, target_distance_m=0.1)
    assert res.directional_control_pct == 0.0
    rng = np.random.default_rng(3)
    for _ in range(200):
        path = np.cumsum(rng.normal(0.0, 0.01, (50, 2)), axis=0)
        dcl = directional_control_pct(path, (0.0, 1.0))
        assert math.isnan(dcl) or 0.0 <= dcl <= 100.0
