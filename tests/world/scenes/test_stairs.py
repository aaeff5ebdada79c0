"""The stairs: steps, rails, exposure and edge contrast show in the render."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from vrbalance.world.app import WorldApp

pytestmark = pytest.mark.render


def _skyish(img: np.ndarray) -> float:
    """Share of clearly blue pixels (noon sky)."""
    r, b = img[..., 0].astype(int), img[..., 2].astype(int)
    return float(np.mean(b > r + 25))


def _yellow(img: np.ndarray) -> int:
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return int(np.sum((r > 150) & (g > 120) & (b < 0.45 * g)))


@pytest.fixture
def stairs(app: WorldApp) -> WorldApp:
    app.set_scene("stairs", 1)
    app.step_frames(1)
    app.set_head_source(None)  # the scene's own still view (looking down the flight)
    return app


def test_lowest_and_highest_level_look_like_stairs(
    stairs: WorldApp, render: Callable[..., np.ndarray], luma: Callable[[np.ndarray], np.ndarray]
) -> None:
    low = render(stairs, "stairs_level01")
    stairs.set_level(stairs.scene_def.n_levels)
    stairs.step_frames(5)
    high = render(stairs, "stairs_level10")
    for img in (low, high):
        assert luma(img).std() > 15
    # Sky at the top (between houses and trees), paving and steps below.
    h = low.shape[0]
    assert _skyish(low[: h // 12]) > 0.15
    assert _skyish(low[h // 2 :]) < 0.02
    # Level 1: bright yellow nosings; level 10: worn edges at dusk, hardly any.
    assert _yellow(low) > 300
    assert _yellow(high) < 0.1 * _yellow(low)
    assert luma(high).mean() < luma(low).mean() - 20
    assert stairs.scene.ground_z_m == pytest.approx(-3.2)  # the exposure of the top landing


def test_edge_contrast_alone_changes_the_nosings(
    stairs: WorldApp, render: Callable[..., np.ndarray]
) -> None:
    bright = render(stairs)
    stairs.scene.apply_level({"edge_contrast": 0.0})
    plain = render(stairs)
    assert _yellow(bright) > 300
    assert _yellow(plain) < 0.05 * _yellow(bright)


def test_handrail_flag_adds_and_removes_rails(
    stairs: WorldApp, render: Callable[..., np.ndarray], luma: Callable[[np.ndarray], np.ndarray]
) -> None:
    with_rails = render(stairs)
    stairs.scene.apply_level({"handrail": 0})
    without = render(stairs)
    dark = lambda img: int(np.sum(luma(img) < 45))  # noqa: E731 - iron rails are near black
    assert stairs.scene.world.find("**/rails").isEmpty()
    assert dark(with_rails) > dark(without) + 500


def test_landing_height_lowers_the_plaza(stairs: WorldApp) -> None:
    stairs.scene.apply_level({"landing_height_m": 2.5})
    assert stairs.scene.ground_z_m == pytest.approx(-2.5)
    plaza = stairs.scene.world.find("**/plaza")
    assert plaza.getZ() == pytest.approx(-2.5)


def test_descending_flight_goes_down_with_count_and_rise(stairs: WorldApp) -> None:
    stairs.scene.apply_level({"descending": 1, "step_count": 10, "step_rise_m": 0.18})
    stone = stairs.scene.world.find("**/stone")
    lo, hi = stone.getTightBounds()
    assert lo.z == pytest.approx(-1.8, abs=1e-3)  # ten steps of 18 cm down to the plaza
    assert hi.z == pytest.approx(0.2, abs=0.05)  # landing at 0 plus parapets
    stairs.scene.apply_level({"descending": 0})
    lo, hi = stairs.scene.world.find("**/stone").getTightBounds()
    assert hi.z == pytest.approx(1.8 + 0.2, abs=1e-3)  # up to the top landing's parapet
