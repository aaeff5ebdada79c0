"""Centre of pressure: hand-computed cases, the load threshold, properties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vrbalance.balance.cop import (
    MIN_LOAD_FALLBACK_N,
    PlateGeometry,
    compute_cop,
    cop_cells,
    cop_six_axis,
    cop_xy,
    minimum_load_n,
)
from vrbalance.balance.geometry import convex_hull

WII_CELLS = ((-0.2165, 0.119), (0.2165, 0.119), (-0.2165, -0.119), (0.2165, -0.119))
WII = PlateGeometry("cells4", 0.511, 0.316, WII_CELLS)
SIX = PlateGeometry("six_axis", 0.5, 0.4, top_offset_m=0.04)


def test_six_axis_hand_computed_with_top_offset() -> None:
    # Fx=10, Fy=-20, Fz=500, Mx=30, My=-40, h=0.04:
    # x = (-0.04*10 + 40)/500 = 39.6/500, y = (-0.04*-20 + 30)/500 = 30.8/500
    r = cop_six_axis([10.0, -20.0, 500.0, 30.0, -40.0, 1.0], top_offset_m=0.04)
    assert r.cop_m.shape == (1, 2)
    assert r.cop_m[0, 0] == pytest.approx(39.6 / 500, abs=1e-15)
    assert r.cop_m[0, 1] == pytest.approx(30.8 / 500, abs=1e-15)
    assert r.vertical_force_n[0] == 500.0
    assert bool(r.loaded[0])


def test_six_axis_signs_follow_the_core_frame() -> None:
    # A pure vertical load 0.1 m to the right (x) and 0.05 m forward (y):
    # moments about the origin are Mx = y*Fz, My = -x*Fz.
    fz = 600.0
    r = cop_six_axis([0.0, 0.0, fz, 0.05 * fz, -0.1 * fz, 0.0])
    np.testing.assert_allclose(r.cop_m[0], [0.1, 0.05], atol=1e-15)


def test_cells_hand_computed() -> None:
    # 400 N front-right, 100 N back-left: CoP 4/5 of the way to front-right.
    r = cop_cells([0.0, 400.0, 100.0, 0.0], WII_CELLS)
    np.testing.assert_allclose(
        r.cop_m[0], [(400 * 0.2165 - 100 * 0.2165) / 500, (400 * 0.119 - 100 * 0.119) / 500]
    )
    equal = cop_cells([150.0] * 4, WII_CELLS)
    np.testing.assert_allclose(equal.cop_m[0], [0.0, 0.0], atol=1e-15)


def test_compute_cop_dispatches_on_kind() -> None:
    r = compute_cop([[100.0, 100.0, 100.0, 100.0]], WII)
    np.testing.assert_allclose(r.cop_m, [[0.0, 0.0]], atol=1e-15)
    r6 = compute_cop([[1.0, 0.0, 500.0, 0.0, 0.0, 0.0]], SIX)
    np.testing.assert_allclose(r6.cop_m, [[-0.04 / 500, 0.0]])


def test_below_minimum_load_is_nan_and_flagged_without_warnings() -> None:
    ch = np.array(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # nothing on the plate: 0/0
            [0.0, 0.0, 19.9, 1.0, 1.0, 0.0],  # under 20 N
            [0.0, 0.0, -5.0, 1.0, 1.0, 0.0],  # negative (offset drift)
            [0.0, 0.0, math.nan, 0.0, 0.0, 0.0],  # broken sample
            [0.0, 0.0, 20.0, 2.0, -1.0, 0.0],  # exactly the minimum: defined
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            r = cop_six_axis(ch, min_load_n=20.0)
            rc = cop_cells(np.zeros((3, 4)), WII_CELLS, min_load_n=20.0)
    np.testing.assert_array_equal(r.loaded, [False, False, False, False, True])
    assert np.isnan(r.cop_m[:4]).all()
    np.testing.assert_allclose(r.cop_m[4], [0.05, 0.1])
    assert not rc.loaded.any() and np.isnan(rc.cop_m).all()


def test_results_are_read_only() -> None:
    r = cop_cells([[100.0, 100.0, 100.0, 100.0]], WII_CELLS)
    for a in (r.cop_m, r.vertical_force_n, r.loaded):
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 0


def test_minimum_load() -> None:
    assert minimum_load_n(None) == MIN_LOAD_FALLBACK_N == 20.0
    assert minimum_load_n(70.0) == pytest.approx(0.05 * 70.0 * 9.80665)
    assert minimum_load_n(70.0, fraction=0.1) == pytest.approx(0.1 * 70.0 * 9.80665)
    assert minimum_load_n(None, fallback_n=35.0) == 35.0
    with pytest.raises(ValueError, match="body_mass_kg: expected a positive mass, got -3"):
        minimum_load_n(-3.0)
    with pytest.raises(ValueError, match=r"fraction: expected a value in \(0, 1\), got 1.5"):
        minimum_load_n(70.0, fraction=1.5)


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"channels: expected shape \(N, 6\), got \(2, 5\)"):
        cop_six_axis(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"forces_n: expected shape \(N, 4\), got \(3,\)"):
        cop_cells([1.0, 2.0, 3.0], WII_CELLS)
    with pytest.raises(ValueError, match=r"cell_positions_m: expected shape \(k >= 3, 2\)"):
        cop_cells([1.0, 2.0], [[0.0, 0.0], [1.0, 0.0]])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "cells3"}, "kind: expected one of cells4, six_axis, got 'cells3'"),
        ({"width_m": 0.0}, r"width_m: expected a size in \(0, 5\] m, got 0.0"),
        ({"cell_positions_m": WII_CELLS[:3]}, "a cells4 plate needs 4 cell positions, got 3"),
        (
            {"cell_positions_m": ((-0.3, 0.1), *WII_CELLS[1:])},
            r"cell_positions_m\[0\]: \(-0.3, 0.1\) lies outside",
        ),
        (
            {"cell_positions_m": ((-0.2, 0.0), (-0.1, 0.0), (0.1, 0.0), (0.2, 0.0))},
            "cells are collinear",
        ),
        ({"top_offset_m": 0.01}, "only a six_axis plate has a top offset"),
    ],
)
def test_plate_geometry_rejects(kwargs: dict, match: str) -> None:
    args = {"kind": "cells4", "width_m": 0.511, "depth_m": 0.316, "cell_positions_m": WII_CELLS}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        PlateGeometry(**args)


def test_six_axis_geometry_rejects_cells() -> None:
    with pytest.raises(ValueError, match="only a cells4 plate has cell positions, got 4"):
        PlateGeometry("six_axis", 0.5, 0.4, WII_CELLS)
    assert SIX.n_channels == 6 and WII.n_channels == 4


def test_scalar_path_matches_vectorised() -> None:
    rng = np.random.default_rng(3)
    for plate, n in ((WII, 4), (SIX, 6)):
        ch = rng.uniform(-50, 300, size=(200, n))
        if n == 6:
            ch[:, 2] = rng.uniform(-10, 800, size=200)
        vec = compute_cop(ch, plate, min_load_n=30.0)
        for i in range(200):
            x, y, fz = cop_xy(tuple(ch[i]), plate, 30.0)
            assert fz == pytest.approx(vec.vertical_force_n[i])
            if vec.loaded[i]:
                assert (x, y) == pytest.approx(tuple(vec.cop_m[i]), abs=1e-12)
            else:
                assert math.isnan(x) and math.isnan(y)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, (4,), elements=st.floats(0.0, 2000.0)))
def test_cells_cop_stays_inside_the_cell_hull_for_nonnegative_forces(forces: np.ndarray) -> None:
    r = cop_cells(forces, WII_CELLS, min_load_n=20.0)
    if forces.sum() < 20.0:
        assert not r.loaded[0] and np.isnan(r.cop_m[0]).all()
        return
    hull = convex_hull(np.asarray(WII_CELLS))
    d, _ = hull.signed_distance(r.cop_m)
    assert d[0] >= -1e-12


@settings(max_examples=100, deadline=None)
@given(
    forces=arrays(np.float64, (7, 4), elements=st.floats(-50.0, 4.99)),
    six=arrays(np.float64, (7, 6), elements=st.floats(-1000.0, 1000.0)),
    min_load=st.floats(20.0, 100.0),
)
def test_cop_undefined_below_min_load_without_warnings(
    forces: np.ndarray, six: np.ndarray, min_load: float
) -> None:
    six[:, 2] = np.minimum(six[:, 2], min_load * 0.999)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Underflow of subnormal inputs is harmless; a division by zero is not.
        with np.errstate(divide="raise", invalid="raise", over="raise"):
            rc = cop_cells(forces, WII_CELLS, min_load_n=min_load)  # sum < 20 N
            r6 = cop_six_axis(six, min_load_n=min_load)
    for r in (rc, r6):
        assert not r.loaded.any()
        assert np.isnan(r.cop_m).all()


@settings(max_examples=100, deadline=None)
@given(
    fz=st.floats(20.0, 3000.0),
    x=st.floats(-0.3, 0.3),
    y=st.floats(-0.3, 0.3),
    h=st.floats(-0.1, 0.1),
    fx=st.floats(-100.0, 100.0),
    fy=st.floats(-100.0, 100.0),
)
def test_six_axis_recovers_the_point_of_application(
    fz: float, x: float, y: float, h: float, fx: float, fy: float
) -> None:
    # The ground reaction force (fx, fy, fz) acting at (x, y) on the top
    # surface, with moments taken about a reference point h above that
    # surface, i.e. r = (x, y, -h) from the reference point: M = r × F.
    mx = y * fz + h * fy
    my = -h * fx - x * fz
    r = cop_six_axis([fx, fy, fz, mx, my, 0.0], top_offset_m=h)
    np.testing.assert_allclose(r.cop_m[0], [x, y], atol=1e-12)
