"""Summary measures: from a recording folder, identical to the balance core's own functions."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vrbalance.balance.state import BalanceState
from vrbalance.balance.sway import sway_metrics
from vrbalance.sessions.assessments import equilibrium_score, sot_composite
from vrbalance.sessions.protocol import load_protocol
from vrbalance.sessions.recorder import SessionRecorder
from vrbalance.sessions.summary import measures_dict, summarize_folder


def _trial_row(i: int, assessment: str, condition: int, end: str = "completed") -> dict:
    return {
        "trial": i,
        "name": f"t{i}",
        "kind": "assessment",
        "scene": "park",
        "stance": "feet_apart",
        "eyes": "open",
        "surface": "firm",
        "surround": "fixed",
        "assessment": assessment,
        "condition": condition,
        "level": 1,
        "planned_s": 4.0,
        "start_t_s": 0.0,
        "end_t_s": 4.0,
        "end_reason": end,
    }


def test_measures_match_the_balance_core_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 1000
    cop = np.cumsum(rng.normal(0, 2e-4, (n, 2)), axis=0)
    theta = np.radians(np.linspace(-1.0, 2.0, n))  # 3 deg AP range
    folder = tmp_path / "s"
    with SessionRecorder(folder, {"session_id": "s", "patient_id": "p", "rate_hz": 250.0}) as rec:
        for trial, (assessment, condition) in enumerate([("sot", 1), ("sot", 3), ("sot", 3)]):
            for k in range(n):
                rec.state(
                    trial,
                    BalanceState(
                        tick=k,
                        t_s=k / 250.0,
                        stance="feet_apart",
                        cop_m=tuple(cop[k]),
                        plate_loaded=True,
                        margin_xcom_m=0.05 + 1e-5 * k,
                        sway_angle_ap_rad=float(theta[k]) * (1 + trial),
                    ),
                )
            end = "safety_stop" if trial == 2 else "completed"
            rec.trial_finished(_trial_row(trial, assessment, condition, end))
    m = measures_dict(summarize_folder(folder))
    ref = sway_metrics(cop, 250.0)
    assert m[(0, "cop_velocity_mps")] == ref.mean_velocity_mps
    assert m[(0, "cop_area_m2")] == ref.prediction_ellipse_area_m2
    assert m[(0, "cop_mfreq_hz")] == ref.mean_frequency_hz
    assert m[(0, "min_margin_xcom_m")] == pytest.approx(0.05)
    assert m[(0, "duration_s")] == 4.0
    es0 = equilibrium_score(theta)
    es1 = equilibrium_score(theta * 2)
    assert m[(0, "equilibrium_score")] == pytest.approx(100 * (1 - 3 / 12.5))
    assert m[(1, "equilibrium_score")] == pytest.approx(es1)
    assert m[(2, "equilibrium_score")] == 0.0  # a fall scores 0
    assert m[(-1, "sot_condition_3_score")] == pytest.approx(es1 / 2)
    assert m[(-1, "sot_composite")] == pytest.approx(sot_composite({1: [es0], 3: [es1, 0.0]}))


@pytest.mark.slow
def test_limits_of_stability_on_the_simulated_patient(run_session: Callable[..., Any]) -> None:
    (los,) = load_protocol("los", with_baseline=False, seconds_scale=0.1).trials
    result = run_session([los], seconds_scale=0.1)
    assert result.trials[0].end_reason.value == "completed"
    m = measures_dict(summarize_folder(result.folder))
    for k in range(1, 9):
        assert (0, f"los_t{k}_max_excursion_pct") in m
    # The simulated person aims at 60 % of each target; in the 0.8 s a target lasts
    # at this time scale its pendulum gets about half way there.
    assert 15.0 < m[(0, "los_max_excursion_pct")] < 100.0
    rt = m[(0, "los_reaction_time_s")]
    assert rt is not None and 0.0 < rt < 0.6
    # The session's directional control is its one trial's, a finite percentage
    # (100 at most: 100·(on − off)/on).
    dc = m[(0, "los_directional_control_pct")]
    assert math.isfinite(dc) and dc <= 100.0
    assert m[(-1, "los_directional_control_pct")] == dc
    assert not math.isnan(m[(0, "los_movement_velocity_mps")])
