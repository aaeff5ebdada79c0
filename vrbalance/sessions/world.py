"""The session's view of the world: a small adapter over :class:`~vrbalance.world.app.WorldApp`.

The runner calls it from the main thread while the balance loop runs in its
own thread: :meth:`SessionWorld.begin_trial` sets scene, level and visual
condition; :meth:`SessionWorld.frame` draws one frame from the latest
balance state (the camera follows the recorded head position), calms or
resumes the scene as the safety verdict says, and, for sway-referenced trials
(SOT conditions 3 and 6), tilts the visual surround with the patient's
antero-posterior sway angle about the ankle axis, so vision reports no sway.

Eyes "closed" (mCTSIB, SOT 2 and 5) is a blank headset: the 3-D scene is
hidden and only an evenly lit background remains.

With ``xr=True`` the world renders to the OpenXR headset
(:class:`~vrbalance.xr.output.XrOutput`) and :attr:`SessionWorld.head_source`
is the headset's :class:`~vrbalance.xr.head_source.XrHeadPoseSource`, which the
runner gives the balance loop. The headset's focus becomes the runner's
pause/resume of the trial, a loss tells the runner (the trial stops with
``device_lost``), and every headset event goes into the recording through
:meth:`SessionWorld.set_event_sink`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from vrbalance.balance.state import BalanceState
from vrbalance.samples import HeadPose
from vrbalance.sessions.protocol import Trial

log = logging.getLogger(__name__)

#: Offscreen buffer size for sessions: small, so CI renders quickly on llvmpipe.
OFFSCREEN_SIZE_PX = (320, 180)
WINDOW_SIZE_PX = (1280, 720)
#: Even grey of the blank headset (eyes "closed").
BLANK_RGBA = (0.5, 0.5, 0.5, 1.0)


class _LatestHead:
    """Head poses for the world's camera: the latest state's head position."""

    def __init__(self) -> None:
        self.pose: HeadPose | None = None

    def pose_at(self, t_s: float) -> HeadPose | None:
        return self.pose


class _LatestState:
    def __init__(self) -> None:
        self.state: BalanceState | None = None

    def get(self) -> BalanceState | None:
        return self.state


class SessionWorld:
    """Drive a :class:`WorldApp` through a session (main thread only).

    Parameters
    ----------
    offscreen : bool
        Offscreen buffer (``p3headlessgl``) instead of a window.
    xr : bool
        Render to the OpenXR headset (needs a display; not with ``offscreen``).
    clock : Clock, optional
        The session clock (the headset's head pose is located on it).
    xr_options : dict, optional
        Extra :class:`~vrbalance.xr.output.XrOutput` arguments (``api``,
        ``graphics``: the fake runtime in tests).
    output : str, optional
        Override the world output (tests run the fake headset offscreen).
    size_px : (int, int), optional
        Frame size (default: :data:`OFFSCREEN_SIZE_PX` offscreen, else
        :data:`WINDOW_SIZE_PX`); a replay's frames are made large enough to read
        the overlay.
    desktop_head : bool
        The demo's desktop stand-in (:class:`~vrbalance.world.desktop_pose.
        DesktopPose`: W/A/S/D lean, right mouse button looks around) on top of
        each trial's head: :meth:`wrap_head` gives the balance loop the leaning
        head, and the camera follows it with its gaze. Never in a patient's
        session, whose head is measured, not played.
    """

    def __init__(
        self,
        *,
        offscreen: bool,
        xr: bool = False,
        clock: Any = None,
        xr_options: dict[str, Any] | None = None,
        output: str | None = None,
        size_px: tuple[int, int] | None = None,
        desktop_head: bool = False,
    ) -> None:
        from vrbalance.errors import ConfigError
        from vrbalance.world.app import WorldApp

        if xr and offscreen:
            raise ConfigError(
                "--xr cannot render --offscreen: an OpenXR runtime shares the OpenGL context of "
                "a desktop window (GLX on Linux); run --xr on a display (or under Xvfb)"
            )
        self._head = _LatestHead()
        self._state = _LatestState()
        #: The headset's head source for the balance loop (``None`` without a headset).
        self.head_source: Any = None
        self.xr: Any = None
        #: The headset's :class:`~vrbalance.xr.output.XrStats` once closed (for the summary).
        self.xr_stats: Any = None
        self._controls: Any = None
        self._event_sink: Callable[[Any], None] | None = None
        camera_head: Any = self._head
        self._desktop_head: Any = None
        if xr:
            from vrbalance.xr.head_source import XrHeadPoseSource

            self.head_source = camera_head = XrHeadPoseSource(clock)
        elif desktop_head:
            from vrbalance.world.desktop_pose import DesktopHead

            self._desktop_head = camera_head = DesktopHead(None, clock)
        self.app = WorldApp(
            output=output or ("xr" if xr else "offscreen" if offscreen else "window"),
            size_px=size_px or (OFFSCREEN_SIZE_PX if offscreen else WINDOW_SIZE_PX),
            head_source=camera_head,
            state_source=self._state,
            clock=clock,
            # The level keys go through the session's director (connect()); the
            # window never changes scene or level on its own during a session.
            level_keys="request",
        ).open()
        # In a session the level keys ask the director and the scene keys do nothing.
        self.app.key_help = "Space pause  Esc stop  +/- level (director)"
        if self._desktop_head is not None:
            from vrbalance.world.desktop_pose import DesktopPose

            DesktopPose(self.app, self._desktop_head)
            self.app.key_help += "  WASD lean  right mouse look"
        if xr:
            from vrbalance.xr.output import XrOutput

            try:
                self.xr = XrOutput(
                    self.app,
                    head_source=self.head_source,
                    clock=clock,
                    on_event=self._on_xr_event,
                    on_focus=self._on_xr_focus,
                    **(xr_options or {}),
                ).open()
            except BaseException:
                self.app.close()
                raise
        self._calm = False
        self._sway_ref = False
        self._trial: Trial | None = None
        self._trial_t0_s: float | None = None
        self._last_head_y: float | None = None
        self._heading_back = False
        self._last_t_s: float | None = None
        self.frames = 0

    # -- the headset ---------------------------------------------------------------------

    @property
    def paced(self) -> bool:
        """The headset paces the frames (``xrWaitFrame``): draw as often as it allows."""
        return self.xr is not None

    @property
    def headset_ready(self) -> Callable[[], bool] | None:
        """``None`` without a headset; else whether its session is focused (any thread)."""
        if self.xr is None:
            return None
        xr_out = self.xr

        def ready() -> bool:
            session = xr_out.session
            return session is not None and session.focused and not session.lost

        return ready

    def wrap_head(self, head: Any) -> Any:
        """The balance loop's head for a trial: ``head`` leaning as the desktop keys say.

        Without the desktop stand-in, ``head`` itself.
        """
        if self._desktop_head is None or head is None:
            return head
        self._desktop_head.base_source = head
        return self._desktop_head

    def set_event_sink(self, sink: Callable[[Any], None] | None) -> None:
        """Where headset events go (the runner's recorder); events so far are replayed."""
        self._event_sink = sink
        if sink is not None and self.xr is not None:
            for event in list(self.xr.events):
                sink(event)

    def _on_xr_event(self, event: Any) -> None:
        if self._event_sink is not None:
            self._event_sink(event)
        if event.kind == "loss_pending" and self._controls is not None:
            from vrbalance.sessions.runner import Command

            self._controls.send(Command.HEADSET_LOST)

    def _on_xr_focus(self, focused: bool) -> None:
        if self._controls is None:
            return
        from vrbalance.sessions.runner import Command

        self._controls.send(Command.HEADSET_FOCUSED if focused else Command.HEADSET_UNFOCUSED)

    def connect(self, controls: Any) -> None:
        """Forward the overlay's operator keys to the session's command queue.

        Space (pause/resume) and Esc (emergency stop) in the world window become
        commands (:class:`~vrbalance.sessions.runner.Command`) for the balance loop; the
        runner records them as operator events. ``+``/``-`` become ``LEVEL_UP`` and
        ``LEVEL_DOWN``, which the runner hands to its director (inside the patient's
        envelope, recorded with the operator as the reason) or, in a trial whose
        level the protocol fixes, refuses with a recorded warning. The scene keys
        do nothing in a session.
        """
        from vrbalance.sessions.runner import Command

        self._controls = controls
        mapping = {
            "pause": Command.PAUSE,
            "resume": Command.RESUME,
            "emergency_stop": Command.EMERGENCY_STOP,
        }

        def forward(event: Any) -> None:
            if event.kind == "level_request":
                controls.send(
                    Command.LEVEL_UP if event.values["action"] == "level_up" else Command.LEVEL_DOWN
                )
                return
            command = mapping.get(event.kind)
            if command is not None:
                controls.send(command)

        self.app.add_listener(forward)
        self._stop_on_close(controls)

    def _stop_on_close(self, controls: Any) -> None:
        """Closing the window stops the session (recorded, filed) instead of exiting Python.

        Panda3D's default for a closed window is ``sys.exit()`` from inside a
        frame, which would end the session as a failure; a close-request
        event keeps the window open until the runner has ended the trial and
        closes the world itself (Panda3D's ``GraphicsWindow.setCloseRequestEvent``).
        """
        from vrbalance.sessions.runner import Command

        win = getattr(self.app.base, "win", None)
        if win is None or not hasattr(win, "setCloseRequestEvent"):
            return  # offscreen: nothing to close
        event = "vrbalance-window-close"
        win.setCloseRequestEvent(event)
        self.app.base.accept(event, lambda: controls.send(Command.STOP))

    def begin_trial(self, trial: Trial, level: int) -> None:
        from vrbalance.config.scenes import available_scenes, load_scene

        self._sway_ref = trial.surround == "sway_referenced"
        self._trial = trial
        self._trial_t0_s = None
        app = self.app
        if trial.eyes == "closed" or trial.scene == "blank":
            app.render.hide()  # blank headset: no visual cue at all
            app.base.setBackgroundColor(*BLANK_RGBA)
        else:
            app.render.show()
            app.base.setBackgroundColor(0.6, 0.75, 0.9, 1)
            name = trial.scene if trial.scene in available_scenes() else "park"
            if name != trial.scene:
                log.warning("scene %s not available: showing %s", trial.scene, name)
            top = load_scene(name).n_levels
            app.set_scene(name, max(1, min(level, top)))
        if self._calm or app.paused or app.emergency_stopped:
            app.acknowledge_stop()  # a new trial starts with the world running
            self._calm = False

    def frame(self, state: BalanceState | None, calm: bool, surround_pitch_rad: float) -> None:
        app = self.app
        if state is not None and state.head_position_m is not None:
            self._head.pose = HeadPose(
                None, state.t_s, state.head_position_m, self._gaze(state.head_position_m)
            )
        self._state.state = state
        if calm and not self._calm:
            app.calm()
        elif not calm and self._calm:
            app.resume()
        self._calm = calm
        # Exercise scenes (signpost, fade, coach) keep in step with the trial's clock.
        follow = getattr(app.scene, "follow_trial", None)
        if callable(follow) and state is not None and self._trial is not None:
            if self._trial_t0_s is None:
                self._trial_t0_s = state.t_s
            follow(self._trial, state.t_s - self._trial_t0_s)
        if app.scene_root is not None:
            # Sway reference: the surround rotates with the body about the ankles
            # (forward sway tilts its top forward: a negative Panda3D pitch).
            app.scene_root.setP(-math.degrees(surround_pitch_rad) if self._sway_ref else 0.0)
        dt = 1.0 / 15.0
        if state is not None and self._last_t_s is not None:
            dt = min(max(state.t_s - self._last_t_s, 0.0), 0.1)
        self._last_t_s = state.t_s if state is not None else self._last_t_s
        app.step_frames(1, dt)
        self.frames += 1

    def set_level(self, level: int) -> None:
        """Show ``level`` of the current scene from the next frame (the console's level keys)."""
        if self.app.scene_root is not None:
            self.app.set_level(level)

    def recenter(self) -> None:
        """Recentre the view on the patient's head from the next frame (the console's Recenter).

        The scene is turned and shifted so the head's current position and
        heading become its forward-facing start
        (:meth:`~vrbalance.world.app.WorldApp.recenter`). The view only: the
        head pose the balance loop and the safety monitor measure, and the
        corridor, head-drop and margin checks made on it, stay in the stage
        frame.
        """
        self.app.recenter()

    def _gaze(self, position_m: tuple[float, float, float]) -> tuple[float, float, float, float]:
        """The desktop camera's orientation (quaternion x, y, z, w) for an exercise scene.

        The recorded state holds the head's position only. A walking scene asks
        the camera to look down at the line (``session_gaze_pitch_deg``) and to
        face the way the head moves along it (out along +y, back along -y), as a
        walker does; other scenes look straight ahead. A headset's own
        orientation is never replaced (its head source drives the camera).
        """
        scene = self.app.scene
        pitch = math.radians(getattr(scene, "session_gaze_pitch_deg", 0.0))
        if getattr(scene, "session_faces_walking", False) and self._last_head_y is not None:
            dy = position_m[1] - self._last_head_y
            if abs(dy) > 1e-3:
                self._heading_back = dy < 0
        self._last_head_y = position_m[1]
        s, c = math.sin(pitch / 2), math.cos(pitch / 2)
        # Yaw 180 deg about z, then pitch about x: (0, s, c, 0); pitch alone: (s, 0, 0, c).
        return (0.0, s, c, 0.0) if self._heading_back else (s, 0.0, 0.0, c)

    def end_trial(self) -> None:
        if self._desktop_head is not None:
            self._desktop_head.base_source = None  # the trial's head closes with its devices
        self._last_t_s = None
        self._last_head_y = None
        self._heading_back = False

    def screenshot(self, path: Any) -> Any:
        return self.app.screenshot(path)

    def close(self) -> None:
        xr_out, self.xr = self.xr, None
        if xr_out is not None:
            xr_out.close()
            self.xr_stats = xr_out.stats()
        self.app.close()


def open_world(
    *,
    offscreen: bool,
    xr: bool = False,
    clock: Any = None,
    own_process: bool = False,
    **options: Any,
) -> Any:
    """Open the session's world (offscreen for CI, a window on a desktop, or the headset).

    With ``own_process`` (offscreen or window, not the headset) the world is
    drawn in a render process (:class:`~vrbalance.sessions.render_process.
    RenderProcess`), away from the balance loop's GIL; the headset stays in
    this process, where the loop locates its head pose at the loop's rate.
    """
    if own_process and not xr and set(options) <= {"size_px"}:
        from vrbalance.sessions.render_process import RenderProcess

        return RenderProcess(offscreen=offscreen, size_px=options.get("size_px"))
    return SessionWorld(offscreen=offscreen, xr=xr, clock=clock, **options)
