"""The headset output with real Panda3D offscreen rendering and the fake runtime.

The fake's swapchain images are real OpenGL textures on Panda3D's context,
so these tests check the whole path: located views -> eye cameras and lenses
-> Panda3D render -> copy into the acquired swapchain image -> projection layer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from fake_runtime import FakeXr

from vrbalance.clock import ManualClock
from vrbalance.xr.gl import HeadlessBinding, make_gl_texture, read_gl_texture
from vrbalance.xr.head_source import XrHeadPoseSource
from vrbalance.xr.output import XrOutput

pytestmark = pytest.mark.render

EYE = (96, 112)
LEFT_FOV = (-0.9, 0.8, 0.85, -0.95)  # the fake's left eye (angle left, right, up, down)


class PlainWorld:
    """A bare ShowBase with a black scene: just enough world for XrOutput."""

    def __init__(self) -> None:
        from direct.showbase.ShowBase import ShowBase
        from panda3d.core import loadPrcFileData, unloadPrcFile

        self._page = loadPrcFileData(
            "xr-test",
            "load-display p3headlessgl\naudio-library-name null\nsync-video 0\n"
            "win-size 128 64\nnotify-level-device fatal",
        )
        self._unload = unloadPrcFile
        self.base = ShowBase(windowType="offscreen")
        self.base.setBackgroundColor(0, 0, 0, 1)
        self.render = self.base.render
        self.calls: list[str] = []

    def calm(self) -> None:
        self.calls.append("calm")

    def resume(self) -> None:
        self.calls.append("resume")

    def step(self, n: int) -> None:
        for _ in range(n):
            self.base.taskMgr.step()

    def close(self) -> None:
        self.base.destroy()
        self._unload(self._page)


@pytest.fixture
def world():
    w = PlainWorld()
    yield w
    w.close()


def last_image(fake: FakeXr, eye: int) -> np.ndarray:
    sc = sorted(fake.swapchains.values(), key=lambda s: s.images[0])[eye]
    index = (sc.next_index - 1) % len(sc.images)
    raw = read_gl_texture(sc.images[index], sc.width, sc.height)
    return np.frombuffer(raw, np.uint8).reshape(sc.height, sc.width, 4)  # bottom row first


def add_marker(world: PlainWorld, center: tuple[float, float, float], size_m: float) -> None:
    from panda3d.core import CardMaker

    cm = CardMaker("marker")
    cm.set_frame(-size_m / 2, size_m / 2, -size_m / 2, size_m / 2)
    card = world.render.attach_new_node(cm.generate())
    card.set_pos(*center)  # CardMaker's card faces -y: towards a camera looking along +y
    card.set_color(1, 1, 1, 1)
    card.set_light_off()
    card.set_two_sided(True)


def test_marker_lands_on_the_pixel_the_asymmetric_projection_predicts(world) -> None:
    # Head still at 1.65 m, looking straight ahead (stage -z); left eye 32 mm left.
    fake = FakeXr(
        view_size=EYE,
        image_factory=make_gl_texture,
        motion=lambda t: ((0.0, 1.65, 0.0), (0.0, 0.0, 0.0, 1.0)),
    )
    # A marker straight ahead of the left eye, 2 m away, 0.25 m (about 5 px) wide.
    add_marker(world, (-0.032, 2.0, 1.65), 0.25)
    with XrOutput(world, api=fake, graphics=HeadlessBinding(), mirror="none"):
        world.step(6)
        image = last_image(fake, 0)
    bright = np.argwhere(image[..., 0] > 128)
    assert bright.size, "marker not rendered into the swapchain image"
    row, col = bright.mean(axis=0) + 0.5  # pixel centres
    tl, tr, tu, td = (math.tan(a) for a in LEFT_FOV)
    # Straight ahead is NOT the image centre for an asymmetric eye:
    ndc_x = -(tr + tl) / (tr - tl)
    ndc_y = -(tu + td) / (tu - td)
    w, h = EYE
    assert col == pytest.approx((ndc_x + 1) / 2 * w, abs=1.0)
    assert row == pytest.approx((ndc_y + 1) / 2 * h, abs=1.0)  # rows counted from the bottom
    assert col > w / 2 + 3 and row > h / 2 + 3


def test_each_eye_sees_a_side_marker_through_its_own_frustum(world) -> None:
    fake = FakeXr(
        view_size=EYE,
        image_factory=make_gl_texture,
        motion=lambda t: ((0.0, 1.65, 0.0), (0.0, 0.0, 0.0, 1.0)),
    )
    marker_x = -0.032 - 1.6  # 1.6 m left of the left eye at 2 m: 38.7 deg
    add_marker(world, (marker_x, 2.0, 1.65), 0.3)
    with XrOutput(world, api=fake, graphics=HeadlessBinding(), mirror="none"):
        world.step(6)
        images = [last_image(fake, 0), last_image(fake, 1)]
    fovs = [LEFT_FOV, (-0.8, 0.9, 0.85, -0.95)]
    eye_x = [-0.032, 0.032]
    for image, fov, ex in zip(images, fovs, eye_x, strict=True):
        cols = np.argwhere(image[..., 0] > 128)[:, 1]
        assert cols.size
        tl, tr = math.tan(fov[0]), math.tan(fov[1])
        ndc_x = (2 * (marker_x - ex) / 2.0 - (tr + tl)) / (tr - tl)
        assert cols.mean() + 0.5 == pytest.approx((ndc_x + 1) / 2 * EYE[0], abs=1.0)


def test_focus_loss_calms_the_world_and_hidden_frames_are_not_rendered(world) -> None:
    fake = FakeXr(view_size=EYE, image_factory=make_gl_texture)
    with XrOutput(world, api=fake, graphics=HeadlessBinding()) as out:
        world.step(5)
        assert world.calls == []  # focused from the start: nothing to do
        fake.lose_focus()
        world.step(2)
        assert world.calls == ["calm"]
        fake.hide()
        before = out.stats().frames_rendered
        world.step(4)
        assert out.stats().frames_rendered == before  # shouldRender false: no layers
        assert not any(buf.is_active() for buf in out.rig.buffers)  # and no eye rendering
        fake.show()
        fake.regain_focus()
        world.step(3)
        assert world.calls == ["calm"]  # regaining focus never lifts a calm by itself
        assert out.rig.buffers[0].is_active()
        assert [e.kind for e in out.events if e.kind in ("paused", "resumed")] == [
            "resumed",
            "paused",
            "resumed",
        ]
    assert fake.violations == []


def test_runtime_exit_stops_the_main_loop_and_loss_can_be_resumed(world) -> None:
    fake = FakeXr(view_size=EYE, image_factory=make_gl_texture)
    with XrOutput(world, api=fake, graphics=HeadlessBinding()) as out:
        world.step(5)
        fake.lose_session()
        world.step(3)
        assert out.session.lost
        assert [e.kind for e in out.events].count("loss_pending") == 1
        fake.restore()
        out.resume()
        world.step(5)
        assert out.session.focused
        fake.runtime_quit()
        world.base.run()  # returns because the runtime's EXITING stops the task manager
        assert out.session.exiting
        stats = out.stats()
    assert stats.states_seen[-1] == "EXITING"
    assert stats.frames_rendered > 0 and stats.head_poses == 0  # nobody asked for the head
    assert fake.violations == []


def test_mirror_shows_the_eye_on_the_desktop(world) -> None:
    fake = FakeXr(
        view_size=EYE,
        image_factory=make_gl_texture,
        motion=lambda t: ((0.0, 1.65, 0.0), (0.0, 0.0, 0.0, 1.0)),
    )
    add_marker(world, (-0.032, 2.0, 1.65), 0.3)
    with XrOutput(world, api=fake, graphics=HeadlessBinding(), mirror="left"):
        world.step(6)
        shot = world.base.win.get_screenshot()
        data = np.frombuffer(bytes(shot.get_ram_image_as("RGB")), np.uint8)
        img = data.reshape(shot.get_y_size(), shot.get_x_size(), 3)
        assert not world.base.cam.node().is_active()  # the main 3-D camera is off meanwhile
    assert (img[..., 0] > 128).any(), "the eye is not mirrored on the desktop"
    assert world.base.cam.node().is_active()  # and back on after the headset closed


def test_head_source_bound_and_unbound_with_the_output(world) -> None:
    fake = FakeXr(view_size=EYE, image_factory=make_gl_texture)
    head = XrHeadPoseSource(ManualClock())
    with XrOutput(world, api=fake, graphics=HeadlessBinding(), head_source=head):
        world.step(5)
        pose = head.pose_at(0.0)
        assert pose is not None and pose.position_m[2] == pytest.approx(1.65)
    assert head.pose_at(0.0) is None


def _world_run(overlay: bool) -> tuple[np.ndarray, np.ndarray]:
    from vrbalance.world.app import WorldApp

    fake = FakeXr(view_size=EYE, image_factory=make_gl_texture)
    with (
        WorldApp(output="offscreen", size_px=(160, 90), overlay=overlay) as world,
        XrOutput(world, api=fake, graphics=HeadlessBinding(), mirror="left"),
    ):
        world.step_frames(6)
        eye = last_image(fake, 0).copy()
        desktop = world.image()
    assert fake.violations == []
    return eye, desktop


@pytest.mark.slow
def test_operator_overlay_reaches_the_desktop_but_never_an_eye() -> None:
    eye_with, desk_with = _world_run(overlay=True)
    eye_without, desk_without = _world_run(overlay=False)
    assert eye_with.std() > 5  # the park scene is really there
    np.testing.assert_array_equal(eye_with, eye_without)
    assert np.abs(desk_with.astype(int) - desk_without.astype(int)).max() > 60


@pytest.mark.slow
def test_recenter_turns_the_headset_view_and_leaves_the_tracked_head_alone() -> None:
    """The headset path: eyes located by the runtime, a recentre of the world.

    The head stands 0.5 m right and 0.3 m back, turned 40 deg left (the runtime's
    stage: y up, -z forward). Recentred, each eye sees what it saw from the stage's
    start; the head pose the balance loop reads is still the runtime's own.
    """
    from vrbalance.world.app import WorldApp

    turn = math.radians(40.0) / 2  # about the runtime's +y (up): to the left
    poses = {
        "start": ((0.0, 1.65, 0.0), (0.0, 0.0, 0.0, 1.0)),
        "turned": ((0.5, 1.65, 0.3), (0.0, math.sin(turn), 0.0, math.cos(turn))),
    }
    where = ["start"]
    fake = FakeXr(view_size=EYE, image_factory=make_gl_texture, motion=lambda t: poses[where[0]])
    head = XrHeadPoseSource(ManualClock())
    eyes: dict[str, list[np.ndarray]] = {}
    with (
        WorldApp(output="offscreen", size_px=(160, 90), head_source=head) as world,
        XrOutput(world, api=fake, graphics=HeadlessBinding(), head_source=head, mirror="none"),
    ):
        world.calm()  # the park stands still: pictures compare pixel for pixel
        world.step_frames(4)
        eyes["start"] = [last_image(fake, i).copy() for i in (0, 1)]
        where[0] = "turned"
        world.step_frames(4)
        eyes["turned"] = [last_image(fake, i).copy() for i in (0, 1)]
        world.recenter()
        world.step_frames(4)
        eyes["recentred"] = [last_image(fake, i).copy() for i in (0, 1)]
        tracked = head.pose_at(0.0)
        view = world.view_offset
    assert fake.violations == []
    # The loop's head is the runtime's, in the stage frame (core: x right, y forward).
    assert tracked is not None
    assert tracked.position_m == pytest.approx((0.5, -0.3, 1.65), abs=1e-6)
    assert view == pytest.approx((0.5, -0.3, 40.0), abs=1e-4)
    for i in (0, 1):
        start, turned, back = (eyes[k][i].astype(int) for k in ("start", "turned", "recentred"))
        moved = float(np.abs(turned - start).mean())
        assert moved > 5.0 and float(np.abs(back - start).mean()) < moved / 10, i
