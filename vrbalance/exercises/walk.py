"""Heel-to-toe (tandem) walk measures from the head trajectory (pure).

The walking line runs in the headset's stage space (the core frame: x right,
y forward, z up) from the origin along +y for ``length_m``; the patient walks
it heel to toe, turns at the far end and walks back. A therapist counts the
time, the steps, how far the patient strays from the line, the side-steps
(a foot put beside the line to catch balance) and the stops. Every measure
here comes from the head position alone, so no plate is needed:

- **steps**: each step lifts and lowers the head once (the body vaults over
  the stance leg); the vertical position, band-passed to
  :data:`STEP_BAND_HZ`, has one peak per step (prominence at least
  :data:`STEP_PROMINENCE_M`, peaks at least :data:`STEP_MIN_INTERVAL_S` apart).
- **lateral deviation**: the head's distance from the line, ``|x|``, as RMS
  and largest value over the walk.
- **side-steps**: the head's lateral position (smoothed over
  :data:`SMOOTH_S`) changing by at least :data:`SIDE_STEP_M` within
  :data:`SIDE_STEP_WINDOW_S`; one count per such episode.
- **stops**: the head's speed along the line (smoothed) under
  :data:`STOP_SPEED_MPS` for at least :data:`STOP_MIN_S`, away from both ends
  of the line (the turn at the far end and standing at the start are not
  stops; swaying sideways while stopped is still a stop).

Formulas and the reasoning behind each constant: ``docs/exercises.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import signal

#: Pass band of the vertical head signal for step detection, Hz. Tandem
#: walking runs at about 0.5-2 steps/s; the band rejects slow height drift
#: (posture, bending) and tracking jitter.
STEP_BAND_HZ = (0.3, 4.0)
#: Smallest vertical peak (prominence) that counts as a step, m. The head
#: rises and falls by 1-3 cm per step in slow walking (about half the
#: 4-5 cm of normal walking; Thorstensson et al. 1984).
STEP_PROMINENCE_M = 0.004
#: Shortest time between two steps, s (4 steps/s is faster than any tandem walk).
STEP_MIN_INTERVAL_S = 0.25
#: Smoothing of horizontal positions (moving average), s.
SMOOTH_S = 0.3
#: Head speed above which the patient is walking, m/s.
MOVING_SPEED_MPS = 0.05
#: Speed along the line below which the patient has stopped, m/s, for at least STOP_MIN_S.
STOP_SPEED_MPS = 0.03
STOP_MIN_S = 1.0
#: Stops are counted only this far from either end of the line, m.
END_ZONE_M = 0.5
#: A lateral change of the head this large, m, within SIDE_STEP_WINDOW_S is a
#: side-step (a foot placed beside the line moves the head 8-15 cm sideways;
#: sway on the line moves it 1-4 cm).
SIDE_STEP_M = 0.08
SIDE_STEP_WINDOW_S = 0.75
#: The walk counts as out and back when the head reached this close to the far
#: end and came back this close to the start, m.
ARRIVAL_M = 0.4


@dataclass(frozen=True, slots=True)
class WalkMeasures:
    """What one tandem-walk trial showed (SI units, named in each field).

    Attributes
    ----------
    time_s : float
        From the first to the last moment the head moved (speed above
        :data:`MOVING_SPEED_MPS`).
    distance_m : float
        Distance walked along the line, out and back.
    speed_mps : float
        ``distance_m / time_s``.
    steps : int
        Steps counted from the head's vertical oscillation.
    cadence_steps_per_min : float
        ``60 * steps / time_s``.
    lateral_rms_m, lateral_max_m : float
        RMS and largest distance of the head from the line.
    side_steps : int
        Side-step episodes.
    stops : int
        Stops of at least :data:`STOP_MIN_S` away from the ends.
    stop_time_s : float
        Total time stopped.
    reached_end : bool
        The head came within :data:`ARRIVAL_M` of the far end.
    returned : bool
        ... and then back within :data:`ARRIVAL_M` of the start.
    """

    time_s: float
    distance_m: float
    speed_mps: float
    steps: int
    cadence_steps_per_min: float
    lateral_rms_m: float
    lateral_max_m: float
    side_steps: int
    stops: int
    stop_time_s: float
    reached_end: bool
    returned: bool

    def as_measures(self) -> dict[str, float]:
        """Named values for the report and the database (units in the names)."""
        return {
            "walk_time_s": self.time_s,
            "walk_distance_m": self.distance_m,
            "walk_speed_mps": self.speed_mps,
            "walk_steps": float(self.steps),
            "walk_cadence_steps_per_min": self.cadence_steps_per_min,
            "walk_lateral_rms_m": self.lateral_rms_m,
            "walk_lateral_max_m": self.lateral_max_m,
            "walk_side_steps": float(self.side_steps),
            "walk_stops": float(self.stops),
            "walk_stop_time_s": self.stop_time_s,
            "walk_completed": float(self.reached_end and self.returned),
        }


def _uniform(t_s: NDArray, values: NDArray, rate_hz: float) -> tuple[NDArray, NDArray]:
    """Resample (possibly repeated or jittered) samples onto a uniform grid."""
    keep = np.concatenate([[True], np.diff(t_s) > 0])
    t_s, values = t_s[keep], values[keep]
    grid = np.arange(t_s[0], t_s[-1], 1.0 / rate_hz)
    if grid.size < 2:
        grid = t_s.copy()
    cols = [np.interp(grid, t_s, values[:, k]) for k in range(values.shape[1])]
    return grid, np.column_stack(cols)


def _smooth(x: NDArray, n: int) -> NDArray:
    if n <= 1:
        return x
    kernel = np.ones(n) / n
    padded = np.pad(x, (n // 2, n - 1 - n // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def _runs(mask: NDArray) -> list[tuple[int, int]]:
    """``[start, stop)`` index pairs of the True runs in ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def count_steps(t_s: NDArray, z_m: NDArray, rate_hz: float) -> int:
    """Steps in a uniformly sampled vertical head trajectory (see module docstring)."""
    if z_m.size < int(2 * rate_hz):
        return 0
    low, high = STEP_BAND_HZ
    high = min(high, 0.45 * rate_hz)
    sos = signal.butter(2, (low, high), btype="bandpass", fs=rate_hz, output="sos")
    z = signal.sosfiltfilt(sos, z_m - z_m.mean())
    peaks, _ = signal.find_peaks(
        z,
        prominence=STEP_PROMINENCE_M,
        distance=max(1, int(STEP_MIN_INTERVAL_S * rate_hz)),
    )
    return int(peaks.size)


def walk_measures(
    t_s: ArrayLike, head_m: ArrayLike, length_m: float, *, rate_hz: float = 50.0
) -> WalkMeasures | None:
    """Measure one tandem walk from the head trajectory.

    Parameters
    ----------
    t_s : array_like, shape (n,)
        Sample times, s (increasing; repeats are dropped).
    head_m : array_like, shape (n, 3)
        Head position in stage space (x right, y along the line, z up), m.
    length_m : float
        Length of the line, m (it runs from y = 0 to y = length_m at x = 0).
    rate_hz : float
        Rate the trajectory is resampled to for the analysis, Hz.

    Returns
    -------
    WalkMeasures or None
        ``None`` when there are fewer than 2 s of samples or the head never
        moved (nothing was walked).
    """
    t = np.asarray(t_s, dtype=float)
    head = np.asarray(head_m, dtype=float)
    if head.ndim != 2 or head.shape[1] != 3 or t.shape[0] != head.shape[0]:
        raise ValueError(f"head_m: expected shape (n, 3) matching t_s, got {head.shape}")
    finite = np.isfinite(t) & np.all(np.isfinite(head), axis=1)
    t, head = t[finite], head[finite]
    if t.size < 2 or t[-1] - t[0] < 2.0:
        return None
    grid, xyz = _uniform(t, head, rate_hz)
    n_smooth = max(1, round(SMOOTH_S * rate_hz))
    x = _smooth(xyz[:, 0], n_smooth)
    y = _smooth(xyz[:, 1], n_smooth)
    along = np.abs(np.gradient(y, grid))
    speed = np.hypot(np.gradient(x, grid), along)
    moving = np.flatnonzero(speed > MOVING_SPEED_MPS)
    if moving.size == 0:
        return None
    i0, i1 = int(moving[0]), int(moving[-1]) + 1
    time_s = float(grid[i1 - 1] - grid[i0]) if i1 - 1 > i0 else 0.0
    ys = y[i0:i1]
    distance = float(np.sum(np.abs(np.diff(ys))))
    lateral = np.abs(xyz[i0:i1, 0])
    steps = count_steps(grid, xyz[:, 2], rate_hz)
    # Side-steps: lateral change over the window, episodes merged.
    lag = max(1, round(SIDE_STEP_WINDOW_S * rate_hz))
    dx = np.zeros_like(x)
    dx[lag:] = x[lag:] - x[:-lag]
    side_steps = len(_runs(np.abs(dx) >= SIDE_STEP_M))
    # Stops: slow, away from both ends, inside the walking span.
    inner = (y > END_ZONE_M) & (y < length_m - END_ZONE_M)
    slow = (along < STOP_SPEED_MPS) & inner
    slow[:i0] = False
    slow[i1:] = False
    stop_runs = [(a, b) for a, b in _runs(slow) if (b - a) / rate_hz >= STOP_MIN_S]
    far = np.flatnonzero(y >= length_m - ARRIVAL_M)
    reached = far.size > 0
    returned = reached and bool(np.any(y[int(far[0]) :] <= ARRIVAL_M))
    return WalkMeasures(
        time_s=time_s,
        distance_m=distance,
        speed_mps=distance / time_s if time_s > 0 else 0.0,
        steps=steps,
        cadence_steps_per_min=60.0 * steps / time_s if time_s > 0 else 0.0,
        lateral_rms_m=float(math.sqrt(np.mean(lateral**2))) if lateral.size else 0.0,
        lateral_max_m=float(lateral.max()) if lateral.size else 0.0,
        side_steps=side_steps,
        stops=len(stop_runs),
        stop_time_s=float(sum(b - a for a, b in stop_runs) / rate_hz),
        reached_end=reached,
        returned=returned,
    )
