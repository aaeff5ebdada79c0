"""The scores printed when a session ends."""

from __future__ import annotations

from pathlib import Path

from vrbalance.report.scores import score_lines
from vrbalance.sessions.summary import measures_dict, summarize_folder


def test_scores_of_every_assessment_in_the_recording(recording: Path) -> None:
    by = measures_dict(summarize_folder(recording))
    lines = score_lines(by)
    assert lines[0].startswith("baseline sway: CoP velocity ")
    assert lines[0].endswith(" cm²") and " mm/s, 95 % ellipse " in lines[0]
    (sot,) = [line for line in lines if line.startswith("SOT composite")]
    assert f"SOT composite {by[(-1, 'sot_composite')]:.0f} (3: " in sot
    (mct,) = [line for line in lines if line.startswith("mCTSIB")]
    assert f"eyes closed, firm {1000 * by[(-1, 'mctsib_condition_2_velocity_mps')]:.1f}" in mct
    (los,) = [line for line in lines if line.startswith("Limits of Stability")]
    assert f"directional control {by[(-1, 'los_directional_control_pct')]:.0f} %" in los
    assert score_lines({}) == []
