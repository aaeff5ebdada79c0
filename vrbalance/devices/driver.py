"""The force-plate driver: a reader thread owns the serial port.

Layers, after pyserial's ``serial.threaded.ReaderThread``: the port (pyserial,
``serial_for_url`` so ``/dev/ttyUSB0``, a pty path and ``loop://`` all work) ->
this module's read loop -> a pure protocol from :mod:`vrbalance.devices.protocols`
(bytes in, :class:`RawFrame` out) -> :class:`FrameConverter` (counts -> newtons
in the core frame) -> a bounded ring buffer that the balance loop empties every
tick with :meth:`ForcePlate.drain`.

The read loop keeps port I/O failures and parse failures apart: a
``SerialException``/``OSError`` from the port means the device is gone (state
``lost``, then reconnect with back-off); an exception from the parser or the
converter is a bug or a corrupt calibration, counted in ``parse_errors`` and
published as an event, and reading goes on. Bad *bytes* are not errors at all:
the protocol drops and counts them (:class:`ParserStats`).

States (:class:`PlateState`) and the events published on each change
(``source="device"``): ``connecting`` (port open, no frame yet),
``streaming`` (``plate_streaming``; ``plate_reconnected`` after a loss),
``stalled`` (``plate_stalled``: no frame for ``stall_after_s``; the port is
still there), ``lost`` (``plate_lost``: the port failed or vanished; retried
every 50-250 ms so a replugged plate resumes well within 1 s), ``closed``.
While the plate is stalled or lost :meth:`ForcePlate.drain` returns ``[]`` and
the balance loop carries on with the head pose alone.

The port is reached only through a few hooks (``_open_port``, ``_read``,
``_io_error_types``, ``_make_protocol``, ``_parse``, ``_after_open``), so a
plate on another transport keeps everything above: the Wii Balance Board
through Linux input is :class:`vrbalance.devices.evdev_plate.EvdevPlate`.
"""

from __future__ import annotations

import enum
import errno
import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from vrbalance.clock import Clock, MonotonicClock
from vrbalance.devices.calibration import Calibration, FrameConverter, find_calibration
from vrbalance.devices.protocols import ParserStats, make_protocol
from vrbalance.errors import DeviceError, ProtocolError
from vrbalance.events import Event
from vrbalance.samples import PlateFrame

log = logging.getLogger(__name__)

DEFAULT_BACKOFF_S: tuple[float, ...] = (0.05, 0.1, 0.2, 0.25)
"""Reconnect waits; the last repeats. Capped at 0.25 s so a replug resumes in < 1 s."""
#: Shortest time between two ``plate_data_rejected`` events, in s.
REJECTED_EVENT_INTERVAL_S = 1.0
#: How often the reader looks at the parser's drop counts, in s (a first drop is
#: flagged within this time).
REJECTED_CHECK_INTERVAL_S = 0.1
#: The :class:`ParserStats` fields that count a dropped line or frame, by reason.
_REJECT_REASONS: tuple[str, ...] = (
    "crc_failures",
    "malformed",
    "checksum_missing",
    "overlong_lines",
    "out_of_order",
    "time_reversed",
)

EventHook = Callable[[Event], None]
FramesHook = Callable[[Sequence[PlateFrame], float], None]


class PlateState(enum.Enum):
    """Where a :class:`ForcePlate` is in its life."""

    CONNECTING = "connecting"
    STREAMING = "streaming"
    STALLED = "stalled"
    LOST = "lost"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class DriverStats:
    """Counters of one :class:`ForcePlate` (a snapshot).

    Attributes
    ----------
    frames : int
        Frames pushed into the ring buffer.
    overflowed : int
        Frames dropped because nobody drained the buffer (oldest first).
    io_errors : int
        Port failures (each one a ``lost``).
    parse_errors : int
        Exceptions raised by the protocol, the converter or the ``on_frames``
        hook: bugs in code handling good bytes, not bad bytes (those the
        protocol drops and counts in ``parser``) and not port failures.
    reconnects : int
        Successful reopenings after a loss.
    parser : ParserStats
        What the protocol dropped since the plate was created (reconnects included).
    """

    frames: int
    overflowed: int
    io_errors: int
    parse_errors: int
    reconnects: int
    parser: ParserStats


def open_serial(port: str, baud: int, *, timeout_s: float = 0.01, exclusive: bool = True) -> Any:
    """Open ``port`` with pyserial, turning failures into a :class:`DeviceError` naming it.

    Raises
    ------
    DeviceError
        The port does not exist, is not ours to open (join ``dialout``), or is
        busy (another program holds its exclusive lock).
    """
    import serial

    try:
        return serial.serial_for_url(
            port, baudrate=baud, timeout=timeout_s, exclusive=exclusive, write_timeout=0.5
        )
    except serial.SerialException as exc:
        code = exc.errno
        if code == errno.ENOENT:
            raise DeviceError(
                f"serial port {port!r} does not exist: is the plate plugged in and powered? "
                f"ports present: {_present_ports()}"
            ) from exc
        if code in (errno.EACCES, errno.EPERM):
            raise DeviceError(
                f"permission denied opening serial port {port!r}: add your user to the "
                "'dialout' group (sudo usermod -aG dialout $USER), then log out and back in"
            ) from exc
        if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK):
            raise DeviceError(
                f"serial port {port!r} is busy: another program (or another vrbalance) "
                "has it open; close that first"
            ) from exc
        raise DeviceError(f"could not open serial port {port!r}: {exc}") from exc
    except (ValueError, OSError) as exc:
        raise DeviceError(f"could not open serial port {port!r}: {exc}") from exc


def _present_ports() -> str:
    try:
        from serial.tools import list_ports

        names = sorted(p.device for p in list_ports.comports())
    except (ImportError, OSError):  # listing is a courtesy; never hide the real error
        return "(could not list)"
    return ", ".join(names) if names else "none"


class ForcePlate:
    """A serial force plate streaming calibrated frames into a ring buffer.

    Parameters
    ----------
    port : str
        Device path (``/dev/ttyUSB0``, a pty path) or pyserial URL (``loop://``).
    plate : PlateSpec
        Kind, geometry, protocol, baud rate and channel map.
    calibration : Calibration, optional
        Default: :func:`~vrbalance.devices.calibration.find_calibration` (the
        user's measured one, else the shipped nominal one).
    clock : Clock, optional
        Stamps ``received_time_s`` and times the states (default monotonic).
    protocol : {"ascii", "binary"}, optional
        Override the plate's protocol.
    baud : int, optional
        Override the plate's baud rate.
    buffer_frames : int
        Ring-buffer capacity; 8192 frames is 8 s at 1 kHz.
    stall_after_s : float
        No frame for this long while the port is fine -> ``stalled`` (default
        0.1 s: ten frames at 100 Hz).
    first_frame_timeout_s : float
        :meth:`open` fails if no valid frame arrives within this (2 s).
    wait_for_first_frame : bool
        Make :meth:`open` block until the first frame (or fail).
    reconnect : bool
        Retry after a loss (default) or stay ``lost``.
    backoff_s : sequence of float
        Waits between reconnect attempts; the last repeats.
    on_event : callable, optional
        Called with each :class:`Event` from the reader thread (keep it short).
    on_frames : callable, optional
        ``on_frames(frames, t_s)`` right after frames are pushed (benchmarks,
        recorders that want every frame).
    read_timeout_s : float
        Longest blocking read, so stalls and ``close`` are noticed promptly.

    Notes
    -----
    ``close`` is idempotent and the object is a context manager; it tears
    down in reverse order (stop the thread, then close the port).
    """

    def __init__(
        self,
        port: str,
        plate: Any,
        calibration: Calibration | None = None,
        *,
        clock: Clock | None = None,
        protocol: str | None = None,
        baud: int | None = None,
        buffer_frames: int = 8192,
        stall_after_s: float = 0.1,
        first_frame_timeout_s: float = 2.0,
        wait_for_first_frame: bool = True,
        reconnect: bool = True,
        backoff_s: Sequence[float] = DEFAULT_BACKOFF_S,
        on_event: EventHook | None = None,
        on_frames: FramesHook | None = None,
        read_timeout_s: float = 0.01,
    ) -> None:
        self.port = str(port)
        self.plate = plate
        self.calibration = calibration or find_calibration(plate.id)
        self._converter = FrameConverter(plate, self.calibration)
        self.protocol_name = protocol or plate.serial.protocol
        self.baud = int(baud or plate.serial.baud)
        n_channels = 4 if plate.kind == "cells4" else 6
        self._protocol: Any = self._make_protocol(n_channels)
        self._clock = clock or MonotonicClock()
        self._buffer: deque[PlateFrame] = deque(maxlen=buffer_frames)
        self._events: deque[Event] = deque(maxlen=1024)
        self._stall_after_s = stall_after_s
        self._first_frame_timeout_s = first_frame_timeout_s
        self._wait_first = wait_for_first_frame
        self._reconnect = reconnect
        self._backoff_s = tuple(backoff_s) or DEFAULT_BACKOFF_S
        self._on_event = on_event
        self._on_frames = on_frames
        self._read_timeout_s = read_timeout_s
        self._state = PlateState.CLOSED
        self._state_lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serial: Any = None
        self._open_error: DeviceError | None = None
        self._frames = 0
        self._overflowed = 0
        self._io_errors = 0
        self._parse_errors = 0
        self._reconnects = 0
        self._reported = ParserStats()  # parser totals at the last plate_data_rejected
        self._reported_t_s = -math.inf
        self._next_check_s = -math.inf
        self._was_lost = False
        self._lost_since_s: float | None = None
        self._connect_t_s = 0.0
        self._last_frame_t_s: float | None = None

    # -- public API ---------------------------------------------------------
    @property
    def state(self) -> PlateState:
        return self._state

    @property
    def serial_port(self) -> Any:
        """The open pyserial object (for diagnostics and ``loop://`` tests), or None."""
        return self._serial

    def open(self) -> Self:
        """Open the port, start the reader and (by default) wait for a first frame.

        Raises
        ------
        DeviceError
            The port cannot be opened (see :func:`open_serial`), or nothing
            arrived within ``first_frame_timeout_s``.
        ProtocolError
            Bytes arrived but no valid frame could be made of them.
        """
        if self._thread is not None:
            return self
        self._serial = self._open_port()
        # A ForcePlate may be opened again after close(): start from a clean slate.
        self._ready.clear()
        self._open_error = None
        self._was_lost = False
        self._last_frame_t_s = None
        self._protocol.reset()
        self._connect_t_s = self._clock.now_s()
        self._set_state(PlateState.CONNECTING, "plate_connecting", f"opened {self.port}")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"plate:{self.port}", daemon=True)
        self._thread.start()
        if self._wait_first:
            # Real-time guard in case the injected clock does not move.
            self._ready.wait(self._first_frame_timeout_s + 2.0)
            if self._open_error is not None or not self._ready.is_set():
                error = self._open_error or self._no_frame_error()
                self.close()
                raise error
        return self

    def close(self) -> None:
        """Stop the reader thread and close the port; safe to call twice."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        self._close_port()
        if self._state is not PlateState.CLOSED:
            self._set_state(PlateState.CLOSED, "plate_closed", f"closed {self.port}")

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def drain(self) -> list[PlateFrame]:
        """Every frame received since the last call, oldest first (``[]`` if none)."""
        out: list[PlateFrame] = []
        pop = self._buffer.popleft
        append = out.append
        try:
            while True:
                append(pop())
        except IndexError:
            return out

    def drain_events(self) -> list[Event]:
        """State-change events since the last call, oldest first."""
        out: list[Event] = []
        try:
            while True:
                out.append(self._events.popleft())
        except IndexError:
            return out

    def stats(self) -> DriverStats:
        return DriverStats(
            frames=self._frames,
            overflowed=self._overflowed,
            io_errors=self._io_errors,
            parse_errors=self._parse_errors,
            reconnects=self._reconnects,
            parser=self._protocol.stats(),
        )

    # -- internals -------------------------------------------------------------
    def _no_frame_error(self) -> DeviceError:
        stats = self._protocol.stats()
        tried = (
            f"tried {self.baud} baud, {self.protocol_name} protocol, "
            f"{self._protocol.n_channels} channels"
        )
        timeout = self._first_frame_timeout_s
        if stats.bytes_received == 0:
            return DeviceError(
                f"no data from serial port {self.port!r} within {timeout:g} s "
                f"({tried}): is the plate powered and streaming?"
            )
        if stats.checksum_missing and not stats.frames:
            where = getattr(self.plate, "path", None) or "the plate's file"
            return ProtocolError(
                f"serial port {self.port!r} sends ASCII lines without the *HH checksum "
                f"({stats.checksum_missing} lines in {timeout:g} s); they are dropped because "
                "a flipped bit in one would go unnoticed: update the plate's firmware "
                f'(docs/serial-protocols.md), or set ascii_checksum = "optional" in [serial] '
                f"of {where}"
            )
        return ProtocolError(
            f"bytes but no valid frame from serial port {self.port!r} within {timeout:g} s: "
            f"wrong baud rate or protocol? ({tried}; saw {stats.bytes_received} bytes, "
            f"{stats.crc_failures} CRC failures, {stats.malformed + stats.banner_lines} "
            "unparsable lines/headers)"
        )

    def _emit(self, kind: str, message: str, severity: str, **values: object) -> None:
        event = Event(
            t_s=self._clock.now_s(),
            source="device",
            kind=kind,
            message=message,
            severity=severity,  # type: ignore[arg-type]
            values={"port": self.port, **values},
        )
        self._events.append(event)
        log.log(logging.WARNING if severity != "info" else logging.INFO, "%s: %s", kind, message)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a listener's bug must not kill the reader
                log.exception("on_event listener failed for %s", kind)

    def _set_state(self, state: PlateState, kind: str, message: str, **values: object) -> None:
        with self._state_lock:
            if self._state is state:
                return
            self._state = state
        severity = "warning" if state in (PlateState.STALLED, PlateState.LOST) else "info"
        self._emit(kind, message, severity, **values)

    def _close_port(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except (OSError, ValueError) as exc:  # already gone: nothing to release
                log.debug("closing %s: %s", self.port, exc)

    # -- transport hooks: a subclass reading another kind of port overrides these ----
    def _make_protocol(self, n_channels: int) -> Any:
        """The parser for this port's bytes (``ascii`` or ``binary`` serial frames)."""
        return make_protocol(
            self.protocol_name, n_channels, ascii_checksum=self.plate.serial.ascii_checksum
        )

    def _open_port(self) -> Any:
        """Open the port (raising :class:`DeviceError` naming it); the reader owns the result."""
        return open_serial(self.port, self.baud, timeout_s=self._read_timeout_s)

    def _io_error_types(self) -> tuple[type[BaseException], ...]:
        """Exceptions from :meth:`_read` that mean the device is gone (state ``lost``)."""
        import serial

        # TypeError/AttributeError: pyserial reading a port closed under it.
        return (serial.SerialException, OSError, TypeError, AttributeError)

    def _read(self, port: Any) -> bytes:
        """Whatever bytes are waiting (at least one), or ``b""`` after ``read_timeout_s``."""
        waiting = port.in_waiting
        return bytes(port.read(waiting if waiting > 0 else 1))

    def _parse(self, data: bytes, now_s: float) -> list[Any]:
        """Bytes -> raw frames (the protocol's ``feed``)."""
        return self._protocol.feed(data, now_s)

    def _after_open(self, now_s: float) -> None:
        """Called in the reader thread each time the port is (re)opened, before reading."""

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # never let the reader die silently
            log.exception("plate reader for %s failed", self.port)
            self._open_error = DeviceError(f"plate reader for {self.port!r} failed: {exc}")
            self._ready.set()

    def _loop(self) -> None:
        clock = self._clock
        protocol = self._protocol
        convert = self._converter.convert
        io_errors = self._io_error_types()
        read = self._read
        parse = self._parse
        backoff_i = 0
        self._after_open(clock.now_s())
        while not self._stop.is_set():
            port = self._serial
            if port is None:
                if not self._reconnect:
                    return
                wait_s = self._backoff_s[min(backoff_i, len(self._backoff_s) - 1)]
                backoff_i += 1
                if self._stop.wait(wait_s):
                    return
                try:
                    self._serial = self._open_port()
                except DeviceError as exc:
                    log.debug("reconnect to %s failed: %s", self.port, exc)
                    continue
                backoff_i = 0
                self._reconnects += 1
                # No summing of parser stats here: a protocol's reset() keeps its counters.
                protocol.reset()
                self._connect_t_s = clock.now_s()
                self._set_state(PlateState.CONNECTING, "plate_connecting", f"reopened {self.port}")
                self._after_open(self._connect_t_s)
                continue
            # -- port I/O: failures here mean the device is gone ----------------
            try:
                data = read(port)
            except io_errors as exc:
                if self._stop.is_set():
                    return
                self._io_errors += 1
                self._close_port()
                self._was_lost = True
                self._lost_since_s = clock.now_s()
                self._set_state(
                    PlateState.LOST,
                    "plate_lost",
                    f"plate on {self.port} lost: {exc}",
                    error=str(exc),
                )
                continue
            now_s = clock.now_s()
            # -- parsing: failures here are bugs or bad calibration, not the port ---
            if data:
                try:
                    frames = [convert(raw) for raw in parse(data, now_s)]
                    self._flag_rejected(now_s)
                    if frames:
                        self._push(frames, now_s)
                        continue
                except Exception as exc:
                    self._parse_errors += 1
                    log.exception("parsing %d bytes from %s failed", len(data), self.port)
                    self._emit(
                        "plate_parse_error",
                        f"could not parse data from {self.port}: {exc}",
                        "warning",
                        error=str(exc),
                    )
                    continue
            self._check_timeouts(now_s)

    def _flag_rejected(self, now_s: float) -> None:
        """Flag dropped lines/frames as a ``plate_data_rejected`` event (at most 1/s).

        The parser counts every drop by reason; the event carries the counts
        since the previous one, so a recording shows when a cable got noisy or
        the plate repeated or reordered frames, not only a total at the end.
        """
        if now_s < self._next_check_s or now_s - self._reported_t_s < REJECTED_EVENT_INTERVAL_S:
            return
        self._next_check_s = now_s + REJECTED_CHECK_INTERVAL_S  # keeps 1 kHz reads cheap
        stats = self._protocol.stats()
        if stats.dropped == self._reported.dropped:
            return
        last = self._reported
        counts = {
            name: getattr(stats, name) - getattr(last, name)
            for name in _REJECT_REASONS
            if getattr(stats, name) != getattr(last, name)
        }
        self._reported = stats
        self._reported_t_s = now_s
        what = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in counts.items())
        self._emit(
            "plate_data_rejected",
            f"plate on {self.port}: dropped {what}",
            "warning",
            **counts,
        )

    def _push(self, frames: list[PlateFrame], now_s: float) -> None:
        """Into the ring buffer (oldest dropped and counted when full), then the hook."""
        buffer = self._buffer
        free = buffer.maxlen - len(buffer) if buffer.maxlen else len(frames)
        if len(frames) > free:
            self._overflowed += len(frames) - free
        buffer.extend(frames)
        self._frames += len(frames)
        self._last_frame_t_s = now_s
        if self._state is not PlateState.STREAMING:
            self._on_first_frame(now_s)
        if self._on_frames is not None:
            self._on_frames(frames, self._clock.now_s())

    def _on_first_frame(self, now_s: float) -> None:
        if self._was_lost:
            self._was_lost = False
            down_s = now_s - (self._lost_since_s or now_s)
            self._set_state(
                PlateState.STREAMING,
                "plate_reconnected",
                f"plate on {self.port} back after {down_s:.2f} s",
                downtime_s=down_s,
            )
        else:
            self._set_state(
                PlateState.STREAMING, "plate_streaming", f"plate on {self.port} streaming"
            )
        self._ready.set()

    def _check_timeouts(self, now_s: float) -> None:
        state = self._state
        if state is PlateState.STREAMING and self._last_frame_t_s is not None:
            silent_s = now_s - self._last_frame_t_s
            if silent_s > self._stall_after_s:
                self._set_state(
                    PlateState.STALLED,
                    "plate_stalled",
                    f"no frame from {self.port} for {silent_s * 1e3:.0f} ms",
                    silent_s=silent_s,
                )
        elif (
            state is PlateState.CONNECTING
            and not self._ready.is_set()
            and not self._was_lost
            and now_s - self._connect_t_s > self._first_frame_timeout_s
        ):
            self._open_error = self._no_frame_error()
            self._ready.set()
