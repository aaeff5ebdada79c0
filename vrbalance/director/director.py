"""The scenario director: per-scene difficulty that follows the patient, inside the envelope.

Each scene has a ladder of levels (``scenes/<name>.toml``, levels count from
1). Between trials the director moves the scene's level with a *weighted
up-down staircase* (Kaernbach 1991, Percept Psychophys 49:227): after a
successful trial the position rises by ``step_up``, after a failure it falls by
``step_down``; the level is the integer part of the position. The staircase
settles where the expected movement is zero::

    p * step_up = (1 - p) * step_down   =>   p = step_down / (step_up + step_down)

so choosing ``step_down = 1`` level and ``step_up = (1 - p) / p`` targets a
success rate ``p``. With the default ``p = 0.75`` the step up is 1/3: three
successes raise the level by one ("3 successes at level 4 -> 5"), one failure
lowers it at once. 70-80 % success keeps practice challenging but rewarding
(the challenge-point framework, Guadagnoli & Lee 2004, J Mot Behav 36:212;
Wilson et al. 2019, Nat Commun 10:4646). Unlike the transformed n-up/1-down
rules (Levitt 1971, J Acoust Soc Am 49:467), which can only hit 70.7 % or
79.4 %, the weighted rule hits any target exactly.

Success is judged against the patient's own quiet-stance baseline
(:class:`Baseline`, measured at the start of the session): no safety trigger,
the trial completed, sway velocity at most ``max_velocity_ratio`` times the
baseline's, and the margin of stability at least ``min_margin_ratio`` of the
baseline's (:func:`judge`).

Safety always wins: a safety event lowers the scene's level at once (even when
the therapist pinned it), and for ``holdoff_trials`` trials afterwards no
level rises. No level ever exceeds the envelope (:func:`allowed_levels`).
The therapist can pin a level, lock a scene's level or take manual control of
all levels; the staircase then stands still and the director only guards the
envelope and the safety lowering.

The director follows Gymnasium's small contract: ``reset(*, seed, options)``
then ``step(outcome)`` after each trial. It owns a ``np.random.Generator``
seeded from a ``SeedSequence``; its only use is to draw each trial's
``trial_seed`` for the world's random content (crowd layout, distractors), so
a whole session is reproducible from one seed. Every change is an
:class:`~vrbalance.events.Event` with its reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import numpy as np

from vrbalance.config.check import check_number
from vrbalance.director.envelope import SafetyEnvelope, allowed_levels, level_violations
from vrbalance.errors import ConfigError
from vrbalance.events import Event, Severity

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

__all__ = [
    "Baseline",
    "Decision",
    "Director",
    "SceneLevel",
    "StaircaseConfig",
    "SuccessCriteria",
    "TrialOutcome",
    "TrialPlan",
    "judge",
    "ladders_from_scenes",
]


@dataclass(frozen=True, slots=True)
class Baseline:
    """The patient's own reference: quiet stance, eyes open, at the start of the session.

    Attributes
    ----------
    mean_velocity_mps : float
        Mean sway velocity (CoP path length / duration) in m/s.
    min_margin_m : float
        Smallest margin of stability (XCoM to BoS edge, Hof et al. 2005) in m.
    """

    mean_velocity_mps: float
    min_margin_m: float

    def __post_init__(self) -> None:
        check_number(
            self.mean_velocity_mps,
            "mean_velocity_mps",
            where="Baseline",
            min_value=0.0,
            min_inclusive=False,
        )
        check_number(
            self.min_margin_m, "min_margin_m", where="Baseline", min_value=0.0, min_inclusive=False
        )


@dataclass(frozen=True, slots=True)
class TrialOutcome:
    """What one trial showed, for the director's decision.

    Attributes
    ----------
    scene : str
        Scene the trial ran in.
    level : int
        Level it ran at.
    t_s : float
        When it ended, on the session clock, in s.
    mean_velocity_mps : float or None
        Mean sway velocity (same measure as the baseline's) in m/s.
    min_margin_m : float or None
        Smallest margin of stability during the trial, in m.
    safety_triggered : bool
        The safety monitor calmed the world or stopped the trial.
    completed : bool
        The trial ran its planned duration (False: skipped, aborted).
    exercise_success : bool or None
        An exercise trial's own success rule (walk, leg raises, tai chi;
        ``docs/exercises.md``), which replaces the comparison of its sway with
        the quiet-stance baseline; ``None`` for standing trials.
    exercise_reason : str
        Why it succeeded or failed.
    """

    scene: str
    level: int
    t_s: float
    mean_velocity_mps: float | None
    min_margin_m: float | None
    safety_triggered: bool = False
    completed: bool = True
    exercise_success: bool | None = None
    exercise_reason: str = ""


@dataclass(frozen=True, slots=True)
class SuccessCriteria:
    """When a trial counts as a success, relative to the patient's baseline.

    Attributes
    ----------
    max_velocity_ratio : float
        Highest allowed trial sway velocity over baseline velocity. 2.5: in
        the public BDS data set (Santos & Duarte 2016, 163 adults), standing
        on foam with eyes open raises mean CoP velocity by a median factor of
        2.96 (10th-90th percentile 2.1-4.4) over firm ground, while repeat
        trials of the same condition vary by about 9 % (median CV) and their
        90th-percentile max/mean is 1.25. A scene that destabilises the
        patient as much as standing on foam is more than a controlled
        challenge.
    min_margin_ratio : float
        Lowest allowed trial margin of stability as a fraction of the
        baseline's. 0.5: the patient may use half of the spare margin quiet
        stance leaves, not more; the monitor's own dwell trigger guards the
        edge itself.
    """

    max_velocity_ratio: float = 2.5
    min_margin_ratio: float = 0.5

    def __post_init__(self) -> None:
        check_number(
            self.max_velocity_ratio,
            "max_velocity_ratio",
            where="SuccessCriteria",
            min_value=1.0,
            max_value=10.0,
        )
        check_number(
            self.min_margin_ratio,
            "min_margin_ratio",
            where="SuccessCriteria",
            min_value=0.0,
            max_value=1.0,
        )


def judge(
    outcome: TrialOutcome, baseline: Baseline | None, criteria: SuccessCriteria
) -> tuple[bool, str]:
    """Whether a trial succeeded, and a sentence saying why.

    Without a baseline only the safety and completion conditions apply (the
    sway measures have nothing to be compared with). A missing measure
    (``None``) counts as a failure when a baseline exists: a trial that could
    not be measured is not evidence that the level was mastered.
    """
    if outcome.safety_triggered:
        return False, "safety trigger"
    if not outcome.completed:
        return False, "trial not completed"
    if outcome.exercise_success is not None:
        return outcome.exercise_success, outcome.exercise_reason
    if baseline is None:
        return True, "completed without safety trigger (no baseline)"
    if outcome.mean_velocity_mps is None or outcome.min_margin_m is None:
        return False, "sway measures missing"
    ratio = outcome.mean_velocity_mps / baseline.mean_velocity_mps
    if not ratio <= criteria.max_velocity_ratio:
        return False, (f"sway velocity {ratio:.2f} x baseline > {criteria.max_velocity_ratio:g}")
    margin_ratio = outcome.min_margin_m / baseline.min_margin_m
    if not margin_ratio >= criteria.min_margin_ratio:
        return False, (
            f"margin of stability {margin_ratio:.2f} x baseline < {criteria.min_margin_ratio:g}"
        )
    return True, f"sway velocity {ratio:.2f} x baseline, margin {margin_ratio:.2f} x baseline"


@dataclass(frozen=True, slots=True)
class StaircaseConfig:
    """The director's adaptation rule.

    Attributes
    ----------
    target_success : float
        Success rate the staircase converges to, in [0.5, 0.95] (default
        0.75). Below 0.5 the step up would exceed one level.
    step_down_levels : int
        Levels down after a failure (default 1).
    safety_drop_levels : int
        Levels down at once after a safety event (default 1).
    holdoff_trials : int
        Trials after a safety event during which no level rises (default 2,
        across all scenes: a patient who nearly fell is not pushed in any
        scene until they have shown two controlled trials).
    start_level : int
        Level every scene starts at unless ``reset(options=...)`` says
        otherwise (default 1).
    criteria : SuccessCriteria
        How a trial is judged.
    """

    target_success: float = 0.75
    step_down_levels: int = 1
    safety_drop_levels: int = 1
    holdoff_trials: int = 2
    start_level: int = 1
    criteria: SuccessCriteria = field(default_factory=SuccessCriteria)

    def __post_init__(self) -> None:
        where = "StaircaseConfig"
        check_number(
            self.target_success, "target_success", where=where, min_value=0.5, max_value=0.95
        )
        check_number(
            self.step_down_levels,
            "step_down_levels",
            where=where,
            integer=True,
            min_value=1,
            max_value=3,
        )
        check_number(
            self.safety_drop_levels,
            "safety_drop_levels",
            where=where,
            integer=True,
            min_value=1,
            max_value=5,
        )
        check_number(
            self.holdoff_trials,
            "holdoff_trials",
            where=where,
            integer=True,
            min_value=0,
            max_value=20,
        )
        check_number(self.start_level, "start_level", where=where, integer=True, min_value=1)
        if self.step_up > 1:
            raise ConfigError(
                f"{where}: step up {float(self.step_up):.3g} levels would exceed one level; "
                f"raise target_success (got {self.target_success!r}) or lower step_down_levels"
            )

    @property
    def step_up(self) -> Fraction:
        """Position gained per success, in levels: ``step_down * (1 - p) / p`` (exact)."""
        p = Fraction(self.target_success).limit_denominator(1000)
        return Fraction(self.step_down_levels) * (1 - p) / p


@dataclass(frozen=True, slots=True)
class SceneLevel:
    """One scene's difficulty state (a snapshot).

    Attributes
    ----------
    scene : str
    level : int
        Current level number (0 when the envelope forbids the scene).
    max_level : int
        Highest level the envelope and ladder allow.
    progress : Fraction
        Staircase progress towards the next level, in [0, 1).
    pinned : bool
        The therapist pinned the level.
    locked : bool
        The therapist locked the scene's level.
    successes : int
        Successes counted at this level since it was entered.
    """

    scene: str
    level: int
    max_level: int
    progress: Fraction
    pinned: bool
    locked: bool
    successes: int


@dataclass(frozen=True, slots=True)
class Decision:
    """What the director decided and why.

    Attributes
    ----------
    scene : str
    level : int
        The scene's level now.
    previous_level : int
    success : bool or None
        The judged outcome (``None`` when the decision was not a trial's).
    reason : str
        A sentence for the operator and the record.
    events : tuple of Event
    """

    scene: str
    level: int
    previous_level: int
    success: bool | None
    reason: str
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class TrialPlan:
    """The next trial of a scene: level, its parameters, and a seed for the world.

    Attributes
    ----------
    scene : str
    level : int
    parameters : Mapping[str, float]
        The ladder's values for that level (read-only).
    trial_seed : int
        Seed for the world's random content in this trial (from the director's
        generator, so the session replays from one seed).
    """

    scene: str
    level: int
    parameters: Mapping[str, float]
    trial_seed: int


def ladders_from_scenes(scenes: Sequence[Any]) -> dict[str, list[Mapping[str, float]]]:
    """Ladders from scene definitions (objects with ``.name`` and ``.levels[i].values``).

    Works with :class:`vrbalance.config.scenes.SceneDef` without importing it.
    """
    return {s.name: [lv.values for lv in s.levels] for s in scenes}


class _Scene:
    """Mutable per-scene state, private to :class:`Director`."""

    __slots__ = ("locked", "max_level", "pinned", "position", "successes")

    def __init__(self, max_level: int, start: int) -> None:
        self.max_level = max_level
        self.position = Fraction(start if max_level else 0)
        self.pinned = False
        self.locked = False
        self.successes = 0

    @property
    def level(self) -> int:
        return math.floor(self.position)


class Director:
    """Adapts each scene's level between trials; safety first, envelope always.

    Parameters
    ----------
    ladders : Mapping[str, Sequence[Mapping[str, float]]]
        Per scene, its levels' parameters, easiest first (level 1 first); see
        :func:`ladders_from_scenes`.
    envelope : SafetyEnvelope
        The patient's limits; :func:`allowed_levels` gives each scene's
        highest selectable level.
    config : StaircaseConfig, optional
        The adaptation rule.

    Notes
    -----
    Call :meth:`reset` before the first trial (Gymnasium-style). Methods that
    change levels take a keyword-only ``t_s`` (session clock, s) for their
    events: the director reads no clock.
    """

    def __init__(
        self,
        ladders: Mapping[str, Sequence[Mapping[str, float]]],
        envelope: SafetyEnvelope,
        config: StaircaseConfig | None = None,
    ) -> None:
        if not isinstance(envelope, SafetyEnvelope):
            raise TypeError(f"envelope: expected SafetyEnvelope, got {type(envelope).__name__}")
        if not ladders:
            raise ConfigError("Director: expected at least one scene ladder, got none")
        self._ladders = {
            name: tuple(MappingProxyType(dict(lv)) for lv in levels)
            for name, levels in ladders.items()
        }
        self._envelope = envelope
        self._config = config if config is not None else StaircaseConfig()
        self._max = {
            name: allowed_levels(levels, envelope, name) for name, levels in self._ladders.items()
        }
        for name, top in self._max.items():
            if top < len(self._ladders[name]) and top < envelope.max_level(name):
                why = level_violations(self._ladders[name][top], envelope)
                log.info(
                    "scene %s limited to level %d by the envelope: %s", name, top, "; ".join(why)
                )
        self._scenes: dict[str, _Scene] = {}
        self._manual = False
        self._holdoff = 0
        self._safety_pending: set[str] = set()
        self._baseline: Baseline | None = None
        self._rng: np.random.Generator | None = None
        self._t_s = 0.0

    # -- Gymnasium-style contract ------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[Event, ...]:
        """Start a session: every scene at its start level, hold-off and controls cleared.

        Parameters
        ----------
        seed : int or None, keyword-only
            Seed of the director's own generator (``None``: fresh entropy).
            Must be a non-negative int (not bool).
        options : Mapping, optional
            ``"start_levels"``: ``{scene: level}`` (e.g. where the last
            session ended), clamped to the envelope with an event;
            ``"baseline"``: a :class:`Baseline`; ``"t_s"``: session time.

        Returns
        -------
        tuple of Event
            The reset event and any clamping events.
        """
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed: expected a non-negative int or None, got {seed!r}")
        options = dict(options or {})
        unknown = sorted(set(options) - {"start_levels", "baseline", "t_s"})
        if unknown:
            raise ValueError(
                f"options: unknown key(s) {', '.join(unknown)}; known: baseline, start_levels, t_s"
            )
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
        t_s = float(options.get("t_s", 0.0))
        self._t_s = t_s
        baseline = options.get("baseline")
        if baseline is not None and not isinstance(baseline, Baseline):
            raise ValueError(f"options['baseline']: expected Baseline, got {baseline!r}")
        self._baseline = baseline
        self._manual = False
        self._holdoff = 0
        self._safety_pending.clear()
        start_levels = dict(options.get("start_levels", {}))
        unknown_scenes = sorted(set(start_levels) - set(self._ladders))
        if unknown_scenes:
            raise ConfigError(
                f"start_levels: unknown scene(s) {', '.join(unknown_scenes)}; "
                f"known: {', '.join(sorted(self._ladders))}"
            )
        events = [
            self._event(
                t_s,
                "reset",
                f"director reset (seed {seed})",
                {"seed": seed, "target_success": self._config.target_success},
            )
        ]
        self._scenes = {}
        for name, top in self._max.items():
            want = start_levels.get(name, self._config.start_level)
            check_number(want, f"start_levels.{name}", integer=True, min_value=1)
            level = min(int(want), top)
            self._scenes[name] = _Scene(top, level)
            if level != want:
                events.append(self._clamp_event(t_s, name, int(want), top))
        return tuple(events)

    def set_baseline(self, baseline: Baseline, *, t_s: float) -> Event:
        """Record the session's quiet-stance baseline (success is judged against it)."""
        if not isinstance(baseline, Baseline):
            raise TypeError(f"baseline: expected Baseline, got {type(baseline).__name__}")
        self._baseline = baseline
        return self._event(
            t_s,
            "baseline",
            f"baseline: sway velocity {baseline.mean_velocity_mps * 1e3:.1f} mm/s, "
            f"min margin {baseline.min_margin_m * 1e3:.0f} mm",
            {
                "mean_velocity_mps": baseline.mean_velocity_mps,
                "min_margin_m": baseline.min_margin_m,
            },
        )

    def next_trial(self, scene: str) -> TrialPlan:
        """The level, its parameters and a fresh world seed for the next trial of ``scene``.

        Raises
        ------
        ConfigError
            If the envelope forbids the scene (not even level 1 fits).
        """
        st = self._scene(scene)
        if st.level < 1:
            raise ConfigError(
                f"scene {scene!r} is not allowed by this patient's envelope "
                f"(max level {self._envelope.max_level(scene)}; level 1: "
                + (
                    "; ".join(level_violations(self._ladders[scene][0], self._envelope))
                    or "no level allowed"
                )
                + ")"
            )
        rng = self._require_rng()
        return TrialPlan(
            scene=scene,
            level=st.level,
            parameters=self._ladders[scene][st.level - 1],
            trial_seed=int(rng.integers(0, 2**31 - 1)),
        )

    def step(self, outcome: TrialOutcome) -> Decision:
        """Judge a finished trial and adapt its scene's level.

        A safety-triggered trial lowers the level (unless :meth:`on_safety`
        already did during the trial) and starts the hold-off. Otherwise, if
        the scene is pinned, locked or under manual control, nothing moves;
        else the staircase moves: a failure lowers at once by
        ``step_down_levels``, a success adds ``step_up`` to the position (no
        rise during a hold-off), never beyond the envelope.
        """
        self._require_rng()
        if not isinstance(outcome, TrialOutcome):
            raise TypeError(f"outcome: expected TrialOutcome, got {type(outcome).__name__}")
        name = outcome.scene
        st = self._scene(name)
        t_s = outcome.t_s
        self._t_s = t_s
        before = st.level
        success, why = judge(outcome, self._baseline, self._config.criteria)
        events = [
            self._event(
                t_s,
                "trial_outcome",
                f"{'success' if success else 'failure'} at level {outcome.level} of {name}: {why}",
                {
                    "scene": name,
                    "level": outcome.level,
                    "success": success,
                    "reason": why,
                    "mean_velocity_mps": outcome.mean_velocity_mps,
                    "min_margin_m": outcome.min_margin_m,
                },
            )
        ]
        # Trials run one at a time, so a pending on_safety() belongs to the trial
        # whose outcome arrives next, whatever its scene: clear them all here, so
        # a later trial's own safety event lowers (and restarts the hold-off) again.
        already_lowered = name in self._safety_pending
        self._safety_pending.clear()
        if outcome.safety_triggered:
            if already_lowered:
                reason = f"safety event at level {outcome.level}: already lowered to {st.level}"
            else:
                reason = self._lower_for_safety(name, t_s, "safety event during the trial", events)
            return self._decision(name, before, False, reason, events)

        holding = self._holdoff > 0
        if holding:
            self._holdoff -= 1
        controlled = self._control_label(name)
        if controlled:
            reason = f"{'success' if success else 'failure'} at level {before}; {controlled}"
        elif not success:
            new_pos = max(Fraction(1), st.position - self._config.step_down_levels)
            reason = self._move(name, new_pos, t_s, f"failure at level {before} ({why})", events)
        elif holding:
            reason = (
                f"success at level {before}; hold-off after a safety event "
                f"({self._holdoff} more trial(s))"
            )
        elif before >= st.max_level:
            st.successes += 1
            st.position = Fraction(st.max_level)
            reason = f"success at level {before}, the highest the envelope allows"
        else:
            st.successes += 1
            new_pos = min(Fraction(st.max_level), st.position + self._config.step_up)
            if math.floor(new_pos) > before:
                plural = "es" if st.successes != 1 else ""
                reason = self._move(
                    name, new_pos, t_s, f"{st.successes} success{plural} at level {before}", events
                )
            else:
                st.position = new_pos
                reason = (
                    f"success at level {before} (progress {float(new_pos - before):.2f} "
                    "towards the next level)"
                )
        return self._decision(name, before, success, reason, events)

    def on_safety(self, scene: str, *, t_s: float, cause: str) -> Decision:
        """Lower ``scene`` at once after a safety event (call on the monitor's calm/stop).

        Safety outranks every therapist control: a pinned or locked level is
        lowered too (the pin moves down with it), and manual control does not
        prevent it. The hold-off starts; the trial's :meth:`step` will not
        lower a second time.
        """
        st = self._scene(scene)
        before = st.level
        events: list[Event] = []
        reason = self._lower_for_safety(scene, t_s, cause, events)
        self._safety_pending.add(scene)
        return self._decision(scene, before, None, reason, events)

    # -- therapist controls -----------------------------------------------------------

    def pin_level(self, scene: str, level: int, *, t_s: float) -> Decision:
        """Fix ``scene`` at ``level`` (clamped to the envelope, with an event) until unpinned."""
        st = self._scene(scene)
        before = st.level
        events: list[Event] = []
        target = self._clamp(scene, level, t_s, events)
        st.pinned = True
        reason = self._move(
            scene, Fraction(target), t_s, f"therapist pinned level {level}", events, kind="pin"
        )
        return self._decision(scene, before, None, reason, events)

    def unpin(self, scene: str, *, t_s: float) -> Decision:
        """Let the staircase move ``scene`` again, from its current level."""
        st = self._scene(scene)
        st.pinned = False
        ev = self._event(
            t_s,
            "unpin",
            f"therapist unpinned {scene} at level {st.level}",
            {"scene": scene, "level": st.level},
        )
        return self._decision(scene, st.level, None, ev.message, [ev])

    def lock_scene(self, scene: str, *, t_s: float) -> Decision:
        """Hold ``scene`` at its current level (no adaptation) until unlocked."""
        st = self._scene(scene)
        st.locked = True
        ev = self._event(
            t_s,
            "lock",
            f"therapist locked {scene} at level {st.level}",
            {"scene": scene, "level": st.level},
        )
        return self._decision(scene, st.level, None, ev.message, [ev])

    def unlock_scene(self, scene: str, *, t_s: float) -> Decision:
        """Let the staircase move ``scene`` again."""
        st = self._scene(scene)
        st.locked = False
        ev = self._event(
            t_s,
            "unlock",
            f"therapist unlocked {scene} at level {st.level}",
            {"scene": scene, "level": st.level},
        )
        return self._decision(scene, st.level, None, ev.message, [ev])

    def take_manual_control(self, *, t_s: float) -> Event:
        """Stop all adaptation; the therapist sets levels with :meth:`set_level`."""
        self._manual = True
        return self._event(t_s, "manual_on", "therapist took manual control of difficulty", {})

    def release_manual_control(self, *, t_s: float) -> Event:
        """Resume adaptation from the current levels."""
        self._manual = False
        return self._event(t_s, "manual_off", "therapist released manual control", {})

    def set_level(self, scene: str, level: int, *, t_s: float) -> Decision:
        """Set ``scene``'s level by hand (operator keys), clamped to the envelope with an event.

        Outside manual control the staircase continues from the new level.
        """
        st = self._scene(scene)
        before = st.level
        events: list[Event] = []
        target = self._clamp(scene, level, t_s, events)
        reason = self._move(scene, Fraction(target), t_s, f"therapist set level {level}", events)
        return self._decision(scene, before, None, reason, events)

    # -- queries ------------------------------------------------------------------------

    @property
    def envelope(self) -> SafetyEnvelope:
        return self._envelope

    @property
    def config(self) -> StaircaseConfig:
        return self._config

    @property
    def manual(self) -> bool:
        """Whether the therapist has manual control."""
        return self._manual

    @property
    def holdoff_trials_left(self) -> int:
        """Trials left in the post-safety hold-off (no rises while > 0)."""
        return self._holdoff

    @property
    def baseline(self) -> Baseline | None:
        return self._baseline

    def scenes(self) -> tuple[str, ...]:
        return tuple(self._ladders)

    def level(self, scene: str) -> int:
        """Current level of ``scene`` (0 if the envelope forbids it)."""
        return self._scene(scene).level

    def max_level(self, scene: str) -> int:
        """Highest level of ``scene`` the envelope and ladder allow."""
        return self._max_for(scene)

    def scene_state(self, scene: str) -> SceneLevel:
        st = self._scene(scene)
        return SceneLevel(
            scene=scene,
            level=st.level,
            max_level=st.max_level,
            progress=st.position - st.level,
            pinned=st.pinned,
            locked=st.locked,
            successes=st.successes,
        )

    # -- internals ----------------------------------------------------------------------

    def _require_rng(self) -> np.random.Generator:
        if self._rng is None:
            raise RuntimeError("Director: call reset(seed=...) before the first trial")
        return self._rng

    def _max_for(self, scene: str) -> int:
        if scene not in self._max:
            raise ConfigError(
                f"scene {scene!r} has no ladder; known: {', '.join(sorted(self._ladders))}"
            )
        return self._max[scene]

    def _scene(self, scene: str) -> _Scene:
        self._max_for(scene)
        self._require_rng()
        return self._scenes[scene]

    def _control_label(self, scene: str) -> str:
        st = self._scenes[scene]
        if st.pinned:
            return f"level pinned by the therapist at {st.level}"
        if st.locked:
            return f"scene locked by the therapist at {st.level}"
        if self._manual:
            return "under the therapist's manual control"
        return ""

    def _event(
        self,
        t_s: float,
        kind: str,
        message: str,
        values: Mapping[str, object],
        severity: Severity = "info",
    ) -> Event:
        log.info("director: %s", message)
        return Event(
            t_s=t_s, source="director", kind=kind, message=message, severity=severity, values=values
        )

    def _clamp_event(self, t_s: float, scene: str, wanted: int, top: int) -> Event:
        return self._event(
            t_s,
            "level_clamped",
            f"level {wanted} of {scene} is above what the envelope allows; using {top}",
            {"scene": scene, "requested_level": wanted, "max_level": top},
            severity="warning",
        )

    def _clamp(self, scene: str, level: int, t_s: float, events: list[Event]) -> int:
        check_number(level, "level", where=f"scene {scene!r}", integer=True, min_value=1)
        top = self._scenes[scene].max_level
        if top < 1:
            raise ConfigError(f"scene {scene!r} is not allowed by this patient's envelope")
        if level > top:
            events.append(self._clamp_event(t_s, scene, level, top))
            return top
        return int(level)

    def _move(
        self,
        scene: str,
        position: Fraction,
        t_s: float,
        because: str,
        events: list[Event],
        kind: str = "level_change",
    ) -> str:
        st = self._scenes[scene]
        before = st.level
        top = st.max_level
        # The envelope is the last word, whatever asked for the move.
        position = min(max(position, Fraction(min(1, top))), Fraction(top))
        st.position = position
        after = st.level
        if after != before:
            st.successes = 0
        reason = f"{because} -> {after}" if after != before else f"{because}; stays at {after}"
        events.append(
            self._event(
                t_s,
                kind if (after != before or kind != "level_change") else "level_hold",
                reason,
                {
                    "scene": scene,
                    "from_level": before,
                    "to_level": after,
                    "reason": because,
                    "max_level": top,
                },
            )
        )
        return reason

    def _lower_for_safety(self, scene: str, t_s: float, cause: str, events: list[Event]) -> str:
        st = self._scenes[scene]
        before = st.level
        target = Fraction(max(min(1, st.max_level), before - self._config.safety_drop_levels))
        self._holdoff = self._config.holdoff_trials
        reason = self._move(
            scene,
            target,
            t_s,
            f"safety event ({cause}) at level {before}",
            events,
            kind="safety_deescalation",
        )
        return f"{reason}; no rise for {self._holdoff} trial(s)"

    def _decision(
        self, scene: str, before: int, success: bool | None, reason: str, events: list[Event]
    ) -> Decision:
        return Decision(
            scene=scene,
            level=self._scenes[scene].level,
            previous_level=before,
            success=success,
            reason=reason,
            events=tuple(events),
        )
