"""What one exercise trial asks of the patient, from the trial and its level.

A level of an exercise scene is a point in that scene's parameter space
(``scenes/tandem_walk.toml``, ``scenes/leg_raises.toml``,
``scenes/tai_chi.toml``); some of those parameters are the exercise's own
prescription (hold time, repetitions, tempo, tolerance), the rest change the
world. :func:`exercise_plan` collects the prescription into an
:class:`ExercisePlan`, which the simulated person performs, the runner
records (``exercise_plan`` event) and the report measures against.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from vrbalance.errors import ConfigError

#: Exercise tasks (``task`` of a protocol trial) and the scene each drives.
EXERCISE_TASKS: dict[str, str] = {
    "tandem_walk": "tandem_walk",
    "leg_raise": "leg_raises",
    "tai_chi": "tai_chi",
}
#: The walking line's length the operator may confirm, m (room floor space).
MIN_WALK_LENGTH_M = 3.0
MAX_WALK_LENGTH_M = 6.0
#: Time to raise or lower the leg (CoP moving onto / off the stance foot), s.
#: Not shortened by ``--seconds-scale``: a faster shift is a different, riskier
#: movement, not a shorter trial.
RAISE_RAMP_S = 1.2
#: Rest between repetitions, s (before ``--seconds-scale``).
RAISE_REST_S = 3.0


@dataclass(frozen=True, slots=True)
class ExercisePlan:
    """One exercise trial's prescription (durations already time-scaled).

    Attributes
    ----------
    task : str
        ``tandem_walk``, ``leg_raise`` or ``tai_chi``.
    level : int
        The level it came from.
    walk_length_m : float
        Tandem walk: length of the line (out and back), m.
    line_width_m : float
        Tandem walk: width of the painted line or beam, m.
    repetitions : int
        Leg raises: repetitions per side.
    hold_s : float
        Leg raises: prescribed hold of each raise, s.
    rest_s : float
        Leg raises: rest between repetitions, s.
    eyes_closed_fraction : float
        Leg raises: last fraction of each hold with the world faded out.
    sequence : str
        Tai chi: the coach's sequence (``scenes/tai_chi/<sequence>.toml``).
    tempo : float
        Tai chi: speed factor of the sequence (1 = as written).
    amplitude_frac : float
        Tai chi: fraction of the sequence's full weight shift asked for.
    tolerance_m : float
        Tai chi: distance from the target CoP that counts as on target, m.
    time_scale : float
        The trial's ``--seconds-scale`` (holds and rests are scaled by it).
    """

    task: str
    level: int
    walk_length_m: float = 0.0
    line_width_m: float = 0.0
    repetitions: int = 0
    hold_s: float = 0.0
    rest_s: float = 0.0
    eyes_closed_fraction: float = 0.0
    sequence: str = ""
    tempo: float = 1.0
    amplitude_frac: float = 1.0
    tolerance_m: float = 0.0
    time_scale: float = 1.0

    def to_values(self) -> dict[str, Any]:
        """JSON-ready values (the ``exercise_plan`` event)."""
        return asdict(self)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> ExercisePlan:
        """Read back :meth:`to_values` (unknown keys are ignored: newer recordings)."""
        known = {k: values[k] for k in cls.__dataclass_fields__ if k in values}  # type: ignore[attr-defined]
        return cls(**known)


def is_exercise(trial: Any) -> bool:
    """Whether ``trial`` is one of the programme's exercises (walk, leg raises, tai chi)."""
    return getattr(trial, "task", "") in EXERCISE_TASKS


def level_values(scene: str, level: int) -> Mapping[str, float]:
    """The shipped scene's values at ``level`` (clamped into its ladder)."""
    from vrbalance.config.scenes import load_scene

    scene_def = load_scene(scene)
    return scene_def.level(max(1, min(int(level), scene_def.n_levels))).values


def check_walk_length(length_m: float, where: str, max_m: float = MAX_WALK_LENGTH_M) -> float:
    """``length_m`` if it is a walking line the room and the envelope allow, else raise."""
    top = min(max_m, MAX_WALK_LENGTH_M)
    if not (isinstance(length_m, int | float) and math.isfinite(length_m)):
        raise ConfigError(f"{where}: expected a length in m, got {length_m!r}")
    if not MIN_WALK_LENGTH_M <= length_m <= top:
        raise ConfigError(
            f"{where}: the walking line must be {MIN_WALK_LENGTH_M:g}-{top:g} m of free floor, "
            f"got {length_m:g} m"
        )
    return float(length_m)


def exercise_plan(trial: Any, level: int) -> ExercisePlan | None:
    """The plan of an exercise trial at ``level``, or ``None`` for other trials.

    Parameters
    ----------
    trial : Trial
        A protocol trial (durations already scaled; ``time_scale`` says by what).
    level : int
        The level the trial runs at.
    """
    task = getattr(trial, "task", "")
    if task not in EXERCISE_TASKS:
        return None
    scene = trial.scene if trial.scene != "blank" else EXERCISE_TASKS[task]
    values = level_values(scene, level)
    scale = float(getattr(trial, "time_scale", 1.0))
    if task == "tandem_walk":
        line = float(values.get("line_width_m", 0.1))
        return ExercisePlan(
            task=task,
            level=level,
            walk_length_m=float(trial.walk_length_m),
            line_width_m=line,
            time_scale=scale,
        )
    if task == "leg_raise":
        return ExercisePlan(
            task=task,
            level=level,
            repetitions=int(values.get("repetitions", 3)),
            hold_s=float(values.get("hold_s", 3.0)) * scale,
            rest_s=RAISE_REST_S * scale,
            eyes_closed_fraction=float(values.get("eyes_closed_fraction", 0.0)),
            time_scale=scale,
        )
    single = int(values.get("single_leg_phases", 0))
    sequence = trial.sequence or ("single_leg" if single else "weight_shifts")
    return ExercisePlan(
        task=task,
        level=level,
        sequence=sequence,
        tempo=float(values.get("tempo", 1.0)),
        amplitude_frac=float(values.get("amplitude_frac", 1.0)),
        tolerance_m=float(values.get("tolerance_m", 0.03)),
        time_scale=scale,
    )


@dataclass(frozen=True, slots=True)
class RaiseCue:
    """One prescribed leg raise: which leg, when to raise it, when to put it down (trial s)."""

    side: str
    up_s: float
    down_s: float


#: The simulated person's return from a raise (the plate simulator's lean return), s.
RAISE_RETURN_S = 1.0


def raise_schedule(plan: ExercisePlan, duration_s: float) -> list[RaiseCue]:
    """The cues of a leg-raise trial: left leg ``repetitions`` times, then the right.

    Each raise takes :data:`RAISE_RAMP_S` to shift onto the stance foot, is
    held ``hold_s``, put down (:data:`RAISE_RETURN_S`) and followed by a rest of
    ``rest_s``. Raises that would not end before ``duration_s`` are left out.
    The scene shows these cues and the simulated person follows them.
    """
    cues: list[RaiseCue] = []
    t = 1.0 * plan.time_scale + 0.5
    for side in ("left", "right"):
        for _ in range(plan.repetitions):
            down = t + RAISE_RAMP_S + plan.hold_s
            if down + RAISE_RETURN_S > duration_s - 0.2:
                return cues
            cues.append(RaiseCue(side, t, down))
            t = down + RAISE_RETURN_S + plan.rest_s
    return cues
