"""The demo's desktop stand-in and the window's close button, in a real SessionWorld.

Its own module: Panda3D allows one ShowBase per process at a time, and the
other world tests share one open SessionWorld per module.
"""

from __future__ import annotations

import pytest

from vrbalance.clock import ManualClock
from vrbalance.samples import HeadPose
from vrbalance.sessions.world import SessionWorld

pytestmark = pytest.mark.render


class _StandingHead:
    """A trial's head: standing still at 1.6 m."""

    def pose_at(self, t_s: float) -> HeadPose:
        return HeadPose(None, t_s, (0.0, 0.0, 1.6))


def test_the_desktop_keys_lean_the_head_the_loop_reads_and_the_trial_end_lets_go() -> None:
    clock = ManualClock()
    world = SessionWorld(offscreen=True, clock=clock, desktop_head=True)
    try:
        base = _StandingHead()
        head = world.wrap_head(base)
        assert head is not base  # the loop reads the leaning head ...
        assert head.pose_at(clock.now_s()).position_m == pytest.approx((0.0, 0.0, 1.6))
        world.app.base.messenger.send("d")  # ... and D leans it to the right
        for _ in range(10):
            clock.advance(0.1)
            world.frame(None, False, 0.0)
        x, y, z = head.pose_at(clock.now_s()).position_m
        assert x > 0.01 and y == pytest.approx(0.0) and z < 1.6  # tilted about the ankles
        # The trial's head closes with its devices: the world stops reading it.
        world.end_trial()
        assert head.base_source is None
    finally:
        world.close()


def test_without_the_stand_in_the_trials_head_is_the_loops() -> None:
    world = SessionWorld(offscreen=True, clock=ManualClock())
    try:
        base = _StandingHead()
        assert world.wrap_head(base) is base
    finally:
        world.close()


_CLOSE_SCRIPT = """
from vrbalance.clock import ManualClock
from vrbalance.sessions.runner import OperatorControls
from vrbalance.sessions.world import SessionWorld

world = SessionWorld(offscreen=False, clock=ManualClock(), size_px=(160, 90))
controls = OperatorControls()
world.connect(controls)
event = world.app.base.win.getCloseRequestEvent()
world.app.base.messenger.send(event)
world.frame(None, False, 0.0)
print("close-request-event", event, "commands", [c.value for c in controls.due(0, 0.0)])
world.close()
"""


def test_closing_the_window_stops_the_session_instead_of_exiting(run_on_display) -> None:
    """Panda3D's default close is sys.exit() mid-frame; the session ends as the operator's.

    In a fresh process: a window cannot open where an offscreen world already has.
    """
    result = run_on_display("-c", _CLOSE_SCRIPT)
    assert result.returncode == 0, result.stderr[-2000:]
    # The real window sends the event instead of closing itself; it becomes a stop.
    assert "close-request-event vrbalance-window-close commands ['stop']" in result.stdout
