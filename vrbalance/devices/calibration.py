"""Plate calibration: raw counts -> newtons in the core frame, and fitting it.

A calibration file ``calibration/calibrations/<plate-id>.toml`` holds, per
*wire* channel (the order the plate sends them), an offset in counts (the
unloaded reading) and a gain (N per count for forces, N·m per count for
moments), plus when and how it was made and how well it fitted::

    plate_id = "wii-balance-board"
    kind = "cells4"
    date = "2026-11-25T12:00:00+00:00"
    method = "fit"                 # or "nominal" (the shipped, factory-scale one)
    offsets_counts = [8120.0, -3310.0, 12003.0, 250.0]
    gains = [1.0e-4, 1.0e-4, 1.0e-4, 1.0e-4]
    [residuals]
    mass_kg = 20.0                 # the known mass used (0 for nominal)
    rms_n = 0.4
    max_n = 0.9
    per_equation_n = [...]         # every residual of the fit, in N

A channel's physical value is ``(counts - offset) * gain``; the plate's
``channel_map`` then puts wire channels into core order (cells in the order of
the plate's ``cell_positions_m``, or ``Fx Fy Fz Mx My Mz`` in the core frame).

Six-axis plates get a per-channel gain (no cross-talk matrix): the fit from
vertical masses determines the Fz, Mx and My gains; Fx, Fy and Mz cannot be
excited by a mass resting on the plate and keep the gains of the calibration
the fit started from (document this to the user; a full 6x6 matrix needs a
lab rig).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vrbalance.config.check import Fields, load_toml
from vrbalance.errors import ConfigError, DeviceError
from vrbalance.resources import data_dir, user_data_root
from vrbalance.samples import PlateFrame, RawFrame

log = logging.getLogger(__name__)

GRAVITY_M_S2 = 9.80665
"""Standard gravity: the weight of the known calibration mass is ``m * g``."""

KINDS: tuple[str, ...] = ("cells4", "six_axis")
N_CHANNELS = {"cells4": 4, "six_axis": 6}
#: Largest gain a calibration may hold, in N/count (forces) or N·m/count (moments).
#: A count is the plate's resolution: a balance plate must resolve a few newtons
#: of a 700 N stance to place the CoP within millimetres, so a gain of 10 N/count
#: (1 kg per count) is already far coarser than any usable plate. Larger values
#: are typos or corrupt files (1e308 would overflow to infinite forces).
MAX_GAIN_PER_COUNT = 10.0
#: Largest offset magnitude, in counts: the widest counts any supported protocol
#: sends are int32 (binary frames; the ASCII HX711 boards send 24-bit values).
MAX_OFFSET_COUNTS = 2.0**31
SIX_AXIS_FITTED = (2, 3, 4)
"""Core indices of Fz, Mx, My: the six-axis channels a resting mass excites."""


class CalibrationRejected(DeviceError):
    """A calibration fit was too poor (or physically impossible) to use."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """Offsets and gains of one plate, per wire channel.

    Attributes
    ----------
    plate_id : str
        The plate description this belongs to.
    kind : str
        ``"cells4"`` or ``"six_axis"``.
    date : str
        ISO 8601 time of the calibration.
    method : str
        ``"nominal"`` (shipped scale) or ``"fit"`` (measured with a known mass).
    offsets_counts : tuple of float
        Unloaded reading per wire channel, in counts.
    gains : tuple of float
        N/count (forces) or N·m/count (moments) per wire channel; all > 0.
    mass_kg : float
        Known mass used for the fit (0 for nominal).
    residual_rms_n, residual_max_n : float
        RMS and largest absolute residual of the fit, in N (moment equations
        are divided by the plate's half-size so they read in N too).
    residuals_n : tuple of float
        Every residual of the fit, in N.
    """

    plate_id: str
    kind: str
    date: str
    method: str
    offsets_counts: tuple[float, ...]
    gains: tuple[float, ...]
    mass_kg: float = 0.0
    residual_rms_n: float = 0.0
    residual_max_n: float = 0.0
    residuals_n: tuple[float, ...] = ()

    @property
    def n_channels(self) -> int:
        return len(self.gains)

    def to_toml_dict(self) -> dict[str, Any]:
        """The file's content (see the module docstring)."""
        return {
            "plate_id": self.plate_id,
            "kind": self.kind,
            "date": self.date,
            "method": self.method,
            "offsets_counts": [float(v) for v in self.offsets_counts],
            "gains": [float(v) for v in self.gains],
            "residuals": {
                "mass_kg": float(self.mass_kg),
                "rms_n": float(self.residual_rms_n),
                "max_n": float(self.residual_max_n),
                "per_equation_n": [float(v) for v in self.residuals_n],
            },
        }


def calibration_path(plate_id: str) -> Path:
    """Where the shipped calibration of ``plate_id`` lives."""
    return data_dir("calibration") / "calibrations" / f"{plate_id}.toml"


def user_calibration_path(plate_id: str) -> Path:
    """Where ``vrbalance calibrate plate`` writes by default.

    ``<data folder>/calibrations/<plate-id>.toml``, the data folder being
    ``$VRBALANCE_DATA`` or the platform's per-user data directory: the shipped
    folder may be read-only (an installed wheel), and a measured calibration
    belongs to this machine's plate, not to the software.
    """
    return user_data_root() / "calibrations" / f"{plate_id}.toml"


def find_calibration(plate_id: str) -> Calibration:
    """The calibration to use for ``plate_id``: the user's measured one, else the shipped one."""
    path = user_calibration_path(plate_id)
    if path.is_file():
        log.info("using measured calibration %s", path)
        return load_calibration(path)
    return load_calibration(plate_id)


def load_calibration(name_or_path: str | Path) -> Calibration:
    """Read and validate a calibration file.

    Parameters
    ----------
    name_or_path : str or Path
        A plate id (``"wii-balance-board"``: the shipped file) or a path to a
        ``.toml`` file.

    Raises
    ------
    FileNotFoundError
        If there is no such file (the message gives the path).
    ConfigError
        If a field is missing, unknown or invalid (the message names file and field).
    """
    text = str(name_or_path)
    path = (
        Path(text)
        if text.endswith(".toml") or "/" in text or "\\" in text
        else calibration_path(text)
    )
    table = Fields(load_toml(path), str(path))
    plate_id = table.string("plate_id")
    kind = table.string("kind", options=KINDS)
    date = table.raw("date")
    if isinstance(date, _dt.datetime | _dt.date):
        date = date.isoformat()
    if not isinstance(date, str):
        raise ConfigError(f"{path} date: expected an ISO date string, got {date!r}")
    method = table.string("method", options=("nominal", "fit"))
    n = N_CHANNELS[kind]
    offsets = table.numbers(
        "offsets_counts", length=n, min_value=-MAX_OFFSET_COUNTS, max_value=MAX_OFFSET_COUNTS
    )
    gains = table.numbers("gains", length=n)
    for i, gain in enumerate(gains):
        if not gain > 0.0:
            raise ConfigError(f"{path} gains[{i}]: expected a value > 0, got {gain!r}")
        if gain > MAX_GAIN_PER_COUNT:
            raise ConfigError(
                f"{path} gains[{i}]: {gain!r} per count is beyond any balance plate "
                f"(at most {MAX_GAIN_PER_COUNT:g} N or N*m per count); re-run "
                "`vrbalance calibrate plate` or restore the file"
            )
    residuals = table.table("residuals", default={})
    mass_kg = residuals.number("mass_kg", default=0.0, min_value=0.0)
    rms_n = residuals.number("rms_n", default=0.0, min_value=0.0)
    max_n = residuals.number("max_n", default=0.0, min_value=0.0)
    per_eq = residuals.numbers("per_equation_n", default=[])
    residuals.finish()
    table.finish()
    return Calibration(
        plate_id=plate_id,
        kind=kind,
        date=date,
        method=method,
        offsets_counts=offsets,
        gains=gains,
        mass_kg=mass_kg,
        residual_rms_n=rms_n,
        residual_max_n=max_n,
        residuals_n=per_eq,
    )


def write_calibration(calibration: Calibration, path: str | Path) -> Path:
    """Write ``calibration`` as TOML (creating parent folders); return the path."""
    import tomli_w

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(calibration.to_toml_dict()), encoding="utf-8")
    log.info("wrote calibration of %s to %s", calibration.plate_id, path)
    return path


# ----------------------------------------------------------------- plate plumbing


def wire_order(plate: Any) -> tuple[int, ...]:
    """Wire channel index of each core channel: ``core[i] = wire[order[i]]``.

    Read from ``plate.serial.channel_map`` (a sequence of wire indices in core
    order); a missing map means identity.
    """
    n = N_CHANNELS[plate.kind]
    mapping = getattr(plate.serial, "channel_map", None)
    if mapping is None:
        return tuple(range(n))
    order = tuple(int(i) for i in mapping)
    if sorted(order) != list(range(n)):
        raise ConfigError(
            f"plate {plate.id!r} channel_map: expected a permutation of 0..{n - 1}, got {order!r}"
        )
    return order


class FrameConverter:
    """Turns :class:`RawFrame` counts into :class:`PlateFrame` newtons, core order.

    Parameters
    ----------
    plate : PlateSpec
        The plate description (kind, channel map).
    calibration : Calibration
        Offsets and gains in wire order; its kind must match the plate's.
    """

    __slots__ = ("_gains", "_kind", "_offsets", "_order", "calibration", "order")

    def __init__(self, plate: Any, calibration: Calibration) -> None:
        if calibration.kind != plate.kind:
            raise ConfigError(
                f"calibration of {calibration.plate_id!r} is for a {calibration.kind} plate, "
                f"plate {plate.id!r} is {plate.kind}"
            )
        self.calibration = calibration
        self.order = wire_order(plate)
        self._kind = plate.kind
        self._order = self.order
        self._offsets = tuple(calibration.offsets_counts[j] for j in self.order)
        self._gains = tuple(calibration.gains[j] for j in self.order)

    def convert(self, raw: RawFrame) -> PlateFrame:
        """One frame (about 2 µs: plain Python, no numpy, for the reader thread)."""
        counts = raw.counts
        channels = tuple(
            (counts[j] - o) * g
            for j, o, g in zip(self._order, self._offsets, self._gains, strict=True)
        )
        return PlateFrame(raw.seq, raw.device_time_s, raw.received_time_s, channels, self._kind)

    def counts_to_core(self, counts: npt.ArrayLike) -> np.ndarray:
        """Vectorised: wire counts ``(n, C)`` -> physical values ``(n, C)`` in core order."""
        c = np.asarray(counts, dtype=float)[..., list(self._order)]
        return (c - np.asarray(self._offsets)) * np.asarray(self._gains)

    def core_to_counts(self, values: npt.ArrayLike) -> np.ndarray:
        """Inverse: core-order physical values ``(n, C)`` -> wire counts (float) ``(n, C)``."""
        core_counts = np.asarray(values, dtype=float) / np.asarray(self._gains) + np.asarray(
            self._offsets
        )
        out = np.empty_like(core_counts)
        out[..., list(self._order)] = core_counts
        return out


# ------------------------------------------------------------------------ fitting


def calibration_positions(plate: Any) -> list[tuple[str, tuple[float, float]]]:
    """Where the known mass goes, in order: centre, then each corner.

    For a four-cell plate a "corner" is directly above each load cell (the
    most informative place, and easy to find); for a six-axis plate it is
    halfway from the centre to each corner. Positions are in the core frame
    (x right, y anterior), metres.
    """
    geometry = plate.geometry
    if plate.kind == "cells4":
        corners = [tuple(float(v) for v in p) for p in np.asarray(geometry.cell_positions_m)]
    else:
        hx, hy = geometry.width_m / 4.0, geometry.depth_m / 4.0
        corners = [(-hx, hy), (hx, hy), (-hx, -hy), (hx, -hy)]  # the cells4 files' order
    out: list[tuple[str, tuple[float, float]]] = [("centre", (0.0, 0.0))]
    for x, y in corners:
        name = f"{'front' if y > 0 else 'back'}-{'right' if x > 0 else 'left'}"
        out.append((name, (x, y)))
    return out


@dataclass(frozen=True, slots=True)
class LoadRecord:
    """Counts recorded while a known mass rested at one position.

    Attributes
    ----------
    position_m : tuple of 2 float
        (x, y) of the mass in the core frame, m.
    mass_kg : float
        The mass.
    counts : ndarray, shape (n, C)
        Raw wire counts recorded, one row per frame.
    """

    position_m: tuple[float, float]
    mass_kg: float
    counts: np.ndarray


def _char_length_m(plate: Any) -> float:
    """Half the plate's smaller side: divides moment equations so they read in N."""
    return 0.5 * min(plate.geometry.width_m, plate.geometry.depth_m)


def fit_calibration(
    plate: Any,
    tare_counts: npt.ArrayLike,
    loads: Sequence[LoadRecord],
    *,
    base: Calibration | None = None,
    max_residual_n: float | None = None,
    date: str | None = None,
) -> Calibration:
    """Fit offsets and gains from a tare and known masses (least squares).

    Offsets are the mean unloaded counts. Each load gives three equations,
    linear in the gains: the vertical force equals ``m g``, and the moments
    about x and y equal ``m g y`` and ``m g x`` (for a four-cell plate
    ``sum_i g_i d_i x_i = m g x``; for a six-axis plate ``Mx = m g y`` and
    ``My = -m g x``). Moment equations are divided by half the plate's
    smaller side so every residual reads in newtons. ``numpy.linalg.lstsq``
    solves them.

    Parameters
    ----------
    plate : PlateSpec
        Geometry, kind and channel map.
    tare_counts : array_like, shape (n, C)
        Wire counts of the empty plate.
    loads : sequence of LoadRecord
        At least the centre and the four corners for a good fit (three loads
        not on a line is the minimum).
    base : Calibration, optional
        Supplies the six-axis Fx, Fy, Mz gains (which a resting mass cannot
        excite); defaults to the shipped nominal calibration's.
    max_residual_n : float, optional
        Reject the fit if any residual exceeds this; default ``max(2 N, 2 %
        of the heaviest load's weight)``: a good four-cell fit is within
        about 1 % (HX711 noise and placement error of a centimetre).
    date : str, optional
        ISO time to record; default now (UTC).

    Raises
    ------
    CalibrationRejected
        If a residual exceeds ``max_residual_n``, a gain is not positive, or
        the loads cannot determine the gains; the message says which and how
        far off.
    """
    kind = plate.kind
    n = N_CHANNELS[kind]
    tare = np.atleast_2d(np.asarray(tare_counts, dtype=float))
    if tare.shape[1] != n or tare.shape[0] < 1:
        raise CalibrationRejected(
            f"tare: expected counts of shape (n, {n}), got {tare.shape} for plate {plate.id!r}"
        )
    if len(loads) < 3:
        raise CalibrationRejected(
            f"need at least 3 loads (centre and corners) to fit plate {plate.id!r}, "
            f"got {len(loads)}"
        )
    order = list(wire_order(plate))
    offsets_wire = tare.mean(axis=0)
    length_m = _char_length_m(plate)
    rows: list[np.ndarray] = []
    targets: list[float] = []
    if kind == "cells4":
        cells = np.asarray(plate.geometry.cell_positions_m, dtype=float)
        for load in loads:
            d = (np.asarray(load.counts, dtype=float).mean(axis=0) - offsets_wire)[order]
            weight = load.mass_kg * GRAVITY_M_S2
            x, y = load.position_m
            rows += [d, d * cells[:, 0] / length_m, d * cells[:, 1] / length_m]
            targets += [weight, weight * x / length_m, weight * y / length_m]
        fitted = list(range(4))
    else:
        for load in loads:
            d = (np.asarray(load.counts, dtype=float).mean(axis=0) - offsets_wire)[order]
            weight = load.mass_kg * GRAVITY_M_S2
            x, y = load.position_m
            rows += [
                np.array([d[2], 0.0, 0.0]),
                np.array([0.0, d[3] / length_m, 0.0]),
                np.array([0.0, 0.0, d[4] / length_m]),
            ]
            targets += [weight, weight * y / length_m, -weight * x / length_m]
        fitted = list(SIX_AXIS_FITTED)
    a = np.vstack(rows)
    b = np.asarray(targets)
    solution, _, rank, _ = np.linalg.lstsq(a, b, rcond=None)
    if rank < len(fitted):
        raise CalibrationRejected(
            f"the loads cannot determine every gain of plate {plate.id!r} (rank {rank} "
            f"< {len(fitted)}): put the mass at the centre and at each corner, not all in a line"
        )
    residuals = a @ solution - b
    heaviest_n = max(load.mass_kg for load in loads) * GRAVITY_M_S2
    limit_n = max(2.0, 0.02 * heaviest_n) if max_residual_n is None else max_residual_n
    worst = float(np.max(np.abs(residuals)))
    for i, gain in zip(fitted, solution, strict=True):
        if not gain > 0.0:
            raise CalibrationRejected(
                f"fit rejected: channel {i} (core order) got gain {gain:.4g}, expected > 0: "
                "is that cell wired backwards, or was the mass on the wrong spot?"
            )
    if worst > limit_n:
        raise CalibrationRejected(
            f"fit rejected: largest residual {worst:.2f} N exceeds {limit_n:.2f} N "
            f"(rms {math.sqrt(float(np.mean(residuals**2))):.2f} N): did the mass move, "
            "or was it off the marked spot?"
        )
    if kind == "six_axis":
        start = base if base is not None else load_calibration(plate.id)
        gains_core = np.array([start.gains[j] for j in order])
        gains_core[fitted] = solution
    else:
        gains_core = solution
    gains_wire = np.empty(n)
    gains_wire[order] = gains_core
    return Calibration(
        plate_id=plate.id,
        kind=kind,
        date=date or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        method="fit",
        offsets_counts=tuple(float(v) for v in offsets_wire),
        gains=tuple(float(v) for v in gains_wire),
        mass_kg=float(max(load.mass_kg for load in loads)),
        residual_rms_n=float(math.sqrt(float(np.mean(residuals**2)))),
        residual_max_n=worst,
        residuals_n=tuple(float(v) for v in residuals),
    )
