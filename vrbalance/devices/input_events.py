"""Linux input events (evdev): ``struct input_event`` bytes in, plate frames out.

The kernel hands every input device's events to user space as a stream of
fixed-size ``struct input_event`` records (``include/uapi/linux/input.h``)::

    struct input_event {
        struct timeval time;   /* long tv_sec; long tv_usec (native longs) */
        __u16 type;            /* EV_SYN, EV_KEY, EV_ABS, ... */
        __u16 code;            /* ABS_HAT0X, BTN_A, SYN_REPORT, ... */
        __s32 value;
    };

24 bytes on a 64-bit machine. A *report* is every event up to an
``EV_SYN``/``SYN_REPORT``; all its events carry the same time stamp. The input
core drops an absolute axis's event when its value did not change (after the
driver's ``fuzz`` filter) and drops a report that is then empty, so a report
carries only the cells whose load changed: the parser keeps the current value
of every axis and completes a frame from it at each report that changed one.

When a reader falls behind, the kernel's per-client buffer overflows and the
stream carries ``EV_SYN``/``SYN_DROPPED``: events were lost. As the kernel
documentation (``Documentation/input/event-codes.rst``) asks, everything up to
and including the next ``SYN_REPORT`` is discarded and the state is resynced:
either from the device's current values (``EVIOCGABS``, which the driver
reads and hands to :meth:`InputEventProtocol.set_state`) or, for a source that
cannot be asked (a pipe, a recording), by waiting until every axis has been
reported again. No frame is made from a state that may be stale.

Like :mod:`vrbalance.devices.protocols` this module never touches a device
and never reads a clock (STYLE rule 5): ``feed(data, received_time_s)``.
The event type and code numbers are the kernel's stable ABI
(``include/uapi/linux/input-event-codes.h``); the tests check them against
python-evdev's ``ecodes``.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from vrbalance.config.plates import ABS_CODES
from vrbalance.devices.protocols import ParserStats
from vrbalance.samples import RawFrame

log = logging.getLogger(__name__)

EV_SYN = 0x00
EV_KEY = 0x01
EV_ABS = 0x03
SYN_REPORT = 0
SYN_DROPPED = 3
BTN_A = 0x130
"""The Wii Balance Board's one button (``wiimod_bboard_in_keys`` reports it as BTN_A)."""

__all__ = ["ABS_CODES", "EVENT", "EVENT_SIZE", "ButtonChange", "InputEventProtocol"]


EVENT = struct.Struct("@llHHi")
"""One ``struct input_event`` in this machine's native layout (24 bytes on 64-bit)."""
EVENT_SIZE = EVENT.size
_U32 = 1 << 32


def encode_event(t_s: float, ev_type: int, code: int, value: int) -> bytes:
    """One ``struct input_event`` record (tests, recordings, the benchmark).

    Parameters
    ----------
    t_s : float
        The event's time stamp in s (split into ``tv_sec``/``tv_usec``).
    ev_type, code, value : int
        As the kernel would send them.
    """
    sec = int(t_s // 1)
    usec = round((t_s - sec) * 1e6)
    if usec >= 1_000_000:
        sec, usec = sec + 1, usec - 1_000_000
    return EVENT.pack(sec, usec, ev_type, code, value)


def encode_report(t_s: float, values: dict[int, int]) -> bytes:
    """The events of one report: ``EV_ABS`` per changed axis, then ``SYN_REPORT``."""
    out = [encode_event(t_s, EV_ABS, code, value) for code, value in values.items()]
    out.append(encode_event(t_s, EV_SYN, SYN_REPORT, 0))
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class ButtonChange:
    """The board's button went down or up.

    Attributes
    ----------
    pressed : bool
        True when pressed.
    device_time_s : float
        The report's kernel time stamp, in s.
    received_time_s : float or None
        Host time of the read that completed it, in s.
    """

    pressed: bool
    device_time_s: float
    received_time_s: float | None


class InputEventProtocol:
    """Incremental parser: ``struct input_event`` bytes -> one frame per changed report.

    Parameters
    ----------
    axes : sequence of int
        The absolute-axis codes of the channels, in the order the frame's
        ``counts`` should have (for the Wii Balance Board, core cell order).
    button : int or None
        A key code reported as :class:`ButtonChange` (default ``BTN_A``).
    initial : sequence of int or None, optional
        Current value of each axis before the first event (``EVIOCGABS``);
        ``None`` (the default) means unknown: no frame until every axis
        has been reported.

    Notes
    -----
    ``seq`` of the frames counts the frames made (the kernel numbers nothing);
    ``device_time_s`` is the report's kernel time stamp (``CLOCK_MONOTONIC``
    once the driver has asked for it with ``EVIOCSCLOCKID``, else wall time).
    """

    name = "evdev"

    def __init__(
        self,
        axes: Sequence[int],
        *,
        button: int | None = BTN_A,
        initial: Sequence[int] | None = None,
    ) -> None:
        if not axes or len(set(axes)) != len(axes):
            raise ValueError(f"axes must be distinct axis codes, got {list(axes)!r}")
        self.axes = tuple(int(a) for a in axes)
        self.n_channels = len(self.axes)
        self.button = button
        self._index = {code: i for i, code in enumerate(self.axes)}
        self._bytes_received = 0
        self._bytes_discarded = 0
        self._frames = 0
        self._malformed = 0
        self._dropped_reports = 0
        self._withheld = 0
        self.events = 0
        self.reset(initial)

    # -- state ---------------------------------------------------------------
    def reset(self, initial: Sequence[int] | None = None) -> None:
        """Forget partial input and the axes' values (after a reconnect)."""
        self._buf = b""
        self._values: list[int | None] = (
            [int(v) for v in initial] if initial is not None else [None] * self.n_channels
        )
        if len(self._values) != self.n_channels:
            raise ValueError(f"initial: expected {self.n_channels} values, got {len(self._values)}")
        self._changed = False
        self._dropping = False
        self.needs_resync = False
        self.button_pressed: bool | None = None
        self._pending_button: bool | None = None
        self._button_changes: list[ButtonChange] = []

    @property
    def values(self) -> tuple[int | None, ...]:
        """The current value of each axis (``None``: unknown since a drop)."""
        return tuple(self._values)

    def set_state(self, values: Sequence[int], received_time_s: float | None) -> RawFrame:
        """Take the device's current values (``EVIOCGABS``) and make a frame of them.

        Used when the device is opened and to resync after ``SYN_DROPPED``;
        the frame has no device time (the kernel stamps events, not state).
        """
        if len(values) != self.n_channels:
            raise ValueError(f"values: expected {self.n_channels}, got {len(values)}")
        self._values = [int(v) for v in values]
        self.needs_resync = False
        return self._frame(None, received_time_s)

    def take_button_changes(self) -> list[ButtonChange]:
        """Button presses and releases since the last call, oldest first."""
        out, self._button_changes = self._button_changes, []
        return out

    def stats(self) -> ParserStats:
        """Counts so far; ``sequence_gaps`` counts ``SYN_DROPPED`` (events the kernel lost)."""
        return ParserStats(
            bytes_received=self._bytes_received,
            bytes_discarded=self._bytes_discarded,
            frames=self._frames,
            malformed=self._malformed,
            sequence_gaps=self._dropped_reports,
        )

    @property
    def frames_withheld(self) -> int:
        """Reports not turned into frames because an axis was unknown after a drop."""
        return self._withheld

    # -- parsing -------------------------------------------------------------
    def _frame(self, device_time_s: float | None, received_time_s: float | None) -> RawFrame:
        seq = self._frames % _U32
        self._frames += 1
        counts = tuple(v if v is not None else 0 for v in self._values)
        return RawFrame(seq, device_time_s, received_time_s, counts)

    def feed(self, data: bytes, received_time_s: float | None) -> list[RawFrame]:
        """Parse ``data`` (any length; records may be split); return the frames it completed.

        Parameters
        ----------
        data : bytes
            The next bytes of the event stream.
        received_time_s : float or None
            Host time of the read, in s; stamped on every frame completed here.
        """
        self._bytes_received += len(data)
        buf = self._buf + data if self._buf else bytes(data)
        n_whole = len(buf) - len(buf) % EVENT_SIZE
        frames: list[RawFrame] = []
        index = self._index
        values = self._values
        for sec, usec, ev_type, code, value in EVENT.iter_unpack(buf[:n_whole]):
            self.events += 1
            if self._dropping:
                # Everything up to and including the next SYN_REPORT is unreliable.
                self._bytes_discarded += EVENT_SIZE
                if ev_type == EV_SYN and code == SYN_REPORT:
                    self._dropping = False
                    self.needs_resync = True
                continue
            if ev_type == EV_ABS:
                i = index.get(code)
                if i is not None:
                    values[i] = value
                    self._changed = True
            elif ev_type == EV_KEY:
                if code == self.button:
                    self._pending_button = value != 0
            elif ev_type == EV_SYN:
                if code == SYN_REPORT:
                    t_s = sec + usec * 1e-6
                    if self._pending_button is not None:
                        if self._pending_button != self.button_pressed:
                            self.button_pressed = self._pending_button
                            self._button_changes.append(
                                ButtonChange(self._pending_button, t_s, received_time_s)
                            )
                        self._pending_button = None
                    if self._changed:
                        self._changed = False
                        if any(v is None for v in values):
                            self._withheld += 1
                        else:
                            frames.append(self._frame(t_s, received_time_s))
                elif code == SYN_DROPPED:
                    self._dropped_reports += 1
                    self._bytes_discarded += EVENT_SIZE
                    # The events of the current report may be partial: forget them, and
                    # every value, until the device's state is known again.
                    self._dropping = True
                    self._changed = False
                    self._pending_button = None
                    for i in range(len(values)):
                        values[i] = None
                    log.debug("SYN_DROPPED: discarding until the next SYN_REPORT")
        self._buf = buf[n_whole:]
        return frames
