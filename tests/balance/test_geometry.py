"""Polygons and signed distances, convex hull, foot template, body dimensions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vrbalance.balance.geometry import (
    Body,
    FootTemplate,
    Polygon,
    convex_hull,
    polygon_area_m2,
)

SQUARE = Polygon([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
# A non-convex "L": the notch tests the crossing-number inside test.
ELL = Polygon([[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]])

coord = st.floats(-3.0, 3.0, allow_nan=False)
# Centimetre grid: exact collinearity is then decidable in the test.
grid = st.integers(-300, 300).map(lambda i: i / 100.0)


def brute_force(poly: Polygon, p: np.ndarray) -> tuple[float, int]:
    """Distance to each edge by sampling-free closed form, one edge at a time."""
    v = poly.vertices
    best, best_i = math.inf, -1
    for i in range(len(v)):
        a, b = v[i], v[(i + 1) % len(v)]
        e = b - a
        t = min(1.0, max(0.0, float(np.dot(p - a, e) / np.dot(e, e))))
        d = float(np.hypot(*(p - (a + t * e))))
        if d < best:
            best, best_i = d, i
    return best, best_i


def test_square_hand_computed() -> None:
    d, e = SQUARE.signed_distance([[0.5, 0.5], [0.5, 0.1], [1.5, 0.5], [2.0, 2.0], [1.0, 0.5]])
    np.testing.assert_allclose(d, [0.5, 0.1, -0.5, -math.sqrt(2.0), 0.0], atol=1e-15)
    # Edges: 0 bottom, 1 right, 2 top, 3 left.
    assert e[1] == 0 and e[2] == 1 and e[4] == 1
    assert e[3] in (1, 2)  # at the corner both edges are nearest


def test_non_convex_notch_is_outside() -> None:
    d, e = ELL.signed_distance([[1.5, 1.5], [0.5, 1.5], [1.5, 0.5]])
    np.testing.assert_allclose(d, [-0.5, 0.5, 0.5])
    assert e[0] in (2, 3)


def test_clockwise_input_is_reoriented_and_area_positive() -> None:
    cw = Polygon(SQUARE.vertices[::-1])
    assert polygon_area_m2(cw.vertices) == pytest.approx(1.0)
    assert cw.area_m2 == pytest.approx(1.0)
    assert cw.centroid_m == pytest.approx((0.5, 0.5))
    np.testing.assert_allclose(cw.signed_distance([0.5, 0.25])[0], [0.25])


def test_vertices_are_read_only_copies() -> None:
    src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    tri = Polygon(src)
    src[0, 0] = 5.0
    assert tri.vertices[0, 0] == 0.0
    with pytest.raises(ValueError, match="read-only"):
        tri.vertices[0, 0] = 1.0


def test_duplicate_vertices_are_dropped() -> None:
    p = Polygon([[0, 0], [1, 0], [1, 0], [1, 1], [0, 1]])
    assert p.n_edges == 4


@pytest.mark.parametrize(
    ("verts", "match"),
    [
        ([[0, 0], [1, 0]], "at least 3 vertices, got 2"),
        ([[0, 0], [1, 0], [2, 0]], "zero area"),
        ([[0, 0], [1, 0], [math.nan, 1]], "finite"),
        ([0, 1, 2], r"expected shape \(M, 2\)"),
    ],
)
def test_bad_polygons(verts: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Polygon(verts)


def test_nan_points_give_nan_and_edge_minus_one() -> None:
    d, e = SQUARE.signed_distance([[math.nan, 0.5], [0.5, 0.5]])
    assert math.isnan(d[0]) and e[0] == -1 and d[1] == 0.5
    assert SQUARE.signed_distance_xy(math.nan, 0.0) == (pytest.approx(math.nan, nan_ok=True), -1)


def test_many_points_are_chunked_consistently() -> None:
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 2, size=(300_000, 2))
    d, e = ELL.signed_distance(pts)
    d2, e2 = ELL.signed_distance(pts[-1000:])
    np.testing.assert_array_equal(d[-1000:], d2)
    np.testing.assert_array_equal(e[-1000:], e2)
    inside = (pts >= 0).all(1) & (pts <= 2).all(1) & ~((pts > 1).all(1))
    np.testing.assert_array_equal(d > 0, inside)


@settings(max_examples=300, deadline=None)
@given(x=coord, y=coord)
def test_distance_and_nearest_edge_match_brute_force(x: float, y: float) -> None:
    p = np.array([x, y])
    for poly in (SQUARE, ELL):
        d, e = poly.signed_distance(p)
        best, _ = brute_force(poly, p)
        assert abs(d[0]) == pytest.approx(best, abs=1e-12)
        # The reported edge is a nearest one (ties allowed).
        v = poly.vertices
        a, b = v[e[0]], v[(e[0] + 1) % len(v)]
        edge_d, _ = brute_force(Polygon(np.array([a, b, a + 1e-9 * np.array([-1.0, 1.0])])), p)
        assert edge_d == pytest.approx(best, abs=1e-8)
        # The scalar fast path agrees exactly in sign and closely in value.
        ds, es = poly.signed_distance_xy(x, y)
        assert ds == pytest.approx(d[0], abs=1e-12)
        assert es == e[0]


@settings(max_examples=200, deadline=None)
@given(x=coord, y=coord)
def test_sign_matches_a_simple_inside_test(x: float, y: float) -> None:
    d, _ = ELL.signed_distance([x, y])
    inside_ell = 0 < x < 2 and 0 < y < 2 and not (x > 1 and y > 1)
    if abs(d[0]) > 1e-9:
        assert (d[0] > 0) == inside_ell


@settings(max_examples=100, deadline=None)
@given(
    pts=st.lists(st.tuples(grid, grid), min_size=3, max_size=40),
    dx=coord,
    dy=coord,
)
def test_convex_hull_contains_its_points_and_translates(
    pts: list[tuple[float, float]], dx: float, dy: float
) -> None:
    arr = np.array(pts)
    try:
        hull = convex_hull(arr)
    except ValueError:
        uniq = np.unique(arr, axis=0)
        assert len(uniq) < 3 or np.linalg.matrix_rank(uniq[1:] - uniq[0], tol=1e-9) < 2
        return
    d, _ = hull.signed_distance(arr)
    assert (d >= -1e-9).all()
    # Convex: every vertex turn is a left turn.
    v = hull.vertices
    e = np.roll(v, -1, 0) - v
    f = np.roll(e, -1, 0)
    assert (e[:, 0] * f[:, 1] - e[:, 1] * f[:, 0] > 0).all()
    moved = convex_hull(arr + np.array([dx, dy]))
    assert moved.area_m2 == pytest.approx(hull.area_m2, rel=1e-6, abs=1e-9)


def test_convex_hull_rejects_collinear() -> None:
    with pytest.raises(ValueError, match="collinear"):
        convex_hull([[0, 0], [1, 1], [2, 2], [3, 3]])
    with pytest.raises(ValueError, match="at least 3 distinct points, got 2"):
        convex_hull([[0, 0], [1, 1], [1, 1]])


def test_foot_template_normalises_and_places_feet() -> None:
    # A rectangle 2 x 4 (any units) with the ankle a quarter from the heel.
    t = FootTemplate("box", [[0, 0], [2, 0], [2, 4], [0, 4]], (1.0, 1.0))
    np.testing.assert_allclose(t.outline.min(0), [-0.5, -0.5])
    np.testing.assert_allclose(t.outline.max(0), [0.5, 0.5])
    assert t.ankle == pytest.approx((0.0, -0.25))
    right, ankle = t.foot("right", 0.26, 0.1, centre_m=(0.1, 0.0))
    np.testing.assert_allclose(right.vertices.min(0), [0.05, -0.13])
    np.testing.assert_allclose(right.vertices.max(0), [0.15, 0.13])
    assert ankle == pytest.approx((0.1, -0.065))


def test_left_foot_mirrors_right(foot: FootTemplate) -> None:
    right, ar = foot.foot("right", 0.26, 0.1)
    left, al = foot.foot("left", 0.26, 0.1)
    mirrored = right.vertices * [-1.0, 1.0]
    d, _ = left.signed_distance(mirrored)
    np.testing.assert_allclose(d, 0.0, atol=1e-12)
    assert al == pytest.approx((-ar[0], ar[1]))
    assert left.area_m2 == pytest.approx(right.area_m2)


def test_toe_out_turns_toes_outward(foot: FootTemplate) -> None:
    right, _ = foot.foot("right", 0.26, 0.1, toe_out_rad=math.radians(10))
    left, _ = foot.foot("left", 0.26, 0.1, toe_out_rad=math.radians(10))
    # The frontmost point (toe) moves to the lateral side for each foot.
    assert right.vertices[np.argmax(right.vertices[:, 1]), 0] > 0.0
    assert left.vertices[np.argmax(left.vertices[:, 1]), 0] < 0.0


def test_foot_template_errors(foot: FootTemplate) -> None:
    with pytest.raises(ValueError, match=r"ankle: .* lies outside the foot outline"):
        FootTemplate("x", [[0, 0], [1, 0], [1, 1], [0, 1]], (2.0, 0.5))
    with pytest.raises(ValueError, match="side: expected 'left' or 'right', got 'middle'"):
        foot.foot("middle", 0.26, 0.1)
    with pytest.raises(ValueError, match="foot size must be positive"):
        foot.foot("left", 0.0, 0.1)


def test_adult_template_is_a_plausible_foot(foot: FootTemplate) -> None:
    poly, ankle = foot.foot("right", 0.26, 0.1)
    # A real foot fills roughly 70-85 % of its bounding rectangle.
    assert 0.70 < poly.area_m2 / (0.26 * 0.1) < 0.85
    # The ankle sits in the rear third of the foot.
    assert -0.13 < ankle[1] < -0.13 + 0.26 / 3


def test_body_defaults_from_height() -> None:
    b = Body(height_m=1.80)
    assert b.foot_length_m == pytest.approx(0.152 * 1.8)
    assert b.foot_width_m == pytest.approx(0.055 * 1.8)
    assert b.com_height_m == pytest.approx(0.55 * 1.8)
    assert b.eye_height_m == pytest.approx(0.936 * 1.8)
    assert b.ankle_height_m == pytest.approx(0.039 * 1.8)
    assert b.pendulum_length_m == pytest.approx((0.55 - 0.039) * 1.8)
    assert b.com_per_head == pytest.approx((0.55 - 0.039) / (0.936 - 0.039))
    assert b.omega0_rad_s == pytest.approx(math.sqrt(9.80665 / ((0.55 - 0.039) * 1.8)))
    assert b.weight_n is None
    assert Body(1.8, 80.0).weight_n == pytest.approx(80 * 9.80665)
    own = Body(1.8, foot_length_m=0.25, com_height_m=1.0)
    assert own.foot_length_m == 0.25 and own.com_height_m == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"height_m": 0.2}, r"height_m: expected a stature in \[0.5, 2.6\] m, got 0.2"),
        ({"height_m": True}, "height_m: expected a stature"),
        ({"mass_kg": 0.0}, r"mass_kg: expected a mass in \(0, 500\) kg, got 0.0"),
        ({"foot_length_m": -0.1}, r"foot_length_m: expected a length in \(0, height\] m"),
        ({"com_height_m": 1.7}, "expected ankle_height_m < com_height_m < eye_height_m"),
    ],
)
def test_body_rejects(kwargs: dict, match: str) -> None:
    args = {"height_m": 1.75}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Body(**args)
