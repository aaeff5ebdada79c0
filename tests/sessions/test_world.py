"""The session's world adapter: blank headset, sway-referenced surround, replay rendering."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vrbalance.balance.state import BalanceState
from vrbalance.sessions.protocol import load_protocol
from vrbalance.sessions.replay import replay_session
from vrbalance.sessions.runner import Command, OperatorControls
from vrbalance.sessions.world import SessionWorld

pytestmark = pytest.mark.render


@pytest.fixture(scope="module")
def world() -> Iterator[SessionWorld]:
    w = SessionWorld(offscreen=True)
    yield w
    w.close()


def _state(sway_rad: float) -> BalanceState:
    return BalanceState(
        tick=0,
        t_s=1.0,
        stance="feet_apart",
        head_position_m=(0.0, 0.02, 1.6),
        sway_angle_ap_rad=sway_rad,
    )


def test_sot_surround_follows_sway_only_in_conditions_3_and_6(world: SessionWorld) -> None:
    trials = {t.condition: t for t in load_protocol("sot", with_baseline=False).trials}
    for condition in range(1, 7):
        world.begin_trial(trials[condition], 1)
        world.frame(_state(0.04), calm=False, surround_pitch_rad=0.04)
        pitch = world.app.scene_root.getP()
        if condition in (3, 6):
            assert pitch == pytest.approx(-math.degrees(0.04), abs=1e-4), condition
        else:
            assert pitch == 0.0, condition
        # Eyes "closed" (2 and 5) is a blank headset: nothing of the scene is drawn.
        assert world.app.render.isHidden() == (condition in (2, 5)), condition
        world.end_trial()


def test_calm_follows_the_verdict(world: SessionWorld) -> None:
    world.begin_trial(load_protocol("baseline").trials[0], 1)
    world.frame(_state(0.0), calm=True, surround_pitch_rad=0.0)
    assert world.app.calmed
    world.frame(_state(0.0), calm=False, surround_pitch_rad=0.0)
    assert not world.app.calmed


@pytest.mark.slow
def test_replay_renders_frames(
    world: SessionWorld,
    run_session: Callable[..., Any],
    quiet: Callable[..., Any],
    tmp_path: Path,
) -> None:
    result = run_session([quiet("short", 0.8)])
    out = tmp_path / "frames"
    out.mkdir()
    replay = replay_session(result.folder, world=world, out_dir=out, fps=5.0)
    assert replay.identical
    frames = sorted(out.glob("frame_*.png"))
    assert len(frames) == replay.frames_rendered >= 4
    assert frames[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_overlay_keys_become_operator_commands(world: SessionWorld) -> None:
    controls = OperatorControls()
    world.connect(controls)
    world.begin_trial(load_protocol("baseline").trials[0], 1)
    world.app.press("space")
    world.frame(_state(0.0), calm=False, surround_pitch_rad=0.0)
    world.app.press("space")
    world.app.press("escape")
    world.frame(_state(0.0), calm=False, surround_pitch_rad=0.0)
    assert controls.due(0, 0.0) == [Command.PAUSE, Command.RESUME, Command.EMERGENCY_STOP]
    world.begin_trial(load_protocol("baseline").trials[0], 1)  # next trial: world runs again
    assert not world.app.emergency_stopped and not world.app.paused


class _KeyPressingWorld(SessionWorld):
    """The session's real offscreen world, with an operator pressing keys mid-trial."""

    def __init__(self, presses: dict[int, list[str]]) -> None:
        super().__init__(offscreen=True)
        self.presses = presses
        self.trial = -1
        self.pending: list[str] = []
        self.seen: list[tuple[int, str, int]] = []  # (trial, scene, level) per frame

    def begin_trial(self, trial: Any, level: int) -> None:
        super().begin_trial(trial, level)
        self.trial += 1
        self.pending = list(self.presses.get(self.trial, []))

    def frame(self, state: BalanceState | None, calm: bool, surround_pitch_rad: float) -> None:
        if state is not None and self.pending:  # the trial has started
            for key in self.pending:
                self.app.press(key)
            self.pending = []
        super().frame(state, calm, surround_pitch_rad)
        self.seen.append((self.trial, self.app.scene_def.name, self.app.level))


@pytest.mark.slow
def test_window_level_keys_go_through_the_director_inside_the_envelope(
    tmp_path: Path, quiet: Callable[..., Any]
) -> None:
    """``+`` in a session: the director's decision (clamped to the envelope, recorded with
    the operator as the reason), or nothing in a fixed-level trial; scene keys do nothing."""
    from vrbalance.clock import MonotonicClock
    from vrbalance.sessions.protocol import Protocol
    from vrbalance.sessions.recorder import read_rows
    from vrbalance.sessions.runner import SessionRunner, SimulatedDevices
    from vrbalance.sessions.store import Patient

    patient = Patient("K1", height_m=1.7, mass_kg=70.0, envelope={"levels": {"park": 2}})
    clock = MonotonicClock()
    world = _KeyPressingWorld({0: ["+", "3"], 1: ["+", "+", "+", "2"]})
    trials = (quiet("fixed", 0.6), quiet("adaptive", 1.0, director=True, level=None))
    runner = SessionRunner(
        Protocol("keys", "keys", "", trials),
        patient,
        folder=tmp_path / "s",
        session_id="s",
        devices=SimulatedDevices("wii-balance-board", world_body(patient), clock, seed=3),
        clock=clock,
        world=world,
        render_fps=30.0,
        seconds_scale=0.02,
    )
    runner.run()
    events = read_rows(tmp_path / "s" / "events.csv")
    kinds = [(int(e["trial"]), e["source"], e["kind"]) for e in events]
    # The fixed-level trial: the key is recorded and refused; the world stays at level 1.
    assert (0, "operator", "level_up") in kinds and (0, "operator", "command_refused") in kinds
    assert {(scene, level) for trial, scene, level in world.seen if trial == 0} == {("park", 1)}
    # The director's trial: up to the envelope's park <= 2, never past it.
    assert kinds.count((1, "operator", "level_up")) == 3
    assert (1, "director", "level_change") in kinds and (1, "director", "level_clamped") in kinds
    levels = [level for trial, scene, level in world.seen if trial == 1]
    assert levels[0] == 1 and levels[-1] == 2 and max(levels) == 2
    assert {scene for _, scene, _ in world.seen} == {"park"}  # the scene keys did nothing
    states = read_rows(tmp_path / "s" / "state.csv")
    assert {int(r["level"]) for r in states if r["trial"] == "1"} == {1, 2}


def world_body(patient: Any) -> Any:
    from vrbalance.balance.geometry import Body

    return Body(height_m=patient.height_m, mass_kg=patient.mass_kg)
