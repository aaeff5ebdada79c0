"""The safety envelope: what a therapist allows for one patient, bounded by hard caps.

A :class:`SafetyEnvelope` says how hard the world may get for one patient
(highest level per scene, largest visual perturbation, fastest optic flow,
closest crowd passing distance), how long trials and sessions may last, which
stances are allowed, and how sensitive the safety monitor is
(:class:`MonitorThresholds`). It is stored with the patient and loaded from TOML
or command-line flags.

:data:`HARD_CAPS` is built into vrbalance and bounds every envelope: no file,
flag, keyword or ``dataclasses.replace`` can make an envelope that exceeds it,
because the check sits in ``__post_init__``, which every construction path runs.
A value beyond a cap is a :class:`~vrbalance.errors.ConfigError` naming the
field, the cap and the value. It is never clamped silently: a clinician who
typed 12 degrees must learn that 12 degrees will not be shown.

The numbers are engineering judgements informed by the literature cited in each
docstring, not values lifted from one study; ``docs/safety.md`` collects the
reasoning. Caps are deliberately loose (they stop typos and unsafe extremes);
defaults are conservative (what a new patient gets before a therapist decides).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vrbalance.config.check import Fields, check_number, load_toml
from vrbalance.errors import ConfigError
from vrbalance.resources import data_file

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT_STANCES",
    "HARD_CAPS",
    "LEVEL_PARAMETERS",
    "HardCaps",
    "MonitorThresholds",
    "SafetyEnvelope",
    "add_envelope_arguments",
    "allowed_levels",
    "check_trial_plan",
    "default_envelope",
    "envelope_from_args",
    "level_cap",
    "level_refusal",
    "level_violations",
]

_NAME_RE = re.compile(r"\A[a-z][a-z0-9_]*\Z")

#: Stances a new patient may train in before a therapist allows harder ones:
#: both feet on the ground, side by side (the widest, safest bases of support).
DEFAULT_STANCES: tuple[str, ...] = ("feet_apart", "feet_together")


@dataclass(frozen=True, slots=True)
class HardCaps:
    """Limits no envelope may exceed, whatever a file, flag or caller says.

    Upper caps bound "more challenging" directions (larger, faster, longer);
    lower caps (``min_...``) bound "less protective" directions (closer crowd,
    shorter rest, longer dwell before the monitor acts).

    Attributes
    ----------
    max_level : int
        Highest level number any scene may be allowed (levels count from 1).
        Ladders have 10-20 levels; 30 only stops absurd values.
    max_surround_tilt_deg : float
        Visual-surround roll/pitch amplitude, in degrees. Tilting or moving
        the visual surround by a few degrees or centimetres already drives
        postural sway (moving room: Lishman & Lee 1973, Perception 2:287;
        Lee & Aronson 1974, Percept Psychophys 15:529; VR surround tilt:
        Keshner & Kenyon 2000, J Vestib Res 10:207). Ten degrees is well
        beyond what training needs and still far from the whole-field
        rotations that provoke falls and sickness in standing people.
    max_surround_rate_dps : float
        Peak angular speed of the visual surround in deg/s. Fast, changing
        scene motion is the main driver of simulator sickness (vection change:
        Bonato et al. 2008, Presence 17:283; review: Rebenitsch & Owen 2016,
        Virtual Reality 20:101). 30 deg/s is a 10-degree tilt at 0.5 Hz.
    max_optic_flow_mps : float
        Speed of forward optic flow (the path moving past a standing patient),
        in m/s. Comfortable walking is 1.3-1.5 m/s (Bohannon 1997, Age Ageing
        26:15); 3 m/s is a run, more than any standing exercise needs.
    min_passing_distance_m : float
        Closest a virtual pedestrian may pass, in metres. Closer than Hall's
        intimate distance (0.45 m; Hall 1966, *The Hidden Dimension*) people
        take evasive steps, which on a plate is a fall risk; 0.4 m allows a
        little below it for advanced crowd training, no more.
    max_trial_s : float
        Longest trial in seconds (10 min). Sickness grows with exposure time
        (Kennedy, Stanney & Dunlap 2000, Presence 9:463).
    max_session_s : float
        Longest session in seconds (90 min), for the same reason and fatigue.
    min_rest_s : float
        Shortest rest between trials, in seconds; fatigue degrades balance and
        sickness needs time to subside.
    max_margin_dwell_s : float
        Longest the monitor may wait with the XCoM (or CoP) at the edge of the
        base of support before calming the world. Unexpected falls from
        standing take about 0.7 s from onset to impact (Hsiao & Robinovitch
        1998, J Biomech 31:1); 0.25 s leaves most of that time to react.
    max_stop_dwell_s : float
        Longest wait at the edge before the trial is stopped.
    max_head_down_velocity_mps : float
        Highest head-downward-velocity threshold, in m/s. Falls reach vertical
        trunk velocities well above those of sitting or bending (Wu 2000,
        J Biomech 33:1497; Bourke et al. 2008 used about 0.7 m/s for the
        trunk); 1.0 m/s is the least sensitive setting allowed.
    max_head_drop_m : float
        Largest allowed head-height-drop threshold, in m.
    max_walk_length_m : float
        Longest walking line (tandem walk), in m. A walking exercise in a
        clinic room needs free floor along the line and past its end;
        6 m is the longest a treatment room offers (the 6-m walk of gait
        assessments) and the length of a typical VR tracking space's diagonal.
    max_corridor_half_width_m : float
        Widest walking corridor the monitor may allow either side of the
        line, in m: a patient farther than this from a heel-to-toe line is
        no longer doing the exercise and is heading for the room's furniture.
    max_head_speed_mps : float
        Least sensitive head-speed threshold while walking, in m/s: 2 m/s
        is a run; tandem walking is 0.2-0.5 m/s.
    max_head_stale_s : float
        Longest a head pose may be old before tracking counts as lost, in s
        (0.25 s is over 20 headset frames at 90 Hz).
    max_plate_stale_s : float
        Longest a plate frame may be old before the plate counts as stalled.
    min_load_collapse_fraction : float
        Lowest allowed fraction of body weight below which the plate load
        counts as collapsed (a step off or a fall).
    max_cop_jump_m : float
        Largest allowed CoP jump between ticks before it counts as a step.
    """

    max_level: int = 30
    max_surround_tilt_deg: float = 10.0
    max_surround_rate_dps: float = 30.0
    max_optic_flow_mps: float = 3.0
    min_passing_distance_m: float = 0.4
    max_trial_s: float = 600.0
    max_session_s: float = 5400.0
    min_rest_s: float = 10.0
    max_margin_dwell_s: float = 0.25
    max_stop_dwell_s: float = 1.0
    max_head_down_velocity_mps: float = 1.0
    max_head_drop_m: float = 0.3
    max_head_stale_s: float = 0.25
    max_plate_stale_s: float = 0.2
    min_load_collapse_fraction: float = 0.3
    max_cop_jump_m: float = 0.1
    max_walk_length_m: float = 6.0
    max_corridor_half_width_m: float = 0.75
    max_head_speed_mps: float = 2.0


#: The caps built into this version of vrbalance.
HARD_CAPS = HardCaps()


def _num(
    value: object,
    name: str,
    where: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    cap_name: str | None = None,
    cap_is_upper: bool = True,
) -> float:
    """Check one number; say which hard cap was broken if it was."""
    checked = check_number(value, name, where=where)
    prefix = f"{where} {name}".strip()
    if cap_name is not None:
        cap = getattr(HARD_CAPS, cap_name)
        if cap_is_upper and checked > cap:
            raise ConfigError(
                f"{prefix}: {checked!r} exceeds the hard cap {cap_name} = {cap:g} "
                "built into vrbalance (values are never clamped; choose a value within the cap)"
            )
        if not cap_is_upper and checked < cap:
            raise ConfigError(
                f"{prefix}: {checked!r} is below the hard cap {cap_name} = {cap:g} "
                "built into vrbalance (values are never clamped; choose a value within the cap)"
            )
    return float(
        check_number(
            checked, name, where=where, min_value=low, max_value=high, min_inclusive=not low_open
        )
    )


@dataclass(frozen=True, slots=True)
class MonitorThresholds:
    """How sensitive the safety monitor is; every field is bounded by :data:`HARD_CAPS`.

    Attributes
    ----------
    warn_margin_m : float
        Warn the operator while the margin of stability (XCoM, else CoP, to
        the base-of-support edge; Hof et al. 2005, J Biomech 38:1) is below
        this, in m. 3 cm is about a third of a half foot width: quiet stance
        stays far inside it (the BDS trials keep > 5 cm), a deliberate lean
        reaches it.
    edge_margin_m : float
        The margin counted as "at the edge" for the calm and stop dwells, in
        m (0 = on the boundary). Must not be negative (the XCoM outside the
        base of support is exactly the unstable state; Hof et al. 2005).
    margin_dwell_s : float
        How long the margin must stay below ``edge_margin_m`` before the
        world is calmed, in s. 0.1 s ignores single-sample noise and brief
        touches yet is short against the ~0.7 s of a fall.
    stop_dwell_s : float
        How long below ``edge_margin_m`` before the trial is stopped, in s.
    head_down_velocity_mps : float
        Downward head velocity (filtered, time constant 50 ms) that counts as
        fall-like, in m/s. 0.6 m/s: fall vertical velocities exceed 1 m/s
        within a few hundred ms while controlled bending stays below about
        0.5 m/s (Wu 2000; Bourke et al. 2008).
    head_drop_m : float
        Head height drop below its recent standing height (1-s running
        average) that counts as fall-like, in m. 0.15 m: larger than any
        sway or knee bend in standing exercises.
    head_stale_s : float
        A head pose older than this counts as tracking lost, in s. 0.1 s is 9
        frames at 90 Hz: the world would be drawn with a stale pose, which
        causes sickness, and falls could not be seen.
    plate_stale_s : float
        A plate frame older than this counts as the plate stalled, in s
        (0.05 s = 5 frames at 100 Hz).
    load_collapse_fraction : float
        Plate load below this fraction of the patient's standing load
        (running average) counts as a step off or fall. 0.6: weight shifts
        and knee bends move the load by tens of percent at most.
    cop_jump_m : float
        A CoP jump larger than this between two ticks counts as a change of
        contact (a step, a hand on a rail), in m. In stance the CoP moves
        millimetres per tick even at 100 Hz.
    cop_off_bos_m : float
        The CoP farther than this outside the base of support counts as a
        change of contact, in m: the CoP cannot leave the feet's support
        without something else touching the plate. 1 cm tolerates the
        approximate BoS outline.
    corridor_half_width_m : float
        Walking trials (tandem walk): the marked corridor's half width either
        side of the line, in m; the head outside it (or more than this beyond
        either end) stops the trial. 0.5 m: a side-step off a heel-to-toe line
        moves the head 10-20 cm, so half a metre is well off the exercise.
    head_speed_mps : float
        Walking trials: horizontal head speed (filtered, time constant 0.1 s)
        that counts as a stumble or rush, in m/s; calms the world. Tandem
        walking is 0.2-0.5 m/s (the head's own sway adds a few cm/s), a
        stumble's catching step throws the head forward at well over 1 m/s.
    """

    warn_margin_m: float = 0.03
    edge_margin_m: float = 0.01
    margin_dwell_s: float = 0.1
    stop_dwell_s: float = 0.5
    head_down_velocity_mps: float = 0.6
    head_drop_m: float = 0.15
    head_stale_s: float = 0.1
    plate_stale_s: float = 0.05
    load_collapse_fraction: float = 0.6
    cop_jump_m: float = 0.05
    cop_off_bos_m: float = 0.01
    corridor_half_width_m: float = 0.5
    head_speed_mps: float = 1.2

    def __post_init__(self) -> None:
        self.validate("MonitorThresholds")
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, float(getattr(self, f.name)))

    def validate(self, where: str) -> None:
        """Raise :class:`ConfigError` (naming ``where`` and the field) if out of bounds."""
        edge = _num(self.edge_margin_m, "edge_margin_m", where, low=0.0, high=0.2)
        _num(self.warn_margin_m, "warn_margin_m", where, low=edge, high=0.2)
        dwell = _num(
            self.margin_dwell_s, "margin_dwell_s", where, low=0.0, cap_name="max_margin_dwell_s"
        )
        _num(self.stop_dwell_s, "stop_dwell_s", where, low=dwell, cap_name="max_stop_dwell_s")
        _num(
            self.head_down_velocity_mps,
            "head_down_velocity_mps",
            where,
            low=0.1,
            cap_name="max_head_down_velocity_mps",
        )
        _num(self.head_drop_m, "head_drop_m", where, low=0.02, cap_name="max_head_drop_m")
        _num(
            self.head_stale_s,
            "head_stale_s",
            where,
            low=0.0,
            low_open=True,
            cap_name="max_head_stale_s",
        )
        _num(
            self.plate_stale_s,
            "plate_stale_s",
            where,
            low=0.0,
            low_open=True,
            cap_name="max_plate_stale_s",
        )
        _num(
            self.load_collapse_fraction,
            "load_collapse_fraction",
            where,
            high=0.95,
            cap_name="min_load_collapse_fraction",
            cap_is_upper=False,
        )
        _num(self.cop_jump_m, "cop_jump_m", where, low=0.005, cap_name="max_cop_jump_m")
        _num(self.cop_off_bos_m, "cop_off_bos_m", where, low=0.0, high=0.05)
        _num(
            self.corridor_half_width_m,
            "corridor_half_width_m",
            where,
            low=0.1,
            cap_name="max_corridor_half_width_m",
        )
        _num(self.head_speed_mps, "head_speed_mps", where, low=0.3, cap_name="max_head_speed_mps")

    @classmethod
    def from_fields(cls, table: Fields) -> MonitorThresholds:
        """Read the ``[monitor]`` table; unknown keys are errors naming the file."""
        defaults = cls()
        values = {
            f.name: table.number(f.name, default=getattr(defaults, f.name))
            for f in dataclasses.fields(cls)
        }
        table.finish()
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("MonitorThresholds", table.where, 1)) from None


def _check_stance_names(stances: Sequence[object], where: str) -> None:
    """Refuse a stance name the stance library does not know (a typo allows nothing).

    ``allowed = ["moonwalk"]`` would otherwise pass, and a misspelt
    ``"single_lef"`` would silently leave the stance the therapist meant
    forbidden while the file looks as if it allowed it.
    """
    from vrbalance.balance.stance import STANCE_NAMES

    for s in stances:
        if not isinstance(s, str) or not _NAME_RE.match(s):
            raise ConfigError(f"{where}: stance names are lower_case words, got {s!r}")
        if s not in STANCE_NAMES:
            raise ConfigError(
                f"{where}: unknown stance {s!r}; the stance library has " + ", ".join(STANCE_NAMES)
            )


def _level_cap(level: int, name: str, where: str) -> int:
    if level > HARD_CAPS.max_level:
        raise ConfigError(
            f"{where} {name}: {level!r} exceeds the hard cap max_level = "
            f"{HARD_CAPS.max_level} built into vrbalance (values are never clamped)"
        )
    return level


def _freeze_levels(value: object, where: str) -> tuple[tuple[str, int], ...]:
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, Sequence) and not isinstance(value, str):
        items = []
        for pair in value:
            if not (isinstance(pair, Sequence) and not isinstance(pair, str) and len(pair) == 2):
                raise ConfigError(
                    f"{where} max_levels: expected (scene, level) pairs, got {pair!r}"
                )
            items.append((pair[0], pair[1]))
    else:
        raise ConfigError(f"{where} max_levels: expected a table scene = level, got {value!r}")
    out: dict[str, int] = {}
    for scene, level in items:
        if not isinstance(scene, str) or not _NAME_RE.match(scene):
            raise ConfigError(
                f"{where} max_levels: scene names are lower_case words, got {scene!r}"
            )
        lvl = check_number(level, f"max_levels.{scene}", where=where, integer=True, min_value=0)
        if lvl > HARD_CAPS.max_level:
            raise ConfigError(
                f"{where} max_levels.{scene}: {lvl!r} exceeds the hard cap max_level = "
                f"{HARD_CAPS.max_level} built into vrbalance (values are never clamped)"
            )
        out[scene] = int(lvl)
    return tuple(sorted(out.items()))


@dataclass(frozen=True, slots=True)
class SafetyEnvelope:
    """One patient's limits, set by the therapist and bounded by :data:`HARD_CAPS`.

    Construct it any way (keywords, :meth:`from_dict`, :meth:`from_toml`,
    :func:`envelope_from_args`, ``dataclasses.replace``): ``__post_init__``
    validates every field against the hard caps and raises
    :class:`~vrbalance.errors.ConfigError` naming the field, cap and value.

    Attributes
    ----------
    max_levels : tuple of (str, int)
        Highest level number allowed per scene (levels count from 1; 0 forbids
        the scene). Given as a mapping, stored as sorted pairs so the envelope
        stays hashable and immutable.
    other_max_level : int
        Highest level for scenes not listed in ``max_levels``. Default 3: a
        new scene starts gently until the therapist decides.
    max_surround_tilt_deg : float
        Largest visual-surround roll or pitch amplitude, in degrees (default
        3: enough to entrain sway, Keshner & Kenyon 2000, without the large
        tilts that bring on sickness).
    max_surround_rate_dps : float
        Largest peak angular speed of the visual surround, in deg/s (default
        10: a 3-degree tilt at about 0.5 Hz). Sinusoids given as amplitude and
        frequency are checked as ``2 pi f A``.
    max_optic_flow_mps : float
        Fastest optic flow, in m/s (default 1.4: comfortable walking speed,
        Bohannon 1997).
    min_passing_distance_m : float
        Closest crowd passing distance, in m (default 0.8: inside Hall's
        personal distance 0.45-1.2 m but clear of intimate space).
    max_trial_s : float
        Longest trial, in s (default 120; SOT and CTSIB trials are 20-30 s,
        exercise trials rarely longer than 2 min).
    max_session_s : float
        Longest session, in s (default 2700 = 45 min; cybersickness rises
        with exposure, Kennedy et al. 2000).
    min_rest_s : float
        Shortest rest between trials, in s (default 30).
    allowed_stances : tuple of str
        Stance names the patient may train in (default: feet apart, feet
        together).
    max_walk_length_m : float
        Longest walking line of a tandem walk for this patient, in m (default
        4; table ``[walk]``), within 3 m and the hard cap ``max_walk_length_m``.
    monitor : MonitorThresholds
        The safety monitor's thresholds.
    """

    max_levels: tuple[tuple[str, int], ...] | Mapping[str, int] = (
        ("crowd", 10),
        ("leg_raises", 10),
        ("park", 10),
        ("stairs", 10),
        ("tai_chi", 10),
        ("tandem_walk", 10),
    )
    other_max_level: int = 3
    max_surround_tilt_deg: float = 3.0
    max_surround_rate_dps: float = 10.0
    max_optic_flow_mps: float = 1.4
    min_passing_distance_m: float = 0.8
    max_trial_s: float = 120.0
    max_session_s: float = 2700.0
    min_rest_s: float = 30.0
    allowed_stances: tuple[str, ...] = DEFAULT_STANCES
    max_walk_length_m: float = 4.0
    monitor: MonitorThresholds = field(default_factory=MonitorThresholds)
    source: str = field(default="SafetyEnvelope", compare=False)

    def __post_init__(self) -> None:
        where = self.source
        object.__setattr__(self, "max_levels", _freeze_levels(self.max_levels, where))
        other = check_number(
            self.other_max_level, "other_max_level", where=where, integer=True, min_value=0
        )
        if other > HARD_CAPS.max_level:
            raise ConfigError(
                f"{where} other_max_level: {other!r} exceeds the hard cap max_level = "
                f"{HARD_CAPS.max_level} built into vrbalance (values are never clamped)"
            )
        tilt = _num(
            self.max_surround_tilt_deg,
            "max_surround_tilt_deg",
            where,
            low=0.0,
            cap_name="max_surround_tilt_deg",
        )
        rate = _num(
            self.max_surround_rate_dps,
            "max_surround_rate_dps",
            where,
            low=0.0,
            cap_name="max_surround_rate_dps",
        )
        flow = _num(
            self.max_optic_flow_mps,
            "max_optic_flow_mps",
            where,
            low=0.0,
            cap_name="max_optic_flow_mps",
        )
        passing = _num(
            self.min_passing_distance_m,
            "min_passing_distance_m",
            where,
            high=10.0,
            cap_name="min_passing_distance_m",
            cap_is_upper=False,
        )
        trial = _num(
            self.max_trial_s, "max_trial_s", where, low=0.0, low_open=True, cap_name="max_trial_s"
        )
        session = _num(
            self.max_session_s, "max_session_s", where, low=trial, cap_name="max_session_s"
        )
        rest = _num(
            self.min_rest_s,
            "min_rest_s",
            where,
            high=3600.0,
            cap_name="min_rest_s",
            cap_is_upper=False,
        )
        walk = _num(
            self.max_walk_length_m,
            "max_walk_length_m",
            where,
            low=3.0,
            cap_name="max_walk_length_m",
        )
        for name, value in (
            ("max_walk_length_m", walk),
            ("max_surround_tilt_deg", tilt),
            ("max_surround_rate_dps", rate),
            ("max_optic_flow_mps", flow),
            ("min_passing_distance_m", passing),
            ("max_trial_s", trial),
            ("max_session_s", session),
            ("min_rest_s", rest),
        ):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "other_max_level", int(other))
        stances = self.allowed_stances
        if isinstance(stances, str) or not isinstance(stances, Sequence) or not stances:
            raise ConfigError(
                f"{where} allowed_stances: expected a non-empty list of stance names, "
                f"got {stances!r}"
            )
        _check_stance_names(stances, f"{where} allowed_stances")
        object.__setattr__(self, "allowed_stances", tuple(dict.fromkeys(stances)))
        if not isinstance(self.monitor, MonitorThresholds):
            raise ConfigError(
                f"{where} monitor: expected MonitorThresholds, got {type(self.monitor).__name__}"
            )
        # Re-validate: a MonitorThresholds could have been altered with object.__setattr__.
        self.monitor.validate(f"{where} [monitor]")

    # -- queries ------------------------------------------------------------------------

    def max_level(self, scene: str) -> int:
        """Highest level number the envelope allows for ``scene`` (0 = scene not allowed)."""
        for name, level in self.max_levels:  # type: ignore[misc]
            if name == scene:
                return level
        return self.other_max_level

    def stance_allowed(self, stance: str) -> bool:
        """Whether ``stance`` is one of :attr:`allowed_stances`."""
        return stance in self.allowed_stances

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_dict(cls, table: Mapping[str, Any], where: str = "envelope") -> SafetyEnvelope:
        """Build an envelope from a parsed TOML document (see ``docs/safety.md``).

        Tables: ``[levels]`` (scene = highest level, ``other`` for unlisted
        scenes), ``[visual]``, ``[time]``, ``[stances]`` (``allowed = [...]``)
        and ``[monitor]``; each optional, defaults from :class:`SafetyEnvelope`.

        Raises
        ------
        ConfigError
            Unknown table or field, wrong type, out of range or beyond a hard
            cap; the message names ``where``, the table and the field.
        """
        defaults = cls()
        root = Fields(table, where)
        kwargs: dict[str, Any] = {"source": where}
        if "levels" in root:
            levels = root.table("levels")
            kwargs["other_max_level"] = _level_cap(
                levels.integer("other", default=defaults.other_max_level, min_value=0),
                "other",
                levels.where,
            )
            per_scene = {}
            for key in levels.keys():  # noqa: SIM118 (Fields is not iterable)
                if key == "other":
                    continue
                per_scene[key] = _level_cap(levels.integer(key, min_value=0), key, levels.where)
            levels.finish()
            kwargs["max_levels"] = per_scene
        else:
            root.raw("levels", default=None)
        visual = root.table("visual", default={})
        for name in (
            "max_surround_tilt_deg",
            "max_surround_rate_dps",
            "max_optic_flow_mps",
            "min_passing_distance_m",
        ):
            value = visual.number(name, default=getattr(defaults, name))
            kwargs[name] = _num(
                value, name, visual.where, cap_name=name, cap_is_upper=not name.startswith("min_")
            )
        time_t = root.table("time", default={})
        for name in ("max_trial_s", "max_session_s", "min_rest_s"):
            value = time_t.number(name, default=getattr(defaults, name))
            kwargs[name] = _num(
                value, name, time_t.where, cap_name=name, cap_is_upper=not name.startswith("min_")
            )
        stances = root.table("stances", default={})
        allowed = stances.raw("allowed", default=list(defaults.allowed_stances))
        if isinstance(allowed, list):
            _check_stance_names(allowed, f"{stances.where} allowed")
        kwargs["allowed_stances"] = tuple(allowed) if isinstance(allowed, list) else allowed
        kwargs["monitor"] = MonitorThresholds.from_fields(root.table("monitor", default={}))
        walk = root.table("walk", default={})
        kwargs["max_walk_length_m"] = _num(
            walk.number("max_walk_length_m", default=defaults.max_walk_length_m),
            "max_walk_length_m",
            walk.where,
            low=3.0,
            cap_name="max_walk_length_m",
        )
        for sub in (visual, time_t, stances, walk):
            sub.finish()
        root.finish()
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | Path) -> SafetyEnvelope:
        """Load an envelope file; errors name the file, table and field."""
        return cls.from_dict(load_toml(path), where=str(path))

    def to_dict(self) -> dict[str, Any]:
        """The TOML document :meth:`from_dict` reads back to an equal envelope."""
        levels: dict[str, int] = dict(self.max_levels)  # type: ignore[arg-type]
        levels["other"] = self.other_max_level
        return {
            "levels": levels,
            "visual": {
                "max_surround_tilt_deg": self.max_surround_tilt_deg,
                "max_surround_rate_dps": self.max_surround_rate_dps,
                "max_optic_flow_mps": self.max_optic_flow_mps,
                "min_passing_distance_m": self.min_passing_distance_m,
            },
            "time": {
                "max_trial_s": self.max_trial_s,
                "max_session_s": self.max_session_s,
                "min_rest_s": self.min_rest_s,
            },
            "stances": {"allowed": list(self.allowed_stances)},
            "walk": {"max_walk_length_m": self.max_walk_length_m},
            "monitor": dataclasses.asdict(self.monitor),
        }


def default_envelope() -> SafetyEnvelope:
    """The shipped default envelope (``scenes/envelopes/default.toml``)."""
    return SafetyEnvelope.from_toml(data_file("scenes", "envelopes", "default.toml"))


# -- scene levels against the envelope ------------------------------------------------

#: The level-parameter names the envelope knows, and what each is checked against.
#: Scene ladders (``scenes/*.toml``) must use these names for any parameter that
#: moves the visual surround, the path or the crowd; see ``docs/safety.md``.
LEVEL_PARAMETERS: Mapping[str, str] = {
    "optic_flow_mps": "max_optic_flow_mps",
    "surround_roll_deg": "max_surround_tilt_deg",
    "surround_pitch_deg": "max_surround_tilt_deg",
    "surround_rate_dps": "max_surround_rate_dps",
    "surround_freq_hz": "(with the tilt amplitudes) max_surround_rate_dps as 2*pi*f*A",
    "passing_distance_m": "min_passing_distance_m",
}

_TILT_RE = re.compile(r"\A(surround|sway)_(roll|pitch|yaw|tilt)(_amplitude)?_deg\Z")
_RATE_RE = re.compile(r"\A(surround|sway)_([a-z]+_)?(rate|velocity|speed)_dps\Z")
_FREQ_RE = re.compile(r"\A(surround|sway)_(freq|frequency)_hz\Z")


def level_violations(params: Mapping[str, float], envelope: SafetyEnvelope) -> list[str]:
    """Every way one level's parameters exceed ``envelope`` (empty list: it fits).

    Parameters
    ----------
    params : Mapping[str, float]
        One level's parameters, by the names in :data:`LEVEL_PARAMETERS`
        (``surround_*_deg`` and ``sway_*_deg`` count as tilt amplitudes,
        ``*_rate_dps`` as angular speeds, ``*_freq_hz`` as the frequency of
        the tilt sinusoids). Other names are not safety-relevant and ignored.
    envelope : SafetyEnvelope
        The patient's limits.

    Returns
    -------
    list of str
        Human-readable reasons, e.g. ``"optic_flow_mps 2 > max_optic_flow_mps 1.4"``.
    """
    reasons: list[str] = []
    tilt_max = 0.0
    freq_hz: float | None = None
    for name, raw in params.items():
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            continue
        value = float(raw)
        if math.isnan(value):
            reasons.append(f"{name} is NaN")
            continue
        if name == "optic_flow_mps" and abs(value) > envelope.max_optic_flow_mps:
            reasons.append(f"{name} {value:g} > max_optic_flow_mps {envelope.max_optic_flow_mps:g}")
        elif name == "passing_distance_m" and value < envelope.min_passing_distance_m:
            reasons.append(
                f"{name} {value:g} < min_passing_distance_m {envelope.min_passing_distance_m:g}"
            )
        elif _TILT_RE.match(name):
            tilt_max = max(tilt_max, abs(value))
            if abs(value) > envelope.max_surround_tilt_deg:
                reasons.append(
                    f"{name} {value:g} > max_surround_tilt_deg {envelope.max_surround_tilt_deg:g}"
                )
        elif _RATE_RE.match(name):
            if abs(value) > envelope.max_surround_rate_dps:
                reasons.append(
                    f"{name} {value:g} > max_surround_rate_dps {envelope.max_surround_rate_dps:g}"
                )
        elif _FREQ_RE.match(name):
            freq_hz = abs(value)
    if freq_hz is not None and tilt_max > 0.0:
        peak_dps = 2.0 * math.pi * freq_hz * tilt_max
        if peak_dps > envelope.max_surround_rate_dps * (1.0 + 1e-9):
            reasons.append(
                f"peak surround rate 2*pi*{freq_hz:g} Hz*{tilt_max:g} deg = {peak_dps:.3g} deg/s"
                f" > max_surround_rate_dps {envelope.max_surround_rate_dps:g}"
            )
    return reasons


def allowed_levels(
    levels_params: Sequence[Mapping[str, float]], envelope: SafetyEnvelope, scene: str
) -> int:
    """The highest level number of ``scene`` the director may select.

    Levels count from 1: ``levels_params[0]`` is level 1. The result is the
    largest ``L`` such that levels ``1..L`` all fit the envelope's physical
    limits (:func:`level_violations`) and ``L <= envelope.max_level(scene)``.
    A level that does not fit stops the ladder there even if a later one
    would fit: ladders grow harder step by step, and a non-monotone one should
    not let the director jump over a level it may not show.

    Returns
    -------
    int
        0 when not even level 1 is allowed (the scene cannot be run for this
        patient), else a level number in ``1..len(levels_params)``.
    """
    cap = min(len(levels_params), envelope.max_level(scene))
    for index in range(cap):
        if level_violations(levels_params[index], envelope):
            return index
    return cap


def level_refusal(
    levels_params: Sequence[Mapping[str, float]], envelope: SafetyEnvelope, scene: str, level: int
) -> str | None:
    """Why ``level`` of ``scene`` may not be shown to this patient (``None``: it may).

    The same rule as :func:`allowed_levels` (the level within the envelope's
    ``max_levels`` for the scene, and it and every level below it within the
    envelope's physical limits), put as a sentence naming each value and limit,
    for refusing a protocol trial before the session starts.

    Parameters
    ----------
    levels_params : Sequence[Mapping[str, float]]
        The scene's ladder, level 1 first.
    envelope : SafetyEnvelope
        The patient's limits.
    scene : str
        The scene's name.
    level : int
        The level asked for (from 1).

    Returns
    -------
    str or None
        E.g. ``"level 10 of park is beyond this patient's envelope: level 10 >
        max_levels.park 2; surround_roll_deg 4 > max_surround_tilt_deg 3 (the
        highest park level it allows is 2)"``.
    """
    top = allowed_levels(levels_params, envelope, scene)
    if 1 <= level <= top:
        return None
    reasons: list[str] = []
    if level > len(levels_params):
        reasons.append(f"the {scene} ladder has {len(levels_params)} levels")
    cap = envelope.max_level(scene)
    if level > cap:
        reasons.append(f"level {level} > max_levels.{scene} {cap}")
    if 1 <= level <= len(levels_params):
        reasons.extend(level_violations(levels_params[level - 1], envelope))
    if not reasons and level >= 1:
        below = next(i for i in range(level) if level_violations(levels_params[i], envelope))
        reasons.append(
            f"its level {below + 1} already exceeds the envelope ("
            + "; ".join(level_violations(levels_params[below], envelope))
            + "), and a ladder is climbed level by level"
        )
    if level < 1:
        reasons.append("levels count from 1")
    allowed = f"the highest {scene} level it allows is {top}" if top else f"it forbids {scene}"
    return (
        f"level {level} of {scene} is beyond this patient's envelope: "
        + "; ".join(reasons)
        + f" ({allowed})"
    )


def level_cap(envelope: SafetyEnvelope) -> Callable[[str], int]:
    """``cap(scene) -> int``: the highest level of a shipped scene ``envelope`` allows.

    For the demo's free level keys (:class:`~vrbalance.world.app.WorldApp`'s
    ``level_cap``): :func:`allowed_levels` over the scene's ladder, read once
    per scene.
    """
    from vrbalance.config.scenes import load_scene

    tops: dict[str, int] = {}

    def cap(scene: str) -> int:
        if scene not in tops:
            ladder = [lv.values for lv in load_scene(scene).levels]
            tops[scene] = allowed_levels(ladder, envelope, scene)
        return tops[scene]

    return cap


def check_trial_plan(
    envelope: SafetyEnvelope,
    *,
    stance: str,
    duration_s: float,
    session_elapsed_s: float = 0.0,
    rest_s: float | None = None,
    walk_length_m: float = 0.0,
) -> None:
    """Refuse a trial the envelope does not allow (sessions call this before each trial).

    Parameters
    ----------
    envelope : SafetyEnvelope
        The patient's limits.
    stance : str
        The trial's stance name.
    duration_s : float
        Planned trial duration in s.
    session_elapsed_s : float
        Session time used so far, in s.
    rest_s : float or None
        Rest since the previous trial ended, in s (``None``: first trial).
    walk_length_m : float
        A walking trial's line length, in m (0: not a walking trial); must
        not exceed the envelope's ``max_walk_length_m``.

    Raises
    ------
    ConfigError
        Naming what is not allowed and the envelope's limit.
    """
    if not envelope.stance_allowed(stance):
        raise ConfigError(
            f"stance {stance!r} is not allowed by this patient's envelope; allowed: "
            + ", ".join(envelope.allowed_stances)
        )
    if duration_s > envelope.max_trial_s:
        raise ConfigError(
            f"trial duration {duration_s:g} s exceeds the envelope's max_trial_s "
            f"{envelope.max_trial_s:g} s"
        )
    if session_elapsed_s + duration_s > envelope.max_session_s:
        raise ConfigError(
            f"session would last {session_elapsed_s + duration_s:g} s, more than the "
            f"envelope's max_session_s {envelope.max_session_s:g} s"
        )
    if walk_length_m > envelope.max_walk_length_m:
        raise ConfigError(
            f"walking line {walk_length_m:g} m exceeds the envelope's max_walk_length_m "
            f"{envelope.max_walk_length_m:g} m"
        )
    if rest_s is not None and rest_s < envelope.min_rest_s:
        raise ConfigError(
            f"rest of {rest_s:g} s since the last trial is shorter than the envelope's "
            f"min_rest_s {envelope.min_rest_s:g} s"
        )


# -- command-line flags ---------------------------------------------------------------

_FLAG_FIELDS: tuple[str, ...] = (
    "max_surround_tilt_deg",
    "max_surround_rate_dps",
    "max_optic_flow_mps",
    "min_passing_distance_m",
    "max_trial_s",
    "max_session_s",
    "min_rest_s",
)


def add_envelope_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--envelope FILE``, ``--max-level SCENE=N`` and one flag per limit."""
    group = parser.add_argument_group("safety envelope (bounded by vrbalance's hard caps)")
    group.add_argument("--envelope", metavar="FILE", help="envelope TOML (default: shipped)")
    group.add_argument(
        "--max-level",
        metavar="SCENE=N",
        action="append",
        default=[],
        help="highest level allowed for a scene (repeatable)",
    )
    for name in _FLAG_FIELDS:
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=f"envelope_{name}",
            type=float,
            metavar="X",
            help=f"override {name}",
        )
    group.add_argument(
        "--allowed-stances", metavar="A,B", help="comma-separated stance names allowed"
    )


def envelope_from_args(
    args: argparse.Namespace, base: SafetyEnvelope | None = None
) -> SafetyEnvelope:
    """Build the envelope from :func:`add_envelope_arguments` flags (file, then overrides).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags.
    base : SafetyEnvelope, optional
        What the flags change when no ``--envelope FILE`` is given (a patient's
        current envelope); default: the shipped default envelope.

    Raises
    ------
    ConfigError
        A flag is malformed or beyond a hard cap; the message names the flag.
    """
    if getattr(args, "envelope", None):
        base = SafetyEnvelope.from_toml(args.envelope)
    elif base is None:
        base = default_envelope()
    changes: dict[str, Any] = {"source": "command line"}
    for name in _FLAG_FIELDS:
        value = getattr(args, f"envelope_{name}", None)
        if value is not None:
            changes[name] = value
    levels = dict(base.max_levels)  # type: ignore[arg-type]
    for item in getattr(args, "max_level", []) or []:
        scene, sep, number = item.partition("=")
        if not sep or not number.strip().lstrip("-").isdigit():
            raise ConfigError(f"command line --max-level: expected SCENE=N, got {item!r}")
        levels[scene.strip()] = int(number)
    changes["max_levels"] = levels
    stances = getattr(args, "allowed_stances", None)
    if stances:
        changes["allowed_stances"] = tuple(s.strip() for s in stances.split(",") if s.strip())
    try:
        return dataclasses.replace(base, **changes)
    except ConfigError as exc:
        message = str(exc)
        for name in (*_FLAG_FIELDS, "allowed_stances"):
            message = message.replace(f" {name}:", f" --{name.replace('_', '-')}:")
        raise ConfigError(message) from None
