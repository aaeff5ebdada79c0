"""The exercise scenes render and follow the trial: line, walker, signpost, coach."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vrbalance.clock import ManualClock
from vrbalance.sessions.protocol import load_protocol
from vrbalance.world.app import WorldApp

SIZE_PX = (256, 144)


@pytest.mark.render
def test_walking_line_walker_signpost_and_coach(tmp_path: Path) -> None:
    from vrbalance.exercises.sim import SimulatedWalker

    clock = ManualClock()
    walker = SimulatedWalker(3.5, 1.6, clock, seed=1)
    # One app for the three scenes (llvmpipe compiles each render state once).
    with WorldApp(
        output="offscreen", size_px=SIZE_PX, scene="tandem_walk", level=10, clock=clock
    ) as app:
        scene = app.scene
        walk = replace(load_protocol("tandem_walk", with_baseline=False).trials[0], level=10)
        walk = replace(walk, walk_length_m=3.5)
        scene.follow_trial(walk, 0.0)
        assert scene.walk_length_m == 3.5
        _, high = scene._line.getTightBounds()
        assert high.y == pytest.approx(3.5 + 0.06, abs=0.07) and high.z < 0.5
        # The park sinks below the beam: an illusion of height on a flat floor.
        assert all(node.getZ() == pytest.approx(-0.6) for node in scene._sunk)
        # The camera walks with the simulated walker along the line.
        walker.pose_at(clock.now_s())  # the walk starts now
        app.set_head_source(walker)
        for _ in range(40):
            clock.advance(0.25)
            app.step_frames(1, 0.25)
        assert app.head_node.getY() == pytest.approx(walker.position_at(10.0)[1], abs=0.05)
        assert 2.5 < app.head_node.getY() <= 3.5
        app.screenshot(tmp_path / "walking.png")

        app.set_head_source(None)
        app.set_scene("leg_raises", 10)
        app.step_frames(2)
        raises = replace(load_protocol("leg_raises", with_baseline=False).trials[0], level=10)
        from vrbalance.exercises.plan import exercise_plan, raise_schedule

        plan = exercise_plan(raises, 10)
        assert plan is not None and plan.eyes_closed_fraction == 0.6
        cue = raise_schedule(plan, raises.duration_s)[0]
        app.scene.follow_trial(raises, cue.up_s + 1.0)
        app.step_frames(1, 0.1)
        assert "LEFT leg up" in app.scene._text.getText()
        app.scene.follow_trial(raises, cue.down_s - 0.5)  # late in the hold: eyes closed
        app.step_frames(10, 0.1)
        assert app.scene._fade_alpha == 1.0
        app.calm()
        app.step_frames(1, 0.1)
        assert app.scene._fade_alpha == 0.0
        app.resume()

        app.set_scene("tai_chi", 5)  # tempo 1, the weight-shift sequence
        app.step_frames(2)
        chi = replace(load_protocol("tai_chi", with_baseline=False).trials[0], level=5)
        coach = app.scene.coach
        poses = {}
        for t_s, label in ((1.0, "ready"), (6.0, "right"), (11.0, "left")):
            app.scene.follow_trial(chi, t_s)
            app.step_frames(1, 0.05)
            poses[label] = coach.pelvis.getPos(app.render)
        # A mirror: the patient's right (world +x) is where the coach shifts to.
        assert poses["right"].x > poses["ready"].x + 0.05
        assert poses["left"].x < poses["ready"].x - 0.05
        app.screenshot(tmp_path / "coach.png")
    pixels = np.asarray(Image.open(tmp_path / "coach.png").convert("RGB"), dtype=float)
    # The coach's white top is in the middle of the picture.
    middle = pixels[SIZE_PX[1] // 3 : 2 * SIZE_PX[1] // 3, SIZE_PX[0] // 3 : 2 * SIZE_PX[0] // 3]
    assert (middle.min(axis=2) > 200).mean() > 0.02


@pytest.mark.slow
@pytest.mark.render
def test_demo_shows_the_simulated_person_walking_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vrbalance.cli import main
    from vrbalance.sessions.recorder import column, read_rows

    args = ["demo", "--exercise", "tandem_walk", "--walk-length", "3", "--offscreen"]
    args += ["--out", str(tmp_path), "--seconds", "4", "--size", "160x90"]
    assert main(args) == 0
    assert "tandem_walk" in capsys.readouterr().out or any(tmp_path.glob("*tandem_walk*"))
    states = read_rows(tmp_path / "recording" / "state.csv")
    y = column(states, "head_y_m")
    # The walker stands a second, then walks along the line at 0.3 m/s (at most
    # 1.2 m in 4 s; a busy machine starts the loop late, so at least some way).
    assert y[0] == pytest.approx(0.0, abs=0.01) and 0.05 < y[-1] < 1.3
    assert all(b >= a - 0.01 for a, b in itertools.pairwise(y))  # out, not back
    assert all(r["cop_x_m"] == "" for r in states)
    events = read_rows(tmp_path / "recording" / "events.csv")
    assert [e["kind"] for e in events if e["source"] == "safety" and e["severity"] != "info"] == []
