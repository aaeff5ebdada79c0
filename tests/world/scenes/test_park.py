"""The park: renders look like a park, and each parameter shows where it should."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from vrbalance.world.app import WorldApp

pytestmark = pytest.mark.render


def _gravel_fraction(img: np.ndarray, row_frac: float = 0.85) -> float:
    """Share of sandy (red >= green, bright) pixels in a row band near the bottom (path)."""
    h = img.shape[0]
    band = img[int(h * row_frac) : int(h * row_frac) + 6, : int(img.shape[1] * 0.7)].astype(int)
    sandy = (band[..., 0] >= band[..., 1]) & (band[..., 0] > band[..., 2] + 15)
    return float(sandy.mean())


def test_lowest_and_highest_level_look_like_a_park(
    app: WorldApp, render: Callable[..., np.ndarray], luma: Callable[[np.ndarray], np.ndarray]
) -> None:
    low = render(app, "park_level01")
    app.set_level(app.scene_def.n_levels)
    app.step_frames(10)  # let distractors and sway move
    high = render(app, "park_level10")
    for img in (low, high):
        assert luma(img).std() > 15  # not empty, not uniform
    # Sky above ground at noon: blue-ish top rows, green/sandy bottom rows.
    top, bottom = (
        low[: low.shape[0] // 8].reshape(-1, 3).mean(0),
        low[-low.shape[0] // 4 :].reshape(-1, 3).mean(0),
    )
    assert top[2] > top[0] + 30  # blue sky
    assert bottom[1] > bottom[2] + 20  # grass and gravel, not sky
    # Level 10 is dusk with fog: darker overall, and the sky's top no longer blue-dominant.
    assert luma(high).mean() < luma(low).mean() - 25
    high_top = high[: high.shape[0] // 8].reshape(-1, 3).mean(0)
    assert high_top[2] < top[2] - 40
    # A narrower path: fewer gravel pixels across the near path band.
    assert _gravel_fraction(high) < 0.5 * _gravel_fraction(low)


def test_path_width_alone_narrows_the_path(
    app: WorldApp, render: Callable[..., np.ndarray]
) -> None:
    wide = render(app)
    app.scene.apply_level({"path_width_m": 0.6})
    narrow = render(app)
    assert _gravel_fraction(wide) > 0.3
    assert _gravel_fraction(narrow) < 0.35 * _gravel_fraction(wide)


def test_fog_hides_the_distance(
    app: WorldApp, render: Callable[..., np.ndarray], luma: Callable[[np.ndarray], np.ndarray]
) -> None:
    clear = render(app)
    app.scene.apply_level({"fog_density_per_m": 0.08})
    foggy = render(app)
    h = clear.shape[0]
    horizon = slice(int(h * 0.3), int(h * 0.5))  # trees and hills at the horizon
    assert luma(foggy[horizon]).std() < 0.6 * luma(clear[horizon]).std()


def test_dusk_darkens_and_lights_the_lamps(
    app: WorldApp, render: Callable[..., np.ndarray], luma: Callable[[np.ndarray], np.ndarray]
) -> None:
    noon = render(app)
    app.scene.apply_level({"dusk_fraction": 1.0})
    dusk = render(app)
    assert luma(dusk).mean() < 0.7 * luma(noon).mean()
    lantern = app.scene.world.find("**/lantern")
    assert lantern.getColorScale()[0] > 1.0  # lit


def test_distractors_appear_and_move(app: WorldApp, render: Callable[..., np.ndarray]) -> None:
    empty = render(app)
    app.scene.apply_level({"distractor_count": 12})
    busy = render(app)
    assert np.abs(busy.astype(int) - empty.astype(int)).sum(-1).astype(bool).mean() > 0.002
    visible = [d for d in app.scene._distractors if not d.node.isHidden()]
    assert len(visible) == 12
    before = [tuple(d.node.getPos()) for d in visible]
    app.step_frames(5)
    after = [tuple(d.node.getPos()) for d in visible]
    assert sum(b != a for a, b in zip(before, after, strict=True)) >= 10


def test_optic_flow_moves_the_park_towards_the_patient(app: WorldApp) -> None:
    app.scene.apply_level({"optic_flow_mps": 1.2})
    flow = app.scene.world.find("**/flow")
    y0 = flow.getY()
    app.step_frames(6, dt_s=0.1)
    assert app.scene.flow_distance_m == pytest.approx(0.72)
    assert flow.getY() == pytest.approx(y0 - 0.72)
    app.scene.apply_level({"optic_flow_mps": 0.0})
    y1 = flow.getY()
    app.step_frames(3)
    assert flow.getY() == y1


def test_unevenness_raises_bumps_on_lawn_and_path(app: WorldApp) -> None:
    terrain = app.scene._terrain
    x, y = np.meshgrid(np.linspace(-1, 1, 9), np.linspace(0, 40, 81))
    flat = terrain.height(x, y, 0.0, 1.5)
    bumpy = terrain.height(x, y, 0.3, 1.5)
    assert np.ptp(flat) < 1e-9  # the path is flat at level 1
    assert np.ptp(bumpy) > 0.15
    # And the ground is periodic along the path, so optic flow wraps without a seam.
    np.testing.assert_allclose(terrain.height(x, y + 40.0, 0.3, 1.5), bumpy, atol=1e-9)


def test_calm_freezes_distractors_and_fades_them_out(app: WorldApp) -> None:
    app.scene.apply_level({"distractor_count": 12})
    app.step_frames(2)
    root = app.scene.world.find("**/distractors")
    before = [tuple(d.node.getPos()) for d in app.scene._distractors]
    app.calm()
    app.step_frames(1)
    assert [tuple(d.node.getPos()) for d in app.scene._distractors] == before  # frozen
    assert 0.0 < root.getColorScale()[3] < 1.0  # fading, not popping
    app.step_frames(40)  # > 0.5 s at 1/60 s
    assert root.isHidden()
    assert [tuple(d.node.getPos()) for d in app.scene._distractors] == before
    app.resume()
    app.step_frames(2)
    assert not root.isHidden() and root.getColorScale()[3] == 1.0
