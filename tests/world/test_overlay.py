"""Operator overlay: text, CoP/XCoM markers over the base of support, safety verdict."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from vrbalance.balance.state import BalanceState
from vrbalance.world.app import WorldApp
from vrbalance.world.overlay import INSET_HALF_M, INSET_HALF_UNITS, Overlay

pytestmark = pytest.mark.render


@dataclass(frozen=True)
class _Response:
    label: str


@dataclass(frozen=True)
class _Cause:
    value: str


@dataclass(frozen=True)
class _Verdict:
    response: _Response
    cause: _Cause | None
    calm: bool


@dataclass(frozen=True)
class _Tick:
    """Shaped like the balance loop's TickResult (state + verdict)."""

    state: BalanceState
    verdict: _Verdict


class _Latest:
    def __init__(self, value: object) -> None:
        self.value = value

    def get(self) -> object:
        return self.value


def test_markers_follow_cop_and_xcom_in_the_core_frame(app: WorldApp) -> None:
    state = BalanceState(0, 0.0, "feet_apart", cop_m=(0.05, -0.02), xcom_m=(-0.1, 0.06))
    app.state_source = _Latest(state)
    try:
        app.step_frames(1)
        overlay: Overlay = app.overlay
        scale = INSET_HALF_UNITS / INSET_HALF_M
        # x right stays right; y anterior is up on the screen (aspect2d z).
        assert overlay.cop_dot.getX() == pytest.approx(0.05 * scale)
        assert overlay.cop_dot.getZ() == pytest.approx(-0.02 * scale)
        assert overlay.xcom_dot.getX() == pytest.approx(-0.1 * scale)
        assert overlay.xcom_dot.getZ() == pytest.approx(0.06 * scale)
        assert not overlay.cop_dot.isHidden()
        # Far outside the inset: clamped to its edge, still visible.
        app.state_source = _Latest(BalanceState(1, 0.1, "feet_apart", cop_m=(2.0, 0.0)))
        app.step_frames(1)
        assert overlay.cop_dot.getX() == pytest.approx(INSET_HALF_UNITS)
        assert overlay.xcom_dot.isHidden()  # no XCoM this tick
    finally:
        app.state_source = None


def test_text_shows_scene_level_status_margin_and_safety(app: WorldApp) -> None:
    state = BalanceState(0, 0.0, "feet_apart", margin_xcom_m=0.034)
    verdict = _Verdict(_Response("calm"), _Cause("xcom_outside_bos"), calm=True)
    app.state_source = _Latest(_Tick(state, verdict))
    app.status["plate"] = "simulated, streaming"
    try:
        app.step_frames(1)
        text = app.overlay.text
        assert "Park path  -  level 1/10" in text
        assert "XCoM margin +3.4 cm" in text
        assert "safety: calm (xcom_outside_bos)" in text
        assert "plate: simulated, streaming" in text
        # A verdict asking for calm calms the scene (the monitor's hook into the world).
        assert app.scene.calmed
        assert "CALM" in text or app.scene.calmed
        app.state_source = _Latest(_Tick(state, _Verdict(_Response("none"), None, calm=False)))
        app.step_frames(1)
        assert not app.scene.calmed  # the verdict no longer asks for calm: resumed
    finally:
        app.state_source = None
        app.status.clear()


def test_base_of_support_outline_follows_the_stance(app: WorldApp) -> None:
    app.bos_polygon_m = [(-0.2, -0.1), (0.2, -0.1), (0.2, 0.2), (-0.2, 0.2)]
    try:
        app.step_frames(1)
        lo, hi = app.overlay._bos_np.getTightBounds()
        scale = INSET_HALF_UNITS / INSET_HALF_M
        assert hi.x - lo.x == pytest.approx(0.4 * scale, rel=0.05)
        assert hi.z - lo.z == pytest.approx(0.3 * scale, rel=0.05)
    finally:
        app.bos_polygon_m = None


def test_overlay_lives_in_the_2d_graph_only(app: WorldApp) -> None:
    assert app.overlay.root.getTop() == app.base.render2d
    assert app.render.find("**/operator-overlay").isEmpty()
