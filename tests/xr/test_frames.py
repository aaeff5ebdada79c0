"""The OpenXR <-> core <-> Panda3D conversions, against hand-computed cases and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vrbalance.xr.frames import (
    XR_TO_CORE_QUAT,
    StageAlignment,
    core_to_panda_quat,
    core_to_xr_position,
    core_to_xr_quat,
    panda_to_core_quat,
    quat_conjugate,
    quat_multiply,
    quat_rotate,
    xr_pose_to_core,
    xr_to_core_position,
    xr_to_core_quat,
)

S = math.sqrt(0.5)
finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
vec3 = st.tuples(finite, finite, finite)


@st.composite
def unit_quats(draw: st.DrawFn) -> tuple[float, float, float, float]:
    q = draw(st.tuples(*(st.floats(-1, 1, allow_nan=False) for _ in range(4))))
    n = math.sqrt(sum(c * c for c in q))
    if n < 1e-3:
        return (0.0, 0.0, 0.0, 1.0)
    return tuple(c / n for c in q)  # type: ignore[return-value]


def axis_angle(axis: tuple[float, float, float], angle_rad: float) -> tuple[float, ...]:
    s = math.sin(angle_rad / 2)
    return (axis[0] * s, axis[1] * s, axis[2] * s, math.cos(angle_rad / 2))


def close(a, b, tol=1e-9) -> bool:
    return all(math.isclose(x, y, abs_tol=tol) for x, y in zip(a, b, strict=True))


# -- hand-computed cases -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p_xr", "p_core"),
    [
        ((0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),  # OpenXR forward is anterior
        ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),  # OpenXR up is up
        ((1.0, 0.0, 0.0), (1.0, 0.0, 0.0)),  # right stays right
        ((0.1, 1.7, -0.2), (0.1, 0.2, 1.7)),  # a standing head 20 cm in front of the origin
        ((1.0, 2.0, 3.0), (1.0, -3.0, 2.0)),
    ],
)
def test_position_hand_cases(p_xr, p_core) -> None:
    assert xr_to_core_position(p_xr) == p_core
    assert core_to_xr_position(p_core) == p_xr


def test_yaw_left_in_openxr_is_yaw_left_in_core() -> None:
    # +90 deg about OpenXR +y (up): looking to the left.
    q_xr = axis_angle((0.0, 1.0, 0.0), math.pi / 2)
    q_core = xr_to_core_quat(q_xr)
    assert close(q_core, (0.0, 0.0, S, S))  # +90 deg about core z (up)
    assert close(quat_rotate(q_core, (0.0, 1.0, 0.0)), (-1.0, 0.0, 0.0))  # forward -> left


def test_pitch_up_in_openxr_is_pitch_up_in_core() -> None:
    q_xr = axis_angle((1.0, 0.0, 0.0), math.radians(30))
    q_core = xr_to_core_quat(q_xr)
    assert close(q_core, axis_angle((1.0, 0.0, 0.0), math.radians(30)))
    fwd = quat_rotate(q_core, (0.0, 1.0, 0.0))
    assert close(fwd, (0.0, math.cos(math.radians(30)), math.sin(math.radians(30))))


def test_roll_in_openxr_about_back_axis_is_roll_about_minus_anterior() -> None:
    # +20 deg about OpenXR +z (backwards) tilts the head to the left (top goes -x).
    q_core = xr_to_core_quat(axis_angle((0.0, 0.0, 1.0), math.radians(20)))
    assert close(q_core, axis_angle((0.0, -1.0, 0.0), math.radians(20)))
    up = quat_rotate(q_core, (0.0, 0.0, 1.0))
    assert up[0] < 0 and math.isclose(up[2], math.cos(math.radians(20)))


def test_change_of_axes_quaternion_is_the_position_map() -> None:
    for v in [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.3, -2.0, 5.0)]:
        assert close(quat_rotate(XR_TO_CORE_QUAT, v), xr_to_core_position(v))


def test_view_pose_to_camera_hand_case() -> None:
    # The left eye 1.7 m above the floor, 20 cm forward, looking 90 deg to the left.
    pos, quat = xr_pose_to_core((-0.032, 1.7, -0.2), axis_angle((0.0, 1.0, 0.0), math.pi / 2))
    assert close(pos, (-0.032, 0.2, 1.7))
    assert close(quat_rotate(quat, (0.0, 1.0, 0.0)), (-1.0, 0.0, 0.0))  # camera looks along -x
    assert close(quat_rotate(quat, (0.0, 0.0, 1.0)), (0.0, 0.0, 1.0))  # and keeps z up


def test_alignment_hand_case() -> None:
    # Plate 0.5 m right of the stage centre; patient faces the stage's left (-x), i.e. yaw +90.
    al = StageAlignment(origin_m=(0.5, 0.0, 0.0), yaw_rad=math.pi / 2)
    pos, quat = al.tracking_to_core((0.5, 1.0, 1.7), (0.0, 0.0, 0.0, 1.0))
    # +y of the stage is the patient's right.
    assert close(pos, (1.0, 0.0, 1.7))
    # A head looking along stage forward (+y in core axes) looks to the patient's right.
    assert close(quat_rotate(quat, (0.0, 1.0, 0.0)), (1.0, 0.0, 0.0))


def test_alignment_rejects_non_finite() -> None:
    with pytest.raises(ValueError, match="finite origin_m"):
        StageAlignment(origin_m=(0.0, float("nan"), 0.0))


def test_panda_order() -> None:
    assert core_to_panda_quat((0.1, 0.2, 0.3, 0.9)) == (0.9, 0.1, 0.2, 0.3)
    assert panda_to_core_quat((0.9, 0.1, 0.2, 0.3)) == (0.1, 0.2, 0.3, 0.9)


# -- properties ----------------------------------------------------------------------------


@given(vec3)
def test_position_round_trip_exact(p) -> None:
    assert core_to_xr_position(xr_to_core_position(p)) == tuple(float(c) for c in p)
    assert xr_to_core_position(core_to_xr_position(p)) == tuple(float(c) for c in p)


@given(unit_quats())
def test_quat_round_trip_exact(q) -> None:
    assert core_to_xr_quat(xr_to_core_quat(q)) == q
    assert panda_to_core_quat(core_to_panda_quat(q)) == q


@given(unit_quats(), vec3)
def test_conversion_commutes_with_rotation(q, v) -> None:
    # Rotating then converting == converting then rotating with the converted quaternion.
    lhs = xr_to_core_position(quat_rotate(q, v))
    rhs = quat_rotate(xr_to_core_quat(q), xr_to_core_position(v))
    assert close(lhs, rhs, tol=1e-6 * (1 + max(abs(c) for c in v)))


@given(unit_quats())
def test_conversion_is_conjugation(q) -> None:
    expected = quat_multiply(quat_multiply(XR_TO_CORE_QUAT, q), quat_conjugate(XR_TO_CORE_QUAT))
    assert close(xr_to_core_quat(q), expected, tol=1e-12)


@given(unit_quats(), vec3, st.floats(-math.pi, math.pi), vec3)
def test_alignment_preserves_distances(q, p, yaw, origin) -> None:
    al = StageAlignment(origin_m=origin, yaw_rad=yaw)
    a, qa = al.tracking_to_core(p, q)
    b, _ = al.tracking_to_core(origin, q)
    assert close(b, (0.0, 0.0, 0.0), tol=1e-9)
    assert math.isclose(math.dist(a, b), math.dist(p, origin), rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(sum(c * c for c in qa), 1.0, rel_tol=1e-9)


@given(unit_quats(), vec3)
def test_panda3d_applies_the_same_rotation(q, v) -> None:
    core = pytest.importorskip("panda3d.core")
    node = core.NodePath("n")
    node.set_quat(core.LQuaternionf(*core_to_panda_quat(q)))
    got = node.get_mat().xform_vec(core.LVecBase3f(*v))
    assert close(tuple(got), quat_rotate(q, v), tol=1e-4 * (1 + max(abs(c) for c in v)))


def test_panda3d_camera_placed_from_view_pose_looks_where_the_view_looks() -> None:
    core = pytest.importorskip("panda3d.core")
    root = core.NodePath("render")
    cam = root.attach_new_node(core.Camera("eye"))
    # Looking 30 deg up and 90 deg left (yaw then pitch, intrinsic).
    q_xr = quat_multiply(
        axis_angle((0.0, 1.0, 0.0), math.pi / 2), axis_angle((1.0, 0.0, 0.0), math.radians(30))
    )
    pos, quat = xr_pose_to_core((0.0, 1.6, 0.0), q_xr)
    cam.set_pos(*pos)
    cam.set_quat(core.LQuaternionf(*core_to_panda_quat(quat)))
    forward = root.get_relative_vector(cam, core.LVector3f(0, 1, 0))
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    assert close(tuple(forward), (-c, 0.0, s), tol=1e-6)
    assert close(tuple(cam.get_pos(root)), (0.0, 0.0, 1.6), tol=1e-6)
