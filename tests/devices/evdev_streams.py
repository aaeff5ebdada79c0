"""Kernel-faithful Wii Balance Board event streams for the evdev tests.

What hid-wiimote and the input core would send for given cell loads: each cell
in 10 g units clamped at 0 (``wiimod_bboard_in_ext``), one ``EV_ABS`` per
*changed* axis (the input core drops unchanged values), then ``SYN_REPORT``;
a report in which nothing changed is not sent at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from vrbalance.devices.input_events import (
    BTN_A,
    EV_KEY,
    EV_SYN,
    SYN_DROPPED,
    SYN_REPORT,
    encode_event,
    encode_report,
)

HAT0X, HAT0Y, HAT1X, HAT1Y = 0x10, 0x11, 0x12, 0x13
CORE_AXES = (HAT1X, HAT0X, HAT1Y, HAT0Y)
"""Kernel axis of each core cell: front-left, front-right, back-left, back-right."""
G = 9.80665


def kernel_units(force_n: float) -> int:
    """A cell force in N -> the kernel's value (10 g units, clamped at 0, truncated)."""
    return max(0, int(force_n / G * 100.0))


class BoardStream:
    """Encodes successive cell loads the way the kernel would report them."""

    def __init__(self) -> None:
        self.values: dict[int, int | None] = dict.fromkeys(CORE_AXES)

    def report(self, t_s: float, forces_core_n: Sequence[float]) -> bytes:
        """Bytes for one board report at kernel time ``t_s`` (``b""`` if nothing changed)."""
        changed = {}
        for code, force in zip(CORE_AXES, forces_core_n, strict=True):
            value = kernel_units(force)
            if self.values[code] != value:
                changed[code] = value
                self.values[code] = value
        return encode_report(t_s, changed) if changed else b""

    def stream(self, t0_s: float, rate_hz: float, loads: Iterable[Sequence[float]]) -> bytes:
        return b"".join(self.report(t0_s + i / rate_hz, f) for i, f in enumerate(loads))


def button(t_s: float, pressed: bool) -> bytes:
    return encode_event(t_s, EV_KEY, BTN_A, int(pressed)) + encode_event(t_s, EV_SYN, SYN_REPORT, 0)


def dropped(t_s: float) -> bytes:
    return encode_event(t_s, EV_SYN, SYN_DROPPED, 0)
