"""The crowd scene rendered offscreen: people visible, more of them higher up, limbs swing, calm.

Images are kept in ``test-artifacts/`` (look at them). People are found by
rendering the same frame with and without the crowd node: the pixels that
differ are the people, whatever the background.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vrbalance.config.scenes import load_scene
from vrbalance.errors import ConfigError
from vrbalance.resources import data_file
from vrbalance.world.crowd import CrowdLevel

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_every_level_is_a_valid_crowd_level() -> None:
    from vrbalance.world.scenes.crowd import CrowdScene

    scene = load_scene("crowd")
    assert scene.n_levels >= 10
    assert len(scene.parameters) >= 6
    assert "passing_distance_m" in scene.parameters
    levels = [CrowdScene._level_from(lv.values) for lv in scene.levels]
    assert all(isinstance(lv, CrowdLevel) for lv in levels)
    assert levels[-1].pedestrian_count == 200
    counts = [lv.pedestrian_count for lv in levels]
    passing = [lv.passing_distance_m for lv in levels]
    assert counts == sorted(counts) and passing == sorted(passing, reverse=True)


def test_out_of_range_level_value_names_file_level_and_field(tmp_path: Path) -> None:
    text = data_file("scenes", "crowd.toml").read_text()
    bad = tmp_path / "crowd.toml"
    bad.write_text(text.replace("pedestrian_count = 200", "pedestrian_count = 201"))
    with pytest.raises(ConfigError, match=r"crowd\.toml \[levels\.10\] pedestrian_count"):
        load_scene(bad)


@pytest.fixture(scope="module")
def app() -> Iterator[object]:
    from vrbalance.world.app import WorldApp

    ARTIFACTS.mkdir(exist_ok=True)
    with WorldApp(output="offscreen", size_px=(640, 360), scene="crowd", overlay=False) as world:
        yield world


def _frame(app: object) -> np.ndarray:
    engine = app.base.graphicsEngine  # type: ignore[attr-defined]
    engine.renderFrame()
    engine.renderFrame()
    return app.image()  # type: ignore[attr-defined]


def _people_mask(app: object) -> tuple[np.ndarray, np.ndarray]:
    """(image with people, boolean mask of pixels that are people) for the current state."""
    people = app.scene.people  # type: ignore[attr-defined]
    with_people = _frame(app)
    people.hide()
    without = _frame(app)
    people.show()
    diff = np.abs(with_people.astype(int) - without.astype(int)).sum(axis=2)
    return with_people, diff > 12


def _save(app: object, name: str) -> Path:
    path = ARTIFACTS / name
    app.screenshot(path)  # type: ignore[attr-defined]
    return path


@pytest.mark.render
@pytest.mark.slow
def test_more_people_are_visible_at_the_highest_level(app: object) -> None:
    app.set_scene("crowd", 1)  # type: ignore[attr-defined]
    app.step_frames(60)  # type: ignore[attr-defined]
    _, mask_low = _people_mask(app)
    _save(app, "crowd_level_1.png")
    top = load_scene("crowd").n_levels
    app.set_scene("crowd", top)  # type: ignore[attr-defined]
    app.step_frames(60)  # type: ignore[attr-defined]
    image_high, mask_high = _people_mask(app)
    _save(app, f"crowd_level_{top}.png")
    assert app.scene.drawn_count == 200  # type: ignore[attr-defined]
    low, high = int(mask_low.sum()), int(mask_high.sum())
    print(f"people pixels: level 1 {low}, level {top} {high}")
    assert low > 100, f"level 1: people cover only {low} pixels"
    assert high > 5 * low, f"level {top}: {high} people pixels vs {low} at level 1"
    # People stand on the ground: their pixels are in the lower 3/4 of the view, never
    # in the sky band at the very top.
    rows = np.flatnonzero(mask_high.any(axis=1))
    assert rows.min() > 0.15 * mask_high.shape[0]
    # and they are coloured, not one flat colour: several distinct hues.
    colours = image_high[mask_high].astype(int) // 32
    distinct = np.unique(colours[:, 0] * 64 + colours[:, 1] * 8 + colours[:, 2]).size
    assert distinct > 20


def _pose_one(app: object, phase_rad: float, amplitude: float) -> np.ndarray:
    """Draw one pedestrian 4 m ahead walking to the right at a given gait phase; its mask."""
    scene = app.scene  # type: ignore[attr-defined]
    scene._pose_np[0] = (0.0, 4.0, 0.0, phase_rad)
    scene._look_np[0, 0:2] = (amplitude, 1.0)
    scene.people.setInstanceCount(1)
    _, mask = _people_mask(app)
    return mask


@pytest.mark.render
def test_limbs_swing_with_the_gait_phase(app: object) -> None:
    app.set_scene("crowd", 1)  # type: ignore[attr-defined]
    app.step_frames(1)  # type: ignore[attr-defined]
    app.scene.calm()  # type: ignore[attr-defined]  # the model must not overwrite the pose
    standing = _pose_one(app, 0.0, 0.0)  # amplitude 0: standing still, legs straight
    passing = _pose_one(app, 0.0, 1.0)  # legs level, the left knee bent in its swing
    striding = _pose_one(app, math.pi / 2, 1.0)  # full stride
    other = _pose_one(app, 3 * math.pi / 2, 1.0)  # the other leg forward
    _save(app, "crowd_gait_other_half_stride.png")
    assert standing.sum() > 500, "the pedestrian is in view"

    def foot_span(mask: np.ndarray) -> int:
        # Width of the legs at shin height (a band above the feet and the contact
        # shadow): two shins side by side when standing, far apart in a stride.
        rows = np.flatnonzero(mask.any(axis=1))
        height = rows.max() - rows.min()
        band = mask[rows.max() - int(0.2 * height) : rows.max() - int(0.1 * height)]
        cols = np.flatnonzero(band.any(axis=0))
        return int(cols.max() - cols.min())

    spans = (foot_span(standing), foot_span(striding), foot_span(other))
    print(f"shin spans (px): standing {spans[0]}, striding {spans[1]}, other {spans[2]}")
    assert spans[1] > 1.8 * spans[0] and spans[2] > 1.8 * spans[0]
    # The two half-strides are mirror images about the body, not the same picture,
    # and a knee bends while its leg swings through.
    assert np.count_nonzero(striding ^ other) > 200
    assert np.count_nonzero(passing ^ standing) > 100
    app.scene.resume()  # type: ignore[attr-defined]


@pytest.mark.render
@pytest.mark.slow
def test_people_walk_and_calm_freezes_them(app: object) -> None:
    app.set_scene("crowd", 6)  # type: ignore[attr-defined]
    app.step_frames(10)  # type: ignore[attr-defined]
    a = _frame(app)
    app.step_frames(15)  # type: ignore[attr-defined]
    b = _frame(app)
    assert np.count_nonzero(np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > 12) > 200
    app.calm()  # type: ignore[attr-defined]
    app.step_frames(2)  # type: ignore[attr-defined]
    c = _frame(app)
    app.step_frames(30)  # type: ignore[attr-defined]
    d = _frame(app)
    np.testing.assert_array_equal(c, d)
    state = app.scene.model.state()  # type: ignore[attr-defined]
    assert np.all(state.velocity_mps == 0.0)
    app.resume()  # type: ignore[attr-defined]
    app.step_frames(10)  # type: ignore[attr-defined]
    assert not np.array_equal(_frame(app), d)


@pytest.mark.render
@pytest.mark.slow
def test_live_level_change_brings_people_in_at_the_rim(app: object) -> None:
    app.set_scene("crowd", 1)  # type: ignore[attr-defined]
    app.step_frames(5)  # type: ignore[attr-defined]
    scene = app.scene  # type: ignore[attr-defined]
    before = scene.drawn_count
    first = int(load_scene("crowd").level(1).values["pedestrian_count"])
    app.set_level(10)  # type: ignore[attr-defined]
    app.step_frames(1)  # type: ignore[attr-defined]
    state = scene.model.state()
    fresh = state.active[first:]
    radius = np.linalg.norm(state.position_m[first:][fresh], axis=1)
    assert radius.size > 0 and np.all(radius > 15.0), "newcomers enter at the rim"
    app.step_frames(30)  # type: ignore[attr-defined]
    assert scene.drawn_count > before
    assert scene.model.level.passing_distance_m == pytest.approx(0.8)
