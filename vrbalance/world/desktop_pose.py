"""The desktop stand-in for a headset: mouse look and keys that lean the body.

Without a headset the demo still needs a moving head, so that the balance
pipeline (head-based centre of mass, XCoM, margins, safety) has something to
work on. Following the Panda3D samples' pattern, the input callbacks only
record key state in :attr:`DesktopPose.keys`; one named task
(``"desktop-pose"``, run before the world's frame task) integrates it into
lean offsets and a gaze, which it hands to a :class:`DesktopHead` as one
immutable tuple. :class:`DesktopHead` is the head-pose source that both the
balance loop (in its thread, every tick) and the camera read: base pose at
the asked time plus the latest offsets, so the loop never sees a stale pose
between rendered frames. Poses can also be copied into a sink (a
``LatestHeadSource``) for recording.

Controls
--------
W / S or Up / Down
    Lean forward / back (the body tilts about the ankles; the head moves).
A / D or Left / Right
    Shift weight left / right.
Right mouse button held
    Look around (yaw and pitch).

The lean is a position *offset* added to an optional base source (the
simulated person's head when a simulated plate runs), so the plate's own
sway and the operator's keys combine.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from vrbalance.samples import HeadPose

if TYPE_CHECKING:
    from vrbalance.world.app import HeadPoseSource, WorldApp

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

# --- tuning constants ----------------------------------------------------------
#: Largest head excursion from the keys, m (about 6 deg of body tilt at 1.6 m:
#: near the limit of stability of a healthy adult, so the safety monitor reacts).
LEAN_MAX_M = 0.16
#: How fast a held key moves the head, m/s.
LEAN_SPEED_MPS = 0.12
#: How fast the head returns upright when no key is held, m/s.
RETURN_SPEED_MPS = 0.08
#: Mouse-look sensitivity, deg per pixel.
LOOK_DEG_PER_PX = 0.15
#: Pitch limits of mouse look, deg.
PITCH_LIMIT_DEG = 60.0
#: Standing eye height when there is no base source, m.
EYE_HEIGHT_M = 1.6

#: key name -> (axis, direction); axis 0 = x (right), 1 = y (forward)
KEY_AXES: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        "w": (1, 1),
        "arrow_up": (1, 1),
        "s": (1, -1),
        "arrow_down": (1, -1),
        "d": (0, 1),
        "arrow_right": (0, 1),
        "a": (0, -1),
        "arrow_left": (0, -1),
    }
)


class HeadSink(Protocol):
    """Where poses may be copied (``vrbalance.devices.head.LatestHeadSource.put``)."""

    def put(self, pose: HeadPose) -> None: ...


def yaw_pitch_quaternion(yaw_deg: float, pitch_deg: float) -> tuple[float, float, float, float]:
    """Quaternion (x, y, z, w) for heading ``yaw_deg`` (about +z, left positive) then pitch.

    Matches Panda3D's HPR with roll 0: ``q = q_heading * q_pitch``.
    """
    h, p = math.radians(yaw_deg) / 2, math.radians(pitch_deg) / 2
    ch, sh, cp, sp = math.cos(h), math.sin(h), math.cos(p), math.sin(p)
    # (0,0,sh,ch) * (sp,0,0,cp)
    return (ch * sp, sh * sp, sh * cp, ch * cp)


class DesktopHead:
    """Head-pose source: a base pose plus the desktop's lean offsets and gaze.

    Thread-safe without locks: the frame task replaces one immutable tuple,
    the balance loop reads it whole.

    Parameters
    ----------
    base_source : HeadPoseSource, optional
        Pose at a time (the simulated person's head); ``None``: standing still.
    clock : Clock
        Stamps ``received_time_s``.
    """

    def __init__(self, base_source: HeadPoseSource | None, clock: Any) -> None:
        self.base_source = base_source
        self.clock = clock
        self._offsets: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def set_offsets(self, x_m: float, y_m: float, yaw_deg: float, pitch_deg: float) -> None:
        """Lean offset (m, core frame) and gaze (deg) from now on (any thread)."""
        self._offsets = (x_m, y_m, yaw_deg, pitch_deg)

    def pose_at(self, t_s: float) -> HeadPose | None:
        ox, oy, yaw, pitch = self._offsets
        base_pose = self.base_source.pose_at(t_s) if self.base_source is not None else None
        if base_pose is None and self.base_source is not None:
            return None  # the base lost tracking: so does the head
        x, y, z = base_pose.position_m if base_pose is not None else (0.0, 0.0, EYE_HEIGHT_M)
        # The body tilts about the ankles: the head also drops a little as it leans.
        lever = max(z, 0.5)
        dz = lever - math.sqrt(max(lever * lever - ox * ox - oy * oy, 0.0))
        return HeadPose(
            device_time_s=None,
            received_time_s=self.clock.now_s(),
            position_m=(x + ox, y + oy, z - dz),
            orientation_xyzw=yaw_pitch_quaternion(yaw, pitch),
        )


class DesktopPose:
    """Keyboard/mouse head for the desktop demo (see module docstring).

    Parameters
    ----------
    app : WorldApp
        The open app (its ShowBase receives the input; passed, never a builtin).
    head : DesktopHead
        Receives the integrated offsets every frame.
    sink : HeadSink, optional
        Also receives the resulting pose every frame (e.g. for recording).
    """

    def __init__(self, app: WorldApp, head: DesktopHead, sink: HeadSink | None = None) -> None:
        self.app = app
        self.head = head
        self.sink = sink
        self.keys: dict[str, bool] = dict.fromkeys(KEY_AXES, False)
        self.mouse_look = False
        self.offset_m = [0.0, 0.0]
        self.yaw_deg = 0.0
        self.pitch_deg = 0.0
        self._last_mouse: tuple[float, float] | None = None
        base = app.base
        for key in KEY_AXES:
            base.accept(key, self._set_key, [key, True])
            base.accept(f"{key}-up", self._set_key, [key, False])
        base.accept("mouse3", self._set_look, [True])
        base.accept("mouse3-up", self._set_look, [False])
        app.add_task(self._task, "desktop-pose", sort=-20)

    # Input callbacks only record state.
    def _set_key(self, key: str, down: bool) -> None:
        self.keys[key] = down

    def _set_look(self, down: bool) -> None:
        self.mouse_look = down
        self._last_mouse = None

    def step(self, dt_s: float, mouse_xy_px: tuple[float, float] | None = None) -> HeadPose | None:
        """Integrate held keys and mouse motion over ``dt_s``; return the resulting pose."""
        held = [0, 0]
        for key, down in self.keys.items():
            if down:
                axis, sign = KEY_AXES[key]
                held[axis] += sign
        for axis in (0, 1):
            value = self.offset_m[axis]
            if held[axis]:
                value += held[axis] * LEAN_SPEED_MPS * dt_s
            else:  # drift back upright
                step = min(abs(value), RETURN_SPEED_MPS * dt_s)
                value -= math.copysign(step, value)
            self.offset_m[axis] = max(-LEAN_MAX_M, min(LEAN_MAX_M, value))
        if self.mouse_look and mouse_xy_px is not None:
            if self._last_mouse is not None:
                dx = mouse_xy_px[0] - self._last_mouse[0]
                dy = mouse_xy_px[1] - self._last_mouse[1]
                self.yaw_deg -= dx * LOOK_DEG_PER_PX
                self.pitch_deg = max(
                    -PITCH_LIMIT_DEG, min(PITCH_LIMIT_DEG, self.pitch_deg - dy * LOOK_DEG_PER_PX)
                )
            self._last_mouse = mouse_xy_px
        ox, oy = self.offset_m
        # Gaze starts where the scene suggests (stairs: down the flight).
        scene_pitch = float(getattr(self.app.scene, "default_gaze_pitch_deg", 0.0))
        pitch = max(-PITCH_LIMIT_DEG, min(PITCH_LIMIT_DEG, self.pitch_deg + scene_pitch))
        self.head.set_offsets(ox, oy, self.yaw_deg, pitch)
        pose = self.head.pose_at(self.app.clock.now_s())
        if self.sink is not None and pose is not None:
            self.sink.put(pose)
        return pose

    def _task(self, task: Any) -> int:
        from direct.task import Task

        base = self.app.base
        mouse = None
        watcher = getattr(base, "mouseWatcherNode", None)
        if watcher is not None and watcher.hasMouse():
            size = base.win.getXSize(), base.win.getYSize()
            m = watcher.getMouse()
            mouse = (float(m.x) * size[0] / 2, float(m.y) * -size[1] / 2)
        dt_s = min(max(base.clock.getDt(), 0.0), 0.1)
        self.step(dt_s, mouse)
        return Task.cont

    def close(self) -> None:
        """Stop the task and the input bindings (idempotent)."""
        base = self.app.base
        if base is None:
            return
        base.taskMgr.remove("desktop-pose")
        for key in KEY_AXES:
            base.ignore(key)
            base.ignore(f"{key}-up")
        base.ignore("mouse3")
        base.ignore("mouse3-up")
