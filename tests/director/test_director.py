"""The director: converges on the target success rate, never leaves the envelope, safety first."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vrbalance.director.director import (
    Baseline,
    Director,
    StaircaseConfig,
    SuccessCriteria,
    TrialOutcome,
    judge,
    ladders_from_scenes,
)
from vrbalance.director.envelope import SafetyEnvelope, level_violations
from vrbalance.errors import ConfigError

BASE = Baseline(mean_velocity_mps=0.006, min_margin_m=0.08)


def ladder(n: int = 15, flow_step: float = 0.1) -> list[dict[str, float]]:
    """Optic flow rising by ``flow_step`` per level; passing distance falling."""
    return [
        {"optic_flow_mps": i * flow_step, "passing_distance_m": 3.0 - 0.1 * i, "fog": 0.1 * i}
        for i in range(n)
    ]


def make(
    envelope: SafetyEnvelope | None = None,
    config: StaircaseConfig | None = None,
    n: int = 15,
    seed: int = 1,
) -> Director:
    env = envelope or SafetyEnvelope(max_levels={"park": 30, "crowd": 30})
    d = Director({"park": ladder(n), "crowd": ladder(n)}, env, config)
    d.reset(seed=seed, options={"baseline": BASE})
    return d


def outcome(
    scene: str, level: int, success: bool, *, t_s: float = 0.0, safety: bool = False
) -> TrialOutcome:
    return TrialOutcome(
        scene=scene,
        level=level,
        t_s=t_s,
        mean_velocity_mps=BASE.mean_velocity_mps * (1.5 if success else 3.5),
        min_margin_m=0.06,
        safety_triggered=safety,
    )


# -- success judgement ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected", "reason"),
    [
        ({}, True, r"sway velocity 1\.50 x baseline"),
        ({"safety_triggered": True}, False, "safety trigger"),
        ({"completed": False}, False, "trial not completed"),
        ({"mean_velocity_mps": 0.018}, False, r"sway velocity 3.00 x baseline > 2.5"),
        ({"min_margin_m": 0.03}, False, r"margin of stability 0.38 x baseline < 0.5"),
        ({"min_margin_m": None}, False, "sway measures missing"),
    ],
)
def test_judge(kwargs: dict, expected: bool, reason: str) -> None:
    fields = {
        "scene": "park",
        "level": 3,
        "t_s": 0.0,
        "mean_velocity_mps": 0.009,
        "min_margin_m": 0.06,
    }
    ok, why = judge(TrialOutcome(**(fields | kwargs)), BASE, SuccessCriteria())
    assert ok is expected
    assert re.search(reason, why), why


def test_staircase_step_sizes_follow_kaernbach() -> None:
    assert StaircaseConfig(target_success=0.75).step_up == pytest.approx(1 / 3)
    assert StaircaseConfig(target_success=0.8).step_up == pytest.approx(0.25)
    with pytest.raises(ConfigError, match="target_success: expected a value in"):
        StaircaseConfig(target_success=0.3)
    with pytest.raises(ConfigError, match=r"step up 1\.33 levels would exceed one level"):
        StaircaseConfig(target_success=0.6, step_down_levels=2)


# -- the rule in small steps ---------------------------------------------------------------


def test_three_successes_raise_one_level_with_the_reason() -> None:
    d = make()
    d.set_level("park", 4, t_s=0.0)
    decisions = [d.step(outcome("park", 4, True, t_s=float(i))) for i in range(3)]
    assert [x.level for x in decisions] == [4, 4, 5]
    change = [e for e in decisions[-1].events if e.kind == "level_change"]
    assert change[0].message == "3 successes at level 4 -> 5"
    assert change[0].values["from_level"] == 4 and change[0].values["to_level"] == 5


def test_a_failure_lowers_at_once() -> None:
    d = make()
    d.set_level("park", 6, t_s=0.0)
    dec = d.step(outcome("park", 6, False))
    assert dec.level == 5 and dec.success is False
    assert dec.reason.startswith("failure at level 6 (sway velocity 3.50 x baseline")


def test_level_never_goes_below_one() -> None:
    d = make()
    for _ in range(3):
        assert d.step(outcome("park", 1, False)).level == 1
        assert d.on_safety("park", t_s=0.0, cause="fall").level == 1


def test_converges_near_the_target_on_a_simulated_patient() -> None:
    # Success probability falls with level (logistic around level 8); the staircase
    # must settle where the patient succeeds about 75 % of the time.
    rates = []
    for seed in range(4):
        patient = np.random.default_rng(seed)
        d = make(seed=seed, n=20)
        successes = []
        for i in range(600):
            level = d.next_trial("park").level
            p = 1.0 / (1.0 + math.exp((level - 8.0) / 1.2))
            ok = bool(patient.random() < p)
            d.step(outcome("park", level, ok, t_s=float(i)))
            if i >= 100:
                successes.append(ok)
        rates.append(float(np.mean(successes)))
    assert np.mean(rates) == pytest.approx(0.75, abs=0.03)
    assert all(abs(r - 0.75) < 0.06 for r in rates)


def test_converges_for_another_target() -> None:
    patient = np.random.default_rng(7)
    d = make(config=StaircaseConfig(target_success=0.8), n=20, seed=7)
    successes = []
    for i in range(800):
        level = d.next_trial("park").level
        ok = bool(patient.random() < 1.0 / (1.0 + math.exp((level - 10.0) / 1.5)))
        d.step(outcome("park", level, ok, t_s=float(i)))
        successes.append(ok)
    assert np.mean(successes[100:]) == pytest.approx(0.8, abs=0.05)


# -- safety ---------------------------------------------------------------------------


def test_safety_event_lowers_at_once_and_holds_off_rises() -> None:
    d = make(config=StaircaseConfig(holdoff_trials=2))
    d.set_level("park", 5, t_s=0.0)
    d.step(outcome("park", 5, True))  # progress 1/3
    dec = d.on_safety("park", t_s=1.0, cause="margin_at_edge")
    assert dec.level == 4
    assert dec.events[0].kind == "safety_deescalation"
    assert "safety event (margin_at_edge) at level 5 -> 4" in dec.reason
    assert d.scene_state("park").progress == 0  # progress is forfeited
    # The trial that had the event ends: no second lowering.
    assert d.step(outcome("park", 4, False, safety=True)).level == 4
    # Hold-off: two successes do not count towards a rise ...
    for _ in range(2):
        dec = d.step(outcome("park", 4, True))
        assert dec.level == 4 and "hold-off" in dec.reason
    # ... then three more raise the level.
    levels = [d.step(outcome("park", 4, True)).level for _ in range(3)]
    assert levels == [4, 4, 5]


def test_safety_flag_in_the_outcome_alone_also_lowers() -> None:
    d = make()
    d.set_level("crowd", 7, t_s=0.0)
    dec = d.step(outcome("crowd", 7, True, safety=True))
    assert dec.level == 6 and dec.success is False
    assert d.holdoff_trials_left == 2


def test_holdoff_applies_to_every_scene() -> None:
    d = make()
    d.set_level("park", 3, t_s=0.0)
    d.on_safety("crowd", t_s=0.0, cause="head_fall_velocity")
    d.step(outcome("crowd", 1, False, safety=True))
    assert [d.step(outcome("park", 3, True)).level for _ in range(5)] == [3, 3, 3, 3, 4]


def test_safety_overrides_pin_lock_and_manual() -> None:
    d = make()
    d.pin_level("park", 6, t_s=0.0)
    assert d.on_safety("park", t_s=1.0, cause="cop_jump").level == 5
    assert d.scene_state("park").pinned
    d.lock_scene("crowd", t_s=0.0)
    d.set_level("crowd", 4, t_s=0.0)
    assert d.on_safety("crowd", t_s=1.0, cause="cop_jump").level == 3
    d.take_manual_control(t_s=2.0)
    assert d.on_safety("crowd", t_s=3.0, cause="cop_jump").level == 2


# -- therapist controls -----------------------------------------------------------------


def test_pin_holds_the_level_until_unpinned() -> None:
    d = make()
    dec = d.pin_level("park", 5, t_s=0.0)
    assert dec.level == 5 and dec.events[-1].kind == "pin"
    for ok in (True, True, True, False, False, True):
        assert d.step(outcome("park", 5, ok)).level == 5
    d.unpin("park", t_s=1.0)
    assert d.step(outcome("park", 5, False)).level == 4


def test_lock_holds_the_current_level() -> None:
    d = make()
    d.set_level("crowd", 3, t_s=0.0)
    d.lock_scene("crowd", t_s=0.0)
    for ok in (True, True, True, False):
        assert d.step(outcome("crowd", 3, ok)).level == 3
    d.unlock_scene("crowd", t_s=0.0)
    assert d.step(outcome("crowd", 3, False)).level == 2


def test_manual_control_stops_adaptation_and_stays_in_the_envelope() -> None:
    env = SafetyEnvelope(max_levels={"park": 6, "crowd": 10})
    d = make(envelope=env)
    d.take_manual_control(t_s=0.0)
    dec = d.set_level("park", 9, t_s=1.0)
    assert dec.level == 6
    assert [e.kind for e in dec.events] == ["level_clamped", "level_change"]
    assert "level 9 of park is above what the envelope allows; using 6" in dec.events[0].message
    for ok in (True, True, True, True):
        assert d.step(outcome("park", 6, ok)).level == 6
    assert d.step(outcome("park", 6, False)).level == 6
    d.release_manual_control(t_s=2.0)
    assert d.step(outcome("park", 6, False)).level == 5


def test_pin_above_the_envelope_is_clamped() -> None:
    d = make(envelope=SafetyEnvelope(max_levels={"park": 4, "crowd": 4}))
    assert d.pin_level("park", 12, t_s=0.0).level == 4


# -- envelope --------------------------------------------------------------------------


def test_physical_limits_cap_the_ladder() -> None:
    # optic flow 0.1 per level: the default 1.4 m/s allows levels 1..15; 0.5 m/s only 1..6.
    d = make(envelope=SafetyEnvelope(max_levels={"park": 30, "crowd": 30}, max_optic_flow_mps=0.5))
    assert d.max_level("park") == 6
    d.set_level("park", 6, t_s=0.0)
    for _ in range(10):
        assert d.step(outcome("park", 6, True)).level == 6


def test_forbidden_scene_cannot_be_run() -> None:
    d = make(envelope=SafetyEnvelope(max_levels={"park": 0, "crowd": 5}))
    assert d.level("park") == 0
    with pytest.raises(ConfigError, match="scene 'park' is not allowed by this patient's"):
        d.next_trial("park")


_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("outcome"), st.sampled_from(["park", "crowd"]), st.booleans(), st.booleans()
        ),
        st.tuples(st.just("safety"), st.sampled_from(["park", "crowd"])),
        st.tuples(st.just("pin"), st.sampled_from(["park", "crowd"]), st.integers(1, 40)),
        st.tuples(st.just("set"), st.sampled_from(["park", "crowd"]), st.integers(1, 40)),
        st.tuples(st.just("unpin"), st.sampled_from(["park", "crowd"])),
        st.tuples(st.just("lock"), st.sampled_from(["park", "crowd"])),
        st.tuples(st.just("unlock"), st.sampled_from(["park", "crowd"])),
        st.tuples(st.just("manual"), st.booleans()),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=_ops, flow=st.floats(0.0, 3.0), top=st.integers(0, 30), seed=st.integers(0, 2**32))
# Regressions: a stale on_safety() used to swallow a later trial's own safety event,
# leaving no hold-off after it.
@example(
    ops=[
        ("safety", "park"),
        ("outcome", "park", False, False),
        ("outcome", "park", False, False),
        ("outcome", "park", False, True),
    ],
    flow=0.0,
    top=0,
    seed=0,
)
@example(
    ops=[
        ("safety", "crowd"),
        ("outcome", "park", False, False),
        ("outcome", "park", False, False),
        ("outcome", "crowd", False, True),
    ],
    flow=0.0,
    top=0,
    seed=0,
)
def test_never_leaves_the_envelope_never_jumps_and_always_deescalates(
    ops: list[tuple], flow: float, top: int, seed: int
) -> None:
    env = SafetyEnvelope(max_levels={"park": top, "crowd": 30}, max_optic_flow_mps=flow)
    d = Director({"park": ladder(20, 0.15), "crowd": ladder(20, 0.15)}, env)
    d.reset(seed=seed)
    for op in ops:
        before = {s: d.level(s) for s in ("park", "crowd")}
        kind, *args = op
        try:
            if kind == "outcome":
                scene, ok, safety = args
                dec = d.step(outcome(scene, before[scene], ok, safety=safety))
                assert dec.level <= before[scene] + 1  # never more than one level up
                if safety:
                    assert dec.level <= max(before[scene], 0)
                    assert d.holdoff_trials_left >= 1 or d.config.holdoff_trials == 0
            elif kind == "safety":
                (scene,) = args
                dec = d.on_safety(scene, t_s=0.0, cause="test")
                assert dec.level == max(min(1, d.max_level(scene)), before[scene] - 1)
            elif kind == "pin":
                d.pin_level(args[0], args[1], t_s=0.0)
            elif kind == "set":
                d.set_level(args[0], args[1], t_s=0.0)
            elif kind == "unpin":
                d.unpin(args[0], t_s=0.0)
            elif kind == "lock":
                d.lock_scene(args[0], t_s=0.0)
            elif kind == "unlock":
                d.unlock_scene(args[0], t_s=0.0)
            elif kind == "manual":
                (on,) = args
                (d.take_manual_control if on else d.release_manual_control)(t_s=0.0)
        except ConfigError as exc:
            assert "not allowed by this patient's envelope" in str(exc)
        for scene in ("park", "crowd"):
            level = d.level(scene)
            assert 0 <= level <= d.max_level(scene) <= env.max_level(scene)
            if level >= 1:
                assert level_violations(ladder(20, 0.15)[level - 1], env) == []


# -- contract ---------------------------------------------------------------------------


def test_seeded_reset_reproduces_trial_seeds() -> None:
    def seeds(seed: int) -> list[int]:
        d = make(seed=seed)
        return [d.next_trial("park").trial_seed for _ in range(5)]

    assert seeds(3) == seeds(3)
    assert seeds(3) != seeds(4)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "7"])
def test_bad_seed_is_refused_with_its_value(bad: object) -> None:
    d = Director({"park": ladder()}, SafetyEnvelope())
    with pytest.raises(ValueError, match=f"seed: expected a non-negative int or None, got {bad!r}"):
        d.reset(seed=bad)  # type: ignore[arg-type]


def test_step_before_reset_is_an_error() -> None:
    d = Director({"park": ladder()}, SafetyEnvelope())
    with pytest.raises(RuntimeError, match="call reset"):
        d.step(outcome("park", 1, True))


def test_start_levels_are_clamped_with_an_event() -> None:
    d = Director({"park": ladder()}, SafetyEnvelope(max_levels={"park": 5}))
    events = d.reset(seed=0, options={"start_levels": {"park": 9}, "t_s": 12.0})
    assert d.level("park") == 5
    assert [e.kind for e in events] == ["reset", "level_clamped"]
    assert all(e.t_s == 12.0 and e.source == "director" for e in events)


def test_next_trial_gives_the_level_parameters() -> None:
    d = make()
    d.set_level("park", 3, t_s=0.0)
    plan = d.next_trial("park")
    assert plan.level == 3 and plan.parameters["optic_flow_mps"] == pytest.approx(0.2)


def test_ladders_from_shipped_scenes() -> None:
    from vrbalance.config import scenes as scenes_mod

    names = scenes_mod.available_scenes()
    assert {"park", "stairs", "crowd"} <= set(names)
    scenes = [scenes_mod.load_scene(n) for n in names]
    d = Director(ladders_from_scenes(scenes), SafetyEnvelope())
    d.reset(seed=0)
    for s in scenes:
        top = d.max_level(s.name)
        assert 1 <= top <= s.n_levels
        assert level_violations(s.levels[top - 1].values, SafetyEnvelope()) == []


def test_every_director_event_is_json_ready() -> None:
    d = make()
    events = list(d.reset(seed=5, options={"start_levels": {"park": 40}}))
    events.append(d.set_baseline(BASE, t_s=0.5))
    for i, ok in enumerate([True, True, True, False, True]):
        events += d.step(outcome("park", d.level("park"), ok, t_s=float(i))).events
    events += d.on_safety("park", t_s=9.0, cause="cop_jump").events
    events += d.pin_level("crowd", 99, t_s=10.0).events
    events.append(d.take_manual_control(t_s=11.0))
    kinds = {e.kind for e in events}
    assert {
        "reset",
        "level_clamped",
        "baseline",
        "trial_outcome",
        "level_change",
        "safety_deescalation",
        "pin",
        "manual_on",
    } <= kinds
    for e in events:
        assert e.source == "director"
        json.dumps(e.to_dict())
