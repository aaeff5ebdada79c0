"""Replay: the same recording through the same estimator and monitor gives the same result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vrbalance.sessions.recorder import read_rows, state_from_row
from vrbalance.sessions.replay import replay_session


@pytest.mark.slow
def test_replay_reproduces_states_and_safety_events_exactly(
    run_session: Callable[..., Any], quiet: Callable[..., Any]
) -> None:
    result = run_session(
        [quiet("quiet", 0.6), quiet("fall", 3.0)], script="fall@0.3s", seconds_scale=0.05
    )
    assert result.trials[1].end_reason.value == "safety_stop"
    replay = replay_session(result.folder)
    recorded = [state_from_row(r) for r in read_rows(result.folder / "state.csv")]
    assert list(replay.states) == recorded  # bit-identical CoP, CoM, margins...
    assert replay.mismatched_states == 0 and replay.first_mismatch is None
    kinds = [e.kind for e in replay.safety_events]
    assert "stop_trial" in kinds and "monitor_reset" in kinds
    assert replay.safety_events == replay.recorded_safety_events
    assert replay.identical

    # Tamper with one recorded plate frame: the replay must notice.
    plate = result.folder / "plate.csv"
    lines = plate.read_text().splitlines(keepends=True)
    trial_col = lines[0].split(",").index("trial")
    # A frame of the first trial (how many frames each trial got depends on timing).
    first_trial = [i for i, line in enumerate(lines[1:], 1) if line.split(",")[trial_col] == "0"]
    target = first_trial[len(first_trial) // 2]
    fields = lines[target].split(",")
    fields[6] = repr(float(fields[6]) + 25.0)  # +25 N on one load cell
    lines[target] = ",".join(fields)
    plate.write_text("".join(lines))
    tampered = replay_session(result.folder)
    assert tampered.mismatched_states > 0
    assert not tampered.identical
    assert tampered.first_mismatch is not None and "trial 0 tick" in tampered.first_mismatch
