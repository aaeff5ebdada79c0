"""A simulated person standing on a simulated plate: forces, then raw counts.

Quiet stance is modelled, per direction (anterior-posterior and
medio-lateral), as the classic single-link inverted pendulum balanced by a
delayed proportional-derivative ankle torque plus low-pass motor noise
(Peterka 2002; Maurer & Peterka 2005):

    I θ'' = m g h sin θ - Kp θ(t - τ) - Kd θ'(t - τ) + n(t)

with ``I = m h²`` (point mass at the CoM height ``h``), ``Kp`` a little above
the gravitational stiffness ``m g h`` (so the pendulum is stable, as people
are), ``τ`` about 120 ms of sensorimotor delay, and ``n`` noise torque
filtered to a few hertz. The ankle torque ``T`` shows on the plate as a CoP
offset ``-T / Fz`` from the stance centre; the CoM's acceleration shows as the
horizontal force ``m h θ''``. With the defaults, the CoP's mean velocity and
95 % ellipse area are of the order of the BDS eyes-open firm trials (about
0.6-0.9 cm/s and 1-2 cm²; ``tests/devices/test_simulator.py`` checks it).

Scripted events (:class:`ScriptEvent`, parsed from ``"lean@10s,fall@25s"``)
change the reference: a **lean** moves the CoM (and so the CoP) to a target
offset and back; a **fall** saturates the ankle torque towards one edge while
the CoM runs away, then the person steps off; **stepoff**/**stepon** ramp the
load to nothing (or, with ``load=F``, to that share of the body weight: a
person half off the plate) and back; **unplug**/**replug**/**stall** are carried out by
the pseudo-terminal server (:mod:`vrbalance.devices.pty_server`).

For calibration, :class:`StaticLoad` steps put a known mass at named places on
an otherwise empty plate.

Everything is deterministic for a given keyword-only ``seed``: each simulator
owns a ``numpy.random.Generator``.
"""

from __future__ import annotations

import logging
import math
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vrbalance.devices.calibration import GRAVITY_M_S2, Calibration, FrameConverter
from vrbalance.errors import ConfigError

log = logging.getLogger(__name__)

FALL_PUSH_RATIO = 0.15
# How long the CoP takes to reach the toes once balance is lost: the ankle torque
# saturates within a few hundred ms of a forward loss of balance (the same order
# as the 0.2-0.3 s to the first protective step; Maki & McIlroy 1997).
FALL_SATURATION_S = 0.3
"""Torque pushing a fall, over ``m g h``: with no ankle torque left the body
topples with a time constant sqrt(h/g) of about 0.3 s."""
FALL_MAX_TILT_RAD = 0.6
"""Where a simulated fall stops tilting (about 35°)."""

EVENT_KINDS: tuple[str, ...] = ("lean", "fall", "stepoff", "stepon", "unplug", "replug", "stall")
SERVER_EVENTS: tuple[str, ...] = ("unplug", "replug", "stall")


@dataclass(frozen=True, slots=True)
class PersonParams:
    """A standing person, with the quiet-stance controller's tuning.

    Attributes
    ----------
    mass_kg, height_m : float
        Body mass and height.
    com_height_frac : float
        CoM height over body height (about 0.55, Winter's anthropometry).
    delay_s : float
        Sensorimotor feedback delay (Peterka: 100-200 ms).
    kp_ratio : float
        Ankle stiffness over gravitational stiffness ``m g h`` (>1 is stable).
    kd_ratio_s : float
        Ankle damping over ``m g h``, in s.
    noise_torque_nm : (float, float)
        Standard deviation of the motor noise torque (ML, AP), N·m.
    noise_tau_s : float
        Time constant of the noise's low-pass filter.
    muscle_tau_s : float
        Muscle activation: the commanded torque reaches the ankle through a
        second-order low-pass of this time constant (why the CoP is smooth).
    stance_cop_m : (float, float)
        Mean CoP (x right, y anterior) on the plate, m.
    sensor_noise_n : float
        White noise per force channel (load-cell electronics), N.
    """

    mass_kg: float = 70.0
    height_m: float = 1.72
    com_height_frac: float = 0.55
    delay_s: float = 0.12
    kp_ratio: float = 1.35
    kd_ratio_s: float = 0.4
    noise_torque_nm: tuple[float, float] = (0.4, 0.6)
    noise_tau_s: float = 0.5
    muscle_tau_s: float = 0.05
    stance_cop_m: tuple[float, float] = (0.0, 0.02)
    sensor_noise_n: float = 0.05

    @property
    def com_height_m(self) -> float:
        return self.height_m * self.com_height_frac


@dataclass(frozen=True, slots=True)
class ScriptEvent:
    """One scripted event.

    Attributes
    ----------
    kind : str
        One of ``lean fall stepoff stepon unplug replug stall``.
    t_s : float
        When, in seconds from the start of the simulation.
    params : tuple of (str, float)
        Options: lean ``x``/``y`` (target CoP offset, m; default y=0.05),
        ``ramp`` and ``hold`` (s); fall ``x``/``y`` direction (default front);
        stall ``duration`` (s).
    """

    kind: str
    t_s: float
    params: tuple[tuple[str, float], ...] = ()

    def get(self, key: str, default: float) -> float:
        return dict(self.params).get(key, default)


_EVENT_RE = re.compile(r"^\s*([a-z]+)\s*@\s*([0-9.]+)\s*(ms|s)?\s*((?::[a-z]+=[-+0-9.eE]+)*)\s*$")


def parse_script(text: str | Sequence[str]) -> list[ScriptEvent]:
    """Parse ``"lean@10s:y=0.06:hold=3,fall@25s"`` into sorted events.

    Raises
    ------
    ConfigError
        Naming the bad item and the accepted form.
    """
    items = [text] if isinstance(text, str) else list(text)
    events: list[ScriptEvent] = []
    for item in (part for chunk in items for part in chunk.split(",") if part.strip()):
        match = _EVENT_RE.match(item)
        if match is None or match.group(1) not in EVENT_KINDS:
            raise ConfigError(
                f"--script item {item.strip()!r}: expected KIND@TIMEs[:key=value...] with KIND "
                f"one of {', '.join(EVENT_KINDS)}, e.g. 'lean@10s:y=0.06' or 'fall@25s'"
            )
        try:
            t_s = float(match.group(2)) * (0.001 if match.group(3) == "ms" else 1.0)
            params = tuple(
                (k, float(v)) for k, v in (p.split("=") for p in match.group(4).split(":") if p)
            )
        except ValueError:
            t_s, params = math.nan, ()
        if not (math.isfinite(t_s) and all(math.isfinite(v) for _, v in params)):
            raise ConfigError(
                f"--script item {item.strip()!r}: its time and values must be finite numbers"
            )
        events.append(ScriptEvent(match.group(1), t_s, params))
    return sorted(events, key=lambda e: e.t_s)


@dataclass(frozen=True, slots=True)
class StaticLoad:
    """From ``t_s`` on, ``mass_kg`` rests at ``position_m`` (None: plate empty)."""

    t_s: float
    position_m: tuple[float, float] | None
    mass_kg: float = 0.0


class StandingPerson:
    """Two delayed-feedback inverted pendulums (ML, AP) and a script of events.

    Parameters
    ----------
    params : PersonParams
        Body and controller.
    rate_hz : float
        Sample rate; the dynamics are integrated at this step (semi-implicit
        Euler, stable for rate_hz >= 100).
    script : sequence of ScriptEvent
        Body events (server events are ignored here).
    plate_half_size_m : (float, float)
        Half width and half depth of the plate: a fall drives the CoP there.
    seed : int
        Seeds this person's own generator.
    """

    def __init__(
        self,
        params: PersonParams | None = None,
        *,
        rate_hz: float = 100.0,
        script: Sequence[ScriptEvent] = (),
        plate_half_size_m: tuple[float, float] = (0.2, 0.12),
        seed: int,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.p = params or PersonParams()
        self.rate_hz = float(rate_hz)
        self.dt = 1.0 / self.rate_hz
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
        self._half = plate_half_size_m
        self._events = deque(
            e for e in sorted(script, key=lambda e: e.t_s) if e.kind not in SERVER_EVENTS
        )
        h = self.p.com_height_m
        m = self.p.mass_kg
        self._mgh = m * GRAVITY_M_S2 * h
        self._inertia = m * h * h
        n_delay = max(1, round(self.p.delay_s * self.rate_hz))
        self._hist: deque[np.ndarray] = deque(
            [np.zeros(4) for _ in range(n_delay)], maxlen=n_delay
        )  # (theta_ml, theta_ap, omega_ml, omega_ap) delayed
        # Public (read by vrbalance.sessions.sim for the simulated head): body tilt
        # (ML, AP) in rad; the CoM sits h sin(theta) from the stance centre.
        self.theta = np.zeros(2)
        self.omega = np.zeros(2)
        self._noise = np.zeros(2)
        self._muscle1 = np.zeros(2)
        self._muscle2 = np.zeros(2)
        self._ref = np.zeros(2)  # reference CoM offset, m
        self._ramp: tuple[float, np.ndarray, np.ndarray, float] | None = None
        self._lean_return_t: float | None = None
        self._load = 1.0  # fraction of body weight on the plate
        self._load_target = 1.0
        self._fall: np.ndarray | None = None
        self._fall_t0 = 0.0
        self._fall_cop0: np.ndarray | None = None
        self._last_cop = np.zeros(2)
        self.t_s = 0.0
        # Start from the stationary noise state so the first seconds look like the rest.
        for _ in range(int(2.0 * self.rate_hz)):
            self._step_dynamics()
        self.t_s = 0.0

    # -- events --------------------------------------------------------------
    def _start_ramp(self, target: np.ndarray, ramp_s: float) -> None:
        self._ramp = (self.t_s, self._ref.copy(), target, max(ramp_s, self.dt))

    def _handle(self, event: ScriptEvent) -> None:
        log.info("simulated person: %s at %.2f s", event.kind, self.t_s)
        if event.kind == "lean":
            target = np.array([event.get("x", 0.0), event.get("y", 0.05)])
            self._start_ramp(target, event.get("ramp", 1.0))
            self._lean_return_t = self.t_s + event.get("ramp", 1.0) + event.get("hold", 5.0)
        elif event.kind == "fall":
            direction = np.array([event.get("x", 0.0), event.get("y", 1.0)])
            norm = float(np.hypot(*direction)) or 1.0
            self._fall = direction / norm
            self._fall_t0 = self.t_s
            self._fall_cop0 = None  # taken from the last quiet-stance CoP on the next step
        elif event.kind == "stepoff":
            # load=F leaves that share of the weight on the plate (0.5: half off it,
            # the other foot on the floor); default all of it off.
            self._load_target = min(max(event.get("load", 0.0), 0.0), 1.0)
        elif event.kind == "stepon":
            # Back on the plate standing upright: forget the fall everywhere it is
            # remembered (delayed feedback, muscle filters, pending lean), or the
            # controller would react to a 0.6 rad tilt that no longer exists.
            self._load_target = 1.0
            self._fall = None
            self._fall_cop0 = None
            self.theta[:] = 0.0
            self.omega[:] = 0.0
            self._ref[:] = 0.0
            for past in self._hist:
                past[:] = 0.0
            self._muscle1[:] = 0.0
            self._muscle2[:] = 0.0
            self._ramp = None
            self._lean_return_t = None

    # -- dynamics ------------------------------------------------------------
    def _step_dynamics(self) -> np.ndarray:
        """Advance one sample; return the ankle torques (ML, AP), N·m."""
        p = self.p
        dt = self.dt
        h = p.com_height_m
        alpha = dt / (p.noise_tau_s + dt)
        white = self._rng.standard_normal(2) * np.asarray(p.noise_torque_nm)
        # Low-pass noise, rescaled so its std stays noise_torque_nm whatever the rate.
        self._noise += alpha * (white * math.sqrt((2.0 - alpha) / alpha) - self._noise)
        delayed = self._hist[0]
        ref_theta = np.arcsin(np.clip(self._ref / h, -0.5, 0.5))
        command = (
            -p.kp_ratio * self._mgh * (delayed[:2] - ref_theta)
            - p.kd_ratio_s * self._mgh * delayed[2:]
            - self._mgh * np.sin(ref_theta)  # feed-forward holds a lean
            + self._noise
        )
        if self._fall is not None:
            # Balance lost: no corrective torque, a push the way of the fall.
            command = self._mgh * FALL_PUSH_RATIO * self._fall
        beta = dt / (p.muscle_tau_s + dt)
        self._muscle1 += beta * (command - self._muscle1)
        self._muscle2 += beta * (self._muscle1 - self._muscle2)
        torque = self._muscle2
        gravity = self._mgh * np.sin(self.theta)
        accel = (gravity + torque) / self._inertia
        self.omega += accel * dt
        self.theta += self.omega * dt
        if self._fall is not None:
            # Past ~35° the person is on the floor (or caught): stop there.
            limit = FALL_MAX_TILT_RAD
            stopped = np.abs(self.theta) > limit
            self.theta = np.clip(self.theta, -limit, limit)
            self.omega[stopped] = 0.0
        self._hist.append(np.concatenate([self.theta, self.omega]))
        self._last_accel = accel
        return torque

    def step(self) -> tuple[float, float, float, float, float, float]:
        """Advance one sample; return ``(Fx, Fy, Fz, cop_x, cop_y, Mz)`` on the plate.

        Forces in N (ground reaction on the person, z up), CoP in m, core frame.
        """
        while self._events and self._events[0].t_s <= self.t_s:
            self._handle(self._events.popleft())
        if self._ramp is not None:
            t0, start, target, ramp_s = self._ramp
            u = min(1.0, (self.t_s - t0) / ramp_s)
            u = u * u * (3.0 - 2.0 * u)  # smoothstep: no jerk at either end
            self._ref = start + (target - start) * u
            if u >= 1.0:
                self._ramp = None
        if self._lean_return_t is not None and self.t_s >= self._lean_return_t:
            self._lean_return_t = None
            self._start_ramp(np.zeros(2), 1.0)
        torque = self._step_dynamics()
        p = self.p
        m = p.mass_kg
        h = p.com_height_m
        fz_body = m * GRAVITY_M_S2
        # torque[0] (ML) moves x, torque[1] (AP) moves y: cop = -T / Fz per axis.
        cop = np.array([-torque[0], -torque[1]]) / fz_body
        fh = m * h * self._last_accel  # horizontal force (Fx, Fy), N
        if self._fall is not None:
            # Loss of balance: the ankles saturate (CoP at the toes and beyond as the
            # first stepping foot lands near the plate's edge), then the person is off.
            # The CoP moves monotonically from where it was towards that edge: the
            # push torque that topples the model body would, read as -T/Fz, put it
            # behind the ankles, which no falling person's CoP does.
            if self._fall_cop0 is None:
                self._fall_cop0 = self._last_cop.copy()
            elapsed = self.t_s - self._fall_t0
            edge = np.asarray(self._half) * self._fall * 1.05
            u = min(1.0, elapsed / FALL_SATURATION_S)
            cop = self._fall_cop0 + (edge - self._fall_cop0) * (u * u * (3.0 - 2.0 * u))
            fh = 0.3 * fz_body * self._fall * min(1.0, elapsed / 0.3)
            if elapsed > 0.6:
                self._load_target = 0.0
        self._last_cop = cop
        # Load ramps (stepping off takes ~0.4 s: one foot then the other).
        rate = self.dt / 0.4
        self._load += float(np.clip(self._load_target - self._load, -rate, rate))
        load = self._load
        fz = fz_body * load
        mz = 0.015 * self._noise[0]  # free moment about z: small, ~0.01 N·m
        noise = self._rng.standard_normal(3) * p.sensor_noise_n
        self.t_s += self.dt
        cx = p.stance_cop_m[0] + float(cop[0])
        cy = p.stance_cop_m[1] + float(cop[1])
        return (
            float(fh[0]) * load + float(noise[0]),
            float(fh[1]) * load + float(noise[1]),
            fz + float(noise[2]),
            cx,
            cy,
            mz * load,
        )


def cell_forces(fz_n: float, cop_x_m: float, cop_y_m: float, cells_m: np.ndarray) -> np.ndarray:
    """Distribute a vertical force over four cells so their CoP is (x, y).

    Bilinear weights on the cells' bounding rectangle: they sum to ``fz_n``
    and their first moments give the CoP exactly (inside the rectangle; a CoP
    outside extrapolates, giving a negative cell, as a real plate would).
    """
    cells = np.asarray(cells_m, dtype=float)
    cx, cy = cells[:, 0].mean(), cells[:, 1].mean()
    ax = np.abs(cells[:, 0] - cx).mean()
    ay = np.abs(cells[:, 1] - cy).mean()
    sx = np.sign(cells[:, 0] - cx)
    sy = np.sign(cells[:, 1] - cy)
    return fz_n / 4.0 * (1.0 + sx * (cop_x_m - cx) / ax) * (1.0 + sy * (cop_y_m - cy) / ay)


def plate_channels(
    kind: str,
    forces: tuple[float, float, float, float, float, float],
    *,
    cells_m: np.ndarray | None = None,
    top_offset_m: float = 0.0,
) -> np.ndarray:
    """Core-order physical channels for ``(Fx, Fy, Fz, cop_x, cop_y, Mz)``.

    Four-cell plates: the cells' vertical forces (N). Six-axis plates:
    ``(Fx, Fy, Fz, Mx, My, Mz)`` such that :func:`vrbalance.balance.cop.cop_six_axis`
    gives back the CoP: ``cop_x = (-h Fx - My) / Fz``, ``cop_y = (-h Fy + Mx) / Fz``
    with ``h = top_offset_m`` as the plate file defines it (0 for moments about
    the top surface, as in the BDS data).
    """
    fx, fy, fz, x, y, mz = forces
    if kind == "cells4":
        if cells_m is None:
            raise ValueError("cells4 plates need cells_m")
        return cell_forces(fz, x, y, cells_m)
    h = top_offset_m
    return np.array([fx, fy, fz, fz * y + h * fy, -fz * x - h * fx, mz])


class PlateSignal:
    """Raw counts for a plate, from a standing person or static calibration loads.

    Parameters
    ----------
    plate : PlateSpec
        Kind, geometry and channel map.
    calibration : Calibration
        Its inverse turns newtons into counts (so a driver using the same
        calibration reads the simulated forces back).
    rate_hz : float
        Samples per second.
    script : sequence of ScriptEvent
        Person events.
    loads : sequence of StaticLoad, optional
        If given, no person: the plate carries these loads instead.
    person : PersonParams, optional
    seed : int
        Keyword-only; seeds the person and the count noise.
    adc_noise_counts : float
        Standard deviation of white noise added to each count.
    """

    def __init__(
        self,
        plate: Any,
        calibration: Calibration,
        *,
        rate_hz: float,
        script: Sequence[ScriptEvent] = (),
        loads: Sequence[StaticLoad] | None = None,
        person: PersonParams | None = None,
        seed: int,
        adc_noise_counts: float = 2.0,
    ) -> None:
        self.plate = plate
        self.kind = plate.kind
        self.rate_hz = float(rate_hz)
        self._converter = FrameConverter(plate, calibration)
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1])))
        self._adc_noise = adc_noise_counts
        geometry = plate.geometry
        self._cells = (
            np.asarray(geometry.cell_positions_m, dtype=float) if self.kind == "cells4" else None
        )
        self._top_offset_m = float(getattr(geometry, "top_offset_m", 0.0) or 0.0)
        self._loads = sorted(loads, key=lambda s: s.t_s) if loads is not None else None
        self.person = (
            None
            if loads is not None
            else StandingPerson(
                person,
                rate_hz=rate_hz,
                script=script,
                plate_half_size_m=(geometry.width_m / 2.0, geometry.depth_m / 2.0),
                seed=seed,
            )
        )
        self.t_s = 0.0
        self.last_forces: tuple[float, ...] = (0.0,) * 6

    def place(self, position_m: tuple[float, float] | None, mass_kg: float) -> None:
        """From the next sample on, ``mass_kg`` rests at ``position_m`` (None: empty plate).

        What an operator does when ``vrbalance calibrate plate`` asks for it: a
        guided calibration (or its test) moves the mass when the step is
        announced, whereas scripted loads move at set times whether the
        procedure is ready or not. Safe from another thread than the one making
        samples (the load list is replaced whole).

        Raises
        ------
        ValueError
            If the plate simulates a standing person (no static loads).
        """
        if self._loads is None:
            raise ValueError("this simulated plate carries a person, not static loads")
        load = StaticLoad(self.t_s, position_m, mass_kg)
        self._loads = sorted([*self._loads, load], key=lambda s: s.t_s)

    def _static(self) -> tuple[float, float, float, float, float, float]:
        current: StaticLoad | None = None
        for load in self._loads or ():
            if load.t_s <= self.t_s:
                current = load
        if current is None or current.position_m is None:
            return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        x, y = current.position_m
        return (0.0, 0.0, current.mass_kg * GRAVITY_M_S2, x, y, 0.0)

    def next_counts(self) -> tuple[int, ...]:
        """The next sample's wire counts (ints)."""
        forces = self.person.step() if self.person is not None else self._static()
        self.last_forces = forces
        self.t_s += 1.0 / self.rate_hz
        values = plate_channels(
            self.kind, forces, cells_m=self._cells, top_offset_m=self._top_offset_m
        )
        counts = self._converter.core_to_counts(values[np.newaxis, :])[0]
        counts += self._rng.standard_normal(counts.shape) * self._adc_noise
        return tuple(int(c) for c in np.rint(counts))


_LOAD_RE = re.compile(r"^\s*([a-z-]+)\s*@\s*([0-9.]+)\s*(ms|s)?\s*$")


def parse_load_script(text: str, plate: Any, mass_kg: float) -> list[StaticLoad]:
    """Parse ``"empty@0s,centre@2s,front-left@4s"`` into calibration loads.

    Position names are those of
    :func:`vrbalance.devices.calibration.calibration_positions` (``centre``,
    ``front-left``, ``front-right``, ``back-left``, ``back-right``) or
    ``empty``; the mass is ``mass_kg`` throughout.

    Raises
    ------
    ConfigError
        Naming the bad item and the names this plate accepts.
    """
    from vrbalance.devices.calibration import calibration_positions

    positions = dict(calibration_positions(plate))
    loads = []
    for item in (part for part in text.split(",") if part.strip()):
        match = _LOAD_RE.match(item)
        if match is None or (match.group(1) != "empty" and match.group(1) not in positions):
            raise ConfigError(
                f"--load-script item {item.strip()!r}: expected PLACE@TIMEs with PLACE one of "
                f"empty, {', '.join(positions)}"
            )
        t_s = float(match.group(2)) * (0.001 if match.group(3) == "ms" else 1.0)
        name = match.group(1)
        loads.append(StaticLoad(t_s, None if name == "empty" else positions[name], mass_kg))
    return sorted(loads, key=lambda s: s.t_s)
