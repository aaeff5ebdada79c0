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
