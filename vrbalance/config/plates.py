"""Force-plate and foot-template files from ``calibration/``.

Plates live in ``calibration/plates/<id>.toml``, foot outlines in
``calibration/feet/<id>.toml``; both are found through
:func:`vrbalance.resources.data_dir`, never relative to the working directory.
Every error is a :class:`~vrbalance.errors.ConfigError` naming the file, the
table and the field.

Plate schema::

    [plate]
    id = "wii-balance-board"      # unique, equals the file stem
    name = "Wii Balance Board-sized four-cell plate"
    kind = "cells4"                # or "six_axis"
    [geometry]                     # metres, core frame (x right, y anterior)
    width_m = 0.511                # outline, medio-lateral
    depth_m = 0.316                # outline, antero-posterior
    cell_positions_m = [[x, y], ...]   # cells4 only: 4 pairs, channel order
    top_offset_m = 0.0             # six_axis only (optional, default 0)
    [serial]                       # read by the device layer
    protocol = "ascii"             # "ascii" | "binary"
    baud = 115200
    channel_map = [0, 1, 2, 3]     # wire channel of each logical channel
    ascii_checksum = "required"    # ascii only: "required" (default) | "optional"
    [evdev]                        # optional: the plate is also a Linux input device
    name = "Nintendo Wii Remote Balance Board"   # the input device's name (--port auto)
    axes = ["ABS_HAT1X", ...]      # the kernel axis of each logical channel (cell order)
    calibration = "wii-balance-board-evdev"      # calibration id for this transport

Foot schema::

    [foot]
    id = "adult"                   # equals the file stem
    name = "..."
    source = "..."                 # optional: where the outline comes from
    [outline]
    points = [[x, y], ...]         # right foot, x lateral, y anterior
    ankle = [x, y]                 # ankle axis, same units as points
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vrbalance.balance.cop import PLATE_KINDS, PlateGeometry
from vrbalance.balance.geometry import FootTemplate
from vrbalance.config.check import Fields, check_number, load_toml
from vrbalance.errors import ConfigError
from vrbalance.resources import data_dir

logger = logging.getLogger(__name__)

SERIAL_PROTOCOLS: tuple[str, ...] = ("ascii", "binary")
ABS_CODES: dict[str, int] = {
    "ABS_X": 0x00,
    "ABS_Y": 0x01,
    "ABS_Z": 0x02,
    "ABS_RX": 0x03,
    "ABS_RY": 0x04,
    "ABS_RZ": 0x05,
    "ABS_HAT0X": 0x10,
    "ABS_HAT0Y": 0x11,
    "ABS_HAT1X": 0x12,
    "ABS_HAT1Y": 0x13,
    "ABS_HAT2X": 0x14,
    "ABS_HAT2Y": 0x15,
    "ABS_HAT3X": 0x16,
    "ABS_HAT3Y": 0x17,
}
"""Linux absolute-axis names an ``[evdev]`` table may use, with their kernel codes
(``include/uapi/linux/input-event-codes.h``, stable ABI)."""
#: ``[serial] ascii_checksum``: must every ASCII line carry its ``*HH`` checksum?
#: (the same values as :data:`vrbalance.devices.protocols.ASCII_CHECKSUMS`; the
#: config layer does not import the device layer.)
ASCII_CHECKSUMS: tuple[str, ...] = ("required", "optional")
DEFAULT_FOOT_TEMPLATE = "adult"


@dataclass(frozen=True, slots=True)
class SerialSpec:
    """How a plate talks over its serial port.

    Attributes
    ----------
    protocol : {"ascii", "binary"}
        Wire protocol of the device layer.
    baud : int
        Baud rate in bit/s.
    channel_map : tuple of int
        For each logical channel (cell order, or Fx..Mz), its index on the wire.
    ascii_checksum : {"required", "optional"}
        ASCII plates: ``"required"`` drops every line without its ``*HH``
        checksum; ``"optional"`` also accepts the old checksum-less lines (a
        flipped bit in one of them goes unnoticed: only for firmware that
        cannot be updated). Always ``"required"`` for a binary plate, whose
        frames carry a CRC.
    """

    protocol: str
    baud: int
    channel_map: tuple[int, ...]
    ascii_checksum: str = "required"


@dataclass(frozen=True, slots=True)
class EvdevSpec:
    """How a plate appears as a Linux input device (``docs/wii-balance-board.md``).

    Attributes
    ----------
    name : str
        The input device's name, as the kernel driver sets it.
    axes : tuple of str
        The absolute axis (``ABS_*``) carrying each logical channel, in the
        plate's cell order.
    calibration : str
        Id of the calibration of this transport's counts (the kernel's units
        differ from the serial plate's raw counts).
    """

    name: str
    axes: tuple[str, ...]
    calibration: str


@dataclass(frozen=True, slots=True)
class PlateSpec:
    """A plate file, validated.

    Attributes
    ----------
    id : str
        Unique id, equal to the file stem.
    name : str
        Human-readable name.
    kind : {"cells4", "six_axis"}
        Same as ``geometry.kind``.
    geometry : PlateGeometry
        What the balance core needs.
    serial : SerialSpec
        What the device layer needs.
    path : pathlib.Path
        The file it came from.
    evdev : EvdevSpec or None
        How to read it as a Linux input device, if it can be.

        .. versionadded:: 0.2
    """

    id: str
    name: str
    kind: str
    geometry: PlateGeometry
    serial: SerialSpec
    path: Path
    evdev: EvdevSpec | None = None


def _folder(sub: str) -> Path:
    return data_dir("calibration") / sub


def _resolve(name_or_path: str | Path, sub: str) -> Path:
    """A bare id means ``calibration/<sub>/<id>.toml``; anything else is a path."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or "\\" in text or text.endswith(".toml"):
        return Path(name_or_path)
    path = _folder(sub) / f"{text}.toml"
    if not path.is_file():
        known = ", ".join(_list(sub)) or "(none)"
        raise FileNotFoundError(f"no {sub[:-1]} file {text!r} (looked at {path}); known: {known}")
    return path


def _list(sub: str) -> list[str]:
    folder = _folder(sub)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.toml"))


def list_plates() -> list[str]:
    """Ids of the shipped plate files, sorted."""
    return _list("plates")


def list_foot_templates() -> list[str]:
    """Ids of the shipped foot-template files, sorted."""
    return _list("feet")


def _pairs(fields: Fields, key: str, *, count: int | None = None) -> list[tuple[float, float]]:
    value: Any = fields.raw(key)
    where = fields.where
    if not isinstance(value, list):
        raise ConfigError(f"{where} {key}: expected an array of [x, y] pairs, got {value!r}")
    if count is not None and len(value) != count:
        raise ConfigError(f"{where} {key}: expected {count} [x, y] pairs, got {len(value)}")
    pairs = []
    for i, item in enumerate(value):
        if not isinstance(item, list) or len(item) != 2:
            raise ConfigError(f"{where} {key}[{i}]: expected an [x, y] pair, got {item!r}")
        x, y = (check_number(v, f"{key}[{i}][{j}]", where=where) for j, v in enumerate(item))
        pairs.append((float(x), float(y)))
    return pairs


def _check_id(fields: Fields, path: Path) -> str:
    ident = fields.string("id")
    if ident != path.stem:
        raise ConfigError(f"{fields.where} id: expected the file stem {path.stem!r}, got {ident!r}")
    return ident


def load_plate(name_or_path: str | Path) -> PlateSpec:
    """Load and validate a plate file.

    Parameters
    ----------
    name_or_path : str or pathlib.Path
        A shipped plate id (``"wii-balance-board"``) or a path to a TOML file.

    Returns
    -------
    PlateSpec

    Raises
    ------
    FileNotFoundError
        Unknown id or missing file.
    ConfigError
        Malformed TOML, missing, unknown or invalid fields; the message names
        the file, the table and the field.
    """
    path = _resolve(name_or_path, "plates")
    doc = Fields(load_toml(path), str(path))
    plate = doc.table("plate")
    ident = _check_id(plate, path)
    name = plate.string("name")
    kind = plate.string("kind", options=PLATE_KINDS)
    plate.finish()

    geo = doc.table("geometry")
    width = geo.number("width_m", min_value=0.0, max_value=5.0, min_inclusive=False)
    depth = geo.number("depth_m", min_value=0.0, max_value=5.0, min_inclusive=False)
    cells: list[tuple[float, float]] = []
    offset = 0.0
    if kind == "cells4":
        cells = _pairs(geo, "cell_positions_m", count=4)
        if "top_offset_m" in geo:
            raise ConfigError(f"{geo.where} top_offset_m: only a six_axis plate has a top offset")
    else:
        if "cell_positions_m" in geo:
            raise ConfigError(
                f"{geo.where} cell_positions_m: only a cells4 plate has cell positions"
            )
        offset = geo.number("top_offset_m", default=0.0, min_value=-1.0, max_value=1.0)
    geo.finish()
    try:
        geometry = PlateGeometry(
            kind=kind,
            width_m=width,
            depth_m=depth,
            cell_positions_m=tuple(cells),
            top_offset_m=offset,
        )
    except ValueError as exc:
        raise ConfigError(f"{geo.where} {exc}") from exc

    ser = doc.table("serial")
    protocol = ser.string("protocol", options=SERIAL_PROTOCOLS)
    baud = ser.integer("baud", min_value=300, max_value=20_000_000)
    raw_map: Any = ser.raw("channel_map")
    n = geometry.n_channels
    if not isinstance(raw_map, list) or len(raw_map) != n:
        got = len(raw_map) if isinstance(raw_map, list) else repr(raw_map)
        raise ConfigError(
            f"{ser.where} channel_map: expected {n} wire channel indices for a {kind} plate, "
            f"got {got}"
        )
    channel_map = tuple(
        int(check_number(v, f"channel_map[{i}]", where=ser.where, integer=True, min_value=0))
        for i, v in enumerate(raw_map)
    )
    if len(set(channel_map)) != n:
        raise ConfigError(
            f"{ser.where} channel_map: expected distinct wire channels, got {list(channel_map)}"
        )
    if protocol != "ascii" and "ascii_checksum" in ser:
        raise ConfigError(
            f"{ser.where} ascii_checksum: only an ascii plate has one "
            f"(a {protocol} plate's frames always carry their CRC)"
        )
    ascii_checksum = ser.string("ascii_checksum", default="required", options=ASCII_CHECKSUMS)
    if ascii_checksum == "optional":
        logger.warning(
            "%s: ascii_checksum = 'optional': lines without a checksum are accepted, "
            "and a corrupted one goes unnoticed",
            path,
        )
    ser.finish()
    evdev = _load_evdev(doc.table("evdev"), n) if "evdev" in doc else None
    doc.finish()
    logger.debug("loaded plate %s from %s", ident, path)
    return PlateSpec(
        id=ident,
        name=name,
        kind=kind,
        geometry=geometry,
        serial=SerialSpec(
            protocol=protocol,
            baud=baud,
            channel_map=channel_map,
            ascii_checksum=ascii_checksum,
        ),
        path=path,
        evdev=evdev,
    )


def _load_evdev(table: Fields, n_channels: int) -> EvdevSpec:
    name = table.string("name")
    raw: Any = table.raw("axes")
    if not isinstance(raw, list) or len(raw) != n_channels:
        got = len(raw) if isinstance(raw, list) else repr(raw)
        raise ConfigError(f"{table.where} axes: expected {n_channels} axis names, got {got}")
    for i, axis in enumerate(raw):
        if axis not in ABS_CODES:
            raise ConfigError(
                f"{table.where} axes[{i}]: expected one of {', '.join(ABS_CODES)}, got {axis!r}"
            )
    if len(set(raw)) != n_channels:
        raise ConfigError(f"{table.where} axes: expected distinct axes, got {raw}")
    calibration = table.string("calibration")
    table.finish()
    return EvdevSpec(name=name, axes=tuple(raw), calibration=calibration)


def load_foot_template(name_or_path: str | Path = DEFAULT_FOOT_TEMPLATE) -> FootTemplate:
    """Load and validate a foot-outline template.

    Parameters
    ----------
    name_or_path : str or pathlib.Path
        A shipped template id (default ``"adult"``) or a path to a TOML file.

    Returns
    -------
    FootTemplate

    Raises
    ------
    FileNotFoundError
        Unknown id or missing file.
    ConfigError
        Malformed TOML or invalid fields, naming file, table and field.
    """
    path = _resolve(name_or_path, "feet")
    doc = Fields(load_toml(path), str(path))
    foot = doc.table("foot")
    ident = _check_id(foot, path)
    foot.string("name")
    source = foot.string("source", default="")
    foot.finish()
    outline = doc.table("outline")
    points = _pairs(outline, "points")
    if len(points) < 3:
        raise ConfigError(f"{outline.where} points: expected at least 3 points, got {len(points)}")
    ankle = outline.numbers("ankle", length=2)
    outline.finish()
    doc.finish()
    try:
        return FootTemplate(ident, points, ankle, source)
    except ValueError as exc:
        raise ConfigError(f"{outline.where} {exc}") from exc
