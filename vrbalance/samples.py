"""Timestamped samples: the only thing devices hand to the rest of vrbalance.

Every sample carries the device's own time (when known) and the host time at
which it was received, both in seconds on the injected clock's timebase
(``received_time_s``) or the device's (``device_time_s``). ``None`` means
unknown, never a sentinel number. Snapshots are frozen, slotted and hold
tuples, so they can be handed between threads without copies or locks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlateFrame:
    """One frame of a force plate, already in physical units.

    Attributes
    ----------
    seq : int
        The device's sequence number (wraps as the device's counter does).
    device_time_s : float or None
        Device timestamp in seconds, ``None`` if the protocol has none.
    received_time_s : float or None
        Host clock time at which the frame was complete, in seconds.
    channels : tuple of float
        Four load-cell forces in newtons (``kind == "cells4"``) or
        ``(Fx, Fy, Fz, Mx, My, Mz)`` in N and N·m in the core frame
        (x right, y anterior, z up) for ``kind == "six_axis"``.
    kind : str
        ``"cells4"`` or ``"six_axis"``.
    """

    seq: int
    device_time_s: float | None
    received_time_s: float | None
    channels: tuple[float, ...]
    kind: str = "cells4"


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One parsed frame of raw counts, before calibration.

    Attributes
    ----------
    seq : int
        Sequence number as sent.
    device_time_s : float or None
        Device timestamp in seconds.
    received_time_s : float or None
        Host time when the last byte of the frame was fed to the parser.
    counts : tuple of int
        Raw channel counts (4 or 6), in wire order.
    """

    seq: int
    device_time_s: float | None
    received_time_s: float | None
    counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class HeadPose:
    """The head (headset centre-eye) pose in the core frame.

    Attributes
    ----------
    device_time_s : float or None
        Runtime's time of the pose (OpenXR ``XrTime`` converted to s), if any.
    received_time_s : float or None
        Host clock time at which the pose was located.
    position_m : tuple of 3 float
        (x right, y anterior, z up) in metres; origin at the centre of the
        feet/plate on the floor.
    orientation_xyzw : tuple of 4 float
        Unit quaternion rotating head-local axes (x right, y forward, z up)
        into the core frame.
    tracked : bool
        False when the source reports the pose as invalid or merely predicted.
    """

    device_time_s: float | None
    received_time_s: float | None
    position_m: tuple[float, float, float]
    orientation_xyzw: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    tracked: bool = True
