"""Clinical protocols as data: a named sequence of trials read from TOML.

A protocol file lives in the shipped ``scenes/protocols/`` folder (or anywhere,
given by path) and holds a title, a description and an array of ``[[trials]]``.
Every trial says what the patient sees (scene, eyes open or "closed" = a blank
headset, a fixed or sway-referenced visual surround), what they stand on (firm
or foam), how they stand (a stance name from :mod:`vrbalance.balance`), for how
long, whether the director adapts difficulty, and, for assessments, which test
the trial belongs to (``mctsib``, ``sot`` condition 1-6, ``los``).

Every session starts with the ``baseline`` protocol (quiet stance, eyes open,
30 s) so that every session has one comparable measurement over the weeks;
:func:`load_protocol` prepends it unless asked not to.

Validation goes through :class:`vrbalance.config.check.Fields`, so an error
names the file, the trial (``[trials.3]``) and the field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from vrbalance.config.check import Fields, load_toml
from vrbalance.errors import ConfigError
from vrbalance.resources import data_dir

log = logging.getLogger(__name__)

STANCES: tuple[str, ...] = (
    "feet_apart",
    "feet_together",
    "semi_tandem",
    "tandem",
    "single_left",
    "single_right",
)
"""Stance names shared with :mod:`vrbalance.balance` (base of support shapes)."""

SCENES: tuple[str, ...] = (
    "park",
    "stairs",
    "crowd",
    "tandem_walk",
    "leg_raises",
    "tai_chi",
    "blank",
)
"""Scenes a trial may use; ``blank`` is an empty, evenly lit headset (no visual cues)."""

KINDS: tuple[str, ...] = ("exercise", "assessment")
EYES: tuple[str, ...] = ("open", "closed")
SURFACES: tuple[str, ...] = ("firm", "foam")
SURROUNDS: tuple[str, ...] = ("fixed", "sway_referenced")
ASSESSMENTS: tuple[str, ...] = ("none", "mctsib", "sot", "los")
TASKS: tuple[str, ...] = (
    "quiet",
    "weight_shift",
    "step_up",
    "walk",
    "reach",
    "tandem_walk",
    "leg_raise",
    "tai_chi",
)
#: The programme's exercises (docs/exercises.md): their own scene, simulated
#: person, measures and report section.
EXERCISE_TASKS: tuple[str, ...] = ("tandem_walk", "leg_raise", "tai_chi")

BASELINE = "baseline"

#: Smallest ``--seconds-scale``: a 30 s trial still lasts 30 ms (several loop ticks);
#: smaller factors are typos whose rests and session totals, scaled back to
#: clinical time for the envelope, overflow every limit.
MIN_SECONDS_SCALE = 0.001

#: Upper limit of one trial's duration. A clinical balance trial longer than
#: 10 minutes is a typo (seconds vs minutes), not a prescription.
MAX_TRIAL_S = 600.0


@dataclass(frozen=True, slots=True)
class Trial:
    """One trial of a protocol.

    Attributes
    ----------
    name : str
        Short label shown to the operator and in reports (``"SOT 3"``).
    kind : str
        ``"exercise"`` or ``"assessment"``.
    scene : str
        ``park``, ``stairs``, ``crowd`` or ``blank``.
    stance : str
        Stance whose base of support the margins refer to.
    duration_s : float
        Planned duration in seconds (before ``--seconds-scale``).
    eyes : str
        ``"open"`` or ``"closed"``; closed is emulated by a blank headset.
    surface : str
        ``"firm"`` or ``"foam"`` (the therapist puts a foam pad on the plate).
    surround : str
        ``"fixed"`` or ``"sway_referenced"``: in the latter the visual
        surround follows the patient's antero-posterior sway angle so that
        vision reports no sway (SOT conditions 3 and 6).
    director : bool
        Whether the director adapts difficulty after this trial.
    level : int or None
        Difficulty level (1 = the ladder's easiest) for this trial; ``None``
        (``level`` absent or 0 in the file) lets the director choose.
    task : str
        ``quiet``, ``weight_shift``, ``step_up``, ``walk`` or ``reach``.
    assessment : str
        ``none``, ``mctsib``, ``sot`` or ``los``.
    condition : int
        SOT condition 1-6 or mCTSIB condition 1-4; 0 when not applicable.
    targets : int
        Limits of Stability: number of targets (8, every 45°).
    target_time_s : float
        Limits of Stability: time allowed per target in seconds.
    pace_s : float
        Step-ups and weight shifts: seconds per cycle (0 = self-paced).
    instructions : str
        What the operator reads to the patient.
    plate : bool
        Whether the trial uses the force plate (``false``: head only; the
        tandem walk leaves the plate, and the safety monitor judges the head
        and the walking corridor instead of plate triggers).
    walk_length_m : float
        Tandem walk: the walking line's length, 3-6 m of free floor the
        operator confirmed (``--walk-length``), within the envelope's
        ``max_walk_length_m``; 0 for other trials.
    sequence : str
        Tai chi: the coach's sequence (``scenes/tai_chi/<name>.toml``); empty
        lets the level choose.
    time_scale : float
        The ``--seconds-scale`` the trial was shortened by (1 = as written);
        exercise holds and rests shrink by it, movement speeds do not.
    """

    name: str
    kind: str
    scene: str
    stance: str
    duration_s: float
    eyes: str = "open"
    surface: str = "firm"
    surround: str = "fixed"
    director: bool = False
    level: int | None = None
    task: str = "quiet"
    assessment: str = "none"
    condition: int = 0
    targets: int = 0
    target_time_s: float = 0.0
    pace_s: float = 0.0
    instructions: str = ""
    plate: bool = True
    walk_length_m: float = 0.0
    sequence: str = ""
    time_scale: float = 1.0

    def scaled(self, seconds_scale: float) -> Trial:
        """This trial with its durations multiplied by ``seconds_scale`` (for CI)."""
        return replace(
            self,
            duration_s=self.duration_s * seconds_scale,
            target_time_s=self.target_time_s * seconds_scale,
            pace_s=self.pace_s * seconds_scale,
            time_scale=self.time_scale * seconds_scale,
        )


@dataclass(frozen=True, slots=True)
class Protocol:
    """A named, ordered tuple of trials.

    Attributes
    ----------
    name : str
        The file stem (``"mctsib"``), used on the command line.
    title : str
        Human title for reports.
    description : str
        What the protocol is for and where it comes from.
    trials : tuple of Trial
        In the order they are run.
    source : str
        The file it was read from.
    """

    name: str
    title: str
    description: str
    trials: tuple[Trial, ...]
    source: str = ""

    @property
    def duration_s(self) -> float:
        """Planned total duration in seconds."""
        return sum(t.duration_s for t in self.trials)


def protocols_dir() -> Path:
    """The shipped protocol folder (``scenes/protocols``)."""
    return data_dir("scenes") / "protocols"


def list_protocols() -> list[str]:
    """Names of the shipped protocols, sorted."""
    folder = protocols_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.toml"))


def _resolve(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        return Path(text)
    path = protocols_dir() / f"{text}.toml"
    if not path.is_file():
        known = ", ".join(list_protocols()) or "(none)"
        raise ConfigError(f"unknown protocol {text!r}; shipped protocols: {known}")
    return path


def _read_trial(fields: Fields) -> list[Trial]:
    where = fields.where
    name = fields.string("name")
    kind = fields.string("kind", default="exercise", options=KINDS)
    scene = fields.string("scene", options=SCENES)
    stance = fields.string("stance", default="feet_apart", options=STANCES)
    duration_s = fields.number(
        "duration_s", min_value=0.0, min_inclusive=False, max_value=MAX_TRIAL_S
    )
    eyes = fields.string("eyes", default="open", options=EYES)
    surface = fields.string("surface", default="firm", options=SURFACES)
    surround = fields.string("surround", default="fixed", options=SURROUNDS)
    director = fields.boolean("director", default=False)
    level = fields.integer("level", default=0, min_value=0, max_value=100)
    task = fields.string("task", default="quiet", options=TASKS)
    assessment = fields.string("assessment", default="none", options=ASSESSMENTS)
    condition = fields.integer("condition", default=0, min_value=0, max_value=6)
    targets = fields.integer("targets", default=0, min_value=0, max_value=16)
    target_time_s = fields.number("target_time_s", default=0.0, min_value=0.0, max_value=60.0)
    pace_s = fields.number("pace_s", default=0.0, min_value=0.0, max_value=60.0)
    instructions = fields.string("instructions", default="")
    repeat = fields.integer("repeat", default=1, min_value=1, max_value=10)
    plate = fields.boolean("plate", default=task != "tandem_walk")
    walk_length_m = fields.number("walk_length_m", default=0.0, min_value=0.0, max_value=100.0)
    sequence = fields.string("sequence", default="")
    fields.finish()
    if task == "tandem_walk":
        from vrbalance.exercises.plan import check_walk_length

        check_walk_length(walk_length_m, f"{where} walk_length_m")
        if plate:
            raise ConfigError(f"{where} plate: a tandem walk leaves the plate; set plate = false")
    elif walk_length_m:
        raise ConfigError(f"{where} walk_length_m: only a tandem_walk trial has a walking line")
    if sequence:
        if task != "tai_chi":
            raise ConfigError(f"{where} sequence: only a tai_chi trial has a coach's sequence")
        from vrbalance.exercises.coach import load_sequence

        try:
            load_sequence(sequence)
        except ConfigError as exc:
            raise ConfigError(f"{where} sequence: {exc}") from None
    if assessment == "sot" and not 1 <= condition <= 6:
        raise ConfigError(f"{where} condition: a SOT trial needs condition 1-6, got {condition}")
    if assessment == "mctsib" and not 1 <= condition <= 4:
        raise ConfigError(
            f"{where} condition: an mCTSIB trial needs condition 1-4, got {condition}"
        )
    if assessment == "los":
        if targets < 1 or target_time_s <= 0.0:
            raise ConfigError(
                f"{where} targets: a Limits of Stability trial needs targets >= 1 "
                f"and target_time_s > 0, got {targets} and {target_time_s}"
            )
        if targets * target_time_s > duration_s + 1e-9:
            raise ConfigError(
                f"{where} duration_s: {targets} targets x {target_time_s:g} s do not fit in "
                f"{duration_s:g} s"
            )
    if assessment != "none" and kind != "assessment":
        raise ConfigError(f'{where} kind: a {assessment} trial must have kind = "assessment"')
    trial = Trial(
        name=name,
        kind=kind,
        scene=scene,
        stance=stance,
        duration_s=duration_s,
        eyes=eyes,
        surface=surface,
        surround=surround,
        director=director,
        level=None if level == 0 else level,
        task=task,
        assessment=assessment,
        condition=condition,
        targets=targets,
        target_time_s=target_time_s,
        pace_s=pace_s,
        instructions=instructions,
        plate=plate,
        walk_length_m=walk_length_m,
        sequence=sequence,
    )
    if repeat == 1:
        return [trial]
    return [replace(trial, name=f"{name} #{i + 1}") for i in range(repeat)]


def read_protocol(path: str | Path) -> Protocol:
    """Read and validate one protocol file.

    Parameters
    ----------
    path : str or Path
        A ``.toml`` protocol file.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ConfigError
        If a field is missing, unknown or invalid; the message names the file,
        the trial (``[trials.N]``, counted from 1) and the field.
    """
    path = Path(path)
    fields = Fields(load_toml(path), str(path))
    title = fields.string("title")
    description = fields.string("description", default="")
    trials: list[Trial] = []
    for trial_fields in fields.tables("trials"):
        trials.extend(_read_trial(trial_fields))
    fields.finish()
    if not trials:
        raise ConfigError(f"{path} trials: a protocol needs at least one trial")
    return Protocol(
        name=path.stem, title=title, description=description, trials=tuple(trials), source=str(path)
    )


def load_protocol(
    name_or_path: str | Path,
    *,
    with_baseline: bool = True,
    seconds_scale: float = 1.0,
    walk_length_m: float | None = None,
) -> Protocol:
    """Load a shipped protocol by name (or a file by path), baseline first.

    Parameters
    ----------
    name_or_path : str or Path
        ``"mctsib"`` for the shipped file, or a path ending in ``.toml``.
    with_baseline : bool
        Prepend the ``baseline`` protocol's trials (every session starts with
        the same quiet-stance measurement so sessions compare over weeks).
    seconds_scale : float
        Multiply every duration by this (``0.1`` for quick CI runs); in
        [:data:`MIN_SECONDS_SCALE`, 1].
    walk_length_m : float, optional
        The free floor length the operator confirmed for walking trials
        (``--walk-length``, 3-6 m): replaces every tandem walk's line length.

    Raises
    ------
    ConfigError
        Unknown protocol name or invalid file (see :func:`read_protocol`).
    """
    from vrbalance.config.check import check_number

    check_number(seconds_scale, "--seconds-scale", min_value=MIN_SECONDS_SCALE, max_value=1.0)
    protocol = read_protocol(_resolve(name_or_path))
    trials = protocol.trials
    if with_baseline and protocol.name != BASELINE:
        trials = read_protocol(_resolve(BASELINE)).trials + trials
    if walk_length_m is not None:
        from vrbalance.exercises.plan import check_walk_length

        length = check_walk_length(walk_length_m, "--walk-length")
        trials = tuple(
            replace(t, walk_length_m=length) if t.task == "tandem_walk" else t for t in trials
        )
    if seconds_scale != 1.0:
        trials = tuple(t.scaled(seconds_scale) for t in trials)
    return replace(protocol, trials=trials)
