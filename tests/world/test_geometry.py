"""Procedural meshes: sizes, normals, index bookkeeping, copy into Panda3D."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vrbalance.world import geometry as geo


def test_box_bounds_and_outward_normals() -> None:
    m = geo.box(2.0, 4.0, 6.0, (1, 0, 0, 1))
    assert m.n_vertices == 24 and m.triangles.shape == (12, 3)
    np.testing.assert_allclose(m.positions.min(0), (-1, -2, -3))
    np.testing.assert_allclose(m.positions.max(0), (1, 2, 3))
    # Every normal points away from the centre.
    assert np.all(np.sum(m.normals * m.positions, axis=1) > 0)
    # Winding agrees with the normals (counter-clockwise seen from outside).
    a, b, c = (m.positions[m.triangles[:, i]] for i in range(3))
    face_n = np.cross(b - a, c - a)
    assert np.all(np.sum(face_n * m.normals[m.triangles[:, 0]], axis=1) > 0)
    np.testing.assert_allclose(m.colors, np.tile((1, 0, 0, 1), (24, 1)))


@pytest.mark.parametrize(
    "mesh",
    [
        geo.cylinder(0.5, 2.0),
        geo.cone(0.5, 2.0),
        geo.sphere(1.0),
        geo.cylinder(0.5, 1.0, top_radius=0.2),
    ],
    ids=["cylinder", "cone", "sphere", "tapered"],
)
def test_closed_primitives_wind_outwards(mesh: geo.Mesh) -> None:
    a, b, c = (mesh.positions[mesh.triangles[:, i]].astype(float) for i in range(3))
    face_n = np.cross(b - a, c - a)
    area = np.linalg.norm(face_n, axis=1)
    keep = area > 1e-9  # degenerate pole triangles of the sphere have no direction
    centroid = (a + b + c) / 3
    centre = np.array([0.0, 0.0, mesh.positions[:, 2].mean()])
    assert np.all(np.sum(face_n[keep] * (centroid[keep] - centre), axis=1) > 0)


def test_transformed_translates_scales_rotates() -> None:
    m = geo.box(1, 1, 1).transformed(translate=(10, 0, 0), scale=(2, 1, 1), hpr_deg=(90, 0, 0))
    # Heading 90 turns +x to +y: the 2 m long side now lies along y.
    ext = m.positions.max(0) - m.positions.min(0)
    np.testing.assert_allclose(ext, (1, 2, 1), atol=1e-6)
    np.testing.assert_allclose(m.positions.mean(0), (10, 0, 0), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(m.normals, axis=1), 1.0, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(h=st.floats(-360, 360), p=st.floats(-360, 360), r=st.floats(-360, 360))
def test_hpr_matrix_matches_panda3d(h: float, p: float, r: float) -> None:
    from panda3d.core import LVecBase3f, Mat3

    ours = geo.hpr_matrix(h, p, r)
    mat = Mat3()
    from panda3d.core import compose_matrix

    compose_matrix(mat, LVecBase3f(1, 1, 1), LVecBase3f(h, p, r))
    # Panda3D uses row vectors: v' = v M, so M is our matrix transposed.
    theirs = np.array([[mat.getCell(i, j) for j in range(3)] for i in range(3)]).T
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_concat_renumbers_indices() -> None:
    a, b = geo.box(1, 1, 1), geo.sphere(1.0, rings=4, segments=6)
    m = geo.concat([a, b])
    assert m.n_vertices == a.n_vertices + b.n_vertices
    assert m.triangles.max() == m.n_vertices - 1
    np.testing.assert_array_equal(m.triangles[len(a.triangles) :], b.triangles + a.n_vertices)
    with pytest.raises(ValueError, match="at least one mesh"):
        geo.concat([])


def test_heightfield_normals_tilt_against_slope() -> None:
    xs, ys = np.linspace(0, 4, 5), np.linspace(0, 2, 3)
    z = np.tile(xs * 0.5, (3, 1))  # rises along +x with slope 0.5
    m = geo.heightfield(xs, ys, z)
    assert m.n_vertices == 15 and m.triangles.shape == (2 * 4 * 2, 3)
    np.testing.assert_allclose(m.normals[:, 0], -0.5 / np.sqrt(1.25), atol=1e-6)
    with pytest.raises(ValueError, match=r"heights must have shape \(3, 5\), got \(5, 3\)"):
        geo.heightfield(xs, ys, z.T)


def test_sky_dome_faces_inwards_and_grades_colour() -> None:
    m = geo.sky_dome(100.0, (0, 0, 1, 1), (1, 1, 1, 1))
    assert np.all(np.sum(m.normals * m.positions, axis=1) < 0)
    top = m.colors[np.argmax(m.positions[:, 2])]
    np.testing.assert_allclose(top, (0, 0, 1, 1), atol=1e-6)


def test_to_geom_node_copies_every_vertex_and_index() -> None:
    from panda3d.core import GeomVertexReader

    m = geo.concat([geo.box(1, 2, 3, (0.5, 0.25, 1, 1)), geo.cone(1, 1)])
    node = geo.to_geom_node(m, "test")
    geom = node.getGeom(0)
    vdata = geom.getVertexData()
    assert vdata.getNumRows() == m.n_vertices
    assert geom.getPrimitive(0).getNumVertices() == m.triangles.size
    reader = GeomVertexReader(vdata, "vertex")
    reader.setRow(5)
    np.testing.assert_allclose(tuple(reader.getData3()), m.positions[5], atol=1e-6)
    colour = GeomVertexReader(vdata, "color")
    np.testing.assert_allclose(tuple(colour.getData4()), (0.5, 0.25, 1, 1), atol=1e-6)
