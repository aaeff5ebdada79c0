"""Clinical assessment scores from recorded traces: SOT, Limits of Stability, mCTSIB.

Pure numpy: traces in, numbers out (SI units inside, percent and degrees only
where the clinical convention defines them so).

Sensory Organization Test (Nashner; NeuroCom EquiTest/SMART manuals)
    Equilibrium score of one trial ``ES = 100·(1 − (θmax − θmin)/12.5°)``
    where θ is the antero-posterior sway angle of the centre of mass about the
    ankles and 12.5° the normal AP limit of stability (8.5° forward + 4°
    backward); 0 for a fall (a trial that ended by a safety stop or stepping
    off). Composite: NeuroCom's weighted mean, which counts conditions 1 and 2
    once (their mean trial score) and every trial of conditions 3 to 6 on its
    own, i.e. with 3 trials each ``(ES̄1 + ES̄2 + 3·ES̄3 + 3·ES̄4 + 3·ES̄5 +
    3·ES̄6)/14``: the sensory-conflict conditions weigh more because they
    discriminate patients better.

Limits of Stability (NeuroCom LOS; Clark et al. 1997)
    Per target, from the centre-of-gravity (CoM) path after the cue, relative
    to the position at the cue, projected on the target direction ``u``:
    reaction time (cue to the projection passing 5 % of the target distance),
    movement velocity (mean speed between 5 % and 95 % of the primary
    movement's end point), end-point excursion (projection where the primary
    movement first stops, speed under 10 % of its peak, before the largest
    excursion, in % of the target distance), maximal excursion (largest
    projection in the window, %), and directional control.

    Directional control follows NeuroCom's definition (Balance Manager
    clinical operations guide, LOS; Clark, Rose & Fujimoto 1997, Arch Phys
    Med Rehabil 78:1078-1084): "a comparison of the amount of movement in the
    intended direction (toward the target) to the amount of extraneous
    movement (away from the target)", ``DCL = 100·(on − off)/on``, where, over
    the path from the cue to the end point, ``on`` is the path length made
    toward the target (positive increments of the projection on ``u``) and
    ``off`` the extraneous path: across ``u`` plus any movement back, away
    from the target. 100 % is a straight line to the end point. Its defined
    range is 0-100 %: a path with more extraneous than intended movement has
    no directional control and scores 0 (the published formula would go
    negative there, which is not a percentage a clinician can read).
    Speeds, the end point and the path lengths use the path smoothed by a
    0.1 s moving average (tracking jitter would otherwise add path that is
    not movement).

mCTSIB (Shumway-Cook & Horak 1986; Cohen et al. 1993)
    Sway velocity of the CoP per condition (m/s), and the trial's duration
    held (s) for the usual "time to loss of balance" scoring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.ndimage import uniform_filter1d

from vrbalance.balance.com import SOT_SWAY_LIMIT_DEG
from vrbalance.balance.com import equilibrium_score as balance_equilibrium_score

#: NeuroCom's normal antero-posterior limit of stability: 8.5° forward + 4° back
#: (the balance core's constant, so the live and the recorded score agree).
SOT_AP_LIMIT_DEG = SOT_SWAY_LIMIT_DEG
#: NeuroCom weights: conditions 1-2 count once, 3-6 count once per trial (3 trials).
SOT_WEIGHTS: Mapping[int, float] = {1: 1.0, 2: 1.0, 3: 3.0, 4: 3.0, 5: 3.0, 6: 3.0}
#: LoS target distance as sway angles (NeuroCom theoretical limits), degrees.
LOS_FORWARD_DEG = 8.5
LOS_BACKWARD_DEG = 4.5
LOS_SIDEWAYS_DEG = 8.0
#: LoS movement onset/end thresholds (fractions of target distance and of peak speed).
LOS_ONSET_FRACTION = 0.05
LOS_PRIMARY_END_FRACTION = 0.95
LOS_STOP_SPEED_FRACTION = 0.10
#: Width of the moving average applied before speeds and path lengths, s.
LOS_SMOOTH_S = 0.1


def equilibrium_score(sway_angle_ap_rad: ArrayLike, *, fell: bool = False) -> float:
    """NeuroCom equilibrium score of one trial, 0-100.

    The formula is :func:`vrbalance.balance.equilibrium_score`'s (one
    implementation for the live and the recorded score); this wrapper adds
    the session rules: a fall, or a trial with no finite angle, scores 0.

    Parameters
    ----------
    sway_angle_ap_rad : array_like, shape (N,)
        AP sway angle of the CoM about the ankles, in radians (NaN ignored).
    fell : bool
        A fall (safety stop, stepping off) scores 0 by definition.
    """
    theta = np.asarray(sway_angle_ap_rad, dtype=float)
    if fell or not np.isfinite(theta).any():
        return 0.0
    return balance_equilibrium_score(theta, limit_deg=SOT_AP_LIMIT_DEG)


def sot_composite(scores: Mapping[int, Sequence[float]]) -> float:
    """NeuroCom composite equilibrium score from per-condition trial scores.

    Parameters
    ----------
    scores : mapping of condition (1-6) to its trials' equilibrium scores

    Returns
    -------
    float
        ``Σ w_c·mean(ES_c) / Σ w_c`` with :data:`SOT_WEIGHTS`, over the
        conditions present; NaN if none.
    """
    num = den = 0.0
    for condition, values in scores.items():
        if condition not in SOT_WEIGHTS or len(values) == 0:
            continue
        num += SOT_WEIGHTS[condition] * float(np.mean(values))
        den += SOT_WEIGHTS[condition]
    return num / den if den > 0 else math.nan


def sensory_ratios(mean_scores: Mapping[int, float]) -> dict[str, float]:
    """NeuroCom sensory analysis ratios (somatosensory, visual, vestibular, preference)."""

    def ratio(a: float | None, b: float | None) -> float:
        return a / b if a is not None and b else math.nan

    g = mean_scores.get
    c3c6 = (g(3), g(6))
    pref = (
        (c3c6[0] + c3c6[1]) / (g(2, 0.0) + g(5, 0.0))
        if None not in c3c6 and (g(2, 0.0) + g(5, 0.0)) > 0
        else math.nan
    )
    return {
        "somatosensory": ratio(g(2), g(1)),
        "visual": ratio(g(4), g(1)),
        "vestibular": ratio(g(5), g(1)),
        "preference": pref,
    }


def los_target_distance_m(direction_rad: float, com_height_m: float) -> float:
    """Theoretical limit-of-stability distance of the CoM in one direction.

    ``direction_rad`` is measured clockwise from anterior (0 = forward,
    π/2 = right). The limit is an ellipse-like blend of NeuroCom's angular
    limits (8.5° forward, 4.5° back, 8° sideways) turned into a horizontal
    CoM displacement ``h·tan(θ)``.
    """
    ap_deg = LOS_FORWARD_DEG if math.cos(direction_rad) >= 0 else LOS_BACKWARD_DEG
    c, s = math.cos(direction_rad), math.sin(direction_rad)
    a = math.tan(math.radians(ap_deg)) * com_height_m
    b = math.tan(math.radians(LOS_SIDEWAYS_DEG)) * com_height_m
    return 1.0 / math.sqrt((c / a) ** 2 + (s / b) ** 2)


@dataclass(frozen=True, slots=True)
class LosTarget:
    """Limits-of-Stability results of one target.

    Attributes
    ----------
    direction_deg : float
        Clockwise from anterior (0 forward, 90 right).
    reaction_time_s : float
        Cue to movement onset, in s (NaN if the patient never moved).
    movement_velocity_mps : float
        Mean CoM speed over the primary movement, in m/s.
    endpoint_excursion_pct, max_excursion_pct : float
        Excursions in % of the target distance.
    directional_control_pct : float
        ``100·(on − off)/on`` in 0-100 (:func:`directional_control_pct`);
        100 is a straight line to the target.
    """

    direction_deg: float
    reaction_time_s: float
    movement_velocity_mps: float
    endpoint_excursion_pct: float
    max_excursion_pct: float
    directional_control_pct: float


def los_target(
    t_s: ArrayLike,
    xy_m: ArrayLike,
    cue_t_s: float,
    direction_rad: float,
    target_distance_m: float,
) -> LosTarget:
    """Score one Limits-of-Stability reach.

    Parameters
    ----------
    t_s : array_like, shape (N,)
        Sample times in s, from the cue to the end of this target's window.
    xy_m : array_like, shape (N, 2)
        CoM (or CoP) positions (x right, y anterior) in metres.
    cue_t_s : float
        When the target appeared, in s.
    direction_rad : float
        Target direction clockwise from anterior, radians.
    target_distance_m : float
        Distance to the target (the 100 % excursion), metres.
    """
    t = np.asarray(t_s, dtype=float)
    xy = np.asarray(xy_m, dtype=float)
    ok = np.isfinite(t) & np.all(np.isfinite(xy), axis=1)
    t, xy = t[ok], xy[ok]
    nan = LosTarget(math.degrees(direction_rad), *(math.nan,) * 5)
    if t.size < 3 or target_distance_m <= 0:
        return nan
    u = np.array([math.sin(direction_rad), math.cos(direction_rad)])
    rel = xy - xy[0]
    along = rel @ u
    # Speeds, the end point and the off-axis path come from the path smoothed
    # over LOS_SMOOTH_S: sample-to-sample jitter of a few tenths of a millimetre
    # would otherwise dominate summed path lengths and the speed's peak.
    dt_med = float(np.median(np.diff(t)))
    width = max(1, round(LOS_SMOOTH_S / dt_med)) if dt_med > 0 else 1
    smooth = uniform_filter1d(rel, size=width, axis=0, mode="nearest") if width > 1 else rel
    along_s = smooth @ u
    onset_idx = np.flatnonzero(along >= LOS_ONSET_FRACTION * target_distance_m)
    if onset_idx.size == 0:
        return LosTarget(
            math.degrees(direction_rad),
            math.nan,
            0.0,
            0.0,
            100.0 * float(along.max()) / target_distance_m,
            math.nan,
        )
    i0 = int(onset_idx[0])
    dt = np.diff(t)
    speed = np.hypot(np.diff(smooth[:, 0]), np.diff(smooth[:, 1])) / np.where(dt > 0, dt, np.nan)
    speed = np.nan_to_num(speed)
    # The primary movement ends at the first stop before the largest excursion;
    # the way back (often faster) must not count as the primary movement.
    i_max = int(np.argmax(along_s))
    if i_max <= i0:
        i_max = len(t) - 1
    peak_i = i0 + int(np.argmax(speed[i0:i_max])) if i_max > i0 else i0
    stop = np.flatnonzero(speed[peak_i:i_max] < LOS_STOP_SPEED_FRACTION * speed[peak_i])
    i_end = peak_i + int(stop[0]) if stop.size else i_max
    endpoint = float(along_s[i_end])
    reach95 = np.flatnonzero(along_s[i0 : i_end + 1] >= LOS_PRIMARY_END_FRACTION * endpoint)
    i95 = i0 + int(reach95[0]) if reach95.size else i_end
    if i95 > i0:
        seg = smooth[i0 : i95 + 1]
        path = float(np.hypot(np.diff(seg[:, 0]), np.diff(seg[:, 1])).sum())
        velocity = path / float(t[i95] - t[i0])
    else:
        velocity = math.nan
    dcl = directional_control_pct(smooth[: i_end + 1], u)
    return LosTarget(
        direction_deg=math.degrees(direction_rad),
        reaction_time_s=float(t[i0] - cue_t_s),
        movement_velocity_mps=velocity,
        endpoint_excursion_pct=100.0 * endpoint / target_distance_m,
        max_excursion_pct=100.0 * float(along.max()) / target_distance_m,
        directional_control_pct=dcl,
    )


def directional_control_pct(path_m: ArrayLike, direction: ArrayLike) -> float:
    """NeuroCom directional control of a path toward a target, 0-100 %.

    Parameters
    ----------
    path_m : array_like, shape (N, 2)
        The (smoothed) path from the cue to the end point, metres.
    direction : array_like, shape (2,)
        Unit vector toward the target.

    Returns
    -------
    float
        ``100·(on − off)/on`` clipped to 0-100 (module docstring); NaN when
        the path never moved toward the target (``on`` = 0).
    """
    u = np.asarray(direction, dtype=float)
    steps = np.diff(np.asarray(path_m, dtype=float), axis=0)
    if steps.size == 0:
        return math.nan
    along = steps @ u
    across = steps @ np.array([u[1], -u[0]])
    on = float(along[along > 0].sum())
    off = float(np.abs(across).sum() - along[along < 0].sum())
    if on <= 0:
        return math.nan
    return float(np.clip(100.0 * (on - off) / on, 0.0, 100.0))


def los_directions_rad(n_targets: int) -> list[float]:
    """Target directions: ``n`` evenly spaced, clockwise from anterior."""
    return [2.0 * math.pi * i / n_targets for i in range(n_targets)]


def los_summary(targets: Sequence[LosTarget]) -> dict[str, float]:
    """Composite LoS measures: the mean over targets (NaN-aware), NeuroCom style."""

    def mean(name: str) -> float:
        vals = np.array([getattr(t, name) for t in targets], dtype=float)
        vals = vals[np.isfinite(vals)]
        return float(vals.mean()) if vals.size else math.nan

    return {
        "los_reaction_time_s": mean("reaction_time_s"),
        "los_movement_velocity_mps": mean("movement_velocity_mps"),
        "los_endpoint_excursion_pct": mean("endpoint_excursion_pct"),
        "los_max_excursion_pct": mean("max_excursion_pct"),
        "los_directional_control_pct": mean("directional_control_pct"),
    }
