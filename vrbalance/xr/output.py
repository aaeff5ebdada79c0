"""The headset as an output of the world: the one entry point the commands use.

:class:`XrOutput` joins an :class:`~vrbalance.xr.session.XrSession` to a
:class:`~vrbalance.world.app.WorldApp` (or any object with ``base`` and
``render``): it creates the eye buffers and the desktop mirror
(:class:`~vrbalance.xr.render.StereoRig`), binds the head-pose source, and adds
two tasks to the ShowBase task manager around Panda3D's own render task
(``igLoop``, sort 50):

``xr-begin-frame`` (sort 45)
    poll runtime events, ``xrWaitFrame`` + ``xrBeginFrame``, locate the eyes at
    the predicted display time and place the eye cameras.
``xr-end-frame`` (sort 55)
    after Panda3D drew the eyes: copy them into the acquired swapchain images
    and ``xrEndFrame`` with one projection layer (or none when the runtime
    does not want the frame rendered).

So the world keeps its single frame task and its own main loop; the runtime's
``xrWaitFrame`` paces it. Wiring (see ``docs/xr.md``)::

    head = XrHeadPoseSource(clock)
    with WorldApp(output="window", head_source=head, ...) as world, \\
            XrOutput(world, head_source=head, on_event=recorder.add) as xr_out:
        world.run()          # returns when the runtime ends the session

The balance loop gets ``head`` too and calls ``head.pose_at(t_s)`` at its rate.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vrbalance.clock import Clock, MonotonicClock
from vrbalance.events import Event
from vrbalance.xr.frames import IDENTITY_ALIGNMENT, StageAlignment
from vrbalance.xr.head_source import XrHeadPoseSource
from vrbalance.xr.render import Mirror, StereoRig
from vrbalance.xr.session import (
    DEFAULT_SETTINGS,
    GL_SRGB8_ALPHA8,
    FramePlan,
    GraphicsBinding,
    XrSession,
    XrSettings,
)

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

BEGIN_TASK = "xr-begin-frame"
END_TASK = "xr-end-frame"
#: Around Panda3D's ``igLoop`` (sort 50), after the world's frame task (sort -10).
BEGIN_TASK_SORT = 45
END_TASK_SORT = 55


@dataclass(frozen=True, slots=True)
class XrStats:
    """What an :class:`XrOutput` did (for the operator and the closing report).

    Attributes
    ----------
    frames_begun, frames_submitted, frames_rendered : int
        ``xrBeginFrame`` calls, ``xrEndFrame`` calls, and ends with a layer.
    states_seen : tuple of str
        Session states in the order the runtime reported them.
    head_poses : int
        Poses the head source located.
    python_s_per_frame : float
        Mean wall time in the two XR tasks per begun frame, excluding the wait
        for the runtime's frame timing (``xrWaitFrame``) and the GPU copies.
    """

    frames_begun: int
    frames_submitted: int
    frames_rendered: int
    states_seen: tuple[str, ...]
    head_poses: int
    python_s_per_frame: float

    def summary(self, run_s: float) -> str:
        """One line for the operator at the end of a session of ``run_s`` seconds."""
        run_s = max(run_s, 1e-9)
        return (
            f"headset: states {' -> '.join(self.states_seen)}; frames begun / submitted / "
            f"with layer {self.frames_begun} / {self.frames_submitted} / "
            f"{self.frames_rendered}; head poses located {self.head_poses} "
            f"({self.head_poses / run_s:.0f}/s over {run_s:.1f} s); XR Python per frame "
            f"{1e3 * self.python_s_per_frame:.2f} ms"
        )


class XrOutput:
    """Render a world to an OpenXR headset and track the head (see module docstring).

    Parameters
    ----------
    world : WorldApp or object
        Open world with ``base`` (ShowBase) and ``render`` (3-D root); its
        ``make_camera(output, lens, name)`` is used for the eye cameras when present.
    head_source : XrHeadPoseSource, optional
        Bound to the session on open; a new one on ``clock`` otherwise.
    api : module, optional
        pyopenxr (default) or a fake.
    graphics : GraphicsBinding, optional
        Default: the OpenGL context current after Panda3D rendered a frame.
    settings : XrSettings
        Clip planes and preferences.
    mirror : {"left", "both", "none"}
        Desktop mirror.
    alignment : StageAlignment
        The plate's place in the tracking space.
    clock : Clock, optional
        Event time base (the balance loop's clock).
    on_event : callable, optional
        Receives every headset event.
    on_focus : callable, optional
        ``on_focus(True/False)`` when the patient gains/loses the scene. Default:
        ``world.calm()`` on loss and nothing on regain (a safety calm may have
        happened meanwhile; the operator resumes). A session runner should pass
        its own pause/resume of the trial.
    on_exit : callable, optional
        Called once when the runtime ends the session; default: stop the
        ShowBase task manager so ``world.run()`` returns.
    """

    def __init__(
        self,
        world: Any,
        *,
        head_source: XrHeadPoseSource | None = None,
        api: Any = None,
        graphics: GraphicsBinding | None = None,
        settings: XrSettings = DEFAULT_SETTINGS,
        mirror: Mirror = "left",
        alignment: StageAlignment = IDENTITY_ALIGNMENT,
        clock: Clock | None = None,
        on_event: Callable[[Event], None] | None = None,
        on_focus: Callable[[bool], None] | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.world = world
        self.clock: Clock = clock or getattr(world, "clock", None) or MonotonicClock()
        self.head_source = head_source or XrHeadPoseSource(self.clock, alignment=alignment)
        self.api = api
        self.graphics = graphics
        self.settings = settings
        self.mirror = mirror
        self.alignment = alignment
        self._on_event = on_event
        self._on_focus = on_focus
        self._on_exit = on_exit
        self.session: XrSession | None = None
        self.rig: StereoRig | None = None
        self.copier: Any = None
        self.events: list[Event] = []
        self._stack = contextlib.ExitStack()
        self._plan: FramePlan | None = None
        self._exit_reported = False
        self._task_s = 0.0
        self._excluded_s = 0.0
        self._copy_s = 0.0

    # -- life cycle -----------------------------------------------------------------------

    def __enter__(self) -> XrOutput:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> XrOutput:
        """Create the session (Panda3D's context current), the eye rig and the tasks."""
        base = self.world.base
        try:
            # A first frame creates Panda3D's GSG and leaves its context current.
            base.graphicsEngine.render_frame()
            graphics = self.graphics
            if graphics is None:
                from vrbalance.xr.gl import CurrentContextBinding

                graphics = CurrentContextBinding()
            self.session = XrSession(
                graphics,
                api=self.api,
                settings=self.settings,
                clock=self.clock,
                on_event=self._event,
                on_focus=self._focus,
            )
            self._stack.enter_context(self.session)
            self.rig = StereoRig(
                base,
                self.world.render,
                self.session.view_sizes,
                near_m=self.settings.near_m,
                far_m=self.settings.far_m,
                mirror=self.mirror,
                alignment=self.alignment,
                make_camera=getattr(self.world, "make_camera", None),
            )
            self._stack.callback(self.rig.destroy)
            self.rig.set_active(False)  # until the runtime asks for frames
            self._make_copier()
            self.head_source.alignment = self.alignment
            self.head_source.bind(self.session)
            self._stack.callback(self.head_source.bind, None)
            base.taskMgr.add(self._begin_task, BEGIN_TASK, sort=BEGIN_TASK_SORT)
            base.taskMgr.add(self._end_task, END_TASK, sort=END_TASK_SORT)
            self._stack.callback(self._remove_tasks)
        except BaseException:
            self._stack.close()
            raise
        log.info(
            "headset ready: runtime %r, %s space, eyes %s",
            self.session.runtime_name,
            self.session.space_type,
            self.session.view_sizes,
        )
        return self

    def _make_copier(self) -> None:
        from vrbalance.xr.gl import TextureCopier

        compatible = self.session is not None and self.session.swapchain_format == GL_SRGB8_ALPHA8
        try:
            self.copier = TextureCopier(compatible=compatible)
        except ImportError as exc:  # PyOpenGL comes with pyopenxr; a fake may run without it
            log.warning("no PyOpenGL (%s): eye images will not be copied", exc)
            self.copier = None
        if self.copier is not None:
            self._stack.callback(self.copier.release)

    def _remove_tasks(self) -> None:
        base = getattr(self.world, "base", None)
        if base is not None:
            base.taskMgr.remove(BEGIN_TASK)
            base.taskMgr.remove(END_TASK)

    def close(self) -> None:
        """End the session cleanly and remove everything, in reverse order. Idempotent."""
        if self._plan is not None and self.session is not None:
            # A frame was begun but Panda3D never drew it: end it empty.
            self.session.end_frame(self._plan, None)
            self._plan = None
        self._stack.close()

    def request_exit(self) -> None:
        """Ask the runtime to end the session (the operator closes the headset view)."""
        if self.session is not None:
            self.session.request_exit()

    def resume(self) -> None:
        """After the runtime was lost: recreate the session (raises if still unavailable)."""
        if self.session is None:
            return
        self._plan = None
        self.session.recreate()
        self._exit_reported = False
        self.head_source.bind(self.session)

    # -- events ---------------------------------------------------------------------------

    def _event(self, event: Event) -> None:
        self.events.append(event)
        if self._on_event is not None:
            self._on_event(event)

    def _focus(self, focused: bool) -> None:
        if self._on_focus is not None:
            self._on_focus(focused)
            return
        # Default: calm the world when the patient loses the scene. Regaining focus
        # does NOT resume it on its own: a calm may since have come from the safety
        # monitor, and only the operator (or a session runner that knows) may lift it.
        if not focused:
            hook = getattr(self.world, "calm", None)
            if callable(hook):
                hook()

    # -- frame tasks ----------------------------------------------------------------------

    def _begin_task(self, task: Any) -> int:
        from direct.task import Task

        session, rig = self.session, self.rig
        if session is None or rig is None:
            return Task.done
        start = time.perf_counter()
        plan = session.begin_frame()
        waited = getattr(session, "last_wait_s", 0.0)
        if plan is not None and plan.renders:
            rig.apply_views(plan.views)
            rig.set_active(True)
        else:
            rig.set_active(False)
        self._plan = plan
        self._task_s += time.perf_counter() - start
        self._excluded_s += waited
        if session.exiting:
            self._report_exit()
        return Task.cont

    def _end_task(self, task: Any) -> int:
        from direct.task import Task

        session, plan = self.session, self._plan
        if session is None:
            return Task.done
        if plan is None:
            return Task.cont
        start = time.perf_counter()
        self._copy_s = 0.0
        session.end_frame(plan, self._copy_eye if plan.renders else None)
        self._plan = None
        self._task_s += time.perf_counter() - start
        self._excluded_s += self._copy_s
        return Task.cont

    def _copy_eye(self, index: int, gl_texture: int) -> None:
        if self.copier is None or self.rig is None:
            return
        start = time.perf_counter()
        width, height = self.rig.sizes[index]
        self.copier.copy(self.rig.texture_id(index), gl_texture, width, height)
        self._copy_s += time.perf_counter() - start

    def _report_exit(self) -> None:
        session = self.session
        if self._exit_reported or session is None or not session.exiting:
            return
        self._exit_reported = True
        if self._on_exit is not None:
            self._on_exit()
        else:
            self.world.base.taskMgr.stop()

    # -- figures --------------------------------------------------------------------------

    def stats(self) -> XrStats:
        """Counters so far (see :class:`XrStats`)."""
        s = self.session
        begun = s.frames_begun if s else 0
        return XrStats(
            frames_begun=begun,
            frames_submitted=s.frames_submitted if s else 0,
            frames_rendered=s.frames_rendered if s else 0,
            states_seen=tuple(st.name for st in s.states_seen) if s else (),
            head_poses=self.head_source.poses_located,
            python_s_per_frame=(self._task_s - self._excluded_s) / begun if begun else 0.0,
        )


__all__ = ["BEGIN_TASK", "END_TASK", "XrOutput", "XrStats"]
