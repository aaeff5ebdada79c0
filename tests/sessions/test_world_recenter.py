"""Recenter: the console's command reaches the world once, recorded; the render process forwards it.

Its own module: a real offscreen SessionWorld in this process (Panda3D allows
one ShowBase per process at a time), and a real render process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vrbalance.balance.state import BalanceState
from vrbalance.sessions.runner import Command
from vrbalance.sessions.world import SessionWorld

pytestmark = pytest.mark.render


class _RecenteringWorld(SessionWorld):
    """The session's real offscreen world; once the trial streams, the console asks to recenter.

    The command goes into the session's controls (where the console channel puts
    it); the world counts the runner's calls, and once the view has been recentred
    it notes where the camera is and skips the rest of the trial: no step depends
    on how fast this machine renders.
    """

    def __init__(self) -> None:
        super().__init__(offscreen=True)
        self.sent = self.skipped = False
        self.calls = 0
        self.live_events: list[tuple[str, str]] = []
        self.in_scene: tuple[float, float, float] | None = None
        self.in_stage: tuple[float, float, float] | None = None
        self.state_head: tuple[float, float, float] | None = None

    def tick(self, tick: Any) -> None:  # the runner's live sink
        return None

    def event(self, trial: int, event: Any) -> None:
        self.live_events.append((event.source, event.kind))

    def recenter(self) -> None:
        self.calls += 1
        super().recenter()

    def frame(self, state: BalanceState | None, calm: bool, surround_pitch_rad: float) -> None:
        if state is not None and not self.sent:  # the trial streams: the console's click
            self._controls.send(Command.RECENTER)
            self.sent = True
        super().frame(state, calm, surround_pitch_rad)
        if self.app.recenters and not self.skipped and state is not None:
            app = self.app
            self.in_scene = tuple(app.head_node.getPos(app.scene_root))  # type: ignore[assignment]
            self.in_stage = tuple(app.head_node.getPos(app.render))  # type: ignore[assignment]
            self.state_head = state.head_position_m
            self._controls.send(Command.SKIP)
            self.skipped = True


@pytest.mark.slow
def test_a_console_recenter_reaches_the_world_once_and_is_recorded(
    tmp_path: Path, quiet: Callable[..., Any]
) -> None:
    from vrbalance.balance.geometry import Body
    from vrbalance.clock import MonotonicClock
    from vrbalance.sessions.protocol import Protocol
    from vrbalance.sessions.recorder import read_rows
    from vrbalance.sessions.runner import SessionRunner, SimulatedDevices
    from vrbalance.sessions.store import Patient

    clock = MonotonicClock()
    world = _RecenteringWorld()
    runner = SessionRunner(
        Protocol("rc", "rc", "", (quiet("stand", 10.0),)),
        Patient("R1", height_m=1.7, mass_kg=70.0),
        folder=tmp_path / "s",
        session_id="s",
        devices=SimulatedDevices("wii-balance-board", Body(1.7, 70.0), clock, seed=5),
        clock=clock,
        world=world,
        render_fps=30.0,
        seconds_scale=0.1,  # 10 s (skipped once recentred) stand for 100 s
        live=world,
    )
    runner.run()
    assert world.skipped, "the recentre never reached the view"
    assert world.calls == 1 and world.app.recenters == 1
    events = read_rows(tmp_path / "s" / "events.csv")
    recorded = [e for e in events if (e["source"], e["kind"]) == ("operator", "recenter")]
    assert len(recorded) == 1 and recorded[0]["message"] == "operator recentred the view"
    assert world.live_events.count(("operator", "recenter")) == 1  # and told the console
    # The camera sits at the scene's start; the head the loop measured is the stage's.
    assert world.in_scene is not None and world.in_stage is not None
    assert world.in_scene[:2] == pytest.approx((0.0, 0.0), abs=1e-5)
    assert world.in_stage == pytest.approx(world.state_head, abs=1e-5)
    assert world.app.view_offset[:2] == pytest.approx(world.in_stage[:2], abs=1e-5)


def _state(x_m: float, y_m: float) -> BalanceState:
    return BalanceState(tick=0, t_s=1.0, stance="feet_apart", head_position_m=(x_m, y_m, 1.6))


def _diff(a: Path, b: Path) -> float:
    from PIL import Image

    ia = np.asarray(Image.open(a).convert("RGB"), dtype=np.int16)
    ib = np.asarray(Image.open(b).convert("RGB"), dtype=np.int16)
    return float(np.abs(ia - ib).mean())


@pytest.mark.slow
def test_the_render_process_forwards_recenter_and_level_over_its_pipe(tmp_path: Path) -> None:
    """The offscreen/desktop world of a session (a child process): recentre on a head
    0.6 m right and 0.4 m forward, and the picture is the one from the stage's start
    (calm: the park stands still, so the pictures compare pixel for pixel); the
    console's level keys reach the picture the same way (level 10: the park at dusk)."""
    from vrbalance.sessions.protocol import load_protocol
    from vrbalance.sessions.render_process import RenderProcess

    world = RenderProcess(offscreen=True)
    try:
        world.begin_trial(load_protocol("baseline").trials[0], 1)
        shots = {}
        for name, (x, y) in (("start", (0.0, 0.0)), ("offset", (0.6, 0.4))):
            world.frame(_state(x, y), calm=True, surround_pitch_rad=0.0)
            shots[name] = world.screenshot(tmp_path / f"{name}.png")
        world.recenter()
        world.frame(_state(0.6, 0.4), calm=True, surround_pitch_rad=0.0)
        shots["recentred"] = world.screenshot(tmp_path / "recentred.png")
        world.set_level(10)  # the console's level keys take the same pipe
        world.frame(_state(0.6, 0.4), calm=True, surround_pitch_rad=0.0)
        shots["level10"] = world.screenshot(tmp_path / "level10.png")
    finally:
        world.close()
    moved = _diff(shots["offset"], shots["start"])
    back = _diff(shots["recentred"], shots["start"])
    assert moved > 2.0 and back < moved / 5, (moved, back)
    assert _diff(shots["level10"], shots["recentred"]) > 20.0  # the park at dusk
