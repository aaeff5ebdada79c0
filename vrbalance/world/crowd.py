"""A moving crowd around a standing patient: the social-force pedestrian model.

Pedestrians follow the social-force model of Helbing and Molnár (1995),
"Social force model for pedestrian dynamics", *Phys. Rev. E* 51:4282-4286:
each pedestrian relaxes towards its desired velocity with relaxation time
``tau_s`` and is repelled by every other pedestrian through the paper's
elliptical potential ``V(b) = V0 exp(-b / sigma)``, whose semi-minor axis
``b`` stretches along the other pedestrian's step ``v * delta_t``, weighted
down outside the field of view (``2 * phi``, weight ``c`` behind). The
patient is a static obstacle with the paper's border potential
``U(d) = U0 exp(-d / R)`` measured from the passing circle. Desired speeds
are drawn from the normal distribution the paper quotes (1.34 m/s, s.d.
0.26 m/s; scaled to the level's mean speed). The relaxation time 0.5 s and
the body radius (about 0.25 m) are those of Helbing, Farkas and Vicsek (2000),
"Simulating dynamical features of escape panic", *Nature* 407:487-490.

Two rules are enforced as hard constraints after every force step, because
a safety argument cannot rest on a force being large enough:

* no pedestrian centre comes closer to the patient (the origin) than the
  level's ``passing_distance_m``;
* no two pedestrian centres come closer than ``min_separation_m`` (two body
  radii): nobody walks through anybody.

They are restored by projection (pairwise Jacobi pushes and a radial push off
the passing circle); if projection cannot restore both within a few
iterations, the offending pedestrians are put back where they stood at the
start of the sub-step (a state that satisfied both) and stopped. The result is
that both constraints hold after every :meth:`CrowdModel.step`, which is what
the tests check over long runs.

Everything is in the core frame (x patient's right, y anterior, metres, seconds)
on the floor plane; the patient stands at the origin. The model is pure numpy:
no Panda3D, no clock; time advances only through ``step(dt_s)``, with fixed
sub-steps of at most ``max_substep_s`` so that the trajectories hardly depend
on the render frame rate.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

MAX_PEDESTRIANS = 200
"""Largest crowd the scene ladder may ask for (the benchmark target)."""

_TWO_PI = 2.0 * math.pi
_EPS = 1e-9
_CANDIDATE_MARGIN_M = 0.5  # pairs this much beyond contact are checked for overlap
# Projection pushes a little beyond the limits, so that the next push in a cluster
# does not land a hair inside them again (which would make the fallback fire).
_PROJECTION_SLACK_M = 0.002
_DETOUR_RAD = math.radians(60.0)  # sidestep out of a jam
_STUCK_AFTER_S = 1.0  # nearly still (< 30 % of desired speed) this long without a stop: detour
_DETOUR_S = 1.5


@dataclass(frozen=True, slots=True)
class SocialForceParams:
    """Constants of the pedestrian model (SI units; accelerations per unit mass).

    Attributes
    ----------
    tau_s : float
        Relaxation time towards the desired velocity, in s (Helbing et al. 2000: 0.5 s).
    v0_m2ps2 : float
        Strength ``V0`` of the pedestrian repulsion potential, in m²/s² (1995: 2.1).
    sigma_m : float
        Range ``sigma`` of that potential, in m (1995: 0.3).
    step_time_s : float
        ``delta_t``: how far ahead the other's step stretches the ellipse, in s (1995: 2).
    view_half_angle_deg : float
        ``phi``: half the field of view, in degrees (1995: 100, i.e. 200° in all).
    behind_weight : float
        ``c``: weight of repulsion from behind (1995: 0.5).
    border_u0_m2ps2 : float
        Strength ``U0`` of the obstacle (patient) potential, in m²/s² (1995: 10).
    border_range_m : float
        Range ``R`` of that potential, in m (1995: 0.2).
    body_radius_m : float
        Pedestrian body radius, in m (2000: 0.25-0.35; 0.25 here).
    max_speed_factor : float
        Speeds are clipped to this factor times each pedestrian's desired speed
        (1995: 1.3).
    interaction_cutoff_m : float
        Pairs further apart than this are skipped; beyond 6 m the 1995 potential
        is below 1e-4 m/s² for any walking speed, so this is invisible.
    max_substep_s : float
        Largest integration step, in s (frames are split into equal sub-steps).
    deflect_range_m : float
        How far outside the passing circle a pedestrian whose path crosses it
        starts to steer around the patient, in m.
    stride_m : float
        Mean stride length (two steps) for the gait phase, in m (about 1.4 m at
        1.34 m/s).
    """

    tau_s: float = 0.5
    v0_m2ps2: float = 2.1
    sigma_m: float = 0.3
    step_time_s: float = 2.0
    view_half_angle_deg: float = 100.0
    behind_weight: float = 0.5
    border_u0_m2ps2: float = 10.0
    border_range_m: float = 0.2
    body_radius_m: float = 0.25
    max_speed_factor: float = 1.3
    interaction_cutoff_m: float = 6.0
    max_substep_s: float = 1.0 / 60.0
    deflect_range_m: float = 1.0
    stride_m: float = 1.4

    @property
    def min_separation_m(self) -> float:
        """Smallest allowed centre-to-centre distance of two pedestrians (two radii), in m."""
        return 2.0 * self.body_radius_m


@dataclass(frozen=True, slots=True)
class CrowdLevel:
    """The crowd's part of one difficulty level (validated on construction).

    Attributes
    ----------
    pedestrian_count : int
        Pedestrians in the plaza, 0 to :data:`MAX_PEDESTRIANS`.
    walking_speed_mps : float
        Mean desired walking speed in m/s (spread: s.d. 0.26/1.34 of the mean,
        as in Helbing and Molnár's 1.34 ± 0.26 m/s).
    passing_distance_m : float
        Closest any pedestrian centre may come to the patient's centre, in m
        (a hard constraint; the director's safety envelope maps this field).
    crossing_directions : int
        Number of walking directions, 1 to 8, evenly spaced around the compass
        starting at +x (1: everyone walks left to right in front of and behind
        the patient; 2: two opposing streams; 4: a crossroads; 8: every 45°).
    stop_turn_rate_hz : float
        Rate of sudden stops and turns per pedestrian, in events per second
        (a Poisson process; half stops of 1-3 s, half turns of 60-120°).
    head_on : bool
        Whether one pedestrian walks straight at the patient from the front and
        deflects only at the passing distance.
    """

    pedestrian_count: int = 20
    walking_speed_mps: float = 1.34
    passing_distance_m: float = 2.0
    crossing_directions: int = 2
    stop_turn_rate_hz: float = 0.0
    head_on: bool = False

    def __post_init__(self) -> None:
        checks = (
            (
                "pedestrian_count",
                self.pedestrian_count,
                0,
                MAX_PEDESTRIANS,
                isinstance(self.pedestrian_count, int),
            ),
            ("walking_speed_mps", self.walking_speed_mps, 0.2, 2.5, True),
            ("passing_distance_m", self.passing_distance_m, 0.5, 10.0, True),
            (
                "crossing_directions",
                self.crossing_directions,
                1,
                8,
                isinstance(self.crossing_directions, int),
            ),
            ("stop_turn_rate_hz", self.stop_turn_rate_hz, 0.0, 2.0, True),
        )
        for name, value, lo, hi, type_ok in checks:
            if isinstance(value, bool) or not type_ok or not (lo <= value <= hi):
                raise ValueError(
                    f"CrowdLevel.{name}: expected a value in [{lo}, {hi}], got {value!r}"
                )
        if not isinstance(self.head_on, bool):
            raise ValueError(f"CrowdLevel.head_on: expected a bool, got {self.head_on!r}")


@dataclass(frozen=True, slots=True)
class CrowdState:
    """A copy of the crowd for drawing (arrays read-only, shape ``(capacity, ...)``).

    Attributes
    ----------
    position_m : ndarray, shape (capacity, 2)
        Centres on the floor, core frame, in m (rows of inactive pedestrians are stale).
    velocity_mps : ndarray, shape (capacity, 2)
        Velocities in m/s.
    facing_rad : ndarray, shape (capacity,)
        Body heading, radians from +x towards +y (smoothed direction of motion).
    gait_phase_rad : ndarray, shape (capacity,)
        Phase of the gait cycle in [0, 2π): one cycle per stride walked.
    gait_amplitude : ndarray, shape (capacity,)
        Limb swing scale in [0, 1]: speed over desired speed (0 when standing).
    active : ndarray of bool, shape (capacity,)
        Who is in the plaza and should be drawn.
    desired_speed_mps : ndarray, shape (capacity,)
        Each pedestrian's preferred walking speed in m/s (speeds never exceed
        ``max_speed_factor`` times it).
    """

    position_m: np.ndarray
    velocity_mps: np.ndarray
    facing_rad: np.ndarray
    gait_phase_rad: np.ndarray
    gait_amplitude: np.ndarray
    active: np.ndarray
    desired_speed_mps: np.ndarray


def _frozen(array: np.ndarray) -> np.ndarray:
    out = array.copy()
    out.flags.writeable = False
    return out


def pedestrian_forces(
    position_m: np.ndarray,
    velocity_mps: np.ndarray,
    desired_dir: np.ndarray,
    params: SocialForceParams,
) -> np.ndarray:
    """Repulsive accelerations between pedestrians (Helbing & Molnár 1995, eqs. 4-8).

    Vectorised over all pairs with ``(N, N)`` arrays; pairs further apart than
    ``params.interaction_cutoff_m`` contribute nothing.

    Parameters
    ----------
    position_m : ndarray, shape (N, 2)
        Centres in m.
    velocity_mps : ndarray, shape (N, 2)
        Velocities in m/s (the other's step ``v * delta_t`` shapes the ellipse).
    desired_dir : ndarray, shape (N, 2)
        Unit desired directions (decide what is in the field of view).
    params : SocialForceParams
        Model constants.

    Returns
    -------
    ndarray, shape (N, 2)
        Sum over others of ``w(e_a, -f_ab) f_ab`` in m/s².
    """
    pairs = _Pairs.of(position_m, params.interaction_cutoff_m)
    return _pair_forces(pairs, velocity_mps, desired_dir, params)


@dataclass(frozen=True, slots=True)
class _Pairs:
    """Ordered pairs ``(a, b)``, ``a != b``, closer than a cutoff, with ``r_ab = r_a - r_b``."""

    n: int
    a: np.ndarray
    b: np.ndarray
    rx: np.ndarray
    ry: np.ndarray
    rn: np.ndarray

    @staticmethod
    def of(position_m: np.ndarray, cutoff_m: float, scratch: np.ndarray | None = None) -> _Pairs:
        """Find the pairs closer than ``cutoff_m``.

        ``scratch``, if given, is a float buffer of shape ``(4, >= N * N)`` reused
        for the ``(N, N)`` temporaries: fresh 300 kB arrays each step cost more
        in page faults than the arithmetic (measured: 0.6 ms vs 0.1 ms at N=200).
        """
        n = position_m.shape[0]
        if scratch is None:
            scratch = np.empty((4, n * n))
        rx, ry, r2, tmp = (scratch[k, : n * n].reshape(n, n) for k in range(4))
        px = position_m[:, 0]
        py = position_m[:, 1]
        # One (N, N) pass over all pairs; everything after works on the near ones.
        np.subtract(px[:, None], px[None, :], out=rx)
        np.subtract(py[:, None], py[None, :], out=ry)
        np.multiply(rx, rx, out=r2)
        np.multiply(ry, ry, out=tmp)
        np.add(r2, tmp, out=r2)
        np.fill_diagonal(r2, np.inf)
        flat = np.flatnonzero(r2 < cutoff_m * cutoff_m)
        a, b = np.divmod(flat, n)
        return _Pairs(n, a, b, rx.ravel()[flat], ry.ravel()[flat], np.sqrt(r2.ravel()[flat]))

    def within(self, cutoff_m: float) -> _Pairs:
        """The subset of pairs closer than ``cutoff_m``."""
        k = self.rn < cutoff_m
        return _Pairs(self.n, self.a[k], self.b[k], self.rx[k], self.ry[k], self.rn[k])


def _pair_forces(
    pairs: _Pairs, velocity_mps: np.ndarray, desired_dir: np.ndarray, params: SocialForceParams
) -> np.ndarray:
    n = pairs.n
    out = np.zeros((n, 2))
    if pairs.a.size == 0:
        return out
    a_idx, b_idx = pairs.a, pairs.b
    rx, ry, rnp = pairs.rx, pairs.ry, pairs.rn
    speed = np.hypot(velocity_mps[:, 0], velocity_mps[:, 1])
    moving = speed > _EPS
    safe = np.where(moving, speed, 1.0)
    ex = np.where(moving, velocity_mps[:, 0] / safe, 0.0)
    ey = np.where(moving, velocity_mps[:, 1] / safe, 0.0)
    step = speed * params.step_time_s
    s = step[b_idx]
    yx = rx - s * ex[b_idx]
    yy = ry - s * ey[b_idx]
    yn = np.sqrt(yx * yx + yy * yy)
    total = rnp + yn
    # b: semi-minor axis of the ellipse through r_a with foci at r_b and r_b + s e_b.
    b = 0.5 * np.sqrt(np.maximum(total * total - s * s, 1e-12))
    b = np.maximum(b, 1e-6)
    yn_safe = np.maximum(yn, 1e-12)
    # f = -grad V(b) = (V0 / sigma) exp(-b / sigma) grad b
    coef = (params.v0_m2ps2 / params.sigma_m) * np.exp(-b / params.sigma_m) * total / (4.0 * b)
    fx = coef * (rx / rnp + yx / yn_safe)
    fy = coef * (ry / rnp + yy / yn_safe)
    # Field of view: full weight when the source (direction -f) is within phi of e_a.
    cos_phi = math.cos(math.radians(params.view_half_angle_deg))
    fn = np.sqrt(fx * fx + fy * fy)
    along = -(desired_dir[a_idx, 0] * fx + desired_dir[a_idx, 1] * fy)
    weight = np.where(along >= fn * cos_phi, 1.0, params.behind_weight)
    out[:, 0] = np.bincount(a_idx, weights=weight * fx, minlength=n)
    out[:, 1] = np.bincount(a_idx, weights=weight * fy, minlength=n)
    return out


def pedestrian_forces_reference(
    position_m: np.ndarray,
    velocity_mps: np.ndarray,
    desired_dir: np.ndarray,
    params: SocialForceParams,
) -> np.ndarray:
    """The same forces as :func:`pedestrian_forces`, one pair at a time (for tests).

    Written straight from the paper's formulas, with no vectorisation, so the
    fast version has something independent to be checked against.
    """
    n = position_m.shape[0]
    out = np.zeros((n, 2))
    cos_phi = math.cos(math.radians(params.view_half_angle_deg))
    for a in range(n):
        for b_ in range(n):
            if a == b_:
                continue
            r = position_m[a] - position_m[b_]
            r_len = math.hypot(r[0], r[1])
            if r_len >= params.interaction_cutoff_m:
                continue
            vb = velocity_mps[b_]
            speed = math.hypot(vb[0], vb[1])
            e_b = vb / speed if speed > _EPS else np.zeros(2)
            s = speed * params.step_time_s
            y = r - s * e_b
            y_len = math.hypot(y[0], y[1])
            semi_minor = max(0.5 * math.sqrt(max((r_len + y_len) ** 2 - s * s, 1e-12)), 1e-6)
            # f = -grad V(b) = (V0 / sigma) exp(-b / sigma) * grad b
            grad_b = (r_len + y_len) / (4.0 * semi_minor) * (r / r_len + y / max(y_len, 1e-12))
            f = params.v0_m2ps2 / params.sigma_m * math.exp(-semi_minor / params.sigma_m) * grad_b
            f_len = math.hypot(f[0], f[1])
            seen = float(np.dot(desired_dir[a], -f)) >= f_len * cos_phi
            out[a] += f if seen else params.behind_weight * f
    return out


class CrowdModel:
    """Pedestrians crossing a round plaza around a standing patient.

    The plaza is the disk of radius ``area_radius_m`` around the patient.
    Pedestrians enter at its rim walking along one of the level's crossing
    directions, leave at the far side and re-enter (a new lane and direction)
    at the rim again. State lives in preallocated arrays of length
    ``capacity``; only ``active`` rows take part.

    Parameters
    ----------
    level : CrowdLevel
        The starting level; the plaza is populated at once (see :meth:`set_level`).
    seed : int or None
        Seed of the model's own random generator (keyword-only). Same seed and
        same calls give the same crowd, bit for bit.
    capacity : int
        Arrays are sized for this many pedestrians.
    area_radius_m : float
        Radius of the walking area, in m.
    params : SocialForceParams
        Model constants.

    Raises
    ------
    ValueError
        On a bad capacity, radius or seed.
    """

    def __init__(
        self,
        level: CrowdLevel,
        *,
        seed: int | None,
        capacity: int = MAX_PEDESTRIANS,
        area_radius_m: float = 18.0,
        params: SocialForceParams | None = None,
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity: expected a positive integer, got {capacity!r}")
        if not (math.isfinite(area_radius_m) and area_radius_m >= 5.0):
            raise ValueError(f"area_radius_m: expected a number >= 5, got {area_radius_m!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed: expected a non-negative integer or None, got {seed!r}")
        self.params = params if params is not None else SocialForceParams()
        self.capacity = capacity
        self.area_radius_m = float(area_radius_m)
        self._rng = np.random.default_rng(np.random.SeedSequence(seed))
        c = capacity
        self._pos = np.zeros((c, 2))
        self._vel = np.zeros((c, 2))
        self._heading = np.zeros(c)  # base walking direction, rad from +x
        self._v0 = np.full(c, 1.34)  # desired speed, m/s
        self._stop_left_s = np.zeros(c)
        self._active = np.zeros(c, dtype=bool)
        self._head_on = np.zeros(c, dtype=bool)
        self._passed = np.zeros(c, dtype=bool)  # head-on walker is past the patient
        self._side = np.ones(c)  # which way to step around the patient or a jam
        self._stuck_s = np.zeros(c)  # time spent nearly still without meaning to stop
        self._detour_left_s = np.zeros(c)  # time left on a sidestep out of a jam
        self._phase = np.zeros(c)
        self._facing = np.zeros(c)
        self._amplitude = np.zeros(c)
        self._stride_m = np.full(c, self.params.stride_m)
        self._scratch = np.empty((4, c * c))
        self._frozen = False
        self.time_s = 0.0
        self.reverts = 0  # how often the projection fallback had to put someone back
        self.level = level
        self.set_level(level, populate=True)

    # ------------------------------------------------------------------ public

    @property
    def frozen(self) -> bool:
        """Whether :meth:`freeze` stopped the crowd."""
        return self._frozen

    @property
    def active_count(self) -> int:
        """Pedestrians currently in the plaza."""
        return int(np.count_nonzero(self._active))

    def set_level(self, level: CrowdLevel, *, populate: bool = False) -> None:
        """Switch to ``level``.

        Parameters
        ----------
        level : CrowdLevel
            The new level.
        populate : bool
            ``True``: start afresh, with ``pedestrian_count`` pedestrians spread
            over the plaza (for building a scene). ``False``: keep who is there;
            new pedestrians enter at the rim, surplus ones leave when they reach
            it (nobody appears or vanishes next to the patient). Anyone inside a
            larger passing circle is moved out to it, or to the rim if there is
            no room.

        Raises
        ------
        ValueError
            If the level asks for more pedestrians than ``capacity``.
        """
        if level.pedestrian_count > self.capacity:
            raise ValueError(
                f"pedestrian_count: {level.pedestrian_count} exceeds capacity {self.capacity}"
            )
        self.level = level
        rng = self._rng
        c = self.capacity
        mean = level.walking_speed_mps
        sd = 0.26 / 1.34 * mean
        self._v0[:] = np.clip(rng.normal(mean, sd, c), mean - 2 * sd, mean + 2 * sd)
        self._stride_m[:] = self.params.stride_m * rng.uniform(0.9, 1.1, c)
        # A slower level slows everyone at once: speeds stay within their new bound.
        speed = np.hypot(self._vel[:, 0], self._vel[:, 1])
        v_max = self.params.max_speed_factor * self._v0
        scale = np.where(speed > v_max, v_max / np.maximum(speed, _EPS), 1.0)
        self._vel *= scale[:, None]
        self._head_on[:] = False
        if level.head_on and level.pedestrian_count > 0:
            self._head_on[0] = True
        if populate:
            self._active[:] = False
            self._vel[:] = 0.0
            self._stop_left_s[:] = 0.0
            for i in range(level.pedestrian_count):
                self._place_inside(i)
        else:
            walkers = ~self._head_on
            self._heading[walkers] = self._snap_to_directions(self._heading[walkers])
            self._clear_passing_circle()
        if populate:
            self._phase[:] = rng.uniform(0.0, _TWO_PI, c)

    def freeze(self) -> None:
        """Stop everyone where they stand, limbs at rest (the safety "calm" state).

        Deterministic: no random numbers are drawn. :meth:`step` then changes
        nothing until :meth:`unfreeze`.
        """
        self._frozen = True
        self._vel[:] = 0.0
        self._amplitude[:] = 0.0

    def unfreeze(self) -> None:
        """Let the crowd walk again from where it stands."""
        self._frozen = False

    def step(self, dt_s: float) -> None:
        """Advance the crowd by ``dt_s`` seconds in equal sub-steps of at most ``max_substep_s``.

        Raises
        ------
        ValueError
            If ``dt_s`` is negative or not finite.
        """
        if not math.isfinite(dt_s) or dt_s < 0.0:
            raise ValueError(f"dt_s: expected a finite non-negative time, got {dt_s!r}")
        if dt_s == 0.0 or self._frozen:
            return
        n_sub = max(1, math.ceil(dt_s / self.params.max_substep_s - 1e-9))
        h = dt_s / n_sub
        for _ in range(n_sub):
            self._substep(h)
        self.time_s += dt_s

    def state(self) -> CrowdState:
        """A read-only copy of the crowd for drawing."""
        return CrowdState(
            position_m=_frozen(self._pos),
            velocity_mps=_frozen(self._vel),
            facing_rad=_frozen(self._facing),
            gait_phase_rad=_frozen(self._phase),
            gait_amplitude=_frozen(self._amplitude),
            active=_frozen(self._active),
            desired_speed_mps=_frozen(self._v0),
        )

    def directions_rad(self) -> np.ndarray:
        """The level's crossing directions, radians from +x, shape (crossing_directions,)."""
        k = self.level.crossing_directions
        return np.arange(k) * (_TWO_PI / k)

    def violations(self) -> tuple[float, float]:
        """Smallest pair distance and smallest distance to the patient among the active, in m.

        ``inf`` where there is nobody to measure. For tests and logging.
        """
        p = self._pos[self._active]
        if p.shape[0] == 0:
            return math.inf, math.inf
        to_patient = float(np.min(np.hypot(p[:, 0], p[:, 1])))
        if p.shape[0] < 2:
            return math.inf, to_patient
        d = np.hypot(p[:, None, 0] - p[None, :, 0], p[:, None, 1] - p[None, :, 1])
        np.fill_diagonal(d, np.inf)
        return float(d.min()), to_patient

    # ----------------------------------------------------------------- internals

    def _snap_to_directions(self, heading: np.ndarray) -> np.ndarray:
        dirs = self.directions_rad()
        diff = np.angle(np.exp(1j * (heading[:, None] - dirs[None, :])))
        return dirs[np.argmin(np.abs(diff), axis=1)]

    def _head_on_heading(self) -> float:
        # From the front (+y), within ±30° of straight ahead, walking at the patient.
        return -math.pi / 2 + math.radians(float(self._rng.uniform(-30.0, 30.0)))

    def _is_clear(self, i: int, p: np.ndarray) -> bool:
        if math.hypot(p[0], p[1]) < self.level.passing_distance_m + self.params.body_radius_m:
            return False
        others = self._active.copy()
        others[i] = False
        q = self._pos[others]
        if q.shape[0] == 0:
            return True
        d2 = (q[:, 0] - p[0]) ** 2 + (q[:, 1] - p[1]) ** 2
        return bool(d2.min() >= (self.params.min_separation_m * 1.05) ** 2)

    def _new_walker(self, i: int) -> None:
        """Draw direction, side and speed state for pedestrian ``i`` (not the position)."""
        rng = self._rng
        if self._head_on[i]:
            self._heading[i] = self._head_on_heading()
            self._passed[i] = False
        else:
            self._heading[i] = float(rng.choice(self.directions_rad()))
            self._passed[i] = True
        self._side[i] = 1.0 if rng.random() < 0.5 else -1.0
        self._stop_left_s[i] = 0.0
        self._stuck_s[i] = 0.0
        self._detour_left_s[i] = 0.0

    def _place_inside(self, i: int) -> None:
        """Put pedestrian ``i`` somewhere free inside the plaza (initial population)."""
        rng = self._rng
        self._new_walker(i)
        r_area = self.area_radius_m
        for _ in range(50):
            if self._head_on[i]:
                dist = rng.uniform(0.5, 0.9) * r_area
                h = self._heading[i]
                p = -dist * np.array([math.cos(h), math.sin(h)])
            else:
                radius = r_area * math.sqrt(rng.uniform(0.0, 1.0))
                ang = rng.uniform(0.0, _TWO_PI)
                p = np.array([radius * math.cos(ang), radius * math.sin(ang)])
            if self._is_clear(i, p):
                self._pos[i] = p
                e = np.array([math.cos(self._heading[i]), math.sin(self._heading[i])])
                self._vel[i] = self._v0[i] * e
                self._facing[i] = self._heading[i]
                self._amplitude[i] = 1.0
                self._active[i] = True
                return
        self._active[i] = False  # no room now: it will enter at the rim later

    def _try_enter(self, i: int) -> bool:
        """Let pedestrian ``i`` enter at the rim upstream of its direction, if there is room."""
        rng = self._rng
        self._new_walker(i)
        r_area = self.area_radius_m * 0.995
        h = self._heading[i]
        e = np.array([math.cos(h), math.sin(h)])
        n = np.array([-e[1], e[0]])
        for _ in range(4):
            lateral = 0.0 if self._head_on[i] else rng.uniform(-0.9, 0.9) * r_area
            p = lateral * n - math.sqrt(r_area * r_area - lateral * lateral) * e
            if self._is_clear(i, p):
                self._pos[i] = p
                self._vel[i] = self._v0[i] * e
                self._facing[i] = h
                self._amplitude[i] = 1.0
                self._active[i] = True
                return True
        return False

    def _clear_passing_circle(self) -> None:
        """After a level change: move anyone inside the passing circle out, keep separation."""
        d_pass = self.level.passing_distance_m
        p = self._pos
        r = np.hypot(p[:, 0], p[:, 1])
        inside = self._active & (r < d_pass)
        if np.any(inside):
            scale = (d_pass + 1e-6) / np.maximum(r[inside], 1e-9)
            p[inside] *= scale[:, None]
            self._vel[inside] = 0.0
        idx = np.flatnonzero(self._active)
        q = self._pos[idx]
        a, b = self._candidates(q)
        q0 = q.copy()
        self._project(q, d_pass, a, b)
        bad = self._violators(q, q0, d_pass, a, b)
        self._pos[idx] = q
        # Whoever still has no room leaves and re-enters at the rim later.
        self._active[idx[bad]] = False

    def _desired_directions(self, idx: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Unit desired directions ``e`` for the active pedestrians ``idx`` at positions ``p``."""
        # Two walkers blocking each other head-on or at right angles sit in an
        # equilibrium of the force model that real people break by stepping
        # aside: while a detour runs, the desired direction turns 60° to one side.
        h = self._heading[idx] + np.where(
            self._detour_left_s[idx] > 0.0, self._side[idx] * _DETOUR_RAD, 0.0
        )
        ex = np.cos(h)
        ey = np.sin(h)
        dist = np.hypot(p[:, 0], p[:, 1])
        # The head-on walker aims at the patient until it is past (beyond the patient
        # along its walking direction), then keeps its heading.
        head_on = self._head_on[idx] & ~self._passed[idx]
        if np.any(head_on):
            safe = np.maximum(dist, 1e-9)
            ex = np.where(head_on, -p[:, 0] / safe, ex)
            ey = np.where(head_on, -p[:, 1] / safe, ey)
        # Steer around the patient when the path would cross the passing circle:
        # a detour that starts deflect_range_m outside the circle.
        d_pass = self.level.passing_distance_m
        ahead = (p[:, 0] * ex + p[:, 1] * ey) < 0.0
        lateral = ex * p[:, 1] - ey * p[:, 0]  # signed offset of the walker from its line
        start = d_pass + self.params.deflect_range_m
        crossing = ahead & (dist < start) & (np.abs(lateral) < d_pass + self.params.body_radius_m)
        if np.any(crossing):
            side = np.where(np.abs(lateral) > 1e-3, np.sign(lateral), self._side[idx])
            gain = 2.0 * np.clip((start - dist) / self.params.deflect_range_m, 0.0, 1.0)
            gain = np.where(crossing, gain, 0.0)
            nx, ny = -ey * side, ex * side
            ex = ex + gain * nx
            ey = ey + gain * ny
            norm = np.hypot(ex, ey)
            ex = ex / norm
            ey = ey / norm
        return np.stack((ex, ey), axis=1)

    def _project(
        self, q: np.ndarray, d_pass: float, a: np.ndarray, b: np.ndarray, iterations: int = 6
    ) -> None:
        """Push overlapping pairs apart and walkers off the passing circle, in place.

        Only the candidate pairs ``(a, b)`` are looked at (see :meth:`_violators`).
        """
        dmin = self.params.min_separation_m
        target = dmin + _PROJECTION_SLACK_M
        n = q.shape[0]
        for _ in range(iterations):
            moved = False
            if a.size:
                dx = q[a, 0] - q[b, 0]
                dy = q[a, 1] - q[b, 1]
                d = np.sqrt(dx * dx + dy * dy)
                close = d < dmin
                if np.any(close):
                    moved = True
                    ca, cb, d, dx, dy = a[close], b[close], d[close], dx[close], dy[close]
                    ok = d > 1e-9
                    dd = np.where(ok, d, 1.0)
                    ux = np.where(ok, dx / dd, 1.0)
                    uy = np.where(ok, dy / dd, 0.0)
                    push = 0.5 * (target - d)
                    cx = np.bincount(ca, push * ux, n) - np.bincount(cb, push * ux, n)
                    cy = np.bincount(ca, push * uy, n) - np.bincount(cb, push * uy, n)
                    q[:, 0] += cx
                    q[:, 1] += cy
            r = np.hypot(q[:, 0], q[:, 1])
            inside = r < d_pass
            if np.any(inside):
                moved = True
                safe = np.maximum(r[inside], 1e-9)
                q[inside] *= ((d_pass + _PROJECTION_SLACK_M) / safe)[:, None]
            if not moved:
                return

    def _candidates(self, q0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs ``a < b`` of rows of ``q0`` that could come within ``min_separation_m``."""
        pairs = _Pairs.of(q0, self.params.min_separation_m + _CANDIDATE_MARGIN_M, self._scratch)
        keep = pairs.a < pairs.b
        return pairs.a[keep], pairs.b[keep]

    def _violators(
        self, q: np.ndarray, q0: np.ndarray, d_pass: float, a: np.ndarray, b: np.ndarray
    ) -> np.ndarray:
        """Boolean mask of rows of ``q`` that break either hard constraint.

        Pairs outside the candidate list ``(a, b)`` (built at ``q0``) started at
        least ``min_separation_m + margin`` apart; as long as nobody moved more
        than half the margin since ``q0`` they cannot overlap, so only the
        candidates are checked. Otherwise every pair is checked.
        """
        bad = np.hypot(q[:, 0], q[:, 1]) < d_pass
        n = q.shape[0]
        if n < 2:
            return bad
        dmin = self.params.min_separation_m
        moved = np.hypot(q[:, 0] - q0[:, 0], q[:, 1] - q0[:, 1]).max()
        if moved > 0.5 * _CANDIDATE_MARGIN_M:
            a, b = np.triu_indices(n, 1)
            d = np.hypot(q[a, 0] - q[b, 0], q[a, 1] - q[b, 1])
        else:
            d = np.hypot(q[a, 0] - q[b, 0], q[a, 1] - q[b, 1])
        close = d < dmin
        bad[a[close]] = True
        bad[b[close]] = True
        return bad

    def _substep(self, h: float) -> None:
        rng = self._rng
        prm = self.params
        level = self.level
        idx = np.flatnonzero(self._active)
        n = idx.size
        if n:
            p0 = self._pos[idx]
            v = self._vel[idx]
            v0 = self._v0[idx]

            # Sudden stops and turns: Poisson events, half of each.
            rate = level.stop_turn_rate_hz
            draws = rng.random((n, 4))
            if rate > 0.0:
                event = draws[:, 0] < -math.expm1(-rate * h)
                event &= ~self._head_on[idx]
                stop = event & (draws[:, 1] < 0.5)
                turn = event & ~stop
                self._stop_left_s[idx[stop]] = 1.0 + 2.0 * draws[stop, 2]
                turn_rad = np.radians(60.0 + 60.0 * draws[turn, 2]) * np.where(
                    draws[turn, 3] < 0.5, -1.0, 1.0
                )
                self._heading[idx[turn]] += turn_rad
            stopped = self._stop_left_s[idx] > 0.0
            self._stop_left_s[idx] = np.maximum(self._stop_left_s[idx] - h, 0.0)

            e = self._desired_directions(idx, p0)
            speed_goal = np.where(stopped, 0.0, v0)
            acc = (speed_goal[:, None] * e - v) / prm.tau_s
            near = prm.min_separation_m + _CANDIDATE_MARGIN_M
            pairs = _Pairs.of(p0, max(prm.interaction_cutoff_m, near), self._scratch)
            acc += _pair_forces(pairs.within(prm.interaction_cutoff_m), v, e, prm)
            contact = pairs.within(near)
            upper = contact.a < contact.b
            ca, cb = contact.a[upper], contact.b[upper]
            # The patient: the 1995 border potential U0 exp(-d/R), d measured from the
            # passing circle, pushing radially outwards.
            dist = np.maximum(np.hypot(p0[:, 0], p0[:, 1]), 1e-9)
            gap = np.maximum(dist - level.passing_distance_m, 0.0)
            mag = prm.border_u0_m2ps2 / prm.border_range_m * np.exp(-gap / prm.border_range_m)
            acc += (mag / dist)[:, None] * p0

            v = v + h * acc
            speed = np.hypot(v[:, 0], v[:, 1])
            v_max = prm.max_speed_factor * v0
            too_fast = speed > v_max
            if np.any(too_fast):
                v[too_fast] *= (v_max[too_fast] / speed[too_fast])[:, None]
            q = p0 + h * v

            self._project(q, level.passing_distance_m, ca, cb)
            bad = self._violators(q, p0, level.passing_distance_m, ca, cb)
            while np.any(bad):
                # Projection could not untangle it: put the offenders back where the
                # sub-step found them (a valid state) and stop them. Terminates
                # because reverting everyone restores the valid start.
                self.reverts += int(np.count_nonzero(bad))
                q[bad] = p0[bad]
                v[bad] = 0.0
                bad = self._violators(q, p0, level.passing_distance_m, ca, cb)

            # Gait and facing follow the distance actually walked.
            walked = np.hypot(q[:, 0] - p0[:, 0], q[:, 1] - p0[:, 1])
            self._phase[idx] = (self._phase[idx] + _TWO_PI * walked / self._stride_m[idx]) % _TWO_PI
            speed = np.hypot(v[:, 0], v[:, 1])
            self._amplitude[idx] = np.clip(speed / np.maximum(v0, 1e-6), 0.0, 1.0)
            facing = self._facing[idx]
            goal = np.arctan2(v[:, 1], v[:, 0])
            turn_by = np.angle(np.exp(1j * (goal - facing)))
            k = min(1.0, h / 0.15)
            self._facing[idx] = np.where(speed > 0.2, facing + k * turn_by, facing)

            # Jams: nearly still without a stop event for a while -> sidestep for a while.
            slow = (speed < 0.3 * v0) & ~stopped
            self._stuck_s[idx] = np.where(slow, self._stuck_s[idx] + h, 0.0)
            self._detour_left_s[idx] = np.maximum(self._detour_left_s[idx] - h, 0.0)
            jammed = idx[self._stuck_s[idx] > _STUCK_AFTER_S]
            self._detour_left_s[jammed] = _DETOUR_S
            self._stuck_s[jammed] = 0.0

            # The head-on walker is past once it is beyond the patient along its heading.
            hx = np.cos(self._heading[idx])
            hy = np.sin(self._heading[idx])
            self._passed[idx] |= (q[:, 0] * hx + q[:, 1] * hy) > 0.0

            self._pos[idx] = q
            self._vel[idx] = v

            # Leaving the plaza: re-enter at the rim, or retire if the level wants fewer.
            r_now = np.hypot(q[:, 0], q[:, 1])
            outward = (q[:, 0] * v[:, 0] + q[:, 1] * v[:, 1]) > 0.0
            leaving = idx[(r_now > self.area_radius_m) & outward]
            self._active[leaving] = False
        # Everyone the level wants but who is not in the plaza tries to enter.
        want = np.zeros(self.capacity, dtype=bool)
        want[: level.pedestrian_count] = True
        for i in np.flatnonzero(want & ~self._active):
            self._try_enter(int(i))
