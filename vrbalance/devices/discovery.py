"""Finding plates on this machine: serial ports and Linux input devices.

Input devices are listed from sysfs (``/sys/class/input/event*/device/name``),
which anyone may read, rather than by opening ``/dev/input/event*``: a board
the user may not open yet (not in the ``input`` group) is still found, and the
error can say what to do instead of "not found". The Wii Balance Board's extras
live beside its HID device, which is the input device's parent in sysfs
(``wdata->extension.input->dev.parent = &wdata->hdev->dev`` in the kernel's
``hid-wiimote-modules.c``):

* ``bboard_calib``: the board's factory calibration, one line of twelve
  4-digit hex values, the 0 kg points of the four sensors, then the 17 kg
  points, then the 34 kg points
  (``Documentation/ABI/testing/sysfs-driver-hid-wiimote``);
* ``power_supply/wiimote_battery_<addr>/capacity``: the battery in percent
  (``wiimod_battery``; reading it asks the board for a status report).

Every function takes the sysfs and ``/dev`` roots so tests can point them at a
folder laid out the same way.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

BALANCE_BOARD_NAME = "Nintendo Wii Remote Balance Board"
"""``WIIMOTE_NAME " Balance Board"`` in the kernel's hid-wiimote driver."""
SYS_ROOT = Path("/sys")
DEV_ROOT = Path("/dev")


@dataclass(frozen=True, slots=True)
class InputDeviceInfo:
    """One Linux input event device.

    Attributes
    ----------
    path : str
        Its device node, ``/dev/input/eventN``.
    name : str
        The name its kernel driver gave it.
    readable : bool
        Whether this user may open it (else: the ``input`` group).
    hid_dir : pathlib.Path or None
        The sysfs folder of its parent device (the board's HID device).
    """

    path: str
    name: str
    readable: bool
    hid_dir: Path | None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def list_input_devices(
    *, sys_root: Path = SYS_ROOT, dev_root: Path = DEV_ROOT
) -> list[InputDeviceInfo]:
    """Every ``eventN`` input device, sorted by number (``[]`` where there is no sysfs)."""
    folder = sys_root / "class" / "input"
    try:
        entries = [p for p in folder.iterdir() if p.name.startswith("event")]
    except OSError:
        return []

    def number(p: Path) -> int:
        digits = p.name[len("event") :]
        return int(digits) if digits.isdigit() else -1

    out = []
    for entry in sorted(entries, key=number):
        name = _read_text(entry / "device" / "name")
        if name is None:
            continue
        node = dev_root / "input" / entry.name
        parent = entry / "device" / "device"
        out.append(
            InputDeviceInfo(
                path=str(node),
                name=name,
                readable=os.access(node, os.R_OK),
                hid_dir=parent.resolve() if parent.is_dir() else None,
            )
        )
    return out


def find_input_plates(
    name: str = BALANCE_BOARD_NAME, *, sys_root: Path = SYS_ROOT, dev_root: Path = DEV_ROOT
) -> list[InputDeviceInfo]:
    """The input devices called ``name`` (the plate file's ``[evdev] name``)."""
    return [d for d in list_input_devices(sys_root=sys_root, dev_root=dev_root) if d.name == name]


def info_for_path(
    path: str, *, sys_root: Path = SYS_ROOT, dev_root: Path = DEV_ROOT
) -> InputDeviceInfo | None:
    """The sysfs view of the device node ``path`` (symlinks such as by-id followed)."""
    real = os.path.realpath(path)
    for device in list_input_devices(sys_root=sys_root, dev_root=dev_root):
        if os.path.realpath(device.path) == real:
            return device
    return None


def parse_bboard_calib(text: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``bboard_calib`` -> (0 kg, 17 kg, 34 kg) raw readings, each of the four sensors.

    The sensors are in the kernel's order: top right, bottom right, top left,
    bottom left (``wiimod_bboard_in_ext``).

    Raises
    ------
    ValueError
        If the text is not twelve colon-separated 4-digit hex values.
    """
    fields = text.strip().split(":")
    if len(fields) != 12 or any(len(f) != 4 for f in fields):
        raise ValueError(f"bboard_calib: expected 12 colon-separated hex values, got {text!r}")
    values = [int(f, 16) for f in fields]
    return tuple(values[0:4]), tuple(values[4:8]), tuple(values[8:12])


def board_calibration(
    device: InputDeviceInfo,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
    """The board's factory calibration as the kernel read it, or ``None`` if not exposed."""
    if device.hid_dir is None:
        return None
    text = _read_text(device.hid_dir / "bboard_calib")
    if text is None:
        return None
    try:
        return parse_bboard_calib(text)
    except ValueError as exc:
        log.warning("%s: %s", device.path, exc)
        return None


def battery_percent(device: InputDeviceInfo) -> int | None:
    """The board's battery in percent (0-100), or ``None`` if the driver exposes none.

    Reading it makes hid-wiimote ask the board for a status report over
    Bluetooth, so call it when opening, not while streaming.
    """
    if device.hid_dir is None:
        return None
    try:
        supplies = sorted((device.hid_dir / "power_supply").iterdir())
    except OSError:
        return None
    for supply in supplies:
        text = _read_text(supply / "capacity")
        if text is not None and text.isdigit():
            return int(text)
    return None


@dataclass(frozen=True, slots=True)
class SerialPortInfo:
    """One serial port pyserial can see.

    Attributes
    ----------
    device : str
        Its path (``/dev/ttyUSB0``).
    description : str
        What the USB descriptor says, if anything.
    """

    device: str
    description: str


def list_serial_ports() -> list[SerialPortInfo]:
    """Serial ports present, sorted (``[]`` if pyserial cannot list them)."""
    try:
        from serial.tools import list_ports

        ports = list(list_ports.comports())
    except (ImportError, OSError) as exc:
        log.debug("cannot list serial ports: %s", exc)
        return []
    return sorted(
        (SerialPortInfo(p.device, p.description if p.description != "n/a" else "") for p in ports),
        key=lambda p: p.device,
    )


def is_input_port(port: str) -> bool:
    """Whether ``--port`` names a Linux input device (``auto`` or under ``/dev/input``)."""
    if port == "auto":
        return True
    return os.path.realpath(port).startswith("/dev/input/") or port.startswith("/dev/input/")
