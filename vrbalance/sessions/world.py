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
"""

from __future__ import annotations

import logging
import math
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
    """

    def __init__(self, *, offscreen: bool) -> None:
        from vrbalance.world.app import WorldApp

        self._head = _LatestHead()
        self._state = _LatestState()
        self.app = WorldApp(
            output="offscreen" if offscreen else "window",
            size_px=OFFSCREEN_SIZE_PX if offscreen else WINDOW_SIZE_PX,
            head_source=self._head,
            state_source=self._state,
        ).open()
        self._calm = False
        self._sway_ref = False
        self._last_t_s: float | None = None
        self.frames = 0

    def connect(self, controls: Any) -> None:
        """Forward the overlay's operator keys to the session's command queue.

        Space (pause/resume) and Esc (emergency stop) in the world window become
        commands (:class:`~vrbalance.sessions.runner.Command`) for the balance loop; the
        runner records them as operator events.
        """
        from vrbalance.sessions.runner import Command

        mapping = {
            "pause": Command.PAUSE,
            "resume": Command.RESUME,
            "emergency_stop": Command.EMERGENCY_STOP,
        }

        def forward(event: Any) -> None:
            command = mapping.get(event.kind)
            if command is not None:
                controls.send(command)

        self.app.add_listener(forward)

    def begin_trial(self, trial: Trial, level: int) -> None:
        from vrbalance.config.scenes import available_scenes, load_scene

        self._sway_ref = trial.surround == "sway_referenced"
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
            self._head.pose = HeadPose(None, state.t_s, state.head_position_m)
        self._state.state = state
        if calm and not self._calm:
            app.calm()
        elif not calm and self._calm:
            app.resume()
        self._calm = calm
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

    def end_trial(self) -> None:
        self._last_t_s = None

    def screenshot(self, path: Any) -> Any:
        return self.app.screenshot(path)

    def close(self) -> None:
        self.app.close()


def open_world(*, offscreen: bool) -> SessionWorld:
    """Open the session's world (offscreen for CI, a window on a desktop)."""
    return SessionWorld(offscreen=offscreen)
