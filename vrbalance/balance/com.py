"""Centre of mass from the head, extrapolated CoM, margins and the SOT score.

Model: the body is an inverted pendulum pivoting about the ankle axis. The
head (the headset's centre-eye point) and the whole-body centre of mass lie on
the same straight pendulum, so their horizontal offsets from the ankle scale by
their heights above it::

    CoM_xy = ankle_xy + (head_xy - ankle_xy) · (l_com / l_head)

with ``l_com = com_height - ankle_height`` and ``l_head = eye_height -
ankle_height`` (see :class:`vrbalance.balance.geometry.Body` for the
anthropometric defaults). Hip strategy and neck flexion break this model; it
is a training aid's estimate, not a motion-capture measurement.

The extrapolated centre of mass (Hof, Gazendam & Sinke 2005, *J Biomech*
38:1-8) is ``XCoM = CoM + v / ω0`` with ``ω0 = sqrt(g / l)``; its signed
distance to the base-of-support boundary is the margin of stability.

The equilibrium score of the Sensory Organization Test compares the
peak-to-peak antero-posterior sway angle with 12.5°, the normal AP limit of
stability in quiet stance used by the NeuroCom SOT::

    ES = (12.5° - (θmax - θmin)) / 12.5° · 100, floored at 0 (a fall scores 0).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vrbalance.balance.geometry import STANDARD_GRAVITY_MPS2, Body

#: Peak-to-peak AP sway that scores 0 in the SOT equilibrium score, degrees.
SOT_SWAY_LIMIT_DEG = 12.5
#: Default cut-off of the causal velocity filter, Hz. Quiet-stance sway lies
#: below about 2 Hz; 5 Hz keeps its velocity while damping headset jitter, at
#: a group delay of about 45 ms.
DEFAULT_VELOCITY_CUTOFF_HZ = 5.0
#: A gap between samples longer than this restarts the filter (velocity 0)
#: instead of differentiating across it, in s.
DEFAULT_MAX_GAP_S = 0.5


def omega0_rad_s(pendulum_length_m: float, g_mps2: float = STANDARD_GRAVITY_MPS2) -> float:
    """Eigenfrequency ``sqrt(g / l)`` of an inverted pendulum of length l, rad/s."""
    if not (pendulum_length_m > 0.0):
        raise ValueError(
            f"pendulum_length_m: expected a positive length, got {pendulum_length_m!r}"
        )
    return math.sqrt(g_mps2 / pendulum_length_m)


def pendulum_com(
    head_xy_m: ArrayLike, ankle_xy_m: ArrayLike, com_per_head: float
) -> NDArray[np.float64]:
    """Horizontal CoM from horizontal head position by pendulum scaling.

    Parameters
    ----------
    head_xy_m : array_like, shape (..., 2)
        Head position ``(x, y)`` in metres.
    ankle_xy_m : array_like, shape (2,) or (..., 2)
        Floor projection of the ankle axis, metres.
    com_per_head : float
        ``l_com / l_head``, heights above the ankle axis (``Body.com_per_head``).

    Returns
    -------
    ndarray, shape (..., 2)
        CoM ``(x, y)`` in metres.
    """
    head = np.asarray(head_xy_m, dtype=np.float64)
    ankle = np.asarray(ankle_xy_m, dtype=np.float64)
    return ankle + (head - ankle) * com_per_head


def extrapolated_com(
    com_xy_m: ArrayLike, velocity_xy_mps: ArrayLike, omega0: float
) -> NDArray[np.float64]:
    """``XCoM = CoM + v / ω0`` (Hof et al. 2005), shape (..., 2), metres."""
    if not (omega0 > 0.0):
        raise ValueError(f"omega0: expected a positive frequency in rad/s, got {omega0!r}")
    return np.asarray(com_xy_m, dtype=np.float64) + np.asarray(velocity_xy_mps) / omega0


def sway_angle_ap_rad(
    com_y_m: ArrayLike, ankle_y_m: float, pendulum_length_m: float
) -> NDArray[np.float64]:
    """AP sway angle of the pendulum, forward positive, in radians.

    ``θ = asin((com_y - ankle_y) / l)``, the offset clipped to ``±l``.
    """
    ratio = (np.asarray(com_y_m, dtype=np.float64) - ankle_y_m) / pendulum_length_m
    return np.arcsin(np.clip(ratio, -1.0, 1.0))


def equilibrium_score(
    sway_angle_ap_rad: ArrayLike, *, limit_deg: float = SOT_SWAY_LIMIT_DEG
) -> float:
    """SOT equilibrium score of one trial, in [0, 100].

    Parameters
    ----------
    sway_angle_ap_rad : array_like, shape (N,)
        AP sway angles of the trial in radians. NaN samples (no estimate that
        tick) are ignored.
    limit_deg : float
        Peak-to-peak sway that scores 0 (12.5° in the SOT).

    Returns
    -------
    float
        ``max(0, (limit - (θmax - θmin)) / limit · 100)``.

    Raises
    ------
    ValueError
        If there is no finite angle.
    """
    theta = np.asarray(sway_angle_ap_rad, dtype=np.float64).ravel()
    finite = theta[np.isfinite(theta)]
    if finite.size == 0:
        raise ValueError("sway_angle_ap_rad: no finite angle, the score is undefined")
    span_deg = math.degrees(float(finite.max() - finite.min()))
    return max(0.0, (limit_deg - span_deg) / limit_deg * 100.0)


class SmoothedDerivative:
    """Causal 2nd-order Butterworth low-pass of a 2-D signal and its derivative.

    The filter is the continuous system ``x'' + √2·ωc·x' + ωc²·x = ωc²·u``,
    advanced over each step's actual ``dt`` (samples may arrive irregularly,
    as head poses do) by its exact solution for an input that varies linearly
    between samples (first-order hold). Its state is the filtered position and
    its time derivative, so the velocity is the Butterworth-filtered
    derivative without a separate differentiator. The exact step is stable for
    any ``dt``, and a ramp input gives exactly the ramp's slope as velocity
    once the transient (time constant ``√2/ωc``) has decayed.

    Parameters
    ----------
    cutoff_hz : float
        Cut-off frequency of the low-pass, Hz.
    max_gap_s : float
        A gap longer than this between samples restarts the filter at the new
        sample with zero velocity.
    """

    __slots__ = ("_lag", "_last_t", "_max_gap", "_sigma", "_state", "_ux", "_uy", "_w2", "_wd")

    def __init__(
        self, cutoff_hz: float = DEFAULT_VELOCITY_CUTOFF_HZ, *, max_gap_s: float = DEFAULT_MAX_GAP_S
    ) -> None:
        if not (cutoff_hz > 0.0 and math.isfinite(cutoff_hz)):
            raise ValueError(f"cutoff_hz: expected a positive frequency, got {cutoff_hz!r}")
        if not (max_gap_s > 0.0):
            raise ValueError(f"max_gap_s: expected a positive time, got {max_gap_s!r}")
        wc = 2.0 * math.pi * cutoff_hz
        self._w2 = wc * wc
        # Butterworth: damping ratio 1/√2, so decay rate and damped
        # frequency are both ωc/√2; a ramp lags by 2ζ/ωc = √2/ωc.
        self._sigma = wc / math.sqrt(2.0)
        self._wd = wc / math.sqrt(2.0)
        self._lag = math.sqrt(2.0) / wc
        self._max_gap = max_gap_s
        self.reset()

    def reset(self) -> None:
        """Forget the history; the next sample starts the filter afresh."""
        self._last_t: float | None = None
        self._ux = self._uy = 0.0
        self._state = (0.0, 0.0, 0.0, 0.0)

    @property
    def started(self) -> bool:
        """Whether at least one sample has been taken since the last reset."""
        return self._last_t is not None

    def update(self, t_s: float, x: float, y: float) -> tuple[float, float, float, float]:
        """Take one sample; return filtered ``(x, y, vx, vy)`` (units and units/s).

        A sample not newer than the previous one (``dt <= 0``) changes nothing;
        a jump of more than ``max_gap_s`` either way restarts the filter. A
        non-finite sample or time is ignored (it would poison the state for
        good); before the first valid sample that returns NaN.
        """
        if not (math.isfinite(t_s) and math.isfinite(x) and math.isfinite(y)):
            if self._last_t is None:
                return (math.nan, math.nan, math.nan, math.nan)
            return self._state
        last = self._last_t
        if last is None or abs(t_s - last) > self._max_gap:
            self._last_t = t_s
            self._ux, self._uy = x, y
            self._state = (x, y, 0.0, 0.0)
            return self._state
        dt = t_s - last
        if dt <= 0.0:
            return self._state
        self._last_t = t_s
        sigma, wd, w2, lag = self._sigma, self._wd, self._w2, self._lag
        decay = math.exp(-sigma * dt)
        c = decay * math.cos(wd * dt)
        s = decay * math.sin(wd * dt) / wd
        px, py, vx, vy = self._state
        out = []
        for p0, v0, u0, u1 in ((px, vx, self._ux, x), (py, vy, self._uy, y)):
            slope = (u1 - u0) / dt
            # Deviation from the ramp's particular solution (p = u - lag·slope,
            # v = slope), which then decays as the homogeneous system does.
            e0 = p0 - (u0 - lag * slope)
            ev0 = v0 - slope
            e1 = c * e0 + s * (ev0 + sigma * e0)
            ev1 = c * ev0 - s * (sigma * ev0 + w2 * e0)
            out.append((u1 - lag * slope + e1, slope + ev1))
        self._ux, self._uy = x, y
        (px, vx), (py, vy) = out
        self._state = (px, py, vx, vy)
        return self._state


class HeadComEstimator:
    """CoM, its velocity and the XCoM from head positions (no plate needed).

    Parameters
    ----------
    body : Body
        Gives the pendulum scaling and ``ω0``.
    ankle_xy_m : tuple of 2 float
        Floor projection of the ankle axis (``Stance.ankle_m``), metres.
    velocity_cutoff_hz : float
        Cut-off of the causal velocity filter, Hz.
    max_gap_s : float
        Gap after which the velocity filter restarts, s.
    """

    __slots__ = ("_ankle_x", "_ankle_y", "_filter", "_omega0", "_ratio")

    def __init__(
        self,
        body: Body,
        ankle_xy_m: tuple[float, float] = (0.0, 0.0),
        *,
        velocity_cutoff_hz: float = DEFAULT_VELOCITY_CUTOFF_HZ,
        max_gap_s: float = DEFAULT_MAX_GAP_S,
    ) -> None:
        self._ratio = body.com_per_head
        self._omega0 = body.omega0_rad_s
        self._ankle_x = float(ankle_xy_m[0])
        self._ankle_y = float(ankle_xy_m[1])
        self._filter = SmoothedDerivative(velocity_cutoff_hz, max_gap_s=max_gap_s)

    def reset(self) -> None:
        """Forget the velocity history."""
        self._filter.reset()

    def update(
        self, t_s: float, head_xyz_m: tuple[float, float, float] | tuple[float, ...]
    ) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
        """Take one head position (core frame, metres) at time ``t_s`` (s).

        Returns
        -------
        com_m, velocity_mps, xcom_m : tuple of 2 float
            CoM (pendulum-scaled, unfiltered: no lag), its velocity (from the
            causal filter) and the extrapolated CoM.
        """
        r = self._ratio
        cx = self._ankle_x + (head_xyz_m[0] - self._ankle_x) * r
        cy = self._ankle_y + (head_xyz_m[1] - self._ankle_y) * r
        _, _, vx, vy = self._filter.update(t_s, cx, cy)
        w = self._omega0
        return (cx, cy), (vx, vy), (cx + vx / w, cy + vy / w)
