"""Centre of pressure from a six-channel force plate or a four-load-cell plate.

Frames: core frame, x to the patient's right, y anterior, z up, metres, origin
at the plate centre on its top surface. Forces in N, moments in N·m. ``Fz`` is
the vertical load the patient puts on the plate, positive when loaded (the
convention of the BDS data set and of most plate amplifiers' output).

Sign of the top offset ``h``: the formula ``x = (-h·Fx - My)/Fz``,
``y = (-h·Fy + Mx)/Fz`` (the issue's, and Kistler's ``(Fx·az0 - My)/Fz`` with
``az0 = -h``) is exact, for ground reaction forces in the core frame (z up,
``Fz > 0``), when the moments are taken about a point a height ``h`` *above*
the top surface. A plate amplifier that reports moments about a sensor origin
``d`` metres *below* the top surface in this frame needs ``top_offset_m = -d``.
``h = 0`` (moments already about the top surface, as in the BDS data) needs no
such care.

Below a minimum vertical load the CoP is undefined: it is returned as NaN with
``loaded == False`` instead of dividing by (almost) zero, so stepping off the
plate shows as a flag, never as a CoP flying across the room.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vrbalance.balance.geometry import STANDARD_GRAVITY_MPS2

PLATE_KINDS: tuple[str, ...] = ("cells4", "six_axis")

#: Minimum load as a fraction of body weight: well below what one foot carries
#: in any stance, well above plate noise and a foot merely touching.
MIN_LOAD_FRACTION_OF_WEIGHT = 0.05
#: Minimum load when the body mass is unknown, in N (about 2 kg).
MIN_LOAD_FALLBACK_N = 20.0


def minimum_load_n(
    body_mass_kg: float | None = None,
    *,
    fraction: float = MIN_LOAD_FRACTION_OF_WEIGHT,
    fallback_n: float = MIN_LOAD_FALLBACK_N,
) -> float:
    """The vertical load below which the CoP is undefined, in N.

    Parameters
    ----------
    body_mass_kg : float or None
        Body mass; ``None`` when unknown.
    fraction : float
        Fraction of body weight used when the mass is known (default 5 %).
    fallback_n : float
        Value used when the mass is unknown (default 20 N).
    """
    if body_mass_kg is None:
        return float(fallback_n)
    if not (body_mass_kg > 0.0 and math.isfinite(body_mass_kg)):
        raise ValueError(f"body_mass_kg: expected a positive mass, got {body_mass_kg!r}")
    if not (0.0 < fraction < 1.0):
        raise ValueError(f"fraction: expected a value in (0, 1), got {fraction!r}")
    return float(fraction * body_mass_kg * STANDARD_GRAVITY_MPS2)


@dataclass(frozen=True, slots=True)
class PlateGeometry:
    """Geometry of a force plate in the core frame.

    Attributes
    ----------
    kind : {"cells4", "six_axis"}
        Four vertical load cells, or a six-channel (Fx, Fy, Fz, Mx, My, Mz) plate.
    width_m, depth_m : float
        Outline of the top surface, medio-lateral (x) and antero-posterior (y).
    cell_positions_m : tuple of (x, y)
        ``cells4`` only: position of each load cell in channel order, metres.
    top_offset_m : float
        ``six_axis`` only: the offset ``h`` of the CoP formula, metres: the
        height of the moments' reference point above the top surface (0 when
        the moments are already about the top surface; ``-d`` for a sensor
        origin ``d`` below it). See the module docstring.

    Raises
    ------
    ValueError
        Unknown kind, wrong number of cells, cells outside the outline or
        collinear, or an offset given for the wrong kind.
    """

    kind: str
    width_m: float
    depth_m: float
    cell_positions_m: tuple[tuple[float, float], ...] = ()
    top_offset_m: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in PLATE_KINDS:
            raise ValueError(f"kind: expected one of {', '.join(PLATE_KINDS)}, got {self.kind!r}")
        for name in ("width_m", "depth_m"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 < value <= 5.0):
                raise ValueError(f"{name}: expected a size in (0, 5] m, got {value!r}")
        if not math.isfinite(self.top_offset_m):
            raise ValueError(f"top_offset_m: expected a finite number, got {self.top_offset_m!r}")
        cells = tuple((float(x), float(y)) for x, y in self.cell_positions_m)
        object.__setattr__(self, "cell_positions_m", cells)
        if self.kind == "cells4":
            if len(cells) != 4:
                raise ValueError(
                    f"cell_positions_m: a cells4 plate needs 4 cell positions, got {len(cells)}"
                )
            for i, (x, y) in enumerate(cells):
                if abs(x) > self.width_m / 2 + 1e-9 or abs(y) > self.depth_m / 2 + 1e-9:
                    raise ValueError(
                        f"cell_positions_m[{i}]: ({x}, {y}) lies outside the "
                        f"{self.width_m} x {self.depth_m} m plate outline"
                    )
            c = np.asarray(cells)
            centred = c - c.mean(axis=0)
            if np.linalg.matrix_rank(centred, tol=1e-6) < 2:
                raise ValueError("cell_positions_m: cells are collinear, the CoP is undefined")
            if self.top_offset_m != 0.0:
                raise ValueError("top_offset_m: only a six_axis plate has a top offset")
        elif cells:
            raise ValueError(
                f"cell_positions_m: only a cells4 plate has cell positions, got {len(cells)}"
            )

    @property
    def n_channels(self) -> int:
        """Number of physical channels a frame of this plate carries."""
        return 4 if self.kind == "cells4" else 6


@dataclass(frozen=True, slots=True, eq=False)
class CopResult:
    """Centre of pressure of N samples.

    Attributes
    ----------
    cop_m : ndarray, shape (N, 2), read-only
        ``(x, y)`` in metres; NaN where not ``loaded``.
    vertical_force_n : ndarray, shape (N,), read-only
        Total vertical load in N.
    loaded : ndarray of bool, shape (N,), read-only
        True where the load reached the minimum and the CoP is defined.
    """

    cop_m: NDArray[np.float64]
    vertical_force_n: NDArray[np.float64]
    loaded: NDArray[np.bool_]


def _channels(values: ArrayLike, n: int, name: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != n:
        raise ValueError(f"{name}: expected shape (N, {n}), got {np.shape(values)}")
    return arr


def _finish(x: NDArray, y: NDArray, fz: NDArray, loaded: NDArray) -> CopResult:
    cop = np.stack([x, y], axis=1)
    cop[~loaded] = np.nan
    for a in (cop, fz, loaded):
        a.setflags(write=False)
    return CopResult(cop, fz, loaded)


def cop_six_axis(
    channels: ArrayLike, *, top_offset_m: float = 0.0, min_load_n: float = MIN_LOAD_FALLBACK_N
) -> CopResult:
    """CoP of a six-channel plate: ``x = (-h·Fx - My)/Fz``, ``y = (-h·Fy + Mx)/Fz``.

    Parameters
    ----------
    channels : array_like, shape (N, 6) or (6,)
        ``(Fx, Fy, Fz, Mx, My, Mz)`` per sample in N and N·m, core frame
        (ground reaction force, ``Fz > 0`` when loaded), moments about the
        plate's reference point.
    top_offset_m : float
        Height ``h`` of that reference point above the top surface, metres
        (see the module docstring for the sign).
    min_load_n : float
        Minimum ``Fz`` in N for a defined CoP.

    Returns
    -------
    CopResult
    """
    c = _channels(channels, 6, "channels")
    fx, fy, fz, mx, my = (c[:, i] for i in range(5))
    fz = fz.copy()
    loaded = fz >= min_load_n  # NaN compares False
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = np.where(loaded, fz, 1.0)
        x = (-top_offset_m * fx - my) / denom
        y = (-top_offset_m * fy + mx) / denom
    return _finish(x, y, fz, loaded)


def cop_cells(
    forces_n: ArrayLike,
    cell_positions_m: ArrayLike,
    *,
    min_load_n: float = MIN_LOAD_FALLBACK_N,
) -> CopResult:
    """CoP of a plate on vertical load cells: force-weighted mean of cell positions.

    Parameters
    ----------
    forces_n : array_like, shape (N, k) or (k,)
        Vertical force on each cell in N, channel order.
    cell_positions_m : array_like, shape (k, 2)
        Position of each cell in metres.
    min_load_n : float
        Minimum total vertical force in N for a defined CoP.

    Returns
    -------
    CopResult
    """
    pos = np.asarray(cell_positions_m, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2 or pos.shape[0] < 3:
        raise ValueError(f"cell_positions_m: expected shape (k >= 3, 2), got {pos.shape}")
    f = _channels(forces_n, pos.shape[0], "forces_n")
    fz = f.sum(axis=1)
    loaded = fz >= min_load_n
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = np.where(loaded, fz, 1.0)
        xy = (f @ pos) / denom[:, None]
    return _finish(xy[:, 0].copy(), xy[:, 1].copy(), fz, loaded)


def compute_cop(
    channels: ArrayLike, plate: PlateGeometry, *, min_load_n: float = MIN_LOAD_FALLBACK_N
) -> CopResult:
    """CoP of N frames of ``plate``, dispatching on its kind.

    Parameters
    ----------
    channels : array_like, shape (N, plate.n_channels)
        Physical channels (cell forces, or forces and moments), SI units.
    plate : PlateGeometry
    min_load_n : float
        Minimum vertical load in N.
    """
    if plate.kind == "cells4":
        return cop_cells(channels, plate.cell_positions_m, min_load_n=min_load_n)
    return cop_six_axis(channels, top_offset_m=plate.top_offset_m, min_load_n=min_load_n)


def cop_xy(
    channels: Sequence[float], plate: PlateGeometry, min_load_n: float
) -> tuple[float, float, float]:
    """Scalar CoP of one frame with plain float arithmetic (per-tick path).

    Returns
    -------
    x_m, y_m, vertical_force_n : float
        CoP (NaN when the load is under ``min_load_n``) and total vertical load.
    """
    if plate.kind == "cells4":
        fz = 0.0
        sx = 0.0
        sy = 0.0
        for f, (cx, cy) in zip(channels, plate.cell_positions_m, strict=True):
            fz += f
            sx += f * cx
            sy += f * cy
        if fz >= min_load_n:
            return sx / fz, sy / fz, fz
        return math.nan, math.nan, fz
    fx, fy, fz, mx, my, _mz = channels
    if fz >= min_load_n:
        h = plate.top_offset_m
        return (-h * fx - my) / fz, (-h * fy + mx) / fz, fz
    return math.nan, math.nan, fz
