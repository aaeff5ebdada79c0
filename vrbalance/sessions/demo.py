"""The demo as a session: the scene tour, for a simulated person, through the session runner.

``vrbalance demo`` used to wire its own plate, loop, monitor, start gate and
recording beside the session runner's, and the two drifted apart (the demo's
gate never checked the plate's load, its level keys bypassed the director).
Now a demo *is* a session: :func:`demo_plan` turns the demo's arguments into
a protocol (the shipped ``tour``: park, stairs, crowd; or one heel-to-toe
walk), a patient (:data:`DEMO_PATIENT`, the default envelope, never filed)
and the levels to start at; ``vrbalance.sessions.assembly`` opens the same
devices and world as ``vrbalance run --simulate``, and the same
:class:`~vrbalance.sessions.runner.SessionRunner` runs it. What the demo adds
is presentation only:

* in a window, the desktop stand-in leans the simulated person's head
  (``SessionWorld(desktop_head=True)``), so the overlay's CoP and XCoM answer
  the keys;
* offscreen, :func:`schedule_tour` plays the operator's level keys through
  :class:`~vrbalance.sessions.runner.OperatorControls` (the director keeps
  them inside the envelope), and :class:`ShotWorld` saves screenshots.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vrbalance.errors import ConfigError
from vrbalance.sessions.protocol import Protocol, Trial
from vrbalance.sessions.store import Patient

log = logging.getLogger(__name__)

#: The demo's simulated person: a 1.70 m, 70 kg adult with the default envelope.
#: Not a patient of the record: a demo is never filed in the database.
DEMO_PATIENT = Patient(id="demo", name="demo (simulated person)", height_m=1.70, mass_kg=70.0)
#: The shipped protocol the demo tours (scenes/protocols/tour.toml).
TOUR_PROTOCOL = "tour"
#: Planned length of one tour trial with ``--seconds``, s (the protocol's).
TOUR_TRIAL_S = 60.0
#: What the simulated person does in each trial: weight shifts that move the
#: CoP visibly on the overlay (lean targets in m, times in s from the trial's start).
DEMO_PERSON_SCRIPT = (
    "lean@3s:x=0.04:y=0.0:ramp=1:hold=2,"
    "lean@9s:x=0.0:y=0.05:ramp=1:hold=2,"
    "lean@15s:x=-0.04:y=0.0:ramp=1:hold=2"
)
#: Offscreen tour: the operator's level-up key at these fractions of each trial.
TOUR_LEVEL_UPS: tuple[float, ...] = (0.3, 0.5, 0.7)


@dataclass(frozen=True)
class DemoPlan:
    """What the demo runs: a protocol, how much it is shortened, where levels start.

    Attributes
    ----------
    protocol : Protocol
        Already scaled by ``seconds_scale``.
    seconds_scale : float
        The factor trial durations and rests were scaled by (as ``run --seconds-scale``).
    start_levels : dict of str to int
        The director's first level per scene (``--level`` for ``--scene``).
    """

    protocol: Protocol
    seconds_scale: float
    start_levels: dict[str, int]


def demo_plan(
    *,
    scene: str,
    level: int,
    seconds: float | None,
    exercise: str | None = None,
    walk_length_m: float = 4.0,
    with_plate: bool = True,
) -> DemoPlan:
    """The demo's protocol from its arguments.

    Parameters
    ----------
    scene : str
        The tour starts here (``park``, ``stairs`` or ``crowd``).
    level : int
        The director's first level in ``scene`` (it keeps the level inside
        the envelope; a level beyond it is refused here, naming the limit).
    seconds : float, optional
        Total trial time: the tour's three trials share it (more trials when
        it is longer than the protocol), rests scaled alike. ``None`` (a
        window runs until closed): the tour repeats at its planned length
        until the envelope's session time is used up.
    exercise : str, optional
        ``"tandem_walk"``: one heel-to-toe walk instead of the tour.
    walk_length_m : float
        The walk's line, 3-6 m.
    with_plate : bool
        ``False``: head-only trials (the monitor judges the head alone).

    Raises
    ------
    ConfigError
        An unknown scene, a level beyond the envelope, a bad walk length.
    """
    from vrbalance.sessions.protocol import load_protocol
    from vrbalance.sessions.runner import check_protocol, patient_envelope

    envelope = patient_envelope(DEMO_PATIENT)
    if exercise == "tandem_walk":
        base = load_protocol("tandem_walk", with_baseline=False, walk_length_m=walk_length_m)
        trials: list[Trial] = [replace(base.trials[0], name="Heel-to-toe walk")]
        start = {"tandem_walk": 1}
    else:
        base = load_protocol(TOUR_PROTOCOL, with_baseline=False)
        scenes = [t.scene for t in base.trials]
        if scene not in scenes:
            raise ConfigError(f"--scene: expected one of {', '.join(scenes)}, got {scene!r}")
        top = envelope.max_level(scene)
        if not 1 <= level <= top:
            raise ConfigError(
                f"--level {level}: {scene} has levels 1 to {top} in the demo's envelope"
            )
        i = scenes.index(scene)
        trials = list(base.trials[i:] + base.trials[:i])
        start = {scene: level}
    if not with_plate:
        trials = [replace(t, plate=False) for t in trials]
    planned_s = sum(t.duration_s for t in trials)
    if seconds is not None:
        if not math.isfinite(seconds) or seconds <= 0:
            raise ConfigError(f"--seconds: expected a positive number, got {seconds!r}")
        # Enough rounds that no trial is stretched beyond its planned length.
        rounds = max(1, math.ceil(seconds / planned_s))
        scale = seconds / (planned_s * rounds)
    else:
        rest_s = envelope.min_rest_s
        rounds = max(1, int(envelope.max_session_s // (planned_s + rest_s * len(trials))))
        scale = 1.0
    n = len(trials)
    trials = [
        replace(t, name=f"{t.name} {k // n + 1}") if rounds > 1 else t
        for k, t in enumerate(trials * rounds)
    ]
    protocol = replace(
        base,
        name="demo",
        title=f"Demo: {base.title}",
        trials=tuple(t.scaled(scale) for t in trials),
    )
    check_protocol(protocol, envelope, scale)
    return DemoPlan(protocol, scale, start)


def schedule_tour(controls: Any, protocol: Protocol) -> None:
    """Offscreen: press the level-up key at :data:`TOUR_LEVEL_UPS` of each tour trial.

    They go through the session's operator commands, so the director applies
    them inside the envelope and records them as the operator's (a walk's
    level stays as the director set it).
    """
    from vrbalance.sessions.runner import Command

    for index, trial in enumerate(protocol.trials):
        if trial.task == "tandem_walk":
            continue
        for fraction in TOUR_LEVEL_UPS:
            controls.send(Command.LEVEL_UP, at_trial_s=fraction * trial.duration_s, trial=index)


class ShotWorld:
    """A session world that also saves a screenshot every ``every_s`` of wall time.

    Named ``demo_NN_<scene>_L<level>.png`` (the level as last shown); the last
    one, taken as the world closes, ends in ``_final``. Everything else is
    the wrapped world's (the runner cannot tell them apart).
    """

    def __init__(self, world: Any, out: Path, every_s: float) -> None:
        self._world = world
        self.out = out
        self.every_s = float(every_s)
        self.shots: list[Path] = []
        self.frames = 0
        self._scene = "park"
        self._level = 1
        self._next_s: float | None = None
        self._in_trial = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._world, name)

    def begin_trial(self, trial: Trial, level: int) -> None:
        self._world.begin_trial(trial, level)
        self._scene, self._level, self._in_trial = trial.scene, int(level), True

    def set_level(self, level: int) -> None:
        set_level = getattr(self._world, "set_level", None)
        if callable(set_level):
            set_level(level)
        self._level = int(level)

    def end_trial(self) -> None:
        self._in_trial = False
        self._world.end_trial()

    def frame(self, state: Any, calm: bool, surround_pitch_rad: float) -> None:
        self._world.frame(state, calm, surround_pitch_rad)
        self.frames += 1
        now = time.monotonic()
        if self._in_trial and (self._next_s is None or now >= self._next_s):
            self._shoot("")
            self._next_s = now + self.every_s

    def _shoot(self, suffix: str) -> None:
        path = self.out / f"demo_{len(self.shots):02d}_{self._scene}_L{self._level}{suffix}.png"
        self.shots.append(Path(self._world.screenshot(path)))
        log.info("wrote %s", path)

    def close(self) -> None:
        try:
            if self.frames:
                self._shoot("_final")
        finally:
            self._world.close()
