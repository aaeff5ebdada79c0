"""Head-pose sources: where the balance loop gets the head from, at its own rate.

The balance loop asks its source for the pose at each tick's time
(``pose_at(t_s)``, ``t_s`` in seconds on the loop's injected clock), 250 to
1000 times a second, independently of the renderer's frame rate:

* the OpenXR source (``vrbalance.xr``) locates the view space at that very
  time, so the balance core sees the head between rendered frames;
* :class:`LatestHeadSource` holds the newest pose another thread wrote (the
  desktop stand-in, a renderer); its age shows in ``received_time_s``;
* :class:`ScriptedHeadSource` computes the pose from a function of time (tests,
  the simulated demo), e.g. :class:`SwayScript`'s quiet stance with leans and
  falls;
* :class:`ReplayHeadSource` interpolates a recording.

Every pose is a :class:`vrbalance.samples.HeadPose` in the core frame (x right,
y anterior, z up, metres, origin at the centre of the feet on the floor).
Sources report "no pose" (not tracked, outside a recording) as ``None``; they
do not raise for it, because an exception would stop the balance loop.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from vrbalance.samples import HeadPose

logger = logging.getLogger(__name__)

__all__ = [
    "Fall",
    "HeadPoseSource",
    "LatestHeadSource",
    "Lean",
    "ReplayHeadSource",
    "ScriptedHeadSource",
    "SwayScript",
]

GRAVITY_MPS2 = 9.81


@runtime_checkable
class HeadPoseSource(Protocol):
    """Anything that gives the head pose at a time on the loop's clock."""

    def pose_at(self, t_s: float) -> HeadPose | None:
        """Pose at (or, for live sources, newest before) ``t_s`` in s; ``None`` if none."""
        ...


# --------------------------------------------------------------------- scripted
class ScriptedHeadSource:
    """Head pose as a function of time.

    Parameters
    ----------
    fn : callable ``(t_s) -> HeadPose | None``
        The script; called from the loop thread at every tick. It must be a
        pure function of ``t_s`` so that runs and replays are reproducible
        (:class:`SwayScript` is one).
    """

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[float], HeadPose | None]) -> None:
        if not callable(fn):
            raise TypeError(f"fn: expected a callable (t_s) -> HeadPose, got {type(fn).__name__}")
        self._fn = fn

    def pose_at(self, t_s: float) -> HeadPose | None:
        """The script's pose at ``t_s`` (s)."""
        return self._fn(t_s)


@dataclass(frozen=True, slots=True)
class Lean:
    """A voluntary lean of the whole body about the ankles.

    The head moves to ``offset_m`` (horizontal, core frame) along a smooth
    (raised-cosine) ramp of ``ramp_s`` starting at ``start_s``, stays there,
    and ramps back from ``end_s`` on (never, if ``end_s`` is ``None``).

    Attributes
    ----------
    start_s : float
        Start of the lean, s on the loop clock.
    offset_m : tuple of 2 float
        (x right, y anterior) head displacement at full lean, m.
    ramp_s : float
        Duration of each ramp, s (> 0).
    end_s : float or None
        Start of the return ramp, s (>= ``start_s + ramp_s``).
    """

    start_s: float
    offset_m: tuple[float, float]
    ramp_s: float = 1.0
    end_s: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ramp_s) and self.ramp_s > 0):
            raise ValueError(f"Lean.ramp_s must be finite and > 0, got {self.ramp_s!r}")
        if self.end_s is not None and self.end_s < self.start_s + self.ramp_s:
            raise ValueError(
                f"Lean.end_s must be >= start_s + ramp_s = {self.start_s + self.ramp_s!r}, "
                f"got {self.end_s!r}"
            )

    def offset_at(self, t_s: float) -> tuple[float, float]:
        """Head displacement at ``t_s``, m."""
        w = _ramp((t_s - self.start_s) / self.ramp_s)
        if self.end_s is not None:
            w *= 1.0 - _ramp((t_s - self.end_s) / self.ramp_s)
        return (w * self.offset_m[0], w * self.offset_m[1])


@dataclass(frozen=True, slots=True)
class Fall:
    """A loss of balance: the body falls as an uncontrolled inverted pendulum.

    From ``start_s`` the tilt about the ankles grows as the linearised
    pendulum ``theta(tau) = theta0 cosh(w tau) + (omega0 / w) sinh(w tau)`` with
    ``w = sqrt(g / L)`` (L the head height), in the direction ``azimuth_rad``
    (0 = anterior, pi/2 = right), until ``max_tilt_rad``, where the harness
    catches the patient and the head stays.

    Attributes
    ----------
    start_s : float
        Onset, s on the loop clock.
    azimuth_rad : float
        Direction of the fall in the horizontal plane, rad from +y toward +x.
    initial_tilt_rad : float
        Extra tilt at onset, rad (default 0: the fall starts where sway left
        the head, without a jump).
    initial_rate_rad_s : float
        Tilt rate at onset, rad/s (default 0.1, a small push: the default
        fall reaches ``max_tilt_rad`` about 1.2 s after onset for a 1.6 m
        head height).
    max_tilt_rad : float
        Tilt at which the fall is arrested, rad (default 0.35 rad = 20 deg,
        about where a harness or a step catches the patient).
    """

    start_s: float
    azimuth_rad: float = 0.0
    initial_tilt_rad: float = 0.0
    initial_rate_rad_s: float = 0.1
    max_tilt_rad: float = 0.35

    def tilt_at(self, t_s: float, height_m: float) -> float:
        """Tilt (rad, >= 0) at ``t_s`` for a pendulum of length ``height_m``."""
        tau = t_s - self.start_s
        if tau <= 0.0:
            return 0.0
        w = math.sqrt(GRAVITY_MPS2 / height_m)
        wt = min(w * tau, 30.0)  # cosh overflows far beyond any useful tilt
        theta = self.initial_tilt_rad * math.cosh(wt) + self.initial_rate_rad_s / w * math.sinh(wt)
        return min(theta, self.max_tilt_rad)


def _ramp(x: float) -> float:
    """Raised-cosine step: 0 for x <= 0, 1 for x >= 1, smooth in between."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return 0.5 - 0.5 * math.cos(math.pi * x)


class SwayScript:
    """Quiet-stance head sway with scriptable leans and falls; a pure function of time.

    The body is an inverted pendulum pivoting at the floor under the feet.
    Quiet sway is a sum of ``n_components`` sinusoids per axis, with
    frequencies drawn log-uniformly in 0.05-1.0 Hz (where quiet-stance sway
    power lies) and amplitudes falling as 1/f, rescaled so that the head's RMS
    displacement is ``rms_ap_m`` (anterior-posterior) and ``rms_ml_m``
    (medio-lateral). The defaults, 8 mm and 5 mm, are the centre-of-pressure
    RMS of healthy adults with eyes open (about 5 and 3 mm, Prieto et al.
    1996) scaled up by head height / CoM height (~1.7) because the head sways
    further than the centre of mass. Leans add to the sway; a fall overrides it.

    The head's orientation tilts with the body (head-local z along the
    pendulum); there is no yaw.

    Parameters
    ----------
    seed : int
        Seed of the script's own ``np.random.Generator`` (keyword only).
    height_m : float
        Head (centre-eye) height when upright, m.
    rms_ap_m, rms_ml_m : float
        RMS of quiet sway, m.
    n_components : int
        Sinusoids per axis.
    mean_offset_m : tuple of 2 float
        Mean head position over the feet (x, y), m (people stand slightly
        forward of the ankles; the origin here is the centre of the feet).
    events : sequence of Lean or Fall
        Applied in order; the first fall that has begun overrides sway.

    Raises
    ------
    ValueError
        If a value is out of range (the message gives it).
    """

    def __init__(
        self,
        *,
        seed: int,
        height_m: float = 1.60,
        rms_ap_m: float = 0.008,
        rms_ml_m: float = 0.005,
        n_components: int = 12,
        mean_offset_m: tuple[float, float] = (0.0, 0.0),
        events: Sequence[Lean | Fall] = (),
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if not (math.isfinite(height_m) and 0.3 <= height_m <= 2.5):
            raise ValueError(f"height_m must be within [0.3, 2.5] m, got {height_m!r}")
        for name, value in (("rms_ap_m", rms_ap_m), ("rms_ml_m", rms_ml_m)):
            if not (math.isfinite(value) and 0.0 <= value <= 0.1):
                raise ValueError(f"{name} must be within [0, 0.1] m, got {value!r}")
        if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
            raise ValueError(f"n_components must be an int >= 1, got {n_components!r}")
        for i, event in enumerate(events):
            if not isinstance(event, Lean | Fall):
                raise TypeError(f"events[{i}]: expected Lean or Fall, got {type(event).__name__}")
        self.seed = int(seed)
        self.height_m = float(height_m)
        self.mean_offset_m = (float(mean_offset_m[0]), float(mean_offset_m[1]))
        self.events = tuple(events)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed))
        # Per axis: frequencies (Hz), phases (rad), amplitudes (m) as plain
        # tuples, so evaluating at a tick costs no numpy call overhead.
        self._axes: list[tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]] = []
        for rms_m in (rms_ml_m, rms_ap_m):
            freqs = np.exp(rng.uniform(np.log(0.05), np.log(1.0), n_components))
            phases = rng.uniform(0.0, 2.0 * np.pi, n_components)
            amps = 1.0 / freqs
            amps *= rms_m / math.sqrt(0.5 * float(np.sum(amps**2)))  # RMS of a sine = A/sqrt(2)
            self._axes.append(
                (
                    tuple(float(f) for f in 2.0 * np.pi * freqs),
                    tuple(float(p) for p in phases),
                    tuple(float(a) for a in amps),
                )
            )

    def sway_at(self, t_s: float) -> tuple[float, float]:
        """Quiet-sway head displacement (x, y) at ``t_s``, m, without events."""
        out = []
        for omegas, phases, amps in self._axes:
            out.append(
                sum(a * math.sin(w * t_s + p) for w, p, a in zip(omegas, phases, amps, strict=True))
            )
        return (out[0], out[1])

    def position_at(self, t_s: float) -> tuple[float, float, float]:
        """Head position (x, y, z) at ``t_s``, m, core frame."""
        length = self.height_m
        for event in self.events:
            if isinstance(event, Fall) and t_s > event.start_s:
                # The fall's tilt adds, in its own direction, to the posture at onset.
                x0, y0 = self._horizontal_at(event.start_s, until_fall=event)
                theta = event.tilt_at(t_s, length)
                ax = math.asin(max(-1.0, min(1.0, x0 / length))) + theta * math.sin(
                    event.azimuth_rad
                )
                ay = math.asin(max(-1.0, min(1.0, y0 / length))) + theta * math.cos(
                    event.azimuth_rad
                )
                tilt = math.hypot(ax, ay)
                if tilt == 0.0:
                    return (0.0, 0.0, length)
                r = length * math.sin(tilt) / tilt
                return (r * ax, r * ay, length * math.cos(tilt))
        x, y = self._horizontal_at(t_s, until_fall=None)
        return (x, y, math.sqrt(max(length * length - x * x - y * y, 0.0)))

    def _horizontal_at(self, t_s: float, until_fall: Fall | None) -> tuple[float, float]:
        sx, sy = self.sway_at(t_s)
        x = self.mean_offset_m[0] + sx
        y = self.mean_offset_m[1] + sy
        for event in self.events:
            if event is until_fall:
                break
            if isinstance(event, Lean):
                dx, dy = event.offset_at(t_s)
                x += dx
                y += dy
        return (x, y)

    def __call__(self, t_s: float) -> HeadPose:
        """The pose at ``t_s`` (s), stamped as received at ``t_s``."""
        x, y, z = self.position_at(t_s)
        return HeadPose(
            device_time_s=None,
            received_time_s=t_s,
            position_m=(x, y, z),
            orientation_xyzw=_tilt_quaternion(x, y, z),
        )


def _tilt_quaternion(x: float, y: float, z: float) -> tuple[float, float, float, float]:
    """Rotation taking +z onto the direction (x, y, z) about a horizontal axis (xyzw)."""
    r = math.sqrt(x * x + y * y + z * z)
    if r == 0.0:
        return (0.0, 0.0, 0.0, 1.0)
    dx, dy, dz = x / r, y / r, z / r
    # axis = z × d = (-dy, dx, 0); angle = acos(dz)
    axis_norm = math.hypot(dx, dy)
    if axis_norm < 1e-12:
        return (0.0, 0.0, 0.0, 1.0)
    half = 0.5 * math.acos(max(-1.0, min(1.0, dz)))
    s = math.sin(half) / axis_norm
    return (-dy * s, dx * s, 0.0, math.cos(half))


# ----------------------------------------------------------------------- replay
class ReplayHeadSource:
    """Interpolates a recorded head trajectory.

    Positions are interpolated linearly, orientations by spherical linear
    interpolation (shortest arc). Times outside the recording give ``None``.

    Parameters
    ----------
    times_s : array_like, shape (n,)
        Sample times, s, strictly increasing, n >= 1.
    positions_m : array_like, shape (n, 3)
        Head positions (x, y, z), m, core frame.
    orientations_xyzw : array_like, shape (n, 4), optional
        Unit quaternions (normalised here); identity if omitted.
    offset_s : float
        Loop time of recording time 0: ``pose_at(t)`` looks up ``t - offset_s``.

    Raises
    ------
    ValueError
        If shapes disagree, times are not strictly increasing, or values are
        not finite (the message gives the index).
    """

    def __init__(
        self,
        times_s: Sequence[float] | np.ndarray,
        positions_m: Sequence[Sequence[float]] | np.ndarray,
        orientations_xyzw: Sequence[Sequence[float]] | np.ndarray | None = None,
        *,
        offset_s: float = 0.0,
    ) -> None:
        t = np.asarray(times_s, dtype=float)
        p = np.asarray(positions_m, dtype=float)
        if t.ndim != 1 or t.size < 1:
            raise ValueError(f"times_s: expected shape (n,) with n >= 1, got {t.shape}")
        n = t.size
        if p.shape != (n, 3):
            raise ValueError(f"positions_m: expected shape ({n}, 3), got {p.shape}")
        if orientations_xyzw is None:
            q = np.tile([0.0, 0.0, 0.0, 1.0], (n, 1))
        else:
            q = np.asarray(orientations_xyzw, dtype=float)
            if q.shape != (n, 4):
                raise ValueError(f"orientations_xyzw: expected shape ({n}, 4), got {q.shape}")
        for name, arr in (("times_s", t), ("positions_m", p), ("orientations_xyzw", q)):
            bad = np.flatnonzero(~np.isfinite(arr.reshape(n, -1)).all(axis=1))
            if bad.size:
                raise ValueError(f"{name}: non-finite value at index {int(bad[0])}")
        steps = np.diff(t)
        if np.any(steps <= 0):
            i = int(np.flatnonzero(steps <= 0)[0])
            raise ValueError(
                f"times_s must be strictly increasing: times_s[{i + 1}] = {float(t[i + 1])!r} "
                f"after times_s[{i}] = {float(t[i])!r}"
            )
        norms = np.linalg.norm(q, axis=1)
        if np.any(norms < 1e-9):
            i = int(np.flatnonzero(norms < 1e-9)[0])
            raise ValueError(f"orientations_xyzw: zero quaternion at index {i}")
        q = q / norms[:, None]
        # Plain Python lists: bisect + a few float ops per call beat numpy at one sample.
        self._t: list[float] = t.tolist()
        self._p: list[list[float]] = p.tolist()
        self._q: list[list[float]] = q.tolist()
        self.offset_s = float(offset_s)

    @property
    def start_s(self) -> float:
        """Loop time of the first sample, s."""
        return self._t[0] + self.offset_s

    @property
    def end_s(self) -> float:
        """Loop time of the last sample, s."""
        return self._t[-1] + self.offset_s

    def pose_at(self, t_s: float) -> HeadPose | None:
        """Interpolated pose at loop time ``t_s`` (s); ``None`` outside the recording."""
        tr = t_s - self.offset_s
        times = self._t
        if not times[0] <= tr <= times[-1]:
            return None
        i = bisect.bisect_right(times, tr) - 1
        if i >= len(times) - 1:
            i = len(times) - 1
            return HeadPose(
                device_time_s=tr,
                received_time_s=t_s,
                position_m=tuple(self._p[i]),  # type: ignore[arg-type]
                orientation_xyzw=tuple(self._q[i]),  # type: ignore[arg-type]
            )
        t0, t1 = times[i], times[i + 1]
        f = (tr - t0) / (t1 - t0)
        p0, p1 = self._p[i], self._p[i + 1]
        position = (
            p0[0] + f * (p1[0] - p0[0]),
            p0[1] + f * (p1[1] - p0[1]),
            p0[2] + f * (p1[2] - p0[2]),
        )
        return HeadPose(
            device_time_s=tr,
            received_time_s=t_s,
            position_m=position,
            orientation_xyzw=_slerp(self._q[i], self._q[i + 1], f),
        )


def _slerp(q0: Sequence[float], q1: Sequence[float], f: float) -> tuple[float, float, float, float]:
    """Spherical linear interpolation of unit quaternions (xyzw), shortest arc."""
    dot = q0[0] * q1[0] + q0[1] * q1[1] + q0[2] * q1[2] + q0[3] * q1[3]
    sign = 1.0
    if dot < 0.0:
        dot, sign = -dot, -1.0
    if dot > 0.9995:  # nearly parallel: normalised lerp is exact enough and stable
        w0, w1 = 1.0 - f, f * sign
    else:
        theta = math.acos(dot)
        sin_theta = math.sin(theta)
        w0 = math.sin((1.0 - f) * theta) / sin_theta
        w1 = sign * math.sin(f * theta) / sin_theta
    q = [w0 * a + w1 * b for a, b in zip(q0, q1, strict=True)]
    norm = math.sqrt(sum(c * c for c in q))
    return (q[0] / norm, q[1] / norm, q[2] / norm, q[3] / norm)


# ----------------------------------------------------------------------- latest
class LatestHeadSource:
    """The newest pose another thread wrote (desktop stand-in, renderer).

    ``put`` is a single reference assignment of an immutable pose, atomic in
    CPython, so neither side waits. ``pose_at`` ignores the time it is given
    and returns the newest pose: the estimator sees its age as
    ``t_s - pose.received_time_s``.

    Parameters
    ----------
    max_age_s : float, optional
        If given, a pose older than this at the asked time is reported as
        ``None`` (tracking lost). Needs poses with ``received_time_s``.
    """

    __slots__ = ("_count", "_max_age_s", "_pose", "_write_lock")

    def __init__(self, *, max_age_s: float | None = None) -> None:
        if max_age_s is not None and not (math.isfinite(max_age_s) and max_age_s > 0):
            raise ValueError(f"max_age_s must be finite and > 0 or None, got {max_age_s!r}")
        self._max_age_s = max_age_s
        self._pose: HeadPose | None = None
        self._count = 0
        self._write_lock = threading.Lock()  # writers only: keeps the count exact

    @property
    def count(self) -> int:
        """Poses put so far."""
        return self._count

    def put(self, pose: HeadPose) -> None:
        """Make ``pose`` the newest (any thread)."""
        if not isinstance(pose, HeadPose):
            raise TypeError(f"pose: expected HeadPose, got {type(pose).__name__}")
        with self._write_lock:
            self._pose = pose
            self._count += 1

    def latest(self) -> HeadPose | None:
        """The newest pose, whatever its age."""
        return self._pose

    def pose_at(self, t_s: float) -> HeadPose | None:
        """The newest pose, or ``None`` if there is none (or it is older than ``max_age_s``)."""
        pose = self._pose
        if pose is None or self._max_age_s is None:
            return pose
        if pose.received_time_s is None or t_s - pose.received_time_s > self._max_age_s:
            return None
        return pose
