"""The scene contract: registry, sway bounds, calm/resume on a real scene graph."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from panda3d.core import NodePath

from vrbalance.errors import ConfigError
from vrbalance.world.app import WorldApp
from vrbalance.world.scene import (
    SCENE_BUILDERS,
    SceneBase,
    SceneBuilder,
    scene_class,
    sway_amplitude_deg,
)


def test_registry_names_the_scenes_and_imports_lazily() -> None:
    exercises = {"tandem_walk", "leg_raises", "tai_chi"}  # docs/exercises.md
    assert set(SCENE_BUILDERS) == {"park", "stairs", "crowd"} | exercises
    park = scene_class("park")
    assert issubclass(park, SceneBase)
    assert isinstance(park(), SceneBuilder)


def test_unknown_builder_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match="unknown scene builder 'beach'; known: crowd, leg_raises, park"
    ):
        scene_class("beach")


@given(
    amp=st.floats(0, 20),
    freq=st.floats(0.01, 2.0),
    rate=st.floats(0.1, 30),
)
def test_sway_amplitude_respects_peak_rate_cap(amp: float, freq: float, rate: float) -> None:
    used = sway_amplitude_deg(amp, freq, rate)
    assert 0 <= used <= amp
    assert 2 * math.pi * freq * used <= rate + 1e-9


def test_zero_frequency_means_no_sway() -> None:
    assert sway_amplitude_deg(5.0, 0.0, 10.0) == 0.0
    assert sway_amplitude_deg(5.0, 0.2, None) == 5.0


def _advance(scene: SceneBase, n: int, dt_s: float = 1 / 60) -> None:
    """Drive the scene's per-frame update directly (no rendering needed for transforms)."""
    for i in range(n):
        scene.update(i * dt_s, dt_s, (0.0, 0.0))


def _matrix(node: NodePath) -> list[tuple[float, ...]]:
    return [tuple(node.getMat().getRow(i)) for i in range(4)]


@pytest.mark.render
def test_calm_freezes_surround_and_levels_horizon_on_next_frame(app: WorldApp) -> None:
    app.set_level(10)
    app.step_frames(1)
    _advance(app.scene, 40)
    surround = app.scene.surround
    assert surround.getHpr().length() > 0.01  # level 10 sways
    app.calm()  # one call, any thread: takes effect on the next frame
    app.step_frames(1)
    assert tuple(surround.getHpr()) == (0.0, 0.0, 0.0)
    frozen = _matrix(surround)
    flow = app.scene.flow_distance_m
    _advance(app.scene, 30)
    app.step_frames(1)
    assert _matrix(surround) == frozen
    assert app.scene.flow_distance_m == flow  # optic flow stopped too
    app.resume()
    app.step_frames(1)
    _advance(app.scene, 60)
    assert surround.getHpr().length() > 0.0


@pytest.mark.render
def test_sway_stays_inside_level_bounds(app: WorldApp) -> None:
    app.set_level(10)
    app.step_frames(1)
    p = app.scene_def.level(10).values
    bound = sway_amplitude_deg(
        p["surround_roll_deg"], p["surround_freq_hz"], p["surround_rate_dps"]
    )
    rolls = []
    for i in range(200):
        app.scene.update(i * 0.05, 0.05, (0.0, 0.0))
        rolls.append(app.scene.surround.getR())
    assert max(abs(r) for r in rolls) <= bound + 1e-4
    assert max(abs(r) for r in rolls) > 0.5 * bound
    # Peak angular rate within the level's cap (finite differences, 5 % slack).
    rate = max(abs(b - a) for a, b in itertools.pairwise(rolls)) / 0.05
    assert rate <= p["surround_rate_dps"] * 1.05


@pytest.mark.render
def test_apply_level_validates_values(app: WorldApp) -> None:
    with pytest.raises(ConfigError, match=r"path_width_m: expected a value in \[0.4, 4\], got 9.0"):
        app.scene.apply_level({"path_width_m": 9.0})
    app.scene.apply_level({"path_width_m": 1.0})
    assert app.scene.params["path_width_m"] == 1.0


@pytest.mark.render
def test_level_changes_never_make_the_surround_jump(app: WorldApp) -> None:
    """Amplitudes slew and the phase is integrated: up, down and frequency changes are smooth."""
    dt = 1 / 60
    angles = []
    for level in (10, 3, 10, 1):
        app.scene.apply_level(app.scene_def.level(level).values)
        for i in range(240):
            app.scene.update(i * dt, dt, (0.0, 0.0))
            angles.append((app.scene.surround.getP(), app.scene.surround.getR()))
    steps = [max(abs(b[0] - a[0]), abs(b[1] - a[1])) for a, b in itertools.pairwise(angles)]
    cap = app.scene_def.level(10).values["surround_rate_dps"]
    # Per-frame change bounded by the peak rate plus the (down-)slew, never a jump.
    assert max(steps) <= (cap + 2.0) * dt + 1e-6
    assert max(abs(r) for _, r in angles) > 1.0  # and it did sway
