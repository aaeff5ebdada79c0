"""Side leg raises: repetitions, holds, sway during the holds and trunk lean (pure).

Raising one leg sideways puts the whole load on the other foot: on a plate
the CoP moves from between the feet to under the stance foot and stays there
while the leg is up. With a plate, the medio-lateral CoP relative to its
quiet-stance position (median of the first :data:`QUIET_S`), smoothed over
:data:`SMOOTH_S`, is the signal; without one, the head's lateral position is
(the body shifts over the stance foot, carrying the head with it).

- a **repetition** is a run of the signal beyond :data:`SHIFT_FRACTION` of the
  stance-foot offset (or :data:`HEAD_SHIFT_M` for the head), ending only when
  it falls below :data:`LEAVE_FRACTION` of that (hysteresis), lasting at
  least ``min_hold_s``; its side is the *raised* leg (CoP to the right: standing on
  the right foot, the left leg is up);
- its **hold** is the time the signal stays at or beyond :data:`HOLD_LEVEL` of
  its median shift in that run (the leg is up and the load settled), s;
- **sway during the hold**: CoP mean velocity (path length / time, m/s) and
  RMS distance from the mean CoP (m), over the hold less :data:`SWAY_TRIM_S`
  at each end;
- **trunk lean**: the angle of the line from the hold's mean CoP to the head,
  from vertical, towards the stance side positive, deg (``atan2(head_x -
  cop_x, head_z)``; leaning over the stance foot is the usual compensation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

QUIET_S = 1.0
SMOOTH_S = 0.2
SHIFT_FRACTION = 0.5
HEAD_SHIFT_M = 0.04
HOLD_LEVEL = 0.9
#: A raise ends when the signal falls below this fraction of the entry
#: threshold (the foot is down and the CoP back near the centre): the CoP
#: overshooting and settling on the stance foot dips but does not end it.
LEAVE_FRACTION = 0.5
#: Sway is measured inside the hold, this far from either end, s (the CoP is
#: still settling onto, or leaving, the stance foot there); shorter holds are
#: measured whole.
SWAY_TRIM_S = 0.5
RATE_HZ = 100.0


@dataclass(frozen=True, slots=True)
class Raise:
    """One repetition.

    Attributes
    ----------
    side : str
        The raised leg, ``"left"`` or ``"right"``.
    start_s, end_s : float
        Start and end of the hold, s (trial clock).
    hold_s : float
        ``end_s - start_s``.
    sway_velocity_mps, sway_rms_m : float or None
        CoP sway during the hold (``None`` without a plate).
    trunk_lean_deg : float or None
        Mean trunk lean during the hold (``None`` without both plate and head).
    """

    side: str
    start_s: float
    end_s: float
    hold_s: float
    sway_velocity_mps: float | None
    sway_rms_m: float | None
    trunk_lean_deg: float | None


@dataclass(frozen=True, slots=True)
class LegRaiseMeasures:
    """Every repetition, and the per-trial summary."""

    raises: tuple[Raise, ...]
    source: str

    def count(self, side: str) -> int:
        return sum(1 for r in self.raises if r.side == side)

    def as_measures(self) -> dict[str, float | None]:
        """Named values for the report and the database (units in the names)."""

        def mean(values: list[float | None]) -> float | None:
            vals = [v for v in values if v is not None]
            return float(np.mean(vals)) if vals else None

        out: dict[str, float | None] = {
            "raise_reps_left": float(self.count("left")),
            "raise_reps_right": float(self.count("right")),
        }
        for side in ("left", "right"):
            holds = [r.hold_s for r in self.raises if r.side == side]
            out[f"raise_hold_{side}_s"] = float(np.mean(holds)) if holds else None
        out["raise_sway_velocity_mps"] = mean([r.sway_velocity_mps for r in self.raises])
        out["raise_sway_rms_m"] = mean([r.sway_rms_m for r in self.raises])
        leans = [r.trunk_lean_deg for r in self.raises if r.trunk_lean_deg is not None]
        out["raise_trunk_lean_deg"] = mean(list(leans))
        out["raise_trunk_lean_max_deg"] = float(max(leans)) if leans else None
        return out


def _grid(t: NDArray, values: NDArray) -> tuple[NDArray, NDArray]:
    keep = np.concatenate([[True], np.diff(t) > 0])
    t, values = t[keep], values[keep]
    grid = np.arange(t[0], t[-1], 1.0 / RATE_HZ)
    return grid, np.column_stack([np.interp(grid, t, values[:, k]) for k in range(values.shape[1])])


def _runs(mask: NDArray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _hysteresis_runs(x: NDArray, enter: float, leave: float) -> list[tuple[int, int]]:
    """``[start, stop)`` runs that begin when ``x >= enter`` and end when ``x < leave``."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, value in enumerate(x):
        if start is None and value >= enter:
            start = i
        elif start is not None and value < leave:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, x.size))
    return runs


def leg_raise_measures(
    t_s: ArrayLike,
    cop_m: ArrayLike | None,
    head_m: ArrayLike | None,
    *,
    foot_offset_m: float,
    min_hold_s: float,
) -> LegRaiseMeasures | None:
    """Find and measure the leg raises of one trial.

    Parameters
    ----------
    t_s : array_like, shape (n,)
        Sample times, s.
    cop_m : array_like, shape (n, 2), or None
        CoP (x right, y forward), m; NaN rows where the plate gave none.
    head_m : array_like, shape (n, 3), or None
        Head position, m.
    foot_offset_m : float
        Distance from the stance centre to a foot's centre, m (half the
        distance between the foot centres).
    min_hold_s : float
        Shortest shift that counts as a repetition, s.

    Returns
    -------
    LegRaiseMeasures or None
        ``None`` without a usable signal (no plate and no head, or < 2 s).
    """
    t = np.asarray(t_s, dtype=float)
    cop = None if cop_m is None else np.asarray(cop_m, dtype=float).reshape(-1, 2)
    head = None if head_m is None else np.asarray(head_m, dtype=float).reshape(-1, 3)
    use_cop = False
    if cop is not None and np.isfinite(cop).all(axis=1).sum() > RATE_HZ:
        use_cop = True
        ok = np.isfinite(cop).all(axis=1)
        base = cop
        threshold = SHIFT_FRACTION * foot_offset_m
        source = "cop"
    elif head is not None and np.isfinite(head).all(axis=1).sum() > RATE_HZ:
        ok = np.isfinite(head).all(axis=1)
        base = head
        threshold = HEAD_SHIFT_M
        source = "head"
    else:
        return None
    if t[ok].size < 2 or t[ok][-1] - t[ok][0] < 2.0:
        return None
    cols = [base[ok]]
    has_head = False
    if head is not None and use_cop and np.isfinite(head[ok]).all():
        has_head = True
        cols.append(head[ok])
    grid, data = _grid(t[ok], np.column_stack(cols))
    sig = data[:, 0].copy()
    quiet = grid < grid[0] + QUIET_S
    sig -= float(np.median(sig[quiet]))
    n = max(1, int(SMOOTH_S * RATE_HZ))
    smooth = np.convolve(
        np.pad(sig, (n // 2, n - 1 - n // 2), mode="edge"), np.ones(n) / n, "valid"
    )
    raises: list[Raise] = []
    for sign in (1.0, -1.0):
        for a, b in _hysteresis_runs(sign * smooth, threshold, LEAVE_FRACTION * threshold):
            if (b - a) / RATE_HZ < min_hold_s:
                continue
            plateau = float(np.median(sign * smooth[a:b]))
            held = np.flatnonzero(sign * smooth[a:b] >= HOLD_LEVEL * plateau)
            h0, h1 = a + int(held[0]), a + int(held[-1]) + 1
            vel = rms = lean = None
            if use_cop:
                trim = int(SWAY_TRIM_S * RATE_HZ)
                s0, s1 = (h0 + trim, h1 - trim) if h1 - h0 > 3 * trim else (h0, h1)
                xy = data[s0:s1, 0:2]
                dur = (s1 - s0) / RATE_HZ
                if xy.shape[0] >= 2 and dur > 0:
                    vel = float(np.sum(np.hypot(*np.diff(xy, axis=0).T)) / dur)
                    rms = float(math.sqrt(np.mean(np.sum((xy - xy.mean(axis=0)) ** 2, axis=1))))
                if has_head:
                    hx = data[s0:s1, 2] - float(np.mean(xy[:, 0]))
                    hz = data[s0:s1, 4]
                    lean = float(np.degrees(np.mean(np.arctan2(sign * hx, hz))))
            raises.append(
                Raise(
                    side="left" if sign > 0 else "right",
                    start_s=float(grid[h0]),
                    end_s=float(grid[h1 - 1]),
                    hold_s=float((h1 - h0) / RATE_HZ),
                    sway_velocity_mps=vel,
                    sway_rms_m=rms,
                    trunk_lean_deg=lean,
                )
            )
    raises.sort(key=lambda r: r.start_s)
    return LegRaiseMeasures(tuple(raises), source)
