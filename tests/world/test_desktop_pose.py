"""Desktop stand-in: keys only record state; the task integrates lean and gaze into the head."""

from __future__ import annotations

import math

import pytest

from vrbalance.samples import HeadPose
from vrbalance.world.app import WorldApp
from vrbalance.world.desktop_pose import (
    LEAN_MAX_M,
    LEAN_SPEED_MPS,
    DesktopHead,
    DesktopPose,
    yaw_pitch_quaternion,
)

pytestmark = pytest.mark.render


class _Sink:
    def __init__(self) -> None:
        self.poses: list[HeadPose] = []

    def put(self, pose: HeadPose) -> None:
        self.poses.append(pose)


class _Base:
    def pose_at(self, t_s: float) -> HeadPose:
        return HeadPose(None, t_s, (0.01, 0.02, 1.55))


def test_quaternion_matches_panda_hpr() -> None:
    from panda3d.core import Quat

    q = Quat()
    q.setHpr((30.0, -20.0, 0.0))
    x, y, z, w = yaw_pitch_quaternion(30.0, -20.0)
    assert (w, x, y, z) == pytest.approx((q.getR(), q.getI(), q.getJ(), q.getK()), abs=1e-6)


def test_keys_lean_the_head_and_it_returns_upright(app: WorldApp) -> None:
    head = DesktopHead(_Base(), app.clock)
    sink = _Sink()
    pose = DesktopPose(app, head, sink)
    try:
        app.base.messenger.send("w")  # what Panda3D sends on a key press
        assert pose.keys["w"] is True
        assert head.pose_at(0.0).position_m[1] == pytest.approx(0.02)  # nothing moved yet
        p = pose.step(0.5)
        assert p.position_m[1] == pytest.approx(0.02 + LEAN_SPEED_MPS * 0.5)
        assert p.position_m[2] < 1.55  # leaning lowers the head a little
        for _ in range(20):
            pose.step(0.5)
        assert pose.offset_m[1] == pytest.approx(LEAN_MAX_M)  # bounded
        app.base.messenger.send("w-up")
        for _ in range(20):
            pose.step(0.5)
        assert pose.offset_m == [0.0, 0.0]
        assert sink.poses and sink.poses[-1].position_m == pytest.approx((0.01, 0.02, 1.55))
    finally:
        pose.close()


def test_mouse_look_turns_only_while_the_button_is_held(app: WorldApp) -> None:
    head = DesktopHead(None, app.clock)
    pose = DesktopPose(app, head)
    try:
        pose.step(0.1, (0.0, 0.0))
        pose.step(0.1, (100.0, 0.0))
        assert pose.yaw_deg == 0.0
        app.base.messenger.send("mouse3")
        pose.step(0.1, (0.0, 0.0))
        pose.step(0.1, (100.0, -50.0))  # right and up
        assert pose.yaw_deg < 0.0 and pose.pitch_deg > 0.0
        q = head.pose_at(0.0).orientation_xyzw
        assert math.isclose(sum(c * c for c in q), 1.0, rel_tol=1e-9)
    finally:
        pose.close()


def test_loop_and_camera_read_the_same_fresh_pose(app: WorldApp) -> None:
    """The balance loop asks at its own tick times: the base pose is taken at that time."""
    head = DesktopHead(_Base(), app.clock)
    assert head.pose_at(12.5).received_time_s == app.clock.now_s()
    app.set_head_source(head)
    app.step_frames(1)
    assert tuple(round(v, 6) for v in app.head_node.getPos()) == (0.01, 0.02, 1.55)
