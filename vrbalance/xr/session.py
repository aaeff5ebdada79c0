"""The OpenXR session: instance, headset, session, spaces, swapchains and frames.

This is the thin layer vrbalance owns on top of pyopenxr (see ``docs/xr.md``
for why not ``panda3d-openxr``). It knows nothing about Panda3D: it hands out
a :class:`FramePlan` (predicted display time, whether to render, each eye's
pose and field of view) and, at the end of the frame, asks a callback to fill
each eye's swapchain texture. :mod:`vrbalance.xr.output` joins it to Panda3D.

Life cycle (OpenXR 1.0 spec, "Session Lifecycle"): the runtime drives the
session through IDLE -> READY -> SYNCHRONIZED -> VISIBLE -> FOCUSED and back
through STOPPING -> IDLE, with LOSS_PENDING and EXITING as ways out. Every
transition is handled in one method, :meth:`XrSession._on_state_changed`:

* READY: ``xrBeginSession``; the frame loop starts (wait/begin/end every frame).
* SYNCHRONIZED / VISIBLE / FOCUSED: frames continue; the runtime says per frame
  (``XrFrameState.shouldRender``) whether to render; only FOCUSED means the
  patient sees the scene and has input, so anything else pauses the scenario.
* STOPPING: ``xrEndSession``; frames stop.
* LOSS_PENDING (or ``XR_SESSION_LOSS_PENDING``/``XR_ERROR_SESSION_LOST`` from
  any call): frames stop, the operator is alerted; :meth:`XrSession.recreate`
  builds a new session when the operator asks to resume.
* EXITING: frames stop; the application should close the session.

Resources are context managers entered on one :class:`contextlib.ExitStack`
(instance, then session, spaces and swapchains), so teardown runs in reverse
order, failures included; :meth:`XrSession.close` is idempotent.

Every pyopenxr call goes through ``api`` (default: the ``xr`` module), so the
tests drive this class with a fake runtime that enforces the specification's
call order.

Thread safety: ``xrLocateSpace`` has no externally synchronized parameters
(OpenXR spec, "Threading Behavior"), so the balance loop may locate the head
from its own thread while the render thread runs frames. What must not happen
is a space being destroyed *during* such a call (``xrDestroySpace``'s ``space``
is externally synchronized): :meth:`locate_head` and teardown share
``_space_lock`` for that. The OpenGL context is only used on the render thread
(``XR_KHR_opengl_enable``: the runtime may use it only inside session,
swapchain and frame-end calls made on the thread where it is current).
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from vrbalance.clock import Clock, MonotonicClock
from vrbalance.events import Event, Severity
from vrbalance.xr.errors import (
    XrError,
    XrFeatureMissing,
    XrHeadsetUnavailable,
    XrRuntimeUnavailable,
)
from vrbalance.xr.frames import QuatXYZW, Vec3
from vrbalance.xr.projection import Fov

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: OpenGL internal formats (``glTexStorage`` values) the swapchain may use, best first.
#: sRGB so that the compositor decodes what Panda3D wrote as display-ready values.
GL_SRGB8_ALPHA8 = 0x8C43
GL_SRGB8 = 0x8C41
SRGB_FORMATS: tuple[int, ...] = (GL_SRGB8_ALPHA8, GL_SRGB8)
_FORMAT_NAMES = {
    GL_SRGB8_ALPHA8: "GL_SRGB8_ALPHA8",
    GL_SRGB8: "GL_SRGB8",
    0x8058: "GL_RGBA8",
    0x8051: "GL_RGB8",
    0x881A: "GL_RGBA16F",
    0x8059: "GL_RGB10_A2",
    0x8C3A: "GL_R11F_G11F_B10F",
    0x81A5: "GL_DEPTH_COMPONENT16",
    0x81A6: "GL_DEPTH_COMPONENT24",
    0x8CAC: "GL_DEPTH_COMPONENT32F",
    0x88F0: "GL_DEPTH24_STENCIL8",
}

OPENGL_EXTENSION = "XR_KHR_opengl_enable"
TIMESPEC_EXTENSION = "XR_KHR_convert_timespec_time"
WIN32_TIME_EXTENSION = "XR_KHR_win32_convert_performance_counter_time"

#: How many empty frames :meth:`XrSession.close` submits while waiting for the
#: runtime to walk the session to EXITING after ``xrRequestExitSession``.
CLOSE_FRAME_LIMIT = 120


class XrSessionState(enum.Enum):
    """``XrSessionState`` (values as in the specification)."""

    UNKNOWN = 0
    IDLE = 1
    READY = 2
    SYNCHRONIZED = 3
    VISIBLE = 4
    FOCUSED = 5
    STOPPING = 6
    LOSS_PENDING = 7
    EXITING = 8


#: States in which the session is running: frames must be waited, begun and ended.
RUNNING_STATES = frozenset(
    {
        XrSessionState.READY,
        XrSessionState.SYNCHRONIZED,
        XrSessionState.VISIBLE,
        XrSessionState.FOCUSED,
    }
)


def format_name(gl_format: int) -> str:
    """A readable name for a GL internal format number (hex when unknown)."""
    return _FORMAT_NAMES.get(int(gl_format), f"0x{int(gl_format):04X}")


@dataclass(frozen=True, slots=True)
class XrSettings:
    """How the session is set up.

    Attributes
    ----------
    app_name : str
        Application name reported to the runtime.
    near_m, far_m : float
        Clip planes of the eye cameras, metres.
    prefer_stage : bool
        Use the STAGE space (floor-level origin) when offered; LOCAL otherwise.
    swapchain_formats : tuple of int
        GL internal formats acceptable for the eye swapchains, best first.
    close_frame_limit : int
        Empty frames to submit on close while the runtime winds the session down.
    """

    app_name: str = "vrbalance"
    near_m: float = 0.05
    far_m: float = 200.0
    prefer_stage: bool = True
    swapchain_formats: tuple[int, ...] = SRGB_FORMATS
    close_frame_limit: int = CLOSE_FRAME_LIMIT

    def __post_init__(self) -> None:
        if not 0.0 < self.near_m < self.far_m:
            raise ValueError(
                f"XrSettings: expected 0 < near_m < far_m, got {self.near_m!r}, {self.far_m!r}"
            )
        if not self.swapchain_formats:
            raise ValueError("XrSettings.swapchain_formats must name at least one format")


#: The defaults (frozen, so one shared instance is safe).
DEFAULT_SETTINGS = XrSettings()


@dataclass(frozen=True, slots=True)
class EyeView:
    """One eye for one frame, as the runtime located it.

    Attributes
    ----------
    index : int
        View index (0 left, 1 right for PRIMARY_STEREO).
    position_xr : tuple of 3 float
        Eye position in the app (STAGE or LOCAL) space, OpenXR axes, metres.
    orientation_xr : tuple of 4 float
        Eye orientation ``(x, y, z, w)``, OpenXR axes.
    fov : Fov
        The eye's asymmetric field of view.
    """

    index: int
    position_xr: Vec3
    orientation_xr: QuatXYZW
    fov: Fov


@dataclass(frozen=True, slots=True)
class FramePlan:
    """What one ``xrWaitFrame``/``xrBeginFrame`` gave.

    Attributes
    ----------
    predicted_display_time_ns : int
        ``XrTime`` at which the frame will be shown (runtime clock, ns).
    predicted_display_period_ns : int
        Frame period the runtime predicts, ns.
    should_render : bool
        The runtime wants the layers rendered (VISIBLE/FOCUSED).
    views : tuple of EyeView
        The eyes located for the predicted display time; empty when the frame
        is not rendered or the runtime had no valid pose.
    """

    predicted_display_time_ns: int
    predicted_display_period_ns: int
    should_render: bool
    views: tuple[EyeView, ...]

    @property
    def renders(self) -> bool:
        """Whether layers will be submitted for this frame."""
        return self.should_render and bool(self.views)


@dataclass(frozen=True, slots=True)
class LocatedPose:
    """A space located in the app space (OpenXR axes); see :meth:`XrSession.locate_head`."""

    xr_time_ns: int
    position_xr: Vec3
    orientation_xr: QuatXYZW
    position_tracked: bool
    orientation_tracked: bool


class GraphicsBinding(Protocol):
    """Gives the session the application's OpenGL context (see :mod:`vrbalance.xr.gl`)."""

    def session_binding(self, api: Any) -> ctypes.Structure | None:
        """The ``XrGraphicsBindingOpenGL*KHR`` for the context current now (or None: headless)."""
        ...


#: Receives every event the layer raises (state changes, pauses, losses).
EventSink = Callable[[Event], None]
#: Fills swapchain texture ``gl_texture`` (an OpenGL name) for eye ``index``.
EyeCopy = Callable[[int, int], None]


def _pose_tuple(pose: Any) -> tuple[Vec3, QuatXYZW]:
    p, q = pose.position, pose.orientation
    return (float(p.x), float(p.y), float(p.z)), (
        float(q.x),
        float(q.y),
        float(q.z),
        float(q.w),
    )


class XrSession:
    """One OpenXR instance + session for a head-mounted display, rendered with OpenGL.

    Parameters
    ----------
    graphics : GraphicsBinding
        Supplies the graphics binding; its OpenGL context must be current on
        the calling thread for :meth:`open`, frames and :meth:`close`.
    api : module, optional
        The pyopenxr module (default ``xr``) or a fake with the same functions.
    settings : XrSettings
        Clip planes, space and format preferences.
    clock : Clock
        Time base of emitted events (the balance loop's clock).
    on_event : callable, optional
        Receives every :class:`~vrbalance.events.Event` (source ``"xr"``).
    on_focus : callable, optional
        Called with ``True``/``False`` whenever the patient gains/loses the
        scene (FOCUSED or not): the scenario must pause when ``False``.
    """

    def __init__(
        self,
        graphics: GraphicsBinding,
        *,
        api: ModuleType | Any | None = None,
        settings: XrSettings = DEFAULT_SETTINGS,
        clock: Clock | None = None,
        on_event: EventSink | None = None,
        on_focus: Callable[[bool], None] | None = None,
    ) -> None:
        if api is None:
            import xr as api  # heavy: only when a headset is used
        self.api = api
        self.graphics = graphics
        self.settings = settings
        self.clock = clock if clock is not None else MonotonicClock()
        self._on_event = on_event
        self._on_focus = on_focus
        self._instance_stack = contextlib.ExitStack()
        self._session_stack = contextlib.ExitStack()
        self._space_lock = threading.Lock()
        self.instance: Any = None
        self.system_id: Any = None
        self.session: Any = None
        self.app_space: Any = None
        self.view_space: Any = None
        self.space_type: str | None = None
        self.runtime_name = ""
        self.enabled_extensions: tuple[str, ...] = ()
        self.swapchain_format: int | None = None
        self.view_sizes: tuple[tuple[int, int], ...] = ()
        self._swapchains: list[Any] = []
        self._swapchain_images: list[Sequence[Any]] = []
        self._state = XrSessionState.UNKNOWN
        self._running = False
        self._focused = False
        self._exiting = False
        self._lost = False
        self._instance_lost = False
        self._closed = False
        self._last_display_time_ns = 0
        self.frames_begun = 0
        #: Seconds the last ``xrWaitFrame`` blocked (runtime frame pacing), for timing.
        self.last_wait_s = 0.0
        self.frames_submitted = 0
        self.frames_rendered = 0
        self.states_seen: list[XrSessionState] = []

    # -- properties ----------------------------------------------------------------------

    @property
    def state(self) -> XrSessionState:
        """The last session state the runtime reported."""
        return self._state

    @property
    def running(self) -> bool:
        """Between ``xrBeginSession`` and ``xrEndSession``: frames must be run."""
        return self._running

    @property
    def focused(self) -> bool:
        """The patient sees the scene and the app has input (scenario may run)."""
        return self._focused

    @property
    def lost(self) -> bool:
        """The runtime lost the session; :meth:`recreate` to resume."""
        return self._lost

    @property
    def exiting(self) -> bool:
        """The runtime asked the application to end (EXITING)."""
        return self._exiting

    @property
    def last_display_time_ns(self) -> int:
        """The most recent predicted display time (0 before the first frame)."""
        return self._last_display_time_ns

    # -- set-up --------------------------------------------------------------------------

    def __enter__(self) -> XrSession:
        # ``with XrSession(...).open() as s`` and ``with XrSession(...) as s`` both work.
        return self if self.instance is not None else self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> XrSession:
        """Create instance, system, session, spaces and swapchains.

        Raises
        ------
        XrRuntimeUnavailable
            No runtime installed/active (names ``XR_RUNTIME_JSON``).
        XrHeadsetUnavailable
            The runtime has no head-mounted display connected.
        XrFeatureMissing
            The runtime lacks ``XR_KHR_opengl_enable``, stereo views or an sRGB format.
        """
        if self._closed:
            raise XrError("this XrSession was closed; make a new one")
        if self.instance is not None:
            raise XrError("this XrSession is already open")
        try:
            self._open_instance()
            self._open_session()
        except BaseException:
            self.close()
            raise
        return self

    def _open_instance(self) -> None:
        api = self.api
        try:
            offered = {
                _decode(p.extension_name) for p in api.enumerate_instance_extension_properties()
            }
        except api.XrException as exc:
            raise XrRuntimeUnavailable.explain(f"{type(exc).__name__}: {exc}") from exc
        if OPENGL_EXTENSION not in offered:
            raise XrFeatureMissing(
                f"the OpenXR runtime does not offer {OPENGL_EXTENSION} (OpenGL rendering), "
                f"which vrbalance needs; it offers: {', '.join(sorted(offered)) or 'nothing'}"
            )
        wanted = [OPENGL_EXTENSION]
        for optional in (TIMESPEC_EXTENSION, WIN32_TIME_EXTENSION):
            if optional in offered:
                wanted.append(optional)
        create_info = api.InstanceCreateInfo(
            application_info=api.ApplicationInfo(
                application_name=self.settings.app_name,
                application_version=1,
                engine_name="vrbalance",
                engine_version=1,
                api_version=api.Version(1, 0, api.XR_VERSION_PATCH),
            ),
            enabled_extension_names=wanted,
        )
        try:
            instance = api.create_instance(create_info)
        except (
            api.RuntimeUnavailableError,
            api.RuntimeFailureError,
            api.InitializationFailedError,
        ) as exc:
            raise XrRuntimeUnavailable.explain(f"{type(exc).__name__}: {exc}") from exc
        self.instance = instance
        self._instance_stack.callback(self._destroy_instance, instance)
        self.enabled_extensions = tuple(wanted)
        props = api.get_instance_properties(instance)
        self.runtime_name = _decode(props.runtime_name)
        log.info("OpenXR runtime %r, extensions %s", self.runtime_name, ", ".join(wanted))

    def _open_system(self) -> None:
        api = self.api
        try:
            self.system_id = api.get_system(
                self.instance, api.SystemGetInfo(form_factor=api.FormFactor.HEAD_MOUNTED_DISPLAY)
            )
        except (api.FormFactorUnavailableError, api.FormFactorUnsupportedError) as exc:
            raise XrHeadsetUnavailable.explain(
                self.runtime_name, f"{type(exc).__name__}: {exc}"
            ) from exc
        configs = api.enumerate_view_configurations(self.instance, self.system_id)
        if api.ViewConfigurationType.PRIMARY_STEREO.value not in [int(c) for c in configs]:
            raise XrFeatureMissing(
                f"the headset of runtime {self.runtime_name!r} has no PRIMARY_STEREO view "
                "configuration (two eyes); vrbalance renders stereo only"
            )
        views = api.enumerate_view_configuration_views(
            self.instance, self.system_id, api.ViewConfigurationType.PRIMARY_STEREO
        )
        self.view_sizes = tuple(
            (int(v.recommended_image_rect_width), int(v.recommended_image_rect_height))
            for v in views
        )
        # The spec requires this call before xrCreateSession (else
        # XR_ERROR_GRAPHICS_REQUIREMENTS_CALL_MISSING).
        reqs = api.get_opengl_graphics_requirements_khr(self.instance, self.system_id)
        log.info(
            "headset: %d views %s; OpenGL %s..%s required",
            len(self.view_sizes),
            self.view_sizes,
            _version_text(reqs.min_api_version_supported),
            _version_text(reqs.max_api_version_supported),
        )

    def _open_session(self) -> None:
        api = self.api
        self._open_system()
        binding = self.graphics.session_binding(api)
        next_ptr = ctypes.cast(ctypes.pointer(binding), ctypes.c_void_p) if binding else None
        session = api.create_session(
            self.instance,
            api.SessionCreateInfo(system_id=self.system_id, next=next_ptr),
        )
        self._session_binding = binding  # keep the struct alive as long as the session
        self.session = session
        self._session_stack.callback(self._destroy_session, session)
        self._state = XrSessionState.IDLE
        self._open_spaces()
        self._open_swapchains()

    def _open_spaces(self) -> None:
        api = self.api
        offered = {int(s) for s in api.enumerate_reference_spaces(self.session)}
        stage = api.ReferenceSpaceType.STAGE.value
        if self.settings.prefer_stage and stage in offered:
            space_type = api.ReferenceSpaceType.STAGE
        else:
            space_type = api.ReferenceSpaceType.LOCAL
            reason = (
                "STAGE not offered by the runtime"
                if self.settings.prefer_stage
                else "STAGE not wanted by the settings"
            )
            self._emit(
                "reference_space_fallback",
                f"headset uses the LOCAL space ({reason}): head heights are relative to the "
                "head's starting position, not the floor",
                "warning",
                reason=reason,
            )
            log.warning("using LOCAL reference space: %s", reason)
        self.app_space = self._create_space(space_type)
        self.space_type = space_type.name
        self.view_space = self._create_space(api.ReferenceSpaceType.VIEW)

    def _create_space(self, space_type: Any) -> Any:
        api = self.api
        space = api.create_reference_space(
            self.session,
            api.ReferenceSpaceCreateInfo(
                reference_space_type=space_type, pose_in_reference_space=api.Posef()
            ),
        )
        self._session_stack.callback(self._destroy_space, space)
        return space

    def _open_swapchains(self) -> None:
        api = self.api
        offered = [int(f) for f in api.enumerate_swapchain_formats(self.session)]
        chosen = next((f for f in self.settings.swapchain_formats if f in offered), None)
        if chosen is None:
            raise XrFeatureMissing(
                "the OpenXR runtime offers no acceptable swapchain format: wanted "
                f"{' or '.join(format_name(f) for f in self.settings.swapchain_formats)}, "
                f"offered {', '.join(format_name(f) for f in offered) or 'none'}"
            )
        self.swapchain_format = chosen
        usage = api.SwapchainUsageFlags.COLOR_ATTACHMENT_BIT | api.SwapchainUsageFlags.SAMPLED_BIT
        for width, height in self.view_sizes:
            swapchain = api.create_swapchain(
                self.session,
                api.SwapchainCreateInfo(
                    usage_flags=usage,
                    format=chosen,
                    sample_count=1,
                    width=width,
                    height=height,
                    face_count=1,
                    array_size=1,
                    mip_count=1,
                ),
            )
            self._session_stack.callback(self._destroy_swapchain, swapchain)
            images = api.enumerate_swapchain_images(swapchain, api.SwapchainImageOpenGLKHR)
            self._swapchains.append(swapchain)
            self._swapchain_images.append(images)
        log.info("swapchains: %s, %s", format_name(chosen), self.view_sizes)

    # -- teardown ------------------------------------------------------------------------

    def _destroy_swapchain(self, swapchain: Any) -> None:
        self.api.destroy_swapchain(swapchain)

    def _destroy_space(self, space: Any) -> None:
        with self._space_lock:
            if space is self.app_space:
                self.app_space = None
            if space is self.view_space:
                self.view_space = None
            self.api.destroy_space(space)

    def _destroy_session(self, session: Any) -> None:
        self.api.destroy_session(session)

    def _destroy_instance(self, instance: Any) -> None:
        self.api.destroy_instance(instance)

    def _close_session_objects(self) -> None:
        try:
            self._session_stack.close()
        finally:
            self._swapchains.clear()
            self._swapchain_images.clear()
            self.session = None
            self._running = False
            self._set_focus(False)

    def close(self) -> None:
        """End the session cleanly (request exit, drain, submit empty frames) and destroy
        everything in reverse order of creation. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.session is not None and not self._lost:
                self._wind_down()
        finally:
            try:
                self._close_session_objects()
            finally:
                self._instance_stack.close()
                self.instance = None

    def _wind_down(self) -> None:
        """Walk a running session to its end: request exit once, keep frames going
        (empty) until the runtime reaches STOPPING and the handler ends it."""
        api = self.api
        requested = False
        for _ in range(self.settings.close_frame_limit):
            self.poll_events()  # a queued READY begins the session here
            if not self._running or self._lost:
                return
            if not requested:
                with contextlib.suppress(api.SessionNotRunningError):
                    api.request_exit_session(self.session)
                requested = True
            plan = self.begin_frame()
            if plan is not None:
                self.end_frame(plan, None)
        log.warning(
            "the runtime did not end the session within %d frames", self.settings.close_frame_limit
        )

    # -- events and the life cycle -------------------------------------------------------

    def _emit(self, kind: str, message: str, severity: Severity = "info", **values: object) -> None:
        if self._on_event is not None:
            self._on_event(
                Event(self.clock.now_s(), "xr", kind, message, severity=severity, values=values)
            )

    def poll_events(self) -> None:
        """Drain the runtime's event queue and act on each event, in order."""
        api = self.api
        if self.instance is None:
            return
        while True:
            try:
                buffer = api.poll_event(self.instance)
            except api.EventUnavailable:
                return
            except (api.InstanceLostError, api.SessionLostError) as exc:
                self._mark_lost(f"{type(exc).__name__} while polling events", instance=True)
                return
            event_type = api.StructureType(buffer.type)
            if event_type == api.StructureType.EVENT_DATA_SESSION_STATE_CHANGED:
                event = ctypes.cast(
                    ctypes.byref(buffer), ctypes.POINTER(api.EventDataSessionStateChanged)
                ).contents
                self._on_state_changed(XrSessionState(int(event.state)), int(event.time))
            elif event_type == api.StructureType.EVENT_DATA_INSTANCE_LOSS_PENDING:
                self._mark_lost("the runtime announced instance loss", instance=True)
            elif event_type == api.StructureType.EVENT_DATA_EVENTS_LOST:
                self._emit("events_lost", "the runtime dropped events", "warning")
            elif event_type == api.StructureType.EVENT_DATA_REFERENCE_SPACE_CHANGE_PENDING:
                self._emit(
                    "reference_space_change",
                    "the headset's tracking origin is about to move (recentred or "
                    "boundary changed): check the head position against the plate",
                    "warning",
                )
            else:
                log.debug("ignoring OpenXR event %s", event_type.name)

    def _on_state_changed(self, new: XrSessionState, xr_time_ns: int) -> None:
        """THE session life-cycle handler: every state transition is acted on here."""
        api = self.api
        old, self._state = self._state, new
        self.states_seen.append(new)
        log.info("OpenXR session state %s -> %s", old.name, new.name)
        self._emit(
            "session_state",
            f"headset session {old.name.lower()} -> {new.name.lower()}",
            from_state=old.name,
            to_state=new.name,
            xr_time_ns=xr_time_ns,
        )
        if new is XrSessionState.READY:
            api.begin_session(
                self.session,
                api.SessionBeginInfo(
                    primary_view_configuration_type=api.ViewConfigurationType.PRIMARY_STEREO
                ),
            )
            self._running = True
        elif new is XrSessionState.STOPPING:
            self._running = False
            api.end_session(self.session)
        elif new is XrSessionState.LOSS_PENDING:
            self._mark_lost("the runtime reported LOSS_PENDING", instance=False)
        elif new is XrSessionState.EXITING:
            self._running = False
            self._exiting = True
            self._emit("exiting", "the headset runtime ended the session", "warning")
        self._set_focus(new is XrSessionState.FOCUSED)

    def _set_focus(self, focused: bool) -> None:
        if focused == self._focused:
            return
        self._focused = focused
        if focused:
            self._emit("resumed", "headset focused: the patient sees the scene (may resume)")
        else:
            self._emit(
                "paused",
                f"headset not focused ({self._state.name.lower()}): scenario paused",
                "warning",
                state=self._state.name,
            )
        if self._on_focus is not None:
            self._on_focus(focused)

    def _mark_lost(self, why: str, *, instance: bool) -> None:
        if self._lost:
            self._instance_lost = self._instance_lost or instance
            return
        self._lost = True
        self._instance_lost = instance
        self._running = False
        self._emit(
            "loss_pending",
            f"headset runtime lost ({why}): scenario paused, recording continues; "
            "reconnect the headset/runtime and resume",
            "alarm",
            reason=why,
        )
        log.error("OpenXR session lost: %s", why)
        self._set_focus(False)

    def request_exit(self) -> None:
        """Ask the runtime to end the session (it walks it to STOPPING, then EXITING)."""
        if self._running and self.session is not None:
            self.api.request_exit_session(self.session)

    def recreate(self) -> None:
        """After a loss: destroy the session (and the instance if lost) and build anew.

        Raises
        ------
        XrRuntimeUnavailable, XrHeadsetUnavailable
            The runtime or headset is still gone: try again later.
        """
        if self._closed:
            raise XrError("this XrSession was closed; make a new one")
        self._close_session_objects()
        if self._instance_lost or self.instance is None:
            self._instance_stack.close()
            self.instance = None
            self._open_instance()
        self._lost = False
        self._instance_lost = False
        self._exiting = False
        self._state = XrSessionState.UNKNOWN
        try:
            self._open_session()
        except XrError:
            self._lost = True
            raise
        self._emit("session_recreated", "headset session recreated; waiting for the runtime")

    # -- frames --------------------------------------------------------------------------

    def begin_frame(self) -> FramePlan | None:
        """Poll events; if running, wait for and begin a frame and locate the eyes.

        Returns
        -------
        FramePlan or None
            ``None`` when no frame is due (session not running, lost or closing);
            otherwise a plan that **must** be passed to :meth:`end_frame`.
        """
        api = self.api
        self.last_wait_s = 0.0
        self.poll_events()
        if not self._running or self._lost:
            return None
        wait_start = time.perf_counter()
        try:
            frame_state = api.wait_frame(self.session, api.FrameWaitInfo())
        except api.SessionLossPending:
            self._mark_lost("XR_SESSION_LOSS_PENDING from xrWaitFrame", instance=False)
            return None
        except (api.SessionLostError, api.InstanceLostError) as exc:
            self._mark_lost(f"{type(exc).__name__} from xrWaitFrame", instance=True)
            return None
        finally:
            self.last_wait_s = time.perf_counter() - wait_start
        try:
            api.begin_frame(self.session, api.FrameBeginInfo())
        except api.FrameDiscarded:
            log.debug("previous frame discarded by the runtime")
        except api.SessionLossPending:
            self._mark_lost("XR_SESSION_LOSS_PENDING from xrBeginFrame", instance=False)
            return None
        except (api.SessionLostError, api.InstanceLostError) as exc:
            self._mark_lost(f"{type(exc).__name__} from xrBeginFrame", instance=True)
            return None
        self.frames_begun += 1
        display_time = int(frame_state.predicted_display_time)
        self._last_display_time_ns = display_time
        should_render = bool(frame_state.should_render)
        views: tuple[EyeView, ...] = ()
        if should_render:
            views = self._locate_views(display_time)
        return FramePlan(
            display_time, int(frame_state.predicted_display_period), should_render, views
        )

    def _locate_views(self, display_time_ns: int) -> tuple[EyeView, ...]:
        api = self.api
        try:
            view_state, views = api.locate_views(
                self.session,
                api.ViewLocateInfo(
                    view_configuration_type=api.ViewConfigurationType.PRIMARY_STEREO,
                    display_time=display_time_ns,
                    space=self.app_space,
                ),
            )
        except api.SessionLossPending:
            self._mark_lost("XR_SESSION_LOSS_PENDING from xrLocateViews", instance=False)
            return ()
        flags = int(view_state.view_state_flags)
        needed = int(
            api.ViewStateFlags.POSITION_VALID_BIT | api.ViewStateFlags.ORIENTATION_VALID_BIT
        )
        if flags & needed != needed:
            return ()
        out = []
        for i, view in enumerate(views):
            position, orientation = _pose_tuple(view.pose)
            out.append(EyeView(i, position, orientation, Fov.from_xr(view.fov)))
        return tuple(out)

    def end_frame(self, plan: FramePlan, copy_eye: EyeCopy | None) -> bool:
        """Fill the eye swapchains (when the plan renders) and end the frame.

        Parameters
        ----------
        plan : FramePlan
            What :meth:`begin_frame` returned for this frame.
        copy_eye : callable or None
            ``copy_eye(index, gl_texture)`` writes eye ``index``'s image into the
            acquired swapchain texture; ``None`` submits no layer.

        Returns
        -------
        bool
            True when a projection layer was submitted.
        """
        api = self.api
        layers: list[Any] = []
        layer = None
        if plan.renders and copy_eye is not None and not self._lost:
            layer = self._fill_projection_layer(plan, copy_eye)
            if layer is not None:
                layers.append(ctypes.byref(layer))
        if self._lost:
            return False
        try:
            api.end_frame(
                self.session,
                api.FrameEndInfo(
                    display_time=plan.predicted_display_time_ns,
                    environment_blend_mode=api.EnvironmentBlendMode.OPAQUE,
                    layers=layers,
                ),
            )
        except api.SessionLossPending:
            self._mark_lost("XR_SESSION_LOSS_PENDING from xrEndFrame", instance=False)
            return False
        except (api.SessionLostError, api.InstanceLostError) as exc:
            self._mark_lost(f"{type(exc).__name__} from xrEndFrame", instance=True)
            return False
        self.frames_submitted += 1
        if layers:
            self.frames_rendered += 1
        return bool(layers)

    def _fill_projection_layer(self, plan: FramePlan, copy_eye: EyeCopy) -> Any:
        api = self.api
        projection_views = []
        wait_info = api.SwapchainImageWaitInfo(timeout=api.INFINITE_DURATION)
        for view, swapchain, images, (width, height) in zip(
            plan.views, self._swapchains, self._swapchain_images, self.view_sizes, strict=True
        ):
            try:
                index = api.acquire_swapchain_image(swapchain, api.SwapchainImageAcquireInfo())
                api.wait_swapchain_image(swapchain, wait_info)
                try:
                    copy_eye(view.index, int(images[index].image))
                finally:
                    api.release_swapchain_image(swapchain, api.SwapchainImageReleaseInfo())
            except api.SessionLossPending:
                self._mark_lost("XR_SESSION_LOSS_PENDING from a swapchain call", instance=False)
                return None
            projection_views.append(
                api.CompositionLayerProjectionView(
                    pose=api.Posef(
                        orientation=api.Quaternionf(*view.orientation_xr),
                        position=api.Vector3f(*view.position_xr),
                    ),
                    fov=api.Fovf(
                        view.fov.angle_left_rad,
                        view.fov.angle_right_rad,
                        view.fov.angle_up_rad,
                        view.fov.angle_down_rad,
                    ),
                    sub_image=api.SwapchainSubImage(
                        swapchain=swapchain,
                        image_rect=api.Rect2Di(
                            offset=api.Offset2Di(0, 0), extent=api.Extent2Di(width, height)
                        ),
                        image_array_index=0,
                    ),
                )
            )
        return api.CompositionLayerProjection(space=self.app_space, views=projection_views)

    def frames(self) -> Iterator[FramePlan | None]:
        """Iterate frames until the session exits, is lost or is closed.

        Yields a :class:`FramePlan` when a frame was begun (the caller must pass
        it to :meth:`end_frame` before the next iteration) and ``None`` when no
        frame is due yet (session idle, waiting for READY): the caller paces
        those iterations itself (e.g. its desktop render).
        """
        while not self._exiting and not self._lost and not self._closed:
            yield self.begin_frame()

    # -- head tracking (any thread) ------------------------------------------------------

    def locate_head(self, xr_time_ns: int) -> LocatedPose | None:
        """Locate the VIEW space (the head) in the app space at ``xr_time_ns``.

        Thread-safe against teardown (see the module docstring); returns
        ``None`` when there is no session, the session is lost, or the runtime
        reports neither position nor orientation as valid.
        """
        api = self.api
        if xr_time_ns <= 0:
            return None
        with self._space_lock:
            if self.view_space is None or self.app_space is None or self._lost:
                return None
            try:
                location = api.locate_space(self.view_space, self.app_space, xr_time_ns)
            except (api.SessionLossPending, api.SessionLostError, api.InstanceLostError):
                return None
            except api.TimeInvalidError:
                return None
        flags = int(location.location_flags)
        sl = api.SpaceLocationFlags
        if not flags & int(sl.POSITION_VALID_BIT) or not flags & int(sl.ORIENTATION_VALID_BIT):
            return None
        position, orientation = _pose_tuple(location.pose)
        return LocatedPose(
            xr_time_ns,
            position,
            orientation,
            bool(flags & int(sl.POSITION_TRACKED_BIT)),
            bool(flags & int(sl.ORIENTATION_TRACKED_BIT)),
        )


def _decode(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _version_text(version: Any) -> str:
    number = int(version.number()) if hasattr(version, "number") else int(version)
    return f"{number >> 48}.{(number >> 32) & 0xFFFF}"


__all__ = [
    "DEFAULT_SETTINGS",
    "GL_SRGB8",
    "GL_SRGB8_ALPHA8",
    "RUNNING_STATES",
    "SRGB_FORMATS",
    "EyeView",
    "FramePlan",
    "GraphicsBinding",
    "LocatedPose",
    "XrSession",
    "XrSessionState",
    "XrSettings",
    "format_name",
]
