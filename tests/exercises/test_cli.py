"""The plate exercises through the command line: run --simulate --offscreen, report, replay.

(The walk runs on a manual clock in ``test_walk.py``: no plate thread, a minute in seconds.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vrbalance.cli import main
from vrbalance.exercises.coach import FULL_SHIFT_M
from vrbalance.exercises.plan import exercise_plan, raise_schedule
from vrbalance.report.html import measures_from_html
from vrbalance.sessions.protocol import read_protocol
from vrbalance.sessions.recorder import read_rows
from vrbalance.sessions.store import Store

PROTOCOL = """
title = "Exercises"
[[trials]]
name = "Raises"
scene = "leg_raises"
task = "leg_raise"
duration_s = 80.0
level = 5
[[trials]]
name = "Tai chi"
scene = "tai_chi"
task = "tai_chi"
duration_s = 90.0
level = 5
"""


@pytest.mark.slow
@pytest.mark.render
def test_exercises_run_simulated_offscreen_then_report_and_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("VRBALANCE_DATA", str(data))
    monkeypatch.delenv("VRBALANCE_DB", raising=False)
    protocol = tmp_path / "exercises.toml"
    protocol.write_text(PROTOCOL)
    assert main(["patient", "add", "E1", "--birth-year", "1950", "--height-cm", "170"]) == 0
    args = ["run", "--patient", "E1", "--protocol", str(protocol), "--simulate", "--offscreen"]
    args += ["--seconds-scale", "0.08", "--no-baseline"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for name in ("Raises", "Tai chi"):
        assert f"] {name}: completed" in out
    (folder,) = (data / "sessions" / "E1").iterdir()
    events = read_rows(folder / "events.csv")
    plans = [e for e in events if e["kind"] == "exercise_plan"]
    assert [int(e["trial"]) for e in plans] == [0, 1]
    assert not [e for e in events if e["source"] == "safety" and e["severity"] == "alarm"]

    with Store(data / "vrbalance.sqlite3") as store:
        (session,) = store.sessions("E1")
        m = {(r["trial_idx"], r["name"]): r["value"] for r in store.measures(session["id"])}
    # The leg raises at level 5, shortened: the schedule's raises, all found.
    trials = read_protocol(protocol).trials
    raises = trials[0].scaled(0.08)
    plan = exercise_plan(raises, 5)
    assert plan is not None
    cues = raise_schedule(plan, raises.duration_s)
    assert m[(0, "raise_reps_left")] == sum(c.side == "left" for c in cues) == 2
    assert m[(0, "raise_reps_right")] == 0
    assert m[(0, "raise_hold_left_s")] == pytest.approx(plan.hold_s + 0.6, abs=0.45)
    assert m[(0, "exercise_success")] == 0.0  # no right raise fitted in 6.4 s
    # Tai chi: the simulated person follows 0.5 s late; its body adds about 0.45 s.
    assert 0.5 <= (m[(1, "track_lag_s")] or 0.0) <= 1.2
    assert m[(1, "track_max_excursion_m")] == pytest.approx(0.8 * FULL_SHIFT_M[0], abs=0.015)

    report = tmp_path / "r.html"
    assert main(["report", str(folder), "--out", str(report)]) == 0
    text = report.read_text()
    for heading in ("Side leg raises", "Tai chi"):
        assert f"<h3>{heading}</h3>" in text
    assert {(i, n): v for i, n, v, _ in measures_from_html(text)} == m
    assert main(["replay", str(folder)]) == 0
    assert "states identical: True" in capsys.readouterr().out
