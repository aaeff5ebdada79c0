"""The safety monitor in a walking trial: corridor, head speed, head drop; no plate, no margin."""

from __future__ import annotations

import numpy as np
import pytest

from vrbalance.balance.state import BalanceState
from vrbalance.clock import ManualClock
from vrbalance.director.envelope import SafetyEnvelope
from vrbalance.director.monitor import (
    Corridor,
    MonitorMemory,
    MonitorStatus,
    PlateStatus,
    Response,
    Trigger,
    evaluate,
)
from vrbalance.exercises.sim import SimulatedWalker

ENV = SafetyEnvelope()
RATE_HZ = 90.0


def _walk_states(walker: SimulatedWalker, seconds: float) -> list[BalanceState]:
    states = []
    for k in range(int(seconds * RATE_HZ)):
        t = k / RATE_HZ
        pose = walker.pose_at(t)
        assert pose is not None
        # A margin far outside any base of support: walking must ignore it.
        states.append(
            BalanceState(
                tick=k,
                t_s=t,
                stance="feet_apart",
                head_position_m=pose.position_m,
                head_age_s=0.0,
                margin_xcom_m=-0.5,
            )
        )
    return states


def _judge(states: list[BalanceState], corridor: Corridor | None) -> tuple[set[Trigger], Response]:
    status = MonitorStatus(plate=PlateStatus.NONE, corridor=corridor)
    memory = MonitorMemory()
    fired: set[Trigger] = set()
    response = Response.NONE
    for state in states:
        memory, verdict = evaluate(memory, state, status, ENV)
        fired |= verdict.triggers
        response = max(response, verdict.response)
    return fired, response


def test_a_whole_tandem_walk_with_side_steps_and_stops_triggers_nothing() -> None:
    walker = SimulatedWalker(
        4.0, 1.6, ManualClock(), side_steps_at_m=(1.5,), stops_at_m=(5.0,), seed=2
    )
    fired, response = _judge(_walk_states(walker, walker.walk_end_s + 2.0), Corridor(4.0))
    assert fired == set() and response is Response.NONE


def test_the_same_walk_judged_as_standing_trips_the_margin_triggers() -> None:
    walker = SimulatedWalker(4.0, 1.6, ManualClock(), seed=2)
    fired, response = _judge(_walk_states(walker, 5.0), None)
    assert Trigger.MARGIN_AT_EDGE_LONG in fired and response is Response.STOP_TRIAL


@pytest.mark.parametrize(("x_m", "y_m"), [(0.6, 2.0), (-0.6, 2.0), (0.0, 4.6), (0.0, -0.6)])
def test_leaving_the_corridor_stops_the_trial_in_that_tick(x_m: float, y_m: float) -> None:
    states = [
        BalanceState(k, k / RATE_HZ, "feet_apart", head_position_m=(0.0, 1.0, 1.6), head_age_s=0.0)
        for k in range(10)
    ]
    states.append(
        BalanceState(
            10, 10 / RATE_HZ, "feet_apart", head_position_m=(x_m, y_m, 1.6), head_age_s=0.0
        )
    )
    memory = MonitorMemory()
    status = MonitorStatus(plate=PlateStatus.NONE, corridor=Corridor(4.0))
    for state in states[:-1]:
        memory, verdict = evaluate(memory, state, status, ENV)
        assert verdict.response is Response.NONE
    memory, verdict = evaluate(memory, states[-1], status, ENV)
    assert Trigger.LEFT_CORRIDOR in verdict.triggers
    assert verdict.stop_trial
    kinds = [e.kind for e in verdict.events]
    assert kinds[0] == "left_corridor" and kinds[-1] == "stop_trial"


def test_a_lunge_calms_the_world_but_normal_walking_speed_does_not() -> None:
    def run(speed_mps: float) -> set[Trigger]:
        y = np.arange(0, 1.0, 1.0 / RATE_HZ) * speed_mps
        states = [
            BalanceState(
                k, k / RATE_HZ, "feet_apart", head_position_m=(0.0, float(v), 1.6), head_age_s=0.0
            )
            for k, v in enumerate(y)
        ]
        return _judge(states, Corridor(6.0))[0]

    assert run(0.8) == set()
    assert Trigger.HEAD_SPEED in run(1.6)


def test_a_fall_while_walking_is_still_a_head_drop() -> None:
    walker = SimulatedWalker(4.0, 1.6, ManualClock(), seed=2)
    states = _walk_states(walker, 4.0)
    last = states[-1]
    for k in range(1, 40):  # the head falls at 1.2 m/s
        states.append(
            BalanceState(
                last.tick + k,
                last.t_s + k / RATE_HZ,
                "feet_apart",
                head_position_m=(0.0, last.head_position_m[1], 1.6 - 1.2 * k / RATE_HZ),  # type: ignore[index]
                head_age_s=0.0,
            )
        )
    fired, response = _judge(states, Corridor(4.0))
    assert Trigger.HEAD_FALL_VELOCITY in fired and response is Response.STOP_TRIAL


def test_envelope_caps_the_walking_limits() -> None:
    from vrbalance.errors import ConfigError

    with pytest.raises(ConfigError, match=r"max_walk_length_m: 7\.0 exceeds the hard cap"):
        SafetyEnvelope(max_walk_length_m=7.0)
    with pytest.raises(ConfigError, match=r"corridor_half_width_m: 1\.0 exceeds the hard cap"):
        SafetyEnvelope.from_dict({"monitor": {"corridor_half_width_m": 1.0}})
    env = SafetyEnvelope.from_dict({"walk": {"max_walk_length_m": 5.5}})
    assert SafetyEnvelope.from_dict(env.to_dict()) == env
