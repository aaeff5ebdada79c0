"""The simulated patient of ``vrbalance run --simulate``: plate, head and their script.

``--simulate`` runs every trial on the project's own simulated person
(:mod:`vrbalance.devices.simulator`) streaming through a pseudo-terminal
(:class:`~vrbalance.devices.pty_server.SimulatedPlateServer`) into the real
driver (:class:`~vrbalance.devices.driver.ForcePlate`), so a session in CI
exercises the same bytes-to-BalanceState path as a clinic.

The person does what each trial asks (:func:`trial_script`): it stands quietly,
leans towards each Limits-of-Stability target shortly after the cue, shifts its
weight at the trial's pace, and follows any extra script the caller adds
(``fall@5s`` to exercise the safety stop). The head is the same person's: a
:class:`SimulatedHead` reads the simulated pendulum's angle and places the
eyes on it, so head-based and plate-based estimates agree as they would on a
real patient.
"""

from __future__ import annotations

import math
from typing import Any

from vrbalance.clock import Clock
from vrbalance.samples import HeadPose
from vrbalance.sessions.assessments import los_directions_rad, los_target_distance_m
from vrbalance.sessions.protocol import Trial

#: Reaction time of the simulated person to a Limits-of-Stability cue, in s
#: (healthy adults: 0.5-0.9 s in NeuroCom's LOS; Clark et al. 1997).
SIM_REACTION_S = 0.6
#: How far the simulated person reaches towards a LoS target (fraction of it).
SIM_LOS_REACH = 0.45
#: Weight-shift amplitude of the simulated person, m (CoM offset).
SIM_SHIFT_M = 0.05
#: Mean CoP of quiet stance in front of the ankle axis, m: about 4-5 cm in
#: healthy adults (the body leans slightly forward; Gatev et al. 1999).
SIM_COP_AHEAD_OF_ANKLE_M = 0.045
#: Motor-noise scale of the simulated person by (eyes, surface): the ratio of
#: the BDS median CoP velocity of that condition to eyes open on a firm surface
#: (163 adults, ``vrbalance/report/data/bds_reference.tsv``: 0.90, 0.99, 2.78
#: and 3.54 cm/s). The pendulum's sway scales with its noise (velocity
#: linearly, ellipse area with the square), so each condition lands near its
#: BDS median; ``tests/sessions/test_sim.py`` checks it against the BDS spread.
SIM_NOISE_BY_CONDITION: dict[tuple[str, str], float] = {
    ("open", "firm"): 1.0,
    ("closed", "firm"): 1.10,
    ("open", "foam"): 3.09,
    ("closed", "foam"): 3.93,
}
#: Extra motor-noise scale (ML, AP) by stance: the narrower the base, the more
#: the body sways sideways (Day et al. 1993, Exp Brain Res 97:169-176: ML sway
#: grows as stance width shrinks; AP much less). Not calibrated on data (the
#: BDS stood feet apart only): ordered and of a plausible size.
SIM_NOISE_BY_STANCE: dict[str, tuple[float, float]] = {
    "feet_apart": (1.0, 1.0),
    "feet_together": (1.8, 1.1),
    "semi_tandem": (2.2, 1.2),
    "tandem": (2.8, 1.4),
    "single_left": (3.5, 2.0),
    "single_right": (3.5, 2.0),
}
#: The simulated person's motor noise in the reference condition (ML, AP), N·m:
#: :class:`~vrbalance.devices.simulator.PersonParams`' default.
SIM_BASE_NOISE_NM = (0.4, 0.6)


def sim_noise_torque_nm(stance: str, eyes: str, surface: str) -> tuple[float, float]:
    """Motor noise (ML, AP) of the simulated person for a trial's stance, vision and surface.

    Narrower stance, eyes closed and foam all sway more, by the factors above;
    an unknown stance or condition sways as the reference (feet apart, eyes
    open, firm).
    """
    k = SIM_NOISE_BY_CONDITION.get((eyes, surface), 1.0)
    ml, ap = SIM_NOISE_BY_STANCE.get(stance, (1.0, 1.0))
    return (SIM_BASE_NOISE_NM[0] * k * ml, SIM_BASE_NOISE_NM[1] * k * ap)


def trial_script(trial: Trial, com_height_m: float, extra: str = "") -> str:
    """The simulator script (times from the trial's start) that performs ``trial``.

    Parameters
    ----------
    trial : Trial
        Already scaled to the durations that will run.
    com_height_m : float
        The simulated person's CoM height, for LoS target distances.
    extra : str
        More script items, e.g. ``"fall@5s"`` (see
        :func:`vrbalance.devices.simulator.parse_script`).
    """
    items: list[str] = []
    if trial.assessment == "los" and trial.targets:
        # Cue -> react -> lean (ramp) -> hold -> the simulator's 1 s return ramp,
        # all inside one target's time at the protocol's 8 s per target.
        reaction = min(SIM_REACTION_S, 0.1 * trial.target_time_s)
        ramp = min(1.2, 0.2 * trial.target_time_s)
        hold = min(2.0, 0.2 * trial.target_time_s)
        for k, direction in enumerate(los_directions_rad(trial.targets)):
            d = SIM_LOS_REACH * los_target_distance_m(direction, com_height_m)
            t = k * trial.target_time_s + reaction
            items.append(
                f"lean@{t:.4f}s:x={d * math.sin(direction):.4f}:y={d * math.cos(direction):.4f}"
                f":ramp={ramp:.4f}:hold={hold:.4f}"
            )
    elif trial.task in ("weight_shift", "step_up") and trial.pace_s > 0:
        half = trial.pace_s / 2.0
        sideways = trial.task == "step_up" or "side" in trial.name.lower()
        n = int(trial.duration_s // half)
        for k in range(n):
            sign = 1.0 if k % 2 == 0 else -1.0
            x, y = (sign * SIM_SHIFT_M, 0.0) if sideways else (0.0, sign * SIM_SHIFT_M)
            items.append(
                f"lean@{k * half:.4f}s:x={x:.4f}:y={y:.4f}:ramp={0.4 * half:.4f}"
                f":hold={0.4 * half:.4f}"
            )
    from vrbalance.exercises.sim import exercise_script

    own = exercise_script(trial, trial.level or 1)
    if own:
        items.append(own)
    if extra:
        items.append(extra)
    return ",".join(items)


class SimulatedHead:
    """Head poses of the simulated person standing on the simulated plate.

    The simulated person is an inverted pendulum whose CoM sits at
    ``centre + h·sin θ`` (θ per axis, ML and AP; ``centre`` its mean CoP).
    The eyes lie on the same straight body line through the ankle axis,
    scaled from CoM height to eye height, so the estimator's head-based CoM
    (:mod:`vrbalance.balance.com`) recovers the simulated CoM.

    Parameters
    ----------
    signal : PlateSignal
        The simulator whose ``person`` is read (the server's thread advances it;
        reading two floats is atomic enough for a stand-in).
    body : Body
        Eye and ankle heights.
    clock : Clock
        Stamps ``received_time_s``.
    ankle_m : tuple of 2 float
        Floor projection of the stance's ankle axis (core frame), m.
    """

    def __init__(self, signal: Any, body: Any, clock: Clock, ankle_m: tuple[float, float]) -> None:
        self._person = signal.person
        self._clock = clock
        self._ankle_z = float(body.ankle_height_m)
        self._ankle_xy = (float(ankle_m[0]), float(ankle_m[1]))
        params = getattr(self._person, "p", None)
        self._centre = tuple(getattr(params, "stance_cop_m", (0.0, 0.0)))
        self._com_h = float(getattr(params, "com_height_m", body.com_height_m))
        self._last_pose: HeadPose | None = None
        self._last_sample_t_s: float | None = None
        # Eye lever over CoM lever above the ankle axis.
        self._scale = (float(body.eye_height_m) - self._ankle_z) / (
            float(body.com_height_m) - self._ankle_z
        )

    def pose_at(self, t_s: float) -> HeadPose | None:
        """The simulated person's current head pose (``t_s`` is the tick time; the
        person lives in real time in the plate server's thread), or ``None``."""
        if self._person is None:
            return None
        # The person moves only when the plate server steps it (at the plate's
        # rate, slower than the loop): until then hand back the very same sample,
        # so the estimator and monitor see one pose, not a still head re-stamped
        # every tick (which would average zero-motion samples into head velocity).
        sample_t_s = getattr(self._person, "t_s", None)
        if self._last_pose is not None and sample_t_s == self._last_sample_t_s:
            return self._last_pose
        theta_ml, theta_ap = (float(v) for v in self._person.theta)
        com_x = self._centre[0] + self._com_h * math.sin(theta_ml)
        com_y = self._centre[1] + self._com_h * math.sin(theta_ap)
        ax, ay = self._ankle_xy
        dx, dy = (com_x - ax) * self._scale, (com_y - ay) * self._scale
        lever = float(self._com_h - self._ankle_z) * self._scale
        dz = math.sqrt(max(lever * lever - dx * dx - dy * dy, 0.0))
        pose = HeadPose(
            device_time_s=None,
            received_time_s=self._clock.now_s(),
            position_m=(ax + dx, ay + dy, self._ankle_z + dz),
        )
        self._last_pose, self._last_sample_t_s = pose, sample_t_s
        return pose
