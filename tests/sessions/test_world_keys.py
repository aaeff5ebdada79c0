"""The window's level and scene keys during a session (a real offscreen SessionWorld).

Its own module: the world tests share one open SessionWorld per module, and
Panda3D allows one ShowBase per process at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vrbalance.balance.state import BalanceState
from vrbalance.sessions.runner import Command
from vrbalance.sessions.world import SessionWorld

pytestmark = pytest.mark.render


class _KeyPressingWorld(SessionWorld):
    """The session's real offscreen world, with an operator pressing keys mid-trial.

    Once the trial has started it presses ``keys``, waits (frame by frame)
    until the runner has recorded ``expect_events`` operator level commands and
    the window shows ``expect_level``, then skips the rest of the trial: no
    step depends on how fast this machine renders.
    """

    def __init__(self, keys: list[str], expect_events: int, expect_level: int) -> None:
        super().__init__(offscreen=True)
        self.keys = keys
        self.expect_events = expect_events
        self.expect_level = expect_level
        self.pressed = self.skipped = False
        self.live_events: list[tuple[str, str]] = []
        self.seen: list[tuple[str, int]] = []  # (scene, level) per frame of the trial

    # The runner's live sink: every recorded event, as it happens (any thread).
    def tick(self, tick: Any) -> None:
        return None

    def event(self, trial: int, event: Any) -> None:
        self.live_events.append((event.source, event.kind))

    def frame(self, state: BalanceState | None, calm: bool, surround_pitch_rad: float) -> None:
        if state is not None and not self.pressed:  # the trial has started
            for key in self.keys:
                self.app.press(key)
            self.pressed = True
        super().frame(state, calm, surround_pitch_rad)
        if state is not None:
            self.seen.append((self.app.scene_def.name, self.app.level))
        handled = self.live_events.count(("operator", "level_up")) >= self.expect_events
        if handled and self.app.level == self.expect_level and not self.skipped:
            self._controls.send(Command.SKIP)
            self.skipped = True


@pytest.mark.slow
def test_window_level_keys_go_through_the_director_inside_the_envelope(
    tmp_path: Path, quiet: Callable[..., Any]
) -> None:
    """``+`` in a session: the director's decision, clamped to the envelope and recorded
    with the operator as the reason; the scene keys do nothing."""
    from vrbalance.balance.geometry import Body
    from vrbalance.clock import MonotonicClock
    from vrbalance.sessions.protocol import Protocol
    from vrbalance.sessions.recorder import read_rows
    from vrbalance.sessions.runner import SessionRunner, SimulatedDevices
    from vrbalance.sessions.store import Patient

    patient = Patient("K1", height_m=1.7, mass_kg=70.0, envelope={"levels": {"park": 2}})
    clock = MonotonicClock()
    world = _KeyPressingWorld(["+", "+", "+", "2", "3"], expect_events=3, expect_level=2)
    runner = SessionRunner(
        Protocol("keys", "keys", "", (quiet("adaptive", 10.0, director=True, level=None),)),
        patient,
        folder=tmp_path / "s",
        session_id="s",
        devices=SimulatedDevices("wii-balance-board", Body(1.7, 70.0), clock, seed=3),
        clock=clock,
        world=world,
        render_fps=30.0,
        seconds_scale=0.1,  # 10 s (skipped once the keys are handled) stand for 100 s
        live=world,
    )
    runner.run()
    assert world.skipped, "the runner never handled the keys"
    kinds = [(e["source"], e["kind"]) for e in read_rows(tmp_path / "s" / "events.csv")]
    # Up to the envelope's park <= 2, never past it, each step the director's decision.
    assert kinds.count(("operator", "level_up")) == 3
    assert ("director", "level_change") in kinds and ("director", "level_clamped") in kinds
    assert world.seen[0] == ("park", 1) and world.seen[-1] == ("park", 2)
    assert max(level for _, level in world.seen) == 2
    assert {scene for scene, _ in world.seen} == {"park"}  # the scene keys did nothing
    states = read_rows(tmp_path / "s" / "state.csv")
    assert {int(r["level"]) for r in states} == {1, 2}  # the recording shows the change
