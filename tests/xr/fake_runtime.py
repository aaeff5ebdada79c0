"""A fake OpenXR runtime with pyopenxr's call signatures, strict about the specification.

:class:`FakeXr` stands in for the ``xr`` module at the boundary of
:class:`vrbalance.xr.session.XrSession` (its ``api`` parameter). Structures,
enums, flags and exceptions are pyopenxr's own (forwarded from the real
module, so the layer's ctypes code runs for real); every *function* the layer
calls is implemented here and enforces the rules of the OpenXR 1.0
specification that a layer can get wrong:

* session life cycle: ``xrBeginSession`` only in READY
  (``XR_ERROR_SESSION_NOT_READY``), not twice (``XR_ERROR_SESSION_RUNNING``);
  ``xrEndSession`` only in STOPPING (``XR_ERROR_SESSION_NOT_STOPPING``);
  frame calls only while running (``XR_ERROR_SESSION_NOT_RUNNING``);
  ``xrCreateSession`` only after ``xrGetOpenGLGraphicsRequirementsKHR``
  (``XR_ERROR_GRAPHICS_REQUIREMENTS_CALL_MISSING``);
* frame timing: ``xrWaitFrame`` -> ``xrBeginFrame`` -> ``xrEndFrame``; a second
  wait without a begin, a begin without a wait, an end without a begin:
  ``XR_ERROR_CALL_ORDER_INVALID`` (the real runtime would block on the second
  wait; a single-threaded fake must fail instead); ``displayTime`` of
  ``xrEndFrame`` must be the predicted one (``XR_ERROR_TIME_INVALID``);
* swapchains: acquire -> wait -> release per image
  (``XR_ERROR_CALL_ORDER_INVALID``); a layer may only use released images
  (``XR_ERROR_LAYER_INVALID``);
* views: a projection layer must carry the poses ``xrLocateViews`` returned for
  that frame's predicted display time (``XR_ERROR_VALIDATION_FAILURE`` here:
  the spec allows other poses, vrbalance promises not to send them);
* events come out of ``xrPollEvent`` in the order the runtime queued them,
  and the runtime only moves along the transitions the spec's state diagram
  allows (checked with :data:`ALLOWED`).

The runtime side is scripted: :meth:`FakeXr.lose_focus`, :meth:`regain_focus`,
:meth:`runtime_quit`, :meth:`lose_session`. Time is virtual (``now_ns``), moved
by one display period per ``xrWaitFrame``, so tests never sleep.
"""

from __future__ import annotations

import ctypes
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import xr as _xr

S = _xr.SessionState

#: Runtime-side transitions the specification's session state diagram allows.
ALLOWED: dict[Any, set[Any]] = {
    S.UNKNOWN: {S.IDLE},
    S.IDLE: {S.READY, S.EXITING, S.LOSS_PENDING},
    S.READY: {S.SYNCHRONIZED, S.STOPPING, S.LOSS_PENDING},
    S.SYNCHRONIZED: {S.VISIBLE, S.STOPPING, S.LOSS_PENDING},
    S.VISIBLE: {S.FOCUSED, S.SYNCHRONIZED, S.LOSS_PENDING},
    S.FOCUSED: {S.VISIBLE, S.LOSS_PENDING},
    S.STOPPING: {S.IDLE, S.LOSS_PENDING},
    S.LOSS_PENDING: set(),
    S.EXITING: set(),
}

GL_RGBA8 = 0x8058
GL_SRGB8_ALPHA8 = 0x8C43
ALL_EXTENSIONS = ("XR_KHR_opengl_enable", "XR_KHR_convert_timespec_time", "XR_EXT_debug_utils")


def _addr(handle: Any) -> int | None:
    if handle is None:
        return None
    return ctypes.cast(handle, ctypes.c_void_p).value


class FakeRuleViolation(AssertionError):
    """Raised (as well as the XR error) when the layer breaks a rule: tests fail loudly."""


def head_motion(t_ns: int) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """A deterministic head sway in STAGE (OpenXR axes): 1.65 m eyes, 0.5 Hz, 2 cm."""
    t = t_ns * 1e-9
    pos = (0.02 * math.sin(2 * math.pi * 0.5 * t), 1.65, -0.02 * math.cos(2 * math.pi * 0.5 * t))
    yaw = 0.1 * math.sin(2 * math.pi * 0.25 * t)  # about OpenXR +y
    return pos, (0.0, math.sin(yaw / 2), 0.0, math.cos(yaw / 2))


@dataclass
class Submission:
    """One ``xrEndFrame`` as the fake saw it."""

    display_time_ns: int
    should_render: bool
    state: Any
    layer_count: int
    view_positions: list[tuple[float, float, float]] = field(default_factory=list)


@dataclass
class _Swapchain:
    handle: Any
    width: int
    height: int
    images: list[int]
    next_index: int = 0
    acquired: int | None = None
    waited: bool = False
    used_this_frame: bool = False


class FakeXr:
    """The fake ``xr`` module. See the module docstring for the rules it enforces."""

    def __init__(
        self,
        *,
        runtime_available: bool = True,
        headset: bool = True,
        extensions: tuple[str, ...] = ALL_EXTENSIONS,
        stage: bool = True,
        formats: tuple[int, ...] = (GL_RGBA8, GL_SRGB8_ALPHA8),
        view_size: tuple[int, int] = (1440, 1600),
        period_ns: int = 11_111_111,
        start_ns: int = 5_000_000_000,
        monotonic_offset_ns: int = 123_456_789,
        auto_focus: bool = True,
        image_factory: Callable[[int, int, int], int] | None = None,
        motion: Callable[[int], tuple[Any, Any]] = head_motion,
    ) -> None:
        self.runtime_available = runtime_available
        self.headset = headset
        self.extensions = extensions
        self.stage = stage
        self.formats = formats
        self.view_size = view_size
        self.period_ns = period_ns
        self.now_ns = start_ns
        self.monotonic_offset_ns = monotonic_offset_ns
        self.auto_focus = auto_focus
        self.image_factory = image_factory
        self.motion = motion
        self._next_handle = 0x1000
        self.instance: Any = None
        self.enabled: set[str] = set()
        self.system_id: int | None = None
        self.requirements_called = False
        self.session: Any = None
        self.state = S.UNKNOWN
        self.running = False
        self.exit_requested = False
        self.loss_pending = False
        self.spaces: dict[int, Any] = {}
        self.swapchains: dict[int, _Swapchain] = {}
        self.events: deque[ctypes.Structure] = deque()
        self.waited_frame: tuple[int, bool] | None = None  # (display time, should_render)
        self.begun_frame: tuple[int, bool] | None = None
        self.located: dict[int, list[tuple[float, float, float]]] = {}
        self.submissions: list[Submission] = []
        self.calls: list[str] = []
        self.state_history: list[Any] = []
        self.violations: list[str] = []
        self.frames_ended = 0
        self.locate_space_calls = 0
        self._focused_once = False

    # -- forwarding of pyopenxr's types ---------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        value = getattr(_xr, name)
        if callable(value) and not isinstance(value, type):
            raise AttributeError(f"FakeXr does not implement xr.{name}()")
        return value

    # -- helpers --------------------------------------------------------------------------

    def _handle(self, kind: type) -> Any:
        self._next_handle += 0x10
        return ctypes.cast(ctypes.c_void_p(self._next_handle), kind)

    def _fail(self, error: type, why: str) -> None:
        self.violations.append(f"{error.__name__}: {why}")
        raise error(why)

    def _transition(self, new: Any) -> None:
        if new not in ALLOWED[self.state]:
            raise FakeRuleViolation(f"fake script error: {self.state.name} -> {new.name}")
        self.state = new
        self.state_history.append(new)
        event = _xr.EventDataSessionStateChanged(session=self.session, state=new, time=self.now_ns)
        self.events.append(event)

    def _check_session(self, session: Any) -> None:
        if self.session is None or _addr(session) != _addr(self.session):
            self._fail(_xr.HandleInvalidError, "unknown session handle")

    def _check_running(self, session: Any) -> None:
        self._check_session(session)
        if self.loss_pending:
            raise _xr.SessionLossPending()
        if not self.running:
            self._fail(_xr.SessionNotRunningError, "session is not running")

    # -- runtime-side script ----------------------------------------------------------------

    def lose_focus(self) -> None:
        """Headset taken off / system menu: FOCUSED -> VISIBLE."""
        self._transition(S.VISIBLE)

    def hide(self) -> None:
        """Runtime stops showing the app: VISIBLE -> SYNCHRONIZED (shouldRender false)."""
        self._transition(S.SYNCHRONIZED)

    def show(self) -> None:
        self._transition(S.VISIBLE)

    def regain_focus(self) -> None:
        self._transition(S.FOCUSED)

    def runtime_quit(self) -> None:
        """The user quits from the runtime: walk down to STOPPING; EXITING follows end."""
        self.exit_requested = True
        self._walk_to_stopping()

    def lose_session(self) -> None:
        """The compositor crashes: LOSS_PENDING, then every call reports the loss."""
        self._transition(S.LOSS_PENDING)
        self.loss_pending = True
        self.running = False

    def restore(self) -> None:
        """The runtime is back: a new session may be created."""
        self.loss_pending = False

    def _walk_to_stopping(self) -> None:
        if self.state is S.FOCUSED:
            self._transition(S.VISIBLE)
        if self.state is S.VISIBLE:
            self._transition(S.SYNCHRONIZED)
        if self.state in (S.SYNCHRONIZED, S.READY):
            self._transition(S.STOPPING)

    # -- instance and system ------------------------------------------------------------------

    def enumerate_instance_extension_properties(self, layer_name: str | None = None) -> list:
        self.calls.append("enumerate_instance_extension_properties")
        if not self.runtime_available:
            raise _xr.RuntimeUnavailableError()
        return [_xr.ExtensionProperties(extension_name=e) for e in self.extensions]

    def create_instance(self, create_info: Any) -> Any:
        self.calls.append("create_instance")
        if not self.runtime_available:
            raise _xr.RuntimeUnavailableError()
        names = {n.decode() for n in create_info.enabled_extension_names}
        missing = names - set(self.extensions)
        if missing:
            self._fail(_xr.ExtensionNotPresentError, f"not offered: {sorted(missing)}")
        self.enabled = names
        self.instance = self._handle(_xr.Instance)
        return self.instance

    def get_instance_properties(self, instance: Any) -> Any:
        return _xr.InstanceProperties(runtime_version=_xr.Version(1, 0, 0), runtime_name="FakeXr")

    def destroy_instance(self, instance: Any) -> None:
        self.calls.append("destroy_instance")
        if _addr(instance) != _addr(self.instance):
            self._fail(_xr.HandleInvalidError, "unknown instance")
        if self.session is not None:
            self._fail(_xr.CallOrderInvalidError, "instance destroyed before its session")
        self.instance = None

    def get_system(self, instance: Any, get_info: Any) -> Any:
        self.calls.append("get_system")
        if not self.headset:
            raise _xr.FormFactorUnavailableError()
        self.system_id = 1
        return _xr.SystemId(1)  # a ctypes c_uint64, as pyopenxr returns

    def enumerate_view_configurations(self, instance: Any, system_id: int) -> list[int]:
        return [_xr.ViewConfigurationType.PRIMARY_STEREO.value]

    def enumerate_view_configuration_views(self, instance: Any, system_id: int, vct: Any) -> Any:
        w, h = self.view_size
        views = (_xr.ViewConfigurationView * 2)()
        for v in views:
            v.recommended_image_rect_width = w
            v.recommended_image_rect_height = h
            v.recommended_swapchain_sample_count = 1
        return views

    def get_opengl_graphics_requirements_khr(self, instance: Any, system_id: int) -> Any:
        if "XR_KHR_opengl_enable" not in self.enabled:
            self._fail(_xr.FunctionUnsupportedError, "XR_KHR_opengl_enable not enabled")
        self.requirements_called = True
        return _xr.GraphicsRequirementsOpenGLKHR(
            min_api_version_supported=_xr.Version(3, 3, 0),
            max_api_version_supported=_xr.Version(4, 6, 0),
        )

    def convert_timespec_time_to_time_khr(self, instance: Any, timespec_time: Any) -> Any:
        if "XR_KHR_convert_timespec_time" not in self.enabled:
            self._fail(_xr.FunctionUnsupportedError, "XR_KHR_convert_timespec_time not enabled")
        mono_ns = int(timespec_time.tv_sec) * 1_000_000_000 + int(timespec_time.tv_nsec)
        return _xr.Time(mono_ns + self.monotonic_offset_ns)  # pyopenxr returns c_int64

    # -- session ------------------------------------------------------------------------------

    def create_session(self, instance: Any, create_info: Any) -> Any:
        self.calls.append("create_session")
        if self.loss_pending:
            raise _xr.RuntimeFailureError()
        if not self.requirements_called:
            self._fail(_xr.GraphicsRequirementsCallMissingError, "requirements not queried")
        if self.session is not None:
            self._fail(_xr.LimitReachedError, "one session per instance")
        self.session = self._handle(_xr.Session)
        self.state = S.UNKNOWN
        self.running = False
        self.exit_requested = False
        self._focused_once = False
        self._transition(S.IDLE)
        self._transition(S.READY)
        return self.session

    def destroy_session(self, session: Any) -> None:
        self.calls.append("destroy_session")
        self._check_session(session)
        if self.spaces or self.swapchains:
            self._fail(_xr.CallOrderInvalidError, "session destroyed before its children")
        self.session = None
        self.running = False
        self.waited_frame = self.begun_frame = None

    def begin_session(self, session: Any, begin_info: Any) -> None:
        self.calls.append("begin_session")
        self._check_session(session)
        if self.running:
            self._fail(_xr.SessionRunningError, "xrBeginSession while running")
        if self.state is not S.READY:
            self._fail(_xr.SessionNotReadyError, f"xrBeginSession in {self.state.name}")
        self.running = True

    def end_session(self, session: Any) -> None:
        self.calls.append("end_session")
        self._check_session(session)
        if not self.running:
            self._fail(_xr.SessionNotRunningError, "xrEndSession while not running")
        if self.state is not S.STOPPING:
            self._fail(_xr.SessionNotStoppingError, f"xrEndSession in {self.state.name}")
        self.running = False
        self.waited_frame = self.begun_frame = None
        self._transition(S.IDLE)
        if self.exit_requested:
            self._transition(S.EXITING)

    def request_exit_session(self, session: Any) -> None:
        self.calls.append("request_exit_session")
        self._check_running(session)
        self.exit_requested = True
        self._walk_to_stopping()

    def poll_event(self, instance: Any) -> Any:
        if _addr(instance) != _addr(self.instance):
            self._fail(_xr.HandleInvalidError, "unknown instance")
        if not self.events:
            raise _xr.EventUnavailable()
        event = self.events.popleft()
        buffer = _xr.EventDataBuffer()
        ctypes.memmove(ctypes.byref(buffer), ctypes.byref(event), ctypes.sizeof(event))
        return buffer

    # -- spaces -------------------------------------------------------------------------------

    def enumerate_reference_spaces(self, session: Any) -> list[int]:
        self._check_session(session)
        rst = _xr.ReferenceSpaceType
        spaces = [rst.VIEW.value, rst.LOCAL.value]
        if self.stage:
            spaces.append(rst.STAGE.value)
        return spaces

    def create_reference_space(self, session: Any, create_info: Any) -> Any:
        self._check_session(session)
        kind = _xr.ReferenceSpaceType(create_info.reference_space_type)
        if kind is _xr.ReferenceSpaceType.STAGE and not self.stage:
            self._fail(_xr.ReferenceSpaceUnsupportedError, "no STAGE")
        handle = self._handle(_xr.Space)
        self.spaces[_addr(handle)] = kind
        return handle

    def destroy_space(self, space: Any) -> None:
        if self.spaces.pop(_addr(space), None) is None:
            self._fail(_xr.HandleInvalidError, "unknown space")

    def _space_pose(self, kind: Any, t_ns: int) -> tuple[Any, Any]:
        pos, quat = self.motion(t_ns)
        if kind is _xr.ReferenceSpaceType.LOCAL:
            pos = (pos[0], pos[1] - 1.6, pos[2])
        return pos, quat

    def locate_space(self, space: Any, base_space: Any, time: int) -> Any:
        self.locate_space_calls += 1
        if self.loss_pending:
            raise _xr.SessionLossPending()
        kind = self.spaces.get(_addr(space))
        base = self.spaces.get(_addr(base_space))
        if kind is None or base is None:
            self._fail(_xr.HandleInvalidError, "locate_space on a destroyed space")
        if time <= 0:
            self._fail(_xr.TimeInvalidError, f"time {time}")
        if kind is not _xr.ReferenceSpaceType.VIEW:
            raise FakeRuleViolation("the fake only locates the VIEW space")
        pos, quat = self._space_pose(base, int(time))
        flags = _xr.SpaceLocationFlags
        return _xr.SpaceLocation(
            location_flags=flags.POSITION_VALID_BIT
            | flags.ORIENTATION_VALID_BIT
            | flags.POSITION_TRACKED_BIT
            | flags.ORIENTATION_TRACKED_BIT,
            pose=_xr.Posef(orientation=_xr.Quaternionf(*quat), position=_xr.Vector3f(*pos)),
        )

    def locate_views(self, session: Any, view_locate_info: Any) -> Any:
        self._check_session(session)
        if self.loss_pending:
            raise _xr.SessionLossPending()
        t = int(view_locate_info.display_time)
        if t <= 0:
            self._fail(_xr.TimeInvalidError, f"time {t}")
        base = self.spaces.get(_addr(view_locate_info.space))
        if base is None:
            self._fail(_xr.HandleInvalidError, "unknown space")
        pos, quat = self._space_pose(base, t)
        views = (_xr.View * 2)()
        positions = []
        for i, v in enumerate(views):
            # Eyes 32 mm either side of the head centre (yaw only, so rotate the x offset).
            x = -0.032 if i == 0 else 0.032
            qy, qw = quat[1], quat[3]
            cos_yaw = 1 - 2 * qy * qy
            sin_yaw = 2 * qy * qw
            eye = (pos[0] + x * cos_yaw, pos[1], pos[2] - x * sin_yaw)
            v.pose = _xr.Posef(orientation=_xr.Quaternionf(*quat), position=_xr.Vector3f(*eye))
            v.fov = _xr.Fovf(-0.9, 0.8, 0.85, -0.95) if i == 0 else _xr.Fovf(-0.8, 0.9, 0.85, -0.95)
            positions.append(eye)
        self.located[t] = positions
        vs = _xr.ViewStateFlags
        state = _xr.ViewState(
            view_state_flags=vs.POSITION_VALID_BIT
            | vs.ORIENTATION_VALID_BIT
            | vs.POSITION_TRACKED_BIT
            | vs.ORIENTATION_TRACKED_BIT
        )
        return state, views

    # -- swapchains ---------------------------------------------------------------------------

    def enumerate_swapchain_formats(self, session: Any) -> list[int]:
        self._check_session(session)
        return list(self.formats)

    def create_swapchain(self, session: Any, create_info: Any) -> Any:
        self._check_session(session)
        if int(create_info.format) not in self.formats:
            self._fail(_xr.SwapchainFormatUnsupportedError, f"format {create_info.format}")
        handle = self._handle(_xr.Swapchain)
        w, h = int(create_info.width), int(create_info.height)
        if self.image_factory is not None:
            images = [self.image_factory(w, h, int(create_info.format)) for _ in range(3)]
        else:
            images = [1000 + 3 * len(self.swapchains) + i for i in range(3)]
        self.swapchains[_addr(handle)] = _Swapchain(handle, w, h, images)
        return handle

    def destroy_swapchain(self, swapchain: Any) -> None:
        if self.swapchains.pop(_addr(swapchain), None) is None:
            self._fail(_xr.HandleInvalidError, "unknown swapchain")

    def enumerate_swapchain_images(self, swapchain: Any, element_type: type) -> Any:
        sc = self.swapchains[_addr(swapchain)]
        arr = (element_type * len(sc.images))()
        for slot, name in zip(arr, sc.images, strict=True):
            slot.image = name
        return arr

    def _swapchain(self, swapchain: Any) -> _Swapchain:
        sc = self.swapchains.get(_addr(swapchain))
        if sc is None:
            self._fail(_xr.HandleInvalidError, "unknown swapchain")
        return sc  # type: ignore[return-value]

    def acquire_swapchain_image(self, swapchain: Any, acquire_info: Any = None) -> int:
        sc = self._swapchain(swapchain)
        if self.loss_pending:
            raise _xr.SessionLossPending()
        if sc.acquired is not None:
            self._fail(_xr.CallOrderInvalidError, "image acquired twice without release")
        sc.acquired = sc.next_index
        sc.next_index = (sc.next_index + 1) % len(sc.images)
        sc.waited = False
        return sc.acquired

    def wait_swapchain_image(self, swapchain: Any, wait_info: Any) -> None:
        sc = self._swapchain(swapchain)
        if sc.acquired is None or sc.waited:
            self._fail(_xr.CallOrderInvalidError, "wait without a fresh acquire")
        sc.waited = True

    def release_swapchain_image(self, swapchain: Any, release_info: Any = None) -> None:
        sc = self._swapchain(swapchain)
        if sc.acquired is None or not sc.waited:
            self._fail(_xr.CallOrderInvalidError, "release without acquire+wait")
        sc.acquired = None
        sc.waited = False
        sc.used_this_frame = True

    # -- frames -------------------------------------------------------------------------------

    def wait_frame(self, session: Any, frame_wait_info: Any = None) -> Any:
        self.calls.append("wait_frame")
        self._check_running(session)
        if self.waited_frame is not None:
            self._fail(_xr.CallOrderInvalidError, "second xrWaitFrame without xrBeginFrame")
        self.now_ns += self.period_ns
        display = self.now_ns + self.period_ns
        should_render = self.state in (S.VISIBLE, S.FOCUSED)
        self.waited_frame = (display, should_render)
        return _xr.FrameState(
            predicted_display_time=display,
            predicted_display_period=self.period_ns,
            should_render=should_render,
        )

    def begin_frame(self, session: Any, frame_begin_info: Any = None) -> None:
        self.calls.append("begin_frame")
        self._check_running(session)
        if self.waited_frame is None:
            self._fail(_xr.CallOrderInvalidError, "xrBeginFrame without xrWaitFrame")
        discarded = self.begun_frame is not None
        self.begun_frame, self.waited_frame = self.waited_frame, None
        for sc in self.swapchains.values():
            sc.used_this_frame = False
        if discarded:
            raise _xr.FrameDiscarded()

    def end_frame(self, session: Any, frame_end_info: Any) -> None:
        self.calls.append("end_frame")
        self._check_running(session)
        if self.begun_frame is None:
            self._fail(_xr.CallOrderInvalidError, "xrEndFrame without xrBeginFrame")
        display, should_render = self.begun_frame
        if int(frame_end_info.display_time) != display:
            self._fail(
                _xr.TimeInvalidError,
                f"displayTime {frame_end_info.display_time} != predicted {display}",
            )
        sub = Submission(display, should_render, self.state, int(frame_end_info.layer_count))
        for i in range(sub.layer_count):
            layer = ctypes.cast(
                frame_end_info._layers[i], ctypes.POINTER(_xr.CompositionLayerProjection)
            ).contents
            if self.spaces.get(_addr(layer.space)) is None:
                self._fail(_xr.LayerInvalidError, "layer space is not a live space")
            located = self.located.get(display)
            if located is None:
                self._fail(_xr.ValidationFailureError, "views never located for displayTime")
            for v in range(int(layer.view_count)):
                view = layer.views[v]
                sc = self.swapchains.get(_addr(view.sub_image.swapchain))
                if sc is None or not sc.used_this_frame or sc.acquired is not None:
                    self._fail(_xr.LayerInvalidError, "swapchain image not acquired+released")
                ext = view.sub_image.image_rect.extent
                if (int(ext.width), int(ext.height)) != (sc.width, sc.height):
                    self._fail(_xr.SwapchainRectInvalidError, "rect is not the image")
                p = view.pose.position
                got = (p.x, p.y, p.z)
                if any(abs(a - b) > 1e-6 for a, b in zip(got, located[v], strict=True)):
                    self._fail(
                        _xr.ValidationFailureError,
                        "layer pose is not the one located for the predicted display time",
                    )
                sub.view_positions.append(got)
        self.submissions.append(sub)
        self.begun_frame = None
        self.frames_ended += 1
        # The runtime follows the application's frame loop up to FOCUSED.
        if self.state is S.READY:
            self._transition(S.SYNCHRONIZED)
        elif self.state is S.SYNCHRONIZED and self.auto_focus and not self._focused_once:
            self._focused_once = True
            self._transition(S.VISIBLE)
            self._transition(S.FOCUSED)
        # Frames older than a second are of no further interest.
        for t in [t for t in self.located if t < display - 1_000_000_000]:
            del self.located[t]
