"""WorldApp: outputs, lifecycle, requests from any thread, keys, head-driven camera, eye buffers."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest

from vrbalance.errors import ConfigError
from vrbalance.events import Event
from vrbalance.samples import HeadPose
from vrbalance.world.app import AppState, DisplayUnavailableError, WorldApp

pytestmark = pytest.mark.render


def test_window_without_display_says_so_and_suggests_offscreen(make_app, monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    app = WorldApp(output="window")
    with pytest.raises(DisplayUnavailableError, match=r"no display.*--offscreen"):
        app.open()
    app.close()
    assert app.state is AppState.CLOSED


def test_bad_output_size_scene_and_level_are_config_errors() -> None:
    with pytest.raises(
        ConfigError, match="output: expected one of window, offscreen, xr, got 'vr'"
    ):
        WorldApp(output="vr")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"size: expected two integers in \[16, 8192\]"):
        WorldApp(size_px=(0, 10))
    with pytest.raises(ConfigError, match="unknown scene 'moon'"):
        WorldApp(scene="moon")
    with pytest.raises(ConfigError, match=r"level must be in \[1, 10\], got 11"):
        WorldApp(scene="park", level=11)


def test_lifecycle_states_and_idempotent_close(make_app) -> None:
    app = make_app(size_px=(64, 36))
    assert app.state is AppState.OPEN
    with pytest.raises(RuntimeError, match="already open"):
        app.open()
    with pytest.raises(RuntimeError, match="one WorldApp can be open at a time"):
        WorldApp(output="offscreen").open()
    app.close()
    app.close()
    assert app.state is AppState.CLOSED
    with pytest.raises(RuntimeError, match="closed, not open"):
        app.step_frames(1)


def test_xr_output_needs_a_display_for_a_context_the_runtime_can_share(monkeypatch) -> None:
    """The headset output is a GLX window (a runtime cannot bind p3headlessgl's EGL context)."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    app = WorldApp(output="xr", size_px=(64, 36))
    with pytest.raises(DisplayUnavailableError, match=r"GLX window.*--desktop"):
        app.open()
    app.close()
    assert app.state is AppState.CLOSED


def test_context_manager_closes(make_app, tmp_path: Path) -> None:
    with WorldApp(output="offscreen", size_px=(64, 36)) as app:
        out = app.screenshot(tmp_path / "shot.png")
        assert out.stat().st_size > 100
    assert app.state is AppState.CLOSED


def test_set_level_from_another_thread_applies_on_next_frame(app: WorldApp) -> None:
    worker = threading.Thread(target=app.set_level, args=(7,))
    worker.start()
    worker.join()
    assert app.level == 1  # nothing touches the scene graph outside the frame task
    app.step_frames(1)
    assert app.level == 7
    assert app.scene.params["path_width_m"] == app.scene_def.level(7).values["path_width_m"]
    with pytest.raises(ConfigError, match=r"level must be in \[1, 10\], got 12"):
        app.set_level(12)


def test_keys_change_level_scene_pause_and_emergency_stop(app: WorldApp) -> None:
    events: list[Event] = []
    app.add_listener(events.append)
    app.press("+")
    app.press("page_up")
    app.step_frames(1)
    assert app.level == 3
    app.press("-")
    app.step_frames(1)
    assert app.level == 2
    for _ in range(3):
        app.press("page_down")
    app.step_frames(1)
    assert app.level == 1  # clamped at the bottom, no event for the no-op
    app.press("2")
    app.step_frames(1)
    assert app.scene_def.name == "stairs" and app.level == 1
    app.press("space")
    app.step_frames(1)
    assert app.paused and app.scene.calmed
    app.press("space")
    app.step_frames(1)
    assert not app.paused and not app.scene.calmed
    app.press("escape")
    app.step_frames(1)
    assert app.emergency_stopped and app.scene.calmed
    app.resume()  # an emergency stop is not undone by a resume request
    app.step_frames(1)
    assert app.scene.calmed
    app.press("r")  # only the operator clears it
    app.step_frames(1)
    assert not app.emergency_stopped and not app.scene.calmed
    kinds = [e.kind for e in events]
    assert kinds == [
        "level_change",
        "level_change",
        "level_change",
        "level_change",
        "scene_change",
        "pause",
        "resume",
        "emergency_stop",
        "acknowledge",
    ]
    assert all(e.source == "operator" for e in events)
    assert events[-2].severity == "alarm"
    assert events[0].values == {"level_from": 1, "level_to": 2}


class _Scripted:
    """A head swaying sideways, as a function of time (the scripted source's idea)."""

    def pose_at(self, t_s: float) -> HeadPose:
        yaw = math.radians(20.0) / 2  # 20 deg to the left (about +z)
        return HeadPose(t_s, t_s, (0.05 * t_s, 0.0, 1.7), (0.0, 0.0, math.sin(yaw), math.cos(yaw)))


def test_head_pose_alone_drives_the_camera(app: WorldApp) -> None:
    app.set_level(10)
    app.set_head_source(_Scripted())
    app.clock.advance(2.0 - app.clock.now_s())  # the session clock, not render time
    app.step_frames(3)
    pos = app.head_node.getPos()
    assert tuple(round(v, 6) for v in pos) == (0.1, 0.0, 1.7)
    assert app.head_node.getH() == pytest.approx(20.0, abs=1e-4)
    # The scene's sway never touches the camera: only the surround node moves.
    assert app.base.cam.getPos().length() == 0.0
    assert app.head_node.getP() == pytest.approx(0.0, abs=1e-6)


def _green_overlay_pixels(img: np.ndarray) -> int:
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return int(np.sum((g > 225) & (r < 150) & (b < 150)))


def test_overlay_never_reaches_an_eye_buffer(app: WorldApp, artifacts: Path) -> None:
    """An extra buffer made like the headset's eye buffers shows the scene but no overlay."""
    from panda3d.core import Texture

    tex = Texture("eye")
    eye = app.base.win.makeTextureBuffer("eye-buffer", 320, 180, tex, True)
    lens = app.base.camLens.makeCopy()
    cam = app.make_camera(eye, lens=lens, name="left-eye")
    try:
        app.step_frames(2)
        main = app.image()
        eye_img = np.frombuffer(bytes(tex.getRamImageAs("RGB")), np.uint8).reshape(180, 320, 3)
        eye_img = eye_img[::-1]
    finally:
        cam.removeNode()
        app.base.graphicsEngine.removeWindow(eye)
    from matplotlib.image import imsave

    imsave(artifacts / "eye_buffer.png", eye_img)
    imsave(artifacts / "desktop_with_overlay.png", main)
    assert _green_overlay_pixels(main) > 50  # the base-of-support outline on the desktop
    assert _green_overlay_pixels(eye_img) == 0
    assert eye_img.std() > 10  # but the eye buffer did render the park


XR_CHILD = """
from panda3d.core import ConfigVariableBool
from vrbalance.world.app import WorldApp

with WorldApp(output="xr", size_px=(160, 90), scene="stairs") as app:
    app.step_frames(2)
    print(type(app.base.win).__name__, app.base.pipe.getType().getName(),
          int(ConfigVariableBool("sync-video").getValue()))
"""


def test_xr_output_is_an_onscreen_gl_window_without_vsync(run_on_display) -> None:
    """On a real X server (private Xvfb): a GLX window, ``sync-video 0`` (the runtime paces)."""
    import sys

    result = run_on_display("-c", XR_CHILD)
    assert result.returncode == 0, result.stderr[-2000:]
    kind, pipe, vsync = result.stdout.split()[-3:]
    expected_pipe = "glxGraphicsPipe" if sys.platform.startswith("linux") else pipe
    assert (kind, pipe, vsync) == ("GraphicsWindow", expected_pipe, "0")


def test_level_keys_stay_inside_the_cap_and_request_only_in_a_session(app: WorldApp) -> None:
    """The demo's free keys never pass its envelope; a session's keys only ask."""
    from vrbalance.director.envelope import SafetyEnvelope, level_cap

    events: list[Event] = []
    app.add_listener(events.append)
    envelope = SafetyEnvelope(max_levels={"park": 2, "stairs": 0, "crowd": 10})
    app.level_cap = level_cap(envelope)
    try:
        for _ in range(4):
            app.press("+")
        app.press("2")  # stairs: forbidden by this envelope
        app.step_frames(1)
        assert (app.scene_def.name, app.level) == ("park", 2)
        assert app.status["world"] == "scene stairs unavailable"
        app.level_keys = "request"
        app.press("-")
        app.press("3")
        app.step_frames(1)
        assert (app.scene_def.name, app.level) == ("park", 2)  # a session's keys change nothing
        assert app.status["world"] == "scene keys are off in a session (the protocol sets it)"
    finally:
        app.level_cap = None
        app.level_keys = "apply"
    assert [(e.kind, e.values.get("action")) for e in events] == [
        ("level_change", None),
        ("level_request", "level_down"),
    ]


def test_a_first_level_beyond_the_cap_is_refused() -> None:
    from vrbalance.director.envelope import SafetyEnvelope, level_cap
    from vrbalance.errors import ConfigError

    with pytest.raises(ConfigError, match=r"level 9 of park is beyond the envelope \(the highest"):
        WorldApp(level=9, level_cap=level_cap(SafetyEnvelope()))  # park 9 rolls 3.5 deg > 3


class _Still:
    """A head standing still at ``position_m`` with heading and pitch (Panda3D HPR, deg)."""

    def __init__(self, position_m: tuple[float, float, float], h_deg: float, p_deg: float) -> None:
        from panda3d.core import Quat

        q = Quat()
        q.setHpr((h_deg, p_deg, 0.0))
        self.pose = HeadPose(None, None, position_m, (q.getI(), q.getJ(), q.getK(), q.getR()))

    def pose_at(self, t_s: float) -> HeadPose:
        return self.pose


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_recenter_turns_and_shifts_the_view_only(app: WorldApp, artifacts: Path) -> None:
    """The head 0.8 m right, 0.5 m back, turned 35 deg left and looking 10 deg down: after a
    recentre the camera is at the scene's start facing its forward, and the picture is
    the one from the stage's start; the head's stage pose is untouched."""
    from matplotlib.image import imsave

    app.set_head_source(_Still((0.0, 0.0, 1.6), 0.0, -10.0))
    app.step_frames(2)
    start = app.image()
    offset = _Still((0.8, -0.5, 1.6), 35.0, -10.0)
    app.set_head_source(offset)
    app.step_frames(2)
    turned = app.image()
    app.recenter()
    assert app.recenters == 0  # a request: applied by the next frame, in the render thread
    app.step_frames(1)
    assert app.recenters == 1
    app.step_frames(1)
    recentred = app.image()
    for name, img in (("start", start), ("turned", turned), ("recentred", recentred)):
        imsave(artifacts / f"recenter_{name}.png", img)
    # The camera relative to the scene: at its origin at eye height, heading 0, pitch kept.
    rel = app.head_node.getPos(app.scene_root)
    assert (rel.x, rel.y, rel.z) == pytest.approx((0.0, 0.0, 1.6), abs=1e-5)
    h, p, r = app.head_node.getHpr(app.scene_root)
    assert (h, p, r) == pytest.approx((0.0, -10.0, 0.0), abs=1e-4)
    assert app.view_offset == pytest.approx((0.8, -0.5, 35.0), abs=1e-4)
    # The view only: the camera stays at the head's stage pose, which nothing changed.
    stage = app.head_node.getPos(app.render)
    assert (stage.x, stage.y, stage.z) == pytest.approx((0.8, -0.5, 1.6), abs=1e-5)
    assert offset.pose_at(0.0).position_m == (0.8, -0.5, 1.6)
    # The picture: from the offset head it differs; recentred it is the start's again.
    moved, back = _mean_abs_diff(turned, start), _mean_abs_diff(recentred, start)
    assert moved > 10.0 and back < moved / 10, (moved, back)
    # Recentring again from where the head is changes nothing (it is not cumulative).
    app.recenter()
    app.step_frames(1)
    assert app.recenters == 2 and app.view_offset == pytest.approx((0.8, -0.5, 35.0), abs=1e-4)
    assert _mean_abs_diff(app.image(), recentred) < 1.0
