"""Head pose for the balance loop, located by the runtime at the loop's own time.

The balance loop asks ``pose_at(t_s)`` at 250 Hz or more from its own thread;
each call locates the VIEW space (the head: midpoint between the eyes) in the
app space (STAGE, or LOCAL as a fallback) with ``xrLocateSpace`` at the
``XrTime`` matching ``t_s``, so the loop sees the head at its own rate and
time rather than once per rendered frame.

Time conversion, best first:

1. ``XR_KHR_convert_timespec_time`` (Linux) when the loop's clock is
   :class:`~vrbalance.clock.MonotonicClock` (``time.perf_counter`` is
   ``CLOCK_MONOTONIC`` on Linux): ``t_s`` becomes a ``timespec`` and the runtime
   converts it. The offset between the two clocks is re-measured once per
   second rather than per call (the conversion is an extension function call
   and the clocks do not drift apart within a second).
2. ``XR_KHR_win32_convert_performance_counter_time`` (Windows; ``perf_counter``
   is ``QueryPerformanceCounter`` there), likewise.
3. Otherwise (other clocks, such as a replay's): the latest predicted display
   time of the frame loop, i.e. the head where the renderer expects it.

Thread safety: see :meth:`vrbalance.xr.session.XrSession.locate_head` - any
thread may call :meth:`XrHeadPoseSource.pose_at`; before a session is bound,
while it is lost and after it is closed it returns ``None``.
"""

from __future__ import annotations

import ctypes
import logging
import math
import sys
import threading
from typing import TYPE_CHECKING

from vrbalance.clock import Clock, MonotonicClock
from vrbalance.samples import HeadPose
from vrbalance.xr.frames import IDENTITY_ALIGNMENT, StageAlignment, xr_pose_to_core

if TYPE_CHECKING:  # pragma: no cover
    from vrbalance.xr.session import XrSession

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: How often the loop-clock -> XrTime offset is re-measured, in s.
OFFSET_REFRESH_S = 1.0


class XrHeadPoseSource:
    """A :class:`~vrbalance.devices.head.HeadPoseSource` backed by an OpenXR session.

    Create it before the session (hand it to the world and the loop), then
    :meth:`bind` it when the session is open.

    Parameters
    ----------
    clock : Clock
        The balance loop's clock: ``pose_at``'s ``t_s`` and ``received_time_s``
        are on it.
    alignment : StageAlignment
        Where the plate (core origin) is in the tracking space.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        alignment: StageAlignment = IDENTITY_ALIGNMENT,
    ) -> None:
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.alignment = alignment
        self._session: XrSession | None = None
        self._lock = threading.Lock()
        self._offset_ns: int | None = None
        self._offset_measured_s = -math.inf
        self._mode = "unbound"
        self.poses_located = 0

    @property
    def mode(self) -> str:
        """How loop time becomes XrTime: ``"timespec"``, ``"win32"``, ``"display_time"``."""
        return self._mode

    def bind(self, session: XrSession | None) -> None:
        """Use ``session`` from now on (``None`` unbinds: poses become ``None``)."""
        from vrbalance.xr.session import TIMESPEC_EXTENSION, WIN32_TIME_EXTENSION

        with self._lock:
            self._session = session
            self._offset_ns = None
            self._offset_measured_s = -math.inf
            if session is None:
                self._mode = "unbound"
            elif isinstance(self.clock, MonotonicClock) and (
                sys.platform != "win32" and TIMESPEC_EXTENSION in session.enabled_extensions
            ):
                self._mode = "timespec"
            elif isinstance(self.clock, MonotonicClock) and (
                sys.platform == "win32" and WIN32_TIME_EXTENSION in session.enabled_extensions
            ):
                self._mode = "win32"
            else:
                self._mode = "display_time"
        log.info("head pose source: loop time -> XrTime by %s", self._mode)

    def xr_time_ns(self, t_s: float) -> int:
        """The ``XrTime`` for loop time ``t_s`` (0 when unknown yet)."""
        session = self._session
        if session is None:
            return 0
        if self._mode == "display_time":
            return session.last_display_time_ns
        if self._offset_ns is None or t_s - self._offset_measured_s > OFFSET_REFRESH_S:
            with self._lock:
                self._measure_offset(session, t_s)
        if self._offset_ns is None:
            return session.last_display_time_ns
        return round(t_s * 1e9) + self._offset_ns

    def _measure_offset(self, session: XrSession, t_s: float) -> None:
        api = session.api
        instance = session.instance
        if instance is None:
            return
        try:
            if self._mode == "timespec":
                sec = math.floor(t_s)
                ts = api.timespec(int(sec), round((t_s - sec) * 1e9))
                raw = api.convert_timespec_time_to_time_khr(instance, ts)
            else:
                freq = ctypes.c_int64()
                ctypes.windll.kernel32.QueryPerformanceFrequency(ctypes.byref(freq))  # type: ignore[attr-defined]
                counter = ctypes.c_int64(round(t_s * freq.value))
                raw = api.convert_win32_performance_counter_to_time_khr(instance, counter)
        except api.XrException as exc:
            log.warning("XrTime conversion failed (%s); using the display time instead", exc)
            self._mode = "display_time"
            return
        xr_ns = int(getattr(raw, "value", raw))  # pyopenxr returns a ctypes c_int64 (XrTime)
        self._offset_ns = xr_ns - round(t_s * 1e9)
        self._offset_measured_s = t_s

    def pose_at(self, t_s: float) -> HeadPose | None:
        """The head at loop time ``t_s`` in the core frame, or ``None`` if unknown.

        Parameters
        ----------
        t_s : float
            Time on the loop's clock, s.

        Returns
        -------
        HeadPose or None
            ``device_time_s`` is the ``XrTime`` used (in s), ``received_time_s``
            the loop clock after locating; ``tracked`` is False when the
            runtime only inferred position or orientation (e.g. tracking lost
            and the pose held).
        """
        session = self._session
        if session is None:
            return None
        xr_time = self.xr_time_ns(t_s)
        located = session.locate_head(xr_time)
        if located is None:
            return None
        position_m, orientation = xr_pose_to_core(
            located.position_xr, located.orientation_xr, self.alignment
        )
        self.poses_located += 1
        return HeadPose(
            device_time_s=located.xr_time_ns * 1e-9,
            received_time_s=self.clock.now_s(),
            position_m=position_m,
            orientation_xyzw=orientation,
            tracked=located.position_tracked and located.orientation_tracked,
        )


__all__ = ["OFFSET_REFRESH_S", "XrHeadPoseSource"]
