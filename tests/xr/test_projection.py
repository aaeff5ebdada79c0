"""Asymmetric FOV -> OpenGL and Panda3D projections, against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vrbalance.xr.projection import Fov, gl_projection, make_lens, panda_lens_matrix

# tan(left) = -1, tan(right) = 0.5, tan(up) = 1, tan(down) = -0.5: easy by hand.
ASYM = Fov(math.atan(-1.0), math.atan(0.5), math.atan(1.0), math.atan(-0.5))


def ndc(p: np.ndarray, clip_point: np.ndarray) -> np.ndarray:
    c = p @ clip_point
    return c[:3] / c[3]


def test_symmetric_90_degrees_by_hand() -> None:
    p = gl_projection(Fov.symmetric(math.pi / 2, math.pi / 2), 1.0, 3.0)
    expected = np.array(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, -2.0, -3.0],  # -(f+n)/(f-n), -2fn/(f-n)
            [0.0, 0.0, -1.0, 0.0],
        ]
    )
    np.testing.assert_allclose(p, expected, atol=1e-12)


def test_asymmetric_by_hand() -> None:
    p = gl_projection(ASYM, 0.1, 100.0)
    # width = 0.5 - (-1) = 1.5 -> 2/1.5; offset (0.5 + -1)/1.5 = -1/3
    assert p[0, 0] == pytest.approx(4.0 / 3.0)
    assert p[0, 2] == pytest.approx(-1.0 / 3.0)
    # height = 1 - (-0.5) = 1.5 -> 2/1.5; offset (1 - 0.5)/1.5 = 1/3
    assert p[1, 1] == pytest.approx(4.0 / 3.0)
    assert p[1, 2] == pytest.approx(1.0 / 3.0)
    assert p[3, 2] == -1.0


def test_frustum_edges_map_to_ndc_edges() -> None:
    p = gl_projection(ASYM, 0.1, 100.0)
    d = 2.0  # 2 m in front (GL eye space looks along -z)
    np.testing.assert_allclose(ndc(p, np.array([-1.0 * d, 0, -d, 1]))[0], -1.0)  # left edge
    np.testing.assert_allclose(ndc(p, np.array([0.5 * d, 0, -d, 1]))[0], 1.0)  # right edge
    np.testing.assert_allclose(ndc(p, np.array([0, 1.0 * d, -d, 1]))[1], 1.0)  # top edge
    np.testing.assert_allclose(ndc(p, np.array([0, -0.5 * d, -d, 1]))[1], -1.0)  # bottom edge
    np.testing.assert_allclose(ndc(p, np.array([0, 0, -0.1, 1]))[2], -1.0)  # near -> -1
    np.testing.assert_allclose(ndc(p, np.array([0, 0, -100.0, 1]))[2], 1.0)  # far -> +1


def test_panda_lens_matrix_uses_panda_frame_and_row_vectors() -> None:
    m = panda_lens_matrix(ASYM, 0.1, 100.0)
    d = 3.0  # 3 m forward is +y in Panda3D's lens frame; up is +z
    left = np.array([-1.0 * d, d, 0.0, 1.0]) @ m
    top = np.array([0.0, d, 1.0 * d, 1.0]) @ m
    near = np.array([0.0, 0.1, 0.0, 1.0]) @ m
    assert left[0] / left[3] == pytest.approx(-1.0)
    assert top[1] / top[3] == pytest.approx(1.0)
    assert near[2] / near[3] == pytest.approx(-1.0)


def test_panda3d_lens_projects_edges_to_film_edges() -> None:
    core = pytest.importorskip("panda3d.core")
    lens = make_lens(ASYM, 0.1, 100.0)
    d = 4.0
    cases = [
        ((-1.0 * d, d, 0.0), 0, -1.0),
        ((0.5 * d, d, 0.0), 0, 1.0),
        ((0.0, d, 1.0 * d), 1, 1.0),
        ((0.0, d, -0.5 * d), 1, -1.0),
        ((0.0, 0.1, 0.0), 2, -1.0),
        ((0.0, 100.0, 0.0), 2, 1.0),
    ]
    for point, axis, expected in cases:
        out = core.LPoint3f()
        assert lens.project(core.LPoint3f(*point), out)
        assert out[axis] == pytest.approx(expected, abs=1e-5), (point, tuple(out))


def test_panda3d_matrix_lens_equals_off_axis_perspective_lens() -> None:
    """Independent oracle: Panda3D's own off-axis PerspectiveLens (film offset)."""
    core = pytest.importorskip("panda3d.core")
    tl, tr, tu, td = (math.tan(a) for a in (-0.7, 0.6, 0.75, -0.8))
    fov = Fov(-0.7, 0.6, 0.75, -0.8)
    persp = core.PerspectiveLens()
    persp.set_focal_length(1.0)
    persp.set_film_size(tr - tl, tu - td)
    persp.set_film_offset((tr + tl) / 2, (tu + td) / 2)
    persp.set_near_far(0.05, 50.0)
    ours = make_lens(fov, 0.05, 50.0)
    a, b = persp.get_projection_mat(), ours.get_projection_mat()
    for i in range(4):
        for j in range(4):
            assert a.get_cell(i, j) == pytest.approx(b.get_cell(i, j), rel=1e-4, abs=1e-5)


angles = st.floats(min_value=-1.4, max_value=1.4, allow_nan=False)


@given(angles, angles, angles, angles)
def test_edges_hold_for_any_valid_fov(a, b, c, d) -> None:
    left, right = sorted((a, b))
    down, up = sorted((c, d))
    if right - left < 1e-3 or up - down < 1e-3:
        return
    fov = Fov(left, right, up, down)
    p = gl_projection(fov, 0.05, 100.0)
    np.testing.assert_allclose(ndc(p, np.array([math.tan(left), 0, -1.0, 1]))[0], -1.0, atol=1e-7)
    np.testing.assert_allclose(ndc(p, np.array([math.tan(right), 0, -1.0, 1]))[0], 1.0, atol=1e-7)
    np.testing.assert_allclose(ndc(p, np.array([0, math.tan(up), -1.0, 1]))[1], 1.0, atol=1e-7)
    np.testing.assert_allclose(ndc(p, np.array([0, math.tan(down), -1.0, 1]))[1], -1.0, atol=1e-7)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0.5, -0.5, 0.5, -0.5), "angle_left_rad < angle_right_rad"),
        ((-0.5, 0.5, -0.5, 0.5), "angle_down_rad < angle_up_rad"),
        ((-2.0, 0.5, 0.5, -0.5), r"within \+/-89 deg"),
        ((float("nan"), 0.5, 0.5, -0.5), "finite"),
    ],
)
def test_fov_rejects_bad_angles(args, match) -> None:
    with pytest.raises(ValueError, match=match):
        Fov(*args)


def test_clip_planes_checked() -> None:
    with pytest.raises(ValueError, match="0 < near_m < far_m"):
        gl_projection(ASYM, 1.0, 0.5)
