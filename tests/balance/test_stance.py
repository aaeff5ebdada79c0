"""The stance library: foot placement, base of support, property tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vrbalance.balance.geometry import Body, FootTemplate
from vrbalance.balance.stance import STANCE_NAMES, Stance, make_stance


def test_every_stance_is_built(stances: dict[str, Stance], body: Body) -> None:
    assert set(stances) == set(STANCE_NAMES)
    for name, s in stances.items():
        assert s.name == name
        assert len(s.feet) == len(s.sides) == (1 if name.startswith("single") else 2)
        assert s.base_of_support.area_m2 >= max(f.area_m2 for f in s.feet) - 1e-12
    assert stances["single_left"].sides == ("left",)
    assert stances["single_right"].sides == ("right",)


def test_bos_areas_order_as_clinically_expected(stances: dict[str, Stance]) -> None:
    area = {n: s.base_of_support.area_m2 for n, s in stances.items()}
    assert area["feet_apart"] > area["feet_together"]
    assert area["feet_together"] > area["single_left"]
    assert area["single_left"] == pytest.approx(area["single_right"])
    assert area["tandem"] > area["single_left"]


def test_bos_widths_and_lengths(stances: dict[str, Stance], body: Body) -> None:
    length, width = body.foot_length_m, body.foot_width_m

    def extent(s: Stance) -> np.ndarray:
        v = s.base_of_support.vertices
        return v.max(0) - v.min(0)

    np.testing.assert_allclose(extent(stances["feet_apart"]), [0.17 + width, length])
    np.testing.assert_allclose(extent(stances["feet_together"]), [2 * width, length])
    np.testing.assert_allclose(extent(stances["semi_tandem"]), [2 * width, 1.5 * length])
    np.testing.assert_allclose(extent(stances["tandem"])[1], 2 * length)
    assert extent(stances["tandem"])[0] < 1.1 * width
    np.testing.assert_allclose(extent(stances["single_right"]), [width, length])


def test_feet_do_not_overlap(stances: dict[str, Stance]) -> None:
    for name, s in stances.items():
        if len(s.feet) == 2:
            a, b = s.feet
            d, _ = b.signed_distance(a.vertices)
            assert (d <= 1e-9).all(), name


def test_tandem_heel_touches_toe(stances: dict[str, Stance], foot: FootTemplate) -> None:
    left, right = stances["tandem"].feet  # right leads by default
    assert right.vertices[:, 1].min() == pytest.approx(left.vertices[:, 1].max())
    lead_left = make_stance("tandem", Body(1.75), foot, lead="left")
    assert lead_left.sides == ("left", "right")
    assert lead_left.feet[0].vertices[:, 1].min() == pytest.approx(0.0, abs=1e-12)
    assert lead_left.feet[1].vertices[:, 1].max() == pytest.approx(0.0, abs=1e-12)


def test_semi_tandem_heel_beside_the_other_foot(stances: dict[str, Stance], body: Body) -> None:
    left, right = stances["semi_tandem"].feet
    # Lead heel half a foot length ahead of the rear heel, feet side by side.
    offset = right.vertices[:, 1].min() - left.vertices[:, 1].min()
    assert offset == pytest.approx(body.foot_length_m / 2)
    assert left.vertices[:, 0].max() == pytest.approx(right.vertices[:, 0].min())


def test_feet_apart_parameters(body: Body, foot: FootTemplate) -> None:
    wide = make_stance("feet_apart", body, foot, width_m=0.30)
    v = wide.base_of_support.vertices
    assert v[:, 0].max() - v[:, 0].min() == pytest.approx(0.30 + body.foot_width_m)
    turned = make_stance("feet_apart", body, foot, toe_out_deg=7.0)
    assert (
        turned.base_of_support.area_m2
        > make_stance("feet_apart", body, foot).base_of_support.area_m2
    )


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("hopping", {}, "stance: expected one of feet_apart, .* got 'hopping'"),
        ("feet_apart", {"width_m": 0.05}, r"width_m: expected a centre distance in \[0.096, 1\]"),
        ("feet_apart", {"toe_out_deg": 45.0}, r"toe_out_deg: expected a value in \[0, 30\]"),
        ("tandem", {"lead": "both"}, "lead: expected 'left' or 'right', got 'both'"),
    ],
)
def test_make_stance_rejects(
    body: Body, foot: FootTemplate, name: str, kwargs: dict, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        make_stance(name, body, foot, **kwargs)


def test_ankle_axis_is_behind_the_foot_centre(stances: dict[str, Stance], body: Body) -> None:
    for name in ("feet_apart", "feet_together", "single_left"):
        x, y = stances[name].ankle_m
        assert x == pytest.approx(0.0, abs=1e-12)
        assert -0.5 * body.foot_length_m < y < 0.0


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(STANCE_NAMES),
    u=st.floats(0.0, 1.0),
    v=st.floats(0.0, 1.0),
    which=st.integers(0, 1),
)
def test_points_inside_a_foot_are_inside_the_bos(
    stances: dict[str, Stance], name: str, u: float, v: float, which: int
) -> None:
    s = stances[name]
    foot = s.feet[which % len(s.feet)]
    lo, hi = foot.vertices.min(0), foot.vertices.max(0)
    p = lo + np.array([u, v]) * (hi - lo)  # anywhere in the foot's bounding box
    d_foot, _ = foot.signed_distance(p)
    d_bos, _ = s.base_of_support.signed_distance(p)
    if d_foot[0] >= 0.0:
        # Inside the foot: inside the BoS, at least as deep (the hull contains it).
        assert d_bos[0] >= d_foot[0] - 1e-12
    # And every foot vertex lies inside or on the BoS.
    d_vert, _ = s.base_of_support.signed_distance(foot.vertices)
    assert (d_vert >= -1e-12).all()


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(STANCE_NAMES),
    x=st.floats(-0.6, 0.6),
    y=st.floats(-0.6, 0.6),
    dx=st.floats(-1.0, 1.0),
    dy=st.floats(-1.0, 1.0),
)
def test_bos_distance_is_translation_invariant(
    stances: dict[str, Stance], name: str, x: float, y: float, dx: float, dy: float
) -> None:
    bos = stances[name].base_of_support
    d0, _ = bos.signed_distance([x, y])
    d1, _ = bos.translated(dx, dy).signed_distance([x + dx, y + dy])
    assert d1[0] == pytest.approx(d0[0], abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(STANCE_NAMES), x=st.floats(-1.0, 1.0), y=st.floats(-1.0, 1.0))
def test_outside_every_foot_and_far_away_is_negative(
    stances: dict[str, Stance], name: str, x: float, y: float
) -> None:
    bos = stances[name].base_of_support
    v = bos.vertices
    far = (abs(x) > np.abs(v[:, 0]).max()) or (abs(y) > np.abs(v[:, 1]).max())
    d, _ = bos.signed_distance([x, y])
    if far:
        assert d[0] < 0.0
    if d[0] > 0.0:
        assert bos.contains([x, y])[0]
