"""A force plate read through Linux's input layer: the Wii Balance Board.

Paired over Bluetooth, a Wii Balance Board is driven by the kernel's
``hid-wiimote`` driver, which makes it the input device "Nintendo Wii Remote
Balance Board": four absolute axes, one per load cell, already calibrated by
the kernel with the board's own factory data to units of 10 g, and ``BTN_A``
for the board's button (``docs/wii-balance-board.md`` cites the source).

:class:`EvdevPlate` is a :class:`~vrbalance.devices.driver.ForcePlate` whose
port is an input device instead of a serial port: the same reader thread, ring
buffer, states (``connecting``, ``streaming``, ``stalled``, ``lost``), events
and reconnect with back-off, so the balance loop, the safety monitor and the
recorder cannot tell the two apart. Only the transport differs:

* the port is a source of ``struct input_event`` records: a real device
  opened with python-evdev (:class:`EvdevDeviceSource`), or any file
  descriptor (:class:`FdSource`: a pipe, a recording), which is how the tests
  drive it without ``/dev/uinput``;
* the bytes are parsed by :class:`~vrbalance.devices.input_events.InputEventProtocol`;
* on (re)opening, the device's current values (``EVIOCGABS``) make the first
  frame, and after ``SYN_DROPPED`` they resync the state;
* the board's button becomes a ``plate_button`` event and a ready signal
  (:meth:`EvdevPlate.wait_for_button`); its battery is read at open.

Why a silent board is *stalled*: the input core forwards only changes, so a
board with nothing on it (every cell clamped at 0 kg) sends nothing at all,
and neither does a dead Bluetooth link until the kernel notices (seconds).
The two cannot be told apart, so silence is never turned into made-up frames
during a session: a person standing on the board moves its cells by tens of
grams many times a second, and the frames flow. Only the calibration command,
which tares an empty board, asks for the held state to be repeated
(``hold_repeat_s``).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import select
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, Self

from vrbalance.config.plates import ABS_CODES
from vrbalance.devices import discovery
from vrbalance.devices.calibration import Calibration, find_calibration
from vrbalance.devices.driver import ForcePlate
from vrbalance.devices.input_events import EVENT_SIZE, InputEventProtocol
from vrbalance.errors import ConfigError, DeviceError

log = logging.getLogger(__name__)

EVIOCSCLOCKID = 0x400445A0
"""``_IOW('E', 0xa0, int)``: choose the clock of the event time stamps."""
_READ_BYTES = EVENT_SIZE * 64


class EventSource(Protocol):
    """Where :class:`EvdevPlate` reads ``struct input_event`` records from."""

    name: str

    def fileno(self) -> int: ...

    def read(self, max_bytes: int) -> bytes: ...

    def current_values(self, axes: Sequence[int]) -> list[int] | None: ...

    def close(self) -> None: ...


class FdSource:
    """Any file descriptor carrying ``struct input_event`` records (a pipe, a file).

    It cannot be asked for the device's current values, so after a
    ``SYN_DROPPED`` the parser waits for every axis to be reported again.
    End of file means the device is gone, as ``ENODEV`` does for a real one.

    Parameters
    ----------
    fd : int
        Readable descriptor; closed by :meth:`close`.
    name : str
        For messages.
    """

    def __init__(self, fd: int, name: str = "event stream") -> None:
        self._fd: int | None = fd
        self.name = name

    def fileno(self) -> int:
        if self._fd is None:
            raise OSError(errno.EBADF, f"{self.name} is closed")
        return self._fd

    def read(self, max_bytes: int) -> bytes:
        return os.read(self.fileno(), max_bytes)

    def current_values(self, axes: Sequence[int]) -> list[int] | None:
        return None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class EvdevDeviceSource:
    """A real input device node, opened through python-evdev.

    Opening checks the device has every axis the plate needs and switches its
    time stamps to ``CLOCK_MONOTONIC`` (``EVIOCSCLOCKID``), the clock
    ``time.monotonic``/``time.perf_counter`` read on Linux, so a frame's
    ``device_time_s`` and ``received_time_s`` share a time base.

    Raises
    ------
    DeviceError
        The node does not exist, may not be opened (the ``input`` group), or
        lacks the plate's axes.
    """

    def __init__(self, path: str, axes: Sequence[int]) -> None:
        try:
            import evdev
        except ImportError as exc:  # evdev-binary is a Linux-only dependency
            raise DeviceError(
                f"cannot open input device {path!r}: python-evdev is not installed ({exc}); "
                "input devices need Linux"
            ) from exc
        try:
            self.device = evdev.InputDevice(path)
        except FileNotFoundError as exc:
            found = ", ".join(f"{d.path} ({d.name})" for d in discovery.list_input_devices())
            raise DeviceError(
                f"input device {path!r} does not exist: is the board paired, switched on and "
                f"connected? input devices present: {found or 'none'}"
            ) from exc
        except PermissionError as exc:
            raise DeviceError(
                f"permission denied opening input device {path!r}: add your user to the "
                "'input' group (sudo usermod -aG input $USER), then log out and back in"
            ) from exc
        except OSError as exc:
            raise DeviceError(f"could not open input device {path!r}: {exc}") from exc
        self.name = f"{path} ({self.device.name})"
        try:
            have = {code for code, _info in self.device.capabilities().get(0x03, [])}
        except (OSError, ValueError):
            have = set()
        missing = [code for code in axes if code not in have]
        if missing:
            self.device.close()
            raise DeviceError(
                f"input device {path!r} ({self.device.name}) has no absolute axes "
                f"{', '.join(hex(c) for c in missing)}: is it the right device?"
            )
        import fcntl  # here, not at the top: the serial plates must import on Windows too

        try:
            fcntl.ioctl(self.device.fd, EVIOCSCLOCKID, struct.pack("i", time.CLOCK_MONOTONIC))
        except OSError as exc:  # old kernels: stamps stay on wall time, still ordered
            log.warning("%s: cannot switch event time stamps to CLOCK_MONOTONIC: %s", path, exc)

    def fileno(self) -> int:
        return int(self.device.fd)

    def read(self, max_bytes: int) -> bytes:
        return os.read(self.device.fd, max_bytes)

    def current_values(self, axes: Sequence[int]) -> list[int] | None:
        """Each axis's current value (``EVIOCGABS``)."""
        return [int(self.device.absinfo(code).value) for code in axes]

    def close(self) -> None:
        self.device.close()


class EvdevPlate(ForcePlate):
    """A force plate that is a Linux input device (the Wii Balance Board).

    Parameters
    ----------
    port : str
        ``/dev/input/eventN`` (or a ``/dev/input/by-id`` link), or ``"auto"``:
        find the input device named as the plate's ``[evdev] name`` each time
        it is (re)opened, so a board re-paired under a new number is found.
    plate : PlateSpec
        A plate with an ``[evdev]`` table.
    calibration : Calibration, optional
        Default: the measured or shipped calibration named by ``[evdev]
        calibration`` (kernel units -> N).
    opener : callable, optional
        ``opener(port) -> EventSource``; default opens the device node with
        python-evdev. Tests pass pipes.
    hold_repeat_s : float, optional
        Repeat the held state as a frame after this much silence (the
        calibration command's tare of an empty board). Default: never (see
        the module docstring).
    **kwargs
        As :class:`~vrbalance.devices.driver.ForcePlate` (clock, buffer,
        ``stall_after_s``, ``on_event``...).

    Raises
    ------
    ConfigError
        The plate has no ``[evdev]`` table.
    """

    def __init__(
        self,
        port: str,
        plate: Any,
        calibration: Calibration | None = None,
        *,
        opener: Callable[[str], EventSource] | None = None,
        hold_repeat_s: float | None = None,
        sys_root: Any = discovery.SYS_ROOT,
        dev_root: Any = discovery.DEV_ROOT,
        **kwargs: Any,
    ) -> None:
        spec = getattr(plate, "evdev", None)
        if spec is None:
            raise ConfigError(
                f"plate {plate.id!r} ({plate.path}) has no [evdev] table: it cannot be read as "
                "a Linux input device; give a serial --port"
            )
        n = len(spec.axes)
        # The parser puts the axes in the plate's channel order already.
        view = dataclasses.replace(
            plate, serial=dataclasses.replace(plate.serial, channel_map=tuple(range(n)))
        )
        self.evdev = spec
        self._axes = tuple(ABS_CODES[a] for a in spec.axes)
        self._opener = opener
        self._hold_repeat_s = hold_repeat_s
        self._sys_root = sys_root
        self._dev_root = dev_root
        self.device_path: str | None = None
        self.battery_percent: int | None = None
        self.button_presses = 0
        self._button = threading.Condition()
        kwargs.setdefault("protocol", "evdev")
        super().__init__(port, view, calibration or find_calibration(spec.calibration), **kwargs)

    # -- public ------------------------------------------------------------------
    def open(self) -> Self:
        """Open the device, start the reader, wait for the first frame, read the battery.

        Raises
        ------
        DeviceError
            No such board, no permission (``input`` group), or nothing read.
        """
        super().open()
        device = self._device_info()
        if device is not None:
            self.battery_percent = discovery.battery_percent(device)
            if self.battery_percent is not None:
                self._emit(
                    "plate_battery",
                    f"board battery {self.battery_percent} %",
                    "warning" if self.battery_percent <= 15 else "info",
                    battery_percent=self.battery_percent,
                )
        return self

    def wait_for_button(self, timeout_s: float) -> bool:
        """Block until the board's button is pressed after this call (a "ready" signal).

        Returns False after ``timeout_s`` without a press; a press before the
        call does not count (an old press must not start a trial).
        """
        with self._button:
            start = self.button_presses
            return self._button.wait_for(lambda: self.button_presses > start, timeout_s)

    @property
    def button_pressed(self) -> bool | None:
        """Whether the button is down now (``None``: not reported yet)."""
        return self._protocol.button_pressed

    # -- transport hooks -----------------------------------------------------------
    def _make_protocol(self, n_channels: int) -> InputEventProtocol:
        return InputEventProtocol(self._axes)

    def _device_info(self) -> discovery.InputDeviceInfo | None:
        if self.device_path is None:
            return None
        return discovery.info_for_path(
            self.device_path, sys_root=self._sys_root, dev_root=self._dev_root
        )

    def _resolve(self) -> str:
        if self.port != "auto":
            return self.port
        found = discovery.find_input_plates(
            self.evdev.name, sys_root=self._sys_root, dev_root=self._dev_root
        )
        if not found:
            present = discovery.list_input_devices(sys_root=self._sys_root, dev_root=self._dev_root)
            names = ", ".join(f"{d.path} ({d.name})" for d in present) or "none"
            raise DeviceError(
                f"--port auto: no input device named {self.evdev.name!r} (input devices: "
                f"{names}); pair the board and switch it on (docs/wii-balance-board.md)"
            )
        if len(found) > 1:
            log.warning("several %r found; using %s", self.evdev.name, found[0].path)
        return found[0].path

    def _open_port(self) -> EventSource:
        path = self._resolve()
        self.device_path = path
        if self._opener is not None:
            return self._opener(path)
        return EvdevDeviceSource(path, self._axes)

    def _io_error_types(self) -> tuple[type[BaseException], ...]:
        return (OSError, ValueError)

    def _read(self, port: EventSource) -> bytes:
        ready, _, _ = select.select([port.fileno()], [], [], self._read_timeout_s)
        if not ready:
            return b""
        data = port.read(_READ_BYTES)
        if not data:
            raise OSError(errno.ENODEV, f"end of the event stream of {port.name}")
        return data

    def _after_open(self, now_s: float) -> None:
        """Start from the device's current values (a first frame), if it can tell them."""
        port = self._serial
        values = port.current_values(self._axes) if port is not None else None
        self._protocol.reset(values)
        if values is not None:
            raw = self._protocol.set_state(values, now_s)
            self._push([self._converter.convert(raw)], now_s)

    def _parse(self, data: bytes, now_s: float) -> list[Any]:
        protocol = self._protocol
        frames = protocol.feed(data, now_s)
        if protocol.needs_resync:
            port = self._serial
            values = port.current_values(self._axes) if port is not None else None
            if values is not None:
                frames.append(protocol.set_state(values, now_s))
            self._emit(
                "plate_events_dropped",
                f"input events from {self.port} were dropped by the kernel (reader too slow); "
                + ("resynced" if values is not None else "waiting for every cell to report"),
                "warning",
                drops=protocol.stats().sequence_gaps,
            )
            protocol.needs_resync = False
        for change in protocol.take_button_changes():
            if change.pressed:
                with self._button:
                    self.button_presses += 1
                    self._button.notify_all()
            self._emit(
                "plate_button",
                f"board button {'pressed' if change.pressed else 'released'}",
                "info",
                pressed=change.pressed,
                device_time_s=change.device_time_s,
            )
        return frames

    def _check_timeouts(self, now_s: float) -> None:
        hold = self._hold_repeat_s
        last = self._last_frame_t_s
        values = self._protocol.values
        if (
            hold is not None
            and last is not None
            and now_s - last >= hold
            and None not in values
            and self._serial is not None
        ):
            raw = self._protocol.set_state(values, now_s)  # type: ignore[arg-type]
            self._push([self._converter.convert(raw)], now_s)
            return
        super()._check_timeouts(now_s)

    def _no_frame_error(self) -> DeviceError:
        return DeviceError(
            f"no complete report from input device {self.device_path or self.port!r} within "
            f"{self._first_frame_timeout_s:g} s ({self._protocol.events} events read): is "
            "the board switched on and its blue light steady?"
        )


def open_plate(plate: Any, port: str, *, clock: Any = None, **kwargs: Any) -> ForcePlate:
    """Open ``plate`` on ``port``: an input device (``auto``, ``/dev/input/...``) or serial.

    The one place that chooses the transport from ``--port``, for ``run`` and
    ``calibrate``.
    """
    cls = EvdevPlate if discovery.is_input_port(port) else ForcePlate
    return cls(port, plate, clock=clock, **kwargs).open()
