"""Scene furniture is built at real-world scale, standing on the ground."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from vrbalance.world import geometry as geo
from vrbalance.world import props


def _extent(mesh: geo.Mesh) -> tuple[np.ndarray, np.ndarray]:
    return mesh.positions.min(0), mesh.positions.max(0)


def test_bench_is_a_bench() -> None:
    lo, hi = _extent(props.bench())
    assert hi[0] - lo[0] == pytest.approx(1.6, abs=0.01)  # 1.6 m long
    assert lo[2] == pytest.approx(0.0, abs=0.01)  # stands on the ground
    assert 0.75 < hi[2] < 0.95  # backrest top


def test_lamp_post_and_its_glass_are_separate_meshes() -> None:
    post, glass = props.lamp_post(3.6)
    assert _extent(post)[1][2] == pytest.approx(3.6 + 0.42 + 0.18, abs=0.01)
    g_lo, g_hi = _extent(glass)
    assert 3.6 < g_lo[2] < g_hi[2] < 4.1  # the lantern sits on top


@pytest.mark.parametrize("make", [props.deciduous_tree, props.conifer_tree])
def test_trees_are_rooted_and_as_tall_as_asked(
    make: Callable[[np.random.Generator, float], geo.Mesh],
) -> None:
    rng = np.random.default_rng(3)
    lo, hi = _extent(make(rng, 8.0))
    assert lo[2] < 0.0  # trunk sunk into the ground, so bumps never show a gap
    assert 6.0 < hi[2] < 10.5


def test_animals_and_cyclists_have_real_sizes() -> None:
    rng = np.random.default_rng(0)
    assert 1.6 < _extent(props.cyclist(rng))[1][2] < 1.9  # rider's head
    assert 0.6 < _extent(props.dog(rng))[1][2] < 0.9
    wing = props.bird_wing()
    assert _extent(wing)[0][0] == pytest.approx(0.0, abs=1e-6)  # hinged at the body
