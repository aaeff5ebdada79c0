"""The Panda3D application that draws the current scene at the current level.

One :class:`WorldApp` owns one explicitly created ``ShowBase`` and passes it
around (``app.base``); nothing here reads the builtins ShowBase injects.
Outputs:

``"window"``
    A desktop window (needs a display; without one a
    :class:`DisplayUnavailableError` suggests ``--offscreen``).
``"offscreen"``
    An offscreen buffer through ``p3headlessgl`` (tests, CI, screenshots).
``"xr"``
    The desktop window of a headset session: a real ``pandagl`` (GLX on
    Linux) window, because an OpenXR runtime can only share such a context
    (Panda3D's ``p3headlessgl`` EGL context cannot be bound), with vsync off
    (``sync-video 0``: the runtime's ``xrWaitFrame`` paces frames; a 60 Hz
    desktop vsync would cap a 90 Hz headset). Needs a display like
    ``"window"``. The headset module adds the eye buffers with
    :meth:`WorldApp.make_camera`; they render :attr:`WorldApp.render` (the 3-D
    graph) only, while the operator overlay lives in ``render2d``/``aspect2d``
    on the main window's own 2-D display region, so it can never appear in
    an eye buffer.

Each frame one named task (``"world-frame"``) does, in order: handle recorded
key presses and queued requests (set_scene/set_level/calm/resume may be
called from any thread; they take effect at the start of the next frame),
place the camera from the head pose (the only thing that moves the
viewpoint), apply a requested recentre, advance the scene's animation, and
refresh the overlay from the latest published balance snapshot (a
non-blocking read). Render ``dt`` only animates the picture; it never feeds
balance maths.

Frames: the camera (:attr:`WorldApp.head_node`, and a headset's eye cameras)
is placed in ``render`` at the tracked head pose, in the stage frame the
balance loop and the safety monitor measure in. The scene hangs under
``view_root``, which :meth:`WorldApp.recenter` turns and shifts about the
vertical so that the head's current position and heading become the scene's
forward-facing start, as a clinic VR product's "recenter" does. That moves
the picture only: the head pose, and every check made on it (the walking
corridor, a head drop, the margin of stability), stays in the stage frame.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol

import numpy as np

from vrbalance.clock import Clock, MonotonicClock
from vrbalance.config.scenes import SceneDef, load_scene
from vrbalance.errors import ConfigError, DeviceError
from vrbalance.events import Event
from vrbalance.resources import data_dir
from vrbalance.samples import HeadPose

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

Output = Literal["window", "offscreen", "xr"]
OUTPUTS: tuple[str, ...] = ("window", "offscreen", "xr")

# --- tuning constants -------------------------------------------------------------
#: Horizontal field of view of the desktop / offscreen camera, deg.
DESKTOP_FOV_DEG = 90.0
#: Clip planes, m: near enough for a handrail at arm's length, far beyond the sky dome.
NEAR_M = 0.05
FAR_M = 1200.0
#: Standing eye height used until a head pose arrives, m.
DEFAULT_EYE_M = 1.6
#: Frame step used by :meth:`WorldApp.step_frames` when none is given, s.
DEFAULT_STEP_S = 1.0 / 60.0
#: Keys -> operator actions (input callbacks only queue these names).
KEY_ACTIONS: Mapping[str, str] = MappingProxyType(
    {
        "space": "pause",
        "escape": "emergency_stop",
        "+": "level_up",
        "=": "level_up",
        "page_up": "level_up",
        "-": "level_down",
        "page_down": "level_down",
        "r": "acknowledge",
        "1": "scene:park",
        "2": "scene:stairs",
        "3": "scene:crowd",
    }
)
#: Scene names reachable with number keys, in key order.
SCENE_KEYS: tuple[str, ...] = ("park", "stairs", "crowd")


class DisplayUnavailableError(DeviceError):
    """A desktop window was asked for but there is no display to open it on."""


class AppState(enum.Enum):
    """Lifecycle of a :class:`WorldApp`."""

    CREATED = "created"
    OPEN = "open"
    CLOSED = "closed"


class HeadPoseSource(Protocol):
    """Anything that gives the head pose at a time (see ``vrbalance.devices.head``)."""

    def pose_at(self, t_s: float) -> HeadPose | None: ...


class LatestReader(Protocol):
    """A non-blocking read of the latest published value (``LatestValue.get``)."""

    def get(self) -> Any: ...


class FixedHeadSource:
    """A head standing still at ``position_m`` looking along +y, pitched by ``pitch_deg``.

    Used for screenshots and as the fallback before any real pose arrives.
    """

    def __init__(
        self,
        position_m: tuple[float, float, float] = (0.0, 0.0, DEFAULT_EYE_M),
        pitch_deg: float = 0.0,
    ) -> None:
        half = math.radians(pitch_deg) / 2
        # Pitch is a rotation about the x (right) axis; positive looks up.
        self._pose = HeadPose(None, None, position_m, (math.sin(half), 0.0, 0.0, math.cos(half)))

    def pose_at(self, t_s: float) -> HeadPose | None:
        return self._pose


@dataclass(frozen=True, slots=True)
class FrameTiming:
    """Python-side cost of one frame of the ``world-frame`` task, in seconds.

    Attributes
    ----------
    total_s : float
        The whole task (input, requests, camera, scene, overlay).
    scene_s : float
        ``scene.update`` alone (animation, crowd model).
    overlay_s : float
        Overlay refresh alone.
    """

    total_s: float
    scene_s: float
    overlay_s: float


def quiet_prc_lines() -> list[str]:
    """Panda3D settings that keep its start-up chatter off the console unless ``--verbose``.

    Every rendering command otherwise printed the pipe types, EGL's
    ``EGL_NOT_INITIALIZED`` probe of a default display (the headless pipe then
    finds a device by itself) and the ``gl-finish`` performance hint: noise to a
    therapist, useful to a developer. With ``-v`` (INFO logging) they stay; so do
    Panda3D's errors always. Mesa's own EGL warnings (written by the C library)
    follow ``EGL_LOG_LEVEL``, set here unless the user set it.
    """
    if logging.getLogger("vrbalance").isEnabledFor(logging.INFO):
        return []
    os.environ.setdefault("EGL_LOG_LEVEL", "fatal")
    return [
        "print-pipe-types 0",
        "notify-level-egldisplay error",
        "notify-level-glgsg error",
    ]


def _has_display() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class WorldApp:
    """The world renderer: one ShowBase, one scene at a time, an overlay, a head-driven camera.

    Parameters
    ----------
    output : {"window", "offscreen", "xr"}
        Where to draw (see module docstring).
    size_px : tuple of int
        Window or buffer size (width, height) in pixels.
    scene : str
        Initial scene name (``scenes/<name>.toml``).
    level : int
        Initial level, from 1.
    head_source : HeadPoseSource, optional
        Drives the camera; defaults to a fixed standing head.
    state_source : LatestReader, optional
        Latest :class:`~vrbalance.balance.state.BalanceState` (``.get()``), for the overlay.
    overlay : bool
        Draw the operator overlay (desktop and offscreen; never in eye buffers).
    clock : Clock, optional
        Session clock for head-pose look-ups and event times.
    title : str
        Window title.
    level_keys : {"apply", "request"}
        What the level and scene keys (``+``/``-``, ``1``/``2``/``3``) do.
        ``"apply"`` (the demo): change the world here, never above
        ``level_cap``. ``"request"`` (a session): change nothing; a level key
        only emits a ``level_request`` event (``values["action"]`` is
        ``level_up`` or ``level_down``) for the session to route through its
        director, inside the patient's envelope; scene keys do nothing (the
        protocol sets each trial's scene).
    level_cap : callable, optional
        ``level_cap(scene) -> int``: the highest level the keys may reach in
        a scene (0: the keys cannot switch to it); default the ladder's top.
        The demo passes its envelope's (:func:`~vrbalance.director.envelope.level_cap`).

    Raises
    ------
    ConfigError
        Unknown output or scene, level out of range, unknown ``level_keys``.
    DisplayUnavailableError
        ``output="window"`` without a display.
    """

    def __init__(
        self,
        *,
        output: Output = "offscreen",
        size_px: tuple[int, int] = (1280, 720),
        scene: str = "park",
        level: int = 1,
        head_source: HeadPoseSource | None = None,
        state_source: LatestReader | None = None,
        overlay: bool = True,
        clock: Clock | None = None,
        title: str = "vrbalance",
        level_keys: Literal["apply", "request"] = "apply",
        level_cap: Callable[[str], int] | None = None,
    ) -> None:
        if output not in OUTPUTS:
            raise ConfigError(f"output: expected one of {', '.join(OUTPUTS)}, got {output!r}")
        if level_keys not in ("apply", "request"):
            raise ConfigError(f"level_keys: expected 'apply' or 'request', got {level_keys!r}")
        self.level_keys = level_keys
        self.level_cap = level_cap
        w, h = size_px
        if not (isinstance(w, int) and isinstance(h, int) and 16 <= w <= 8192 and 16 <= h <= 8192):
            raise ConfigError(f"size: expected two integers in [16, 8192], got {size_px!r}")
        self.output: Output = output
        self.size_px = (w, h)
        self.title = title
        self.clock: Clock = clock or MonotonicClock()
        self.head_source: HeadPoseSource = head_source or FixedHeadSource()
        # Without a real head, each scene's suggested gaze is used (stairs look down).
        self._default_head = head_source is None
        self.state_source = state_source
        self.want_overlay = overlay
        self.state = AppState.CREATED
        self.scene_def: SceneDef = load_scene(scene)
        self.level = self.scene_def.level(level).number
        if level_cap is not None and self.level > level_cap(self.scene_def.name):
            raise ConfigError(
                f"level {self.level} of {self.scene_def.name} is beyond the envelope "
                f"(the highest it allows is {level_cap(self.scene_def.name)})"
            )
        self.paused = False
        self.emergency_stopped = False
        self.calmed = False
        #: Status lines for the overlay (plate, loop health, safety verdict); any thread.
        self.status: dict[str, str] = {}
        #: The keys line at the overlay's foot (what the keys do in this app).
        from vrbalance.world.overlay import KEY_HELP

        self.key_help = KEY_HELP
        #: Base of support outline for the overlay inset, (n, 2) m in the core frame.
        self.bos_polygon_m: np.ndarray | None = None
        self.last_timing = FrameTiming(0.0, 0.0, 0.0)
        self.frame_count = 0
        self.t_s = 0.0
        self.base: Any = None
        self.render: Any = None
        self.scene_root: Any = None
        #: Parent of :attr:`scene_root`: the recentred view (identity until a recentre).
        self.view_root: Any = None
        #: The last recentre as (x_m, y_m, heading_deg) of the head in the stage frame.
        self.view_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
        #: Recentres applied so far.
        self.recenters = 0
        self._recenter_pending = False
        self.head_node: Any = None
        self.scene: Any = None
        self.overlay: Any = None
        self._listeners: list[Callable[[Event], None]] = []
        self._keys: deque[str] = deque(maxlen=64)
        self._requests: deque[tuple[str, Any]] = deque()
        self._lock = threading.Lock()
        self._fixed_dt_s: float | None = None
        self._safety_calm = False
        self._task_names: list[str] = ["world-frame"]
        self._prc_page: Any = None
        self._pending_scene: tuple[str, int] | None = (self.scene_def.name, self.level)

    # --- lifecycle ----------------------------------------------------------------
    def __enter__(self) -> WorldApp:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> WorldApp:
        """Create the ShowBase, the output, the camera, the overlay and the first scene."""
        if self.state is not AppState.CREATED:
            raise RuntimeError(f"WorldApp.open(): already {self.state.value}")
        import builtins

        if hasattr(builtins, "base"):  # only checked, never used (house rule 11)
            raise RuntimeError(
                "only one WorldApp can be open at a time in a process "
                "(Panda3D allows one ShowBase); close the other first"
            )
        if self.output == "window" and not _has_display():
            raise DisplayUnavailableError(
                "no display to open a window on (DISPLAY is not set); "
                "run with --offscreen to render without one"
            )
        if self.output == "xr" and not _has_display():
            raise DisplayUnavailableError(
                "no display for the headset's OpenGL window (DISPLAY is not set): an OpenXR "
                "runtime needs a GLX window context to share; start an X session (or Xvfb), "
                "or run without a headset with --desktop"
            )
        from direct.showbase.ShowBase import ShowBase
        from panda3d.core import loadPrcFileData

        w, h = self.size_px
        prc = [
            f"win-size {w} {h}",
            f"window-title {self.title}",
            "audio-library-name null",
            # Vsync only for the plain desktop window: offscreen has none, and with a
            # headset the runtime paces frames.
            "sync-video 1" if self.output == "window" else "sync-video 0",
            "textures-power-2 none",
            "notify-level-device fatal",  # no /dev/input on servers: not worth a warning
        ]
        onscreen = self.output in ("window", "xr")
        if self.output == "xr":
            prc += ["load-display pandagl"]  # GLX/WGL: a context the runtime can share
        elif not onscreen:
            prc += ["load-display p3headlessgl", "aux-display p3headlessgl"]
            # Finish each frame on the (software) GPU before the next: frame times
            # are then honest, and closing does not wait for a queue of frames.
            prc.append("gl-finish 1")
        prc += quiet_prc_lines()
        self._prc_page = loadPrcFileData("vrbalance-world", "\n".join(prc))
        window_type = "onscreen" if onscreen else "offscreen"
        try:
            self.base = ShowBase(windowType=window_type)
        except Exception as exc:  # ShowBase raises a bare Exception when no window opens
            self._unload_prc()
            if "window" in str(exc).lower():
                raise DisplayUnavailableError(
                    f"could not open a {window_type} window ({exc}); "
                    "run with --offscreen to render without a display"
                ) from exc
            raise
        base = self.base
        base.disableMouse()  # the head pose alone moves the camera
        base.setBackgroundColor(0.6, 0.75, 0.9, 1)
        self.render = base.render
        self.view_root = self.render.attachNewNode("view-root")
        self.scene_root = self.view_root.attachNewNode("scene-root")
        # The head node is ShowBase's camera rig: eye cameras (headset) go under it.
        self.head_node = base.camera
        self.head_node.setPos(0.0, 0.0, DEFAULT_EYE_M)
        lens = base.camLens
        lens.setNearFar(NEAR_M, FAR_M)
        lens.setFov(DESKTOP_FOV_DEG)
        lens.setAspectRatio(self.size_px[0] / self.size_px[1])
        if self.want_overlay:
            from vrbalance.world.overlay import Overlay

            self.overlay = Overlay(self)
        for key in KEY_ACTIONS:
            base.accept(key, self._on_key, [key])
        base.taskMgr.add(self._frame_task, "world-frame", sort=-10)
        self.state = AppState.OPEN
        # Build the first scene now, so screenshot()/step_frames() work at once.
        self._switch_scene(*self._pending_scene)  # type: ignore[misc]
        self._pending_scene = None
        log.info(
            "world open: %s %dx%d, scene %s level %d",
            self.output,
            w,
            h,
            self.scene_def.name,
            self.level,
        )
        return self

    def close(self) -> None:
        """Tear down scene, overlay and ShowBase (reverse order); idempotent."""
        if self.state is AppState.CLOSED:
            return
        if self.state is AppState.OPEN:
            if self.scene is not None:
                self.scene.destroy()
                self.scene = None
            if self.overlay is not None:
                self.overlay.destroy()
                self.overlay = None
            for name in self._task_names:
                self.base.taskMgr.remove(name)
            self.base.ignoreAll()
            self.base.destroy()
            self.base = None
        self._unload_prc()
        self.state = AppState.CLOSED
        log.info("world closed after %d frames", self.frame_count)

    def _unload_prc(self) -> None:
        if self._prc_page is not None:
            from panda3d.core import unloadPrcFile

            unloadPrcFile(self._prc_page)
            self._prc_page = None

    def _require_open(self) -> None:
        if self.state is not AppState.OPEN:
            raise RuntimeError(f"WorldApp is {self.state.value}, not open")

    # --- requests (any thread; applied at the start of the next frame) -----------------
    def set_scene(self, name: str, level: int = 1) -> None:
        """Switch to scene ``name`` at ``level`` on the next frame.

        Raises
        ------
        ConfigError
            Unknown scene or level out of range (checked now, in the caller's thread).
        """
        scene_def = load_scene(name)
        scene_def.level(level)
        with self._lock:
            self._requests.append(("scene", (scene_def.name, level)))

    def set_level(self, level: int) -> None:
        """Change the current scene's level live on the next frame (1-based).

        Raises
        ------
        ConfigError
            Level out of range for the current scene.
        """
        self.scene_def.level(level)
        with self._lock:
            self._requests.append(("level", level))

    def calm(self) -> None:
        """Freeze perturbations and level the horizon from the next frame (safety's hook)."""
        self.calmed = True
        with self._lock:
            self._requests.append(("calm", None))

    def resume(self) -> None:
        """Let perturbations ramp back in (after a pause or a safety calm)."""
        self.calmed = False
        with self._lock:
            self._requests.append(("resume", None))

    def acknowledge_stop(self) -> None:
        """Operator clears an emergency stop or pause; perturbations ramp back in next frame."""
        self.emergency_stopped = False
        self.paused = False
        self.resume()

    def recenter(self) -> None:
        """Recentre the view on the head from the next frame (any thread).

        At the next frame, after the camera is placed, the scene (``view_root``)
        is turned about the vertical and shifted over the floor so that the
        head's current position and heading become the scene's start: the
        camera is then at the scene's origin at its own height, facing the
        scene's forward (+y), with its own pitch and roll (the horizon and
        the floor's height are the patient's real ones). Only the picture
        moves. The head pose the balance loop, the safety monitor and the
        recording use is never touched: the walking corridor, the head-drop
        and margin checks stay in the stage frame, whatever the view shows.
        """
        with self._lock:
            self._requests.append(("recenter", None))

    def set_head_source(self, source: HeadPoseSource | None) -> None:
        """Drive the camera from ``source`` (``None``: the scene's still default view)."""
        self._default_head = source is None
        if source is None:
            pitch = float(getattr(self.scene, "default_gaze_pitch_deg", 0.0))
            source = FixedHeadSource(pitch_deg=pitch)
        self.head_source = source

    def add_task(self, fn: Callable[[Any], int], name: str, sort: int = 0) -> None:
        """Run ``fn(task)`` every frame until the app closes (Panda3D's task manager
        outlives a ShowBase, so tasks added here are removed by :meth:`close`)."""
        self._require_open()
        self.base.taskMgr.add(fn, name, sort=sort)
        self._task_names.append(name)

    def press(self, key: str) -> None:
        """Inject a key press (tests, offscreen demo) exactly as the keyboard would."""
        self._on_key(key)

    def add_listener(self, callback: Callable[[Event], None]) -> None:
        """Receive operator and world events (pause, emergency stop, level and scene changes)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[Event], None]) -> None:
        """Stop sending events to ``callback`` (no error if it was not registered)."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    # --- headset / extra views -----------------------------------------------------------
    def make_camera(self, output: Any, lens: Any = None, name: str = "eye") -> Any:
        """Create a camera under the head node drawing the 3-D scene into ``output``.

        Used by the headset module for its eye buffers. The camera renders
        :attr:`render` (the 3-D graph) only: the overlay is in ``render2d``, so
        it cannot reach an eye buffer.
        """
        self._require_open()
        cam = self.base.makeCamera(output, lens=lens, camName=name, scene=self.render)
        cam.reparentTo(self.head_node)
        return cam

    # --- offscreen driving ----------------------------------------------------------------
    def step_frames(self, n: int = 1, dt_s: float = DEFAULT_STEP_S) -> None:
        """Run ``n`` frames with a fixed animation step ``dt_s`` (offscreen/tests)."""
        self._require_open()
        self._fixed_dt_s = dt_s
        try:
            for _ in range(n):
                self.base.taskMgr.step()
        finally:
            self._fixed_dt_s = None

    def screenshot(self, path: str | Path) -> Path:
        """Render one frame and save the main output to ``path`` (PNG); returns the path.

        The PNG is encoded by Pillow, which releases the GIL while it compresses:
        Panda3D's own ``saveScreenshot`` holds it for ~0.4 s at 1280x720 on this
        CPU, long enough to starve the plate reader thread and trip the safety
        monitor's stale-plate check in the middle of a demo.
        """
        from PIL import Image

        self._require_open()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.step_frames(1)
        # The frame just rendered is in the back buffer; render once more so the
        # saved image is the one with this frame's state (Panda reads the last flip).
        self.base.graphicsEngine.renderFrame()
        try:
            Image.fromarray(self.image()).save(path, format="PNG")
        except OSError as exc:
            raise OSError(f"could not write screenshot {path}: {exc}") from exc
        return path

    def image(self) -> np.ndarray:
        """The last rendered frame as an (h, w, 3) uint8 RGB array, top row first."""
        self._require_open()
        tex = self.base.win.getScreenshot()
        if tex is None:
            raise OSError("could not read back the frame")
        h, w = tex.getYSize(), tex.getXSize()
        data = np.frombuffer(bytes(tex.getRamImageAs("RGB")), dtype=np.uint8)
        return data.reshape(h, w, 3)[::-1].copy()

    def run(self) -> None:
        """Run the Panda3D main loop until the window closes (desktop demo)."""
        self._require_open()
        self.base.run()

    # --- per frame ------------------------------------------------------------------------
    def _on_key(self, key: str) -> None:
        # Input callbacks only record; the frame task acts.
        self._keys.append(key)

    def _emit(self, kind: str, message: str, severity: str = "info", **values: object) -> None:
        event = Event(self.clock.now_s(), "operator", kind, message, severity, values)  # type: ignore[arg-type]
        log.info("operator event: %s (%s)", kind, message)
        for callback in list(self._listeners):
            callback(event)

    def _handle_keys(self) -> None:
        while self._keys:
            key = self._keys.popleft()
            action = KEY_ACTIONS.get(key)
            if action is None:
                continue
            if action == "pause":
                self.paused = not self.paused
                if self.paused:
                    self._calm_now()
                elif not self.emergency_stopped:
                    self._resume_now()
                self._emit(
                    "pause" if self.paused else "resume",
                    "paused by operator" if self.paused else "resumed by operator",
                )
            elif action == "acknowledge":
                if self.emergency_stopped or self.paused:
                    self.emergency_stopped = False
                    self.paused = False
                    self._resume_now()
                    self._emit("acknowledge", "operator cleared the stop (R)")
            elif action == "emergency_stop":
                self.emergency_stopped = True
                self._calm_now()
                self._emit("emergency_stop", "emergency stop (Esc) by operator", "alarm")
            elif action in ("level_up", "level_down") and self.level_keys == "request":
                # A session: its director decides, inside the patient's envelope.
                self._emit("level_request", f"operator key: {action}", action=action)
            elif action.startswith("scene:") and self.level_keys == "request":
                self.status["world"] = "scene keys are off in a session (the protocol sets it)"
            elif action in ("level_up", "level_down"):
                new = self.level + (1 if action == "level_up" else -1)
                top = self._key_top(self.scene_def.name)
                if new > top and action == "level_up":
                    self.status["world"] = f"level {new} is beyond the envelope (top {top})"
                elif 1 <= new <= top:
                    old = self.level
                    self._apply_level(new)
                    self._emit(
                        "level_change",
                        f"operator: level {old} -> {new}",
                        level_from=old,
                        level_to=new,
                    )
            elif action.startswith("scene:"):
                name = action.partition(":")[2]
                if name != self.scene_def.name:
                    try:
                        if self._key_top(name) < 1:
                            raise ConfigError(f"scene {name} is not allowed by the envelope")
                        self._switch_scene(name, 1)
                    except ConfigError as exc:
                        log.warning("cannot switch to scene %s: %s", name, exc)
                        self.status["world"] = f"scene {name} unavailable"
                        continue
                    self._emit("scene_change", f"operator: scene {name}", scene=name)

    def _key_top(self, scene: str) -> int:
        """The highest level the keys may reach in ``scene`` (ladder top, envelope cap)."""
        scene_def = self.scene_def if scene == self.scene_def.name else load_scene(scene)
        top = scene_def.n_levels
        if self.level_cap is not None:
            top = min(top, int(self.level_cap(scene)))
        return top

    def _handle_requests(self) -> None:
        with self._lock:
            requests = list(self._requests)
            self._requests.clear()
        for kind, arg in requests:
            if kind == "scene":
                self._switch_scene(*arg)
            elif kind == "level":
                self._apply_level(arg)
            elif kind == "calm":
                self._calm_now()
            elif kind == "resume" and not self.paused and not self.emergency_stopped:
                self._resume_now()
            elif kind == "recenter":
                self._recenter_pending = True  # after the camera is placed this frame

    def _apply_recenter(self) -> None:
        """Put the scene's start (origin, facing +y) under the camera as it is now."""
        from panda3d.core import Vec3

        pos = self.head_node.getPos(self.render)
        forward = self.render.getRelativeVector(self.head_node, Vec3(0.0, 1.0, 0.0))
        if math.hypot(forward.x, forward.y) > 1e-6:
            # Panda3D's heading turns +y towards -x (counter-clockwise seen from above).
            heading_deg = math.degrees(math.atan2(-forward.x, forward.y))
        else:  # looking straight up or down: the heading of the rotation itself
            heading_deg = float(self.head_node.getH(self.render))
        self.view_root.setPosHpr(pos.x, pos.y, 0.0, heading_deg, 0.0, 0.0)
        self.view_offset = (float(pos.x), float(pos.y), heading_deg)
        self.recenters += 1
        log.info(
            "view recentred on the head at x=%.3f m, y=%.3f m, heading %.1f deg (stage frame)",
            pos.x,
            pos.y,
            heading_deg,
        )

    def _follow_safety(self, latest: Any) -> None:
        """Calm the scene while the safety verdict says so; resume when it stops (if unpaused)."""
        verdict = getattr(latest, "verdict", None)
        wants_calm = bool(getattr(verdict, "calm", False))
        if wants_calm and not self._safety_calm:
            self._safety_calm = True
            log.info("safety verdict: calm")
            self._calm_now()
        elif not wants_calm and self._safety_calm:
            self._safety_calm = False
            if not (self.paused or self.emergency_stopped or self.calmed):
                self._resume_now()

    def _calm_now(self) -> None:
        if self.scene is not None:
            self.scene.calm()

    def _resume_now(self) -> None:
        self.calmed = False
        if self.scene is not None and not self._safety_calm:
            self.scene.resume()

    def _apply_level(self, level: int) -> None:
        self.scene_def.level(level)
        self.level = level
        if self.scene is not None:
            self.scene.apply_level(self.scene_def.level(level).values)

    def _switch_scene(self, name: str, level: int) -> None:
        from vrbalance.world.scene import SceneContext, scene_class

        scene_def = load_scene(name)
        scene_def.level(level)
        cls = scene_class(scene_def.builder)
        if self.scene is not None:
            self.scene.destroy()
            self.scene = None
        self.scene_def = scene_def
        self.level = level
        scene = cls()
        ctx = SceneContext(
            parent=self.scene_root,
            loader=self.base.loader,
            rng=np.random.default_rng(np.random.SeedSequence(scene_def.seed)),
            models_dir=data_dir("models"),
            scene_def=scene_def,
            anisotropy=self._anisotropy(),
        )
        start = time.perf_counter()
        scene.build(ctx)
        scene.apply_level(scene_def.level(level).values)
        self.scene = scene
        if self._default_head:
            pitch = float(getattr(cls, "default_gaze_pitch_deg", 0.0))
            self.head_source = FixedHeadSource(pitch_deg=pitch)
        if self.calmed or self.paused or self.emergency_stopped or self._safety_calm:
            scene.calm()
        log.info(
            "scene %s level %d built in %.0f ms", name, level, 1e3 * (time.perf_counter() - start)
        )

    def _anisotropy(self) -> int:
        """4 on a hardware GPU, 1 on a software rasteriser (see SceneContext.anisotropy)."""
        gsg = self.base.win.getGsg() if self.base is not None else None
        renderer = gsg.getDriverRenderer().lower() if gsg is not None else ""
        software = any(name in renderer for name in ("llvmpipe", "softpipe", "swrast"))
        return 1 if software or not renderer else 4

    def _place_head(self, pose: HeadPose | None) -> None:
        """Put the camera at ``pose`` (stage frame); without one it stays where it was."""
        from panda3d.core import Quat

        if pose is None:
            return
        x, y, z = pose.position_m
        qx, qy, qz, qw = pose.orientation_xyzw
        # Core frame == Panda3D frame (x right, y forward, z up): no conversion here.
        self.head_node.setPosQuat((x, y, z), Quat(qw, qx, qy, qz))

    def _frame_task(self, task: Any) -> int:
        from direct.task import Task

        start = time.perf_counter()
        dt_s = self._fixed_dt_s if self._fixed_dt_s is not None else self.base.clock.getDt()
        dt_s = min(max(dt_s, 0.0), 0.1)  # a stall must not fling animation forward
        self.t_s += dt_s
        self._handle_keys()
        self._handle_requests()
        self._place_head(self.head_source.pose_at(self.clock.now_s()))
        if self._recenter_pending:
            self._recenter_pending = False
            self._apply_recenter()
        # The scene animates around where the viewer is in it (the recentred view).
        head = self.head_node.getPos(self.view_root)
        head_xy = (float(head.x), float(head.y))
        # Follow the safety verdict before animating: the frame that picks up a
        # calm verdict must already be still (no last step of optic flow).
        latest = self.state_source.get() if self.state_source is not None else None
        self._follow_safety(latest)
        scene_start = time.perf_counter()
        if self.scene is not None:
            self.scene.update(self.t_s, dt_s, head_xy)
        overlay_start = time.perf_counter()
        if self.overlay is not None:
            self.overlay.update(latest)
        end = time.perf_counter()
        self.last_timing = FrameTiming(
            end - start, overlay_start - scene_start, end - overlay_start
        )
        self.frame_count += 1
        return Task.cont
