"""How well a patient followed a prescribed trajectory (tai chi), pure.

Both trajectories are resampled onto one uniform grid (:data:`RATE_HZ`) over
the time they overlap. With ``e(t) = p(t) - r(t)`` the patient's CoP ``p``
(relative to its quiet-stance position) minus the target ``r``:

- **tracking error** ``RMS = sqrt(mean |e|²)``, m;
- **lag**: the shift ``τ`` in ``[-max_lag_s, max_lag_s]`` that maximises the
  cross-correlation of ``p(t)`` with ``r(t - τ)``: Pearson's coefficient over
  the overlapping samples, both axes pooled,
  ``Σ (p - p̄)·(r - r̄) / sqrt(Σ |p - p̄|² · Σ |r - r̄|²)``, refined by a parabola
  through the peak and its neighbours; positive when the patient is late, s;
- **time within tolerance**: the share of samples with ``|e| <= tolerance_m``, %;
- **largest excursion**: ``max |p|`` (how far the patient shifted), m, and the
  target's ``max |r|`` for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Analysis rate, Hz (tai chi moves below 1 Hz; 50 Hz resolves a 20 ms lag).
RATE_HZ = 50.0
#: Largest lag searched, s.
MAX_LAG_S = 3.0


@dataclass(frozen=True, slots=True)
class TrackingMeasures:
    """Tracking of a target trajectory (SI units, named in each field).

    Attributes
    ----------
    rms_error_m : float
        RMS distance between patient and target.
    lag_s : float
        Delay of the patient behind the target (negative: ahead).
    lag_correlation : float
        Normalised cross-correlation at that lag (1 = same shape).
    time_within_pct : float
        Share of the time within ``tolerance_m`` of the target, %.
    max_excursion_m : float
        Largest distance of the patient's CoP from its quiet position.
    target_max_excursion_m : float
        Largest distance of the target from the centre.
    duration_s : float
        Time analysed.
    """

    rms_error_m: float
    lag_s: float
    lag_correlation: float
    time_within_pct: float
    max_excursion_m: float
    target_max_excursion_m: float
    duration_s: float

    def as_measures(self) -> dict[str, float]:
        """Named values for the report and the database (units in the names)."""
        return {
            "track_rms_error_m": self.rms_error_m,
            "track_lag_s": self.lag_s,
            "track_lag_correlation": self.lag_correlation,
            "track_time_within_pct": self.time_within_pct,
            "track_max_excursion_m": self.max_excursion_m,
            "track_target_max_excursion_m": self.target_max_excursion_m,
        }


def _resample(t: NDArray, xy: NDArray, grid: NDArray) -> NDArray:
    keep = np.concatenate([[True], np.diff(t) > 0])
    t, xy = t[keep], xy[keep]
    return np.column_stack([np.interp(grid, t, xy[:, k]) for k in range(xy.shape[1])])


def best_lag_s(
    actual: NDArray, target: NDArray, rate_hz: float, max_lag_s: float
) -> tuple[float, float]:
    """Lag (s, positive = ``actual`` late) maximising the cross-correlation, and its value.

    For each shift the two overlapping stretches are correlated (Pearson, both
    axes pooled), so a longer or shorter overlap neither helps nor hurts a lag.
    """
    n = actual.shape[0]
    max_k = max(1, min(round(max_lag_s * rate_hz), n // 2))
    scores = np.full(2 * max_k + 1, -np.inf)
    for i, k in enumerate(range(-max_k, max_k + 1)):
        x = actual[k:] if k >= 0 else actual[: n + k]
        y = target[: n - k] if k >= 0 else target[-k:]
        x = x - x.mean(axis=0)
        y = y - y.mean(axis=0)
        den = math.sqrt(float(np.sum(x * x)) * float(np.sum(y * y)))
        if den > 0.0:
            scores[i] = float(np.sum(x * y)) / den
    best = int(np.argmax(scores))
    if not np.isfinite(scores[best]):
        return 0.0, 0.0
    shift = 0.0
    if 0 < best < scores.size - 1 and np.all(np.isfinite(scores[best - 1 : best + 2])):
        y0, y1, y2 = scores[best - 1], scores[best], scores[best + 1]
        denom = y0 - 2 * y1 + y2
        if denom < 0:
            shift = 0.5 * (y0 - y2) / denom
    return float((best - max_k + shift) / rate_hz), float(scores[best])


def tracking_measures(
    t_s: ArrayLike,
    actual_m: ArrayLike,
    target_t_s: ArrayLike,
    target_m: ArrayLike,
    tolerance_m: float,
    *,
    max_lag_s: float = MAX_LAG_S,
) -> TrackingMeasures | None:
    """Compare a trajectory with its target (see module docstring).

    Parameters
    ----------
    t_s, actual_m : array_like, shapes (n,), (n, 2)
        The patient's CoP relative to its quiet-stance position, m.
    target_t_s, target_m : array_like, shapes (k,), (k, 2)
        The prescribed trajectory, m.
    tolerance_m : float
        On-target distance, m.
    max_lag_s : float
        Largest lag searched, s.

    Returns
    -------
    TrackingMeasures or None
        ``None`` with less than 2 s of overlap.
    """
    t = np.asarray(t_s, dtype=float)
    p = np.asarray(actual_m, dtype=float).reshape(-1, 2)
    tt = np.asarray(target_t_s, dtype=float)
    r = np.asarray(target_m, dtype=float).reshape(-1, 2)
    ok = np.isfinite(t) & np.all(np.isfinite(p), axis=1)
    t, p = t[ok], p[ok]
    if t.size < 2 or tt.size < 2:
        return None
    t0, t1 = max(t[0], tt[0]), min(t[-1], tt[-1])
    if t1 - t0 < 2.0:
        return None
    grid = np.arange(t0, t1, 1.0 / RATE_HZ)
    pa = _resample(t, p, grid)
    ra = _resample(tt, r, grid)
    err = np.hypot(*(pa - ra).T)
    lag, corr = best_lag_s(pa, ra, RATE_HZ, min(max_lag_s, 0.25 * (t1 - t0)))
    return TrackingMeasures(
        rms_error_m=float(math.sqrt(np.mean(err**2))),
        lag_s=lag,
        lag_correlation=corr,
        time_within_pct=100.0 * float(np.mean(err <= tolerance_m)),
        max_excursion_m=float(np.hypot(*pa.T).max()),
        target_max_excursion_m=float(np.hypot(*ra.T).max()),
        duration_s=float(t1 - t0),
    )
