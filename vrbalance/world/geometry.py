"""Procedural geometry: meshes built with numpy, turned into Panda3D nodes.

Every scene object (ground, trees, benches, lamps, steps, rails, people) is
made here from a few primitives rather than loaded from model files, so the
repository holds no opaque binary assets and a layout is reproducible from
its seed. A :class:`Mesh` is plain numpy arrays; primitives return one, meshes
are transformed and concatenated in numpy, and only at the end does
:func:`to_node` copy them into one ``GeomVertexData`` (one draw call per node,
which is what keeps a software rasteriser like llvmpipe fast).

Coordinates are Panda3D's, which equal vrbalance's core frame: x right,
y forward, z up, metres. Colours are linear RGBA floats in [0, 1]. Texture
coordinates are in *metres divided by* ``uv_scale_m`` so that one texture
repeat covers ``uv_scale_m`` metres whatever the object's size.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from panda3d.core import (
    Geom,
    GeomNode,
    GeomTriangles,
    GeomVertexArrayFormat,
    GeomVertexData,
    GeomVertexFormat,
    InternalName,
    NodePath,
)

Color = tuple[float, float, float, float]
WHITE: Color = (1.0, 1.0, 1.0, 1.0)

_FLOATS_PER_VERTEX = 12  # position 3, normal 3, colour 4, uv 2


@functools.cache
def _vertex_format() -> GeomVertexFormat:
    """One interleaved float32 format (pos, normal, colour, uv) so numpy can fill it in one copy.

    Panda3D keeps registered formats in its own registry; the cache only
    avoids re-registering (the result is the same object either way).
    """
    array = GeomVertexArrayFormat()
    array.addColumn(InternalName.getVertex(), 3, Geom.NT_float32, Geom.C_point)
    array.addColumn(InternalName.getNormal(), 3, Geom.NT_float32, Geom.C_normal)
    array.addColumn(InternalName.getColor(), 4, Geom.NT_float32, Geom.C_color)
    array.addColumn(InternalName.getTexcoord(), 2, Geom.NT_float32, Geom.C_texcoord)
    fmt = GeomVertexFormat()
    fmt.addArray(array)
    return GeomVertexFormat.registerFormat(fmt)


@dataclass(frozen=True, slots=True)
class Mesh:
    """A triangle mesh as numpy arrays.

    Attributes
    ----------
    positions : ndarray, shape (n, 3), float32
        Vertex positions in metres.
    normals : ndarray, shape (n, 3), float32
        Unit vertex normals.
    colors : ndarray, shape (n, 4), float32
        Vertex colours (RGBA, 0..1).
    uvs : ndarray, shape (n, 2), float32
        Texture coordinates.
    triangles : ndarray, shape (m, 3), uint32
        Counter-clockwise (seen from outside) vertex indices.
    """

    positions: NDArray[np.float32]
    normals: NDArray[np.float32]
    colors: NDArray[np.float32]
    uvs: NDArray[np.float32]
    triangles: NDArray[np.uint32]

    @property
    def n_vertices(self) -> int:
        return int(self.positions.shape[0])

    def transformed(
        self,
        *,
        translate: ArrayLike = (0.0, 0.0, 0.0),
        scale: ArrayLike = (1.0, 1.0, 1.0),
        hpr_deg: Sequence[float] = (0.0, 0.0, 0.0),
    ) -> Mesh:
        """Scale, then rotate (Panda3D heading/pitch/roll, degrees), then translate."""
        s = np.asarray(scale, dtype=np.float64) * np.ones(3)
        r = hpr_matrix(*hpr_deg)
        pos = (self.positions * s) @ r.T + np.asarray(translate, dtype=np.float64)
        # Normals transform with the inverse transpose of the scale.
        nrm = (self.normals / np.where(s == 0, 1e-9, s)) @ r.T
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
        return Mesh(
            pos.astype(np.float32),
            nrm.astype(np.float32),
            self.colors,
            self.uvs,
            self.triangles,
        )

    def colored(self, color: Sequence[float]) -> Mesh:
        """The same mesh with every vertex coloured ``color`` (RGBA)."""
        colors = np.broadcast_to(np.asarray(color, dtype=np.float32), self.colors.shape).copy()
        return Mesh(self.positions, self.normals, colors, self.uvs, self.triangles)


def hpr_matrix(h_deg: float, p_deg: float, r_deg: float) -> NDArray[np.float64]:
    """3x3 rotation matrix for Panda3D's HPR convention (z heading, x pitch, y roll).

    Panda applies roll, then pitch, then heading to a column vector: R = H @ P @ Rl.
    """
    h, p, r = (math.radians(a) for a in (h_deg, p_deg, r_deg))
    ch, sh, cp, sp, cr, sr = (
        math.cos(h),
        math.sin(h),
        math.cos(p),
        math.sin(p),
        math.cos(r),
        math.sin(r),
    )
    rz = np.array([[ch, -sh, 0.0], [sh, ch, 0.0], [0.0, 0.0, 1.0]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    ry = np.array([[cr, 0.0, sr], [0.0, 1.0, 0.0], [-sr, 0.0, cr]])
    return rz @ rx @ ry


def _mesh(
    positions: ArrayLike,
    normals: ArrayLike,
    uvs: ArrayLike,
    triangles: ArrayLike,
    color: Sequence[float],
) -> Mesh:
    pos = np.asarray(positions, dtype=np.float32).reshape(-1, 3)
    col = np.empty((pos.shape[0], 4), dtype=np.float32)
    col[:] = np.asarray(color, dtype=np.float32)
    return Mesh(
        pos,
        np.asarray(normals, dtype=np.float32).reshape(-1, 3),
        col,
        np.asarray(uvs, dtype=np.float32).reshape(-1, 2),
        np.asarray(triangles, dtype=np.uint32).reshape(-1, 3),
    )


def concat(meshes: Sequence[Mesh]) -> Mesh:
    """Concatenate meshes into one (indices renumbered)."""
    if not meshes:
        raise ValueError("concat needs at least one mesh")
    offsets = np.cumsum([0] + [m.n_vertices for m in meshes[:-1]])
    return Mesh(
        np.concatenate([m.positions for m in meshes]),
        np.concatenate([m.normals for m in meshes]),
        np.concatenate([m.colors for m in meshes]),
        np.concatenate([m.uvs for m in meshes]),
        np.concatenate([m.triangles + np.uint32(o) for m, o in zip(meshes, offsets, strict=True)]),
    )


# --- primitives -----------------------------------------------------------------


def box(
    size_x: float,
    size_y: float,
    size_z: float,
    color: Sequence[float] = WHITE,
    *,
    uv_scale_m: float = 1.0,
) -> Mesh:
    """An axis-aligned box centred on the origin, 24 vertices (flat-shaded faces)."""
    hx, hy, hz = size_x / 2, size_y / 2, size_z / 2
    # (normal, u axis, v axis, half sizes along normal/u/v)
    faces = (
        ((1, 0, 0), (0, 1, 0), (0, 0, 1), hx, hy, hz),
        ((-1, 0, 0), (0, -1, 0), (0, 0, 1), hx, hy, hz),
        ((0, 1, 0), (-1, 0, 0), (0, 0, 1), hy, hx, hz),
        ((0, -1, 0), (1, 0, 0), (0, 0, 1), hy, hx, hz),
        ((0, 0, 1), (1, 0, 0), (0, 1, 0), hz, hx, hy),
        ((0, 0, -1), (1, 0, 0), (0, -1, 0), hz, hx, hy),
    )
    pos, nrm, uv, tri = [], [], [], []
    for i, (n, u, v, hn, hu, hv) in enumerate(faces):
        n_, u_, v_ = np.array(n, float), np.array(u, float), np.array(v, float)
        c = n_ * hn
        for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            pos.append(c + u_ * hu * su + v_ * hv * sv)
            nrm.append(n_)
            uv.append(((su * hu + hu) / uv_scale_m, (sv * hv + hv) / uv_scale_m))
        b = 4 * i
        tri += [(b, b + 1, b + 2), (b, b + 2, b + 3)]
    return _mesh(pos, nrm, uv, tri, color)


def cylinder(
    radius: float,
    height: float,
    color: Sequence[float] = WHITE,
    *,
    segments: int = 12,
    top_radius: float | None = None,
    caps: bool = True,
) -> Mesh:
    """A (possibly tapered) cylinder along +z, base centred on the origin.

    ``top_radius=0`` makes a cone; smooth side normals.
    """
    top = radius if top_radius is None else top_radius
    ang = np.linspace(0.0, 2 * math.pi, segments + 1)
    ca, sa = np.cos(ang), np.sin(ang)
    slope = (radius - top) / max(height, 1e-9)
    nz = slope / math.sqrt(1 + slope * slope)
    nxy = 1 / math.sqrt(1 + slope * slope)
    bottom = np.stack([radius * ca, radius * sa, np.zeros_like(ca)], 1)
    topv = np.stack([top * ca, top * sa, np.full_like(ca, height)], 1)
    side_n = np.stack([ca * nxy, sa * nxy, np.full_like(ca, nz)], 1)
    pos = [bottom, topv]
    nrm = [side_n, side_n]
    circ = 2 * math.pi * radius
    u = ang / (2 * math.pi) * circ
    uv = [np.stack([u, np.zeros_like(u)], 1), np.stack([u, np.full_like(u, height)], 1)]
    k = segments + 1
    idx = np.arange(segments)
    tri = [np.stack([idx, idx + 1, k + idx + 1], 1), np.stack([idx, k + idx + 1, k + idx], 1)]
    n_v = 2 * k
    if caps:
        for z, r, sign in ((0.0, radius, -1.0), (height, top, 1.0)):
            if r <= 0:
                continue
            ring = np.stack([r * ca[:-1], r * sa[:-1], np.full(segments, z)], 1)
            centre = np.array([[0.0, 0.0, z]])
            pos.append(np.concatenate([centre, ring]))
            nrm.append(np.tile([0.0, 0.0, sign], (segments + 1, 1)))
            uv.append(np.concatenate([[[0.0, 0.0]], ring[:, :2]]))
            a = n_v + 1 + idx
            b = n_v + 1 + (idx + 1) % segments
            c = np.full(segments, n_v)
            tri.append(np.stack([c, a, b], 1) if sign > 0 else np.stack([c, b, a], 1))
            n_v += segments + 1
    return _mesh(
        np.concatenate(pos), np.concatenate(nrm), np.concatenate(uv), np.concatenate(tri), color
    )


def cone(
    radius: float, height: float, color: Sequence[float] = WHITE, *, segments: int = 12
) -> Mesh:
    """A cone along +z with its base centred on the origin."""
    return cylinder(radius, height, color, segments=segments, top_radius=0.0)


def sphere(
    radius: float,
    color: Sequence[float] = WHITE,
    *,
    rings: int = 8,
    segments: int = 12,
) -> Mesh:
    """A UV sphere centred on the origin (smooth normals)."""
    theta = np.linspace(0.0, math.pi, rings + 1)  # from +z down
    phi = np.linspace(0.0, 2 * math.pi, segments + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    n = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    uv = np.stack([p / (2 * math.pi), 1 - t / math.pi], -1).reshape(-1, 2)
    tri = _grid_triangles(rings + 1, segments + 1, flip=True)
    return _mesh(n * radius, n, uv, tri, color)


def _grid_triangles(n_rows: int, n_cols: int, *, flip: bool = False) -> NDArray[np.uint32]:
    """Two triangles per cell of a row-major ``n_rows x n_cols`` vertex grid."""
    r, c = np.meshgrid(np.arange(n_rows - 1), np.arange(n_cols - 1), indexing="ij")
    v0 = (r * n_cols + c).ravel()
    v1, v2, v3 = v0 + 1, v0 + n_cols + 1, v0 + n_cols
    tri = np.concatenate([np.stack([v0, v1, v2], 1), np.stack([v0, v2, v3], 1)])
    if flip:
        tri = tri[:, ::-1]
    return tri.astype(np.uint32)


def heightfield(
    xs_m: ArrayLike,
    ys_m: ArrayLike,
    heights_m: ArrayLike,
    color: Sequence[float] = WHITE,
    *,
    uv_scale_m: float = 1.0,
    colors: ArrayLike | None = None,
) -> Mesh:
    """A terrain surface z = heights[iy, ix] over the grid ``xs_m`` x ``ys_m``.

    Parameters
    ----------
    xs_m, ys_m : array, shape (nx,), (ny,)
        Increasing grid coordinates in metres.
    heights_m : array, shape (ny, nx)
        Heights in metres.
    colors : array, shape (ny, nx, 4), optional
        Per-vertex colours (overrides ``color``).
    """
    xs = np.asarray(xs_m, dtype=np.float64)
    ys = np.asarray(ys_m, dtype=np.float64)
    z = np.asarray(heights_m, dtype=np.float64)
    if z.shape != (ys.size, xs.size):
        raise ValueError(f"heights must have shape {(ys.size, xs.size)}, got {z.shape}")
    gx, gy = np.meshgrid(xs, ys)
    dzdx = np.gradient(z, xs, axis=1) if xs.size > 1 else np.zeros_like(z)
    dzdy = np.gradient(z, ys, axis=0) if ys.size > 1 else np.zeros_like(z)
    n = np.stack([-dzdx, -dzdy, np.ones_like(z)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    pos = np.stack([gx, gy, z], -1).reshape(-1, 3)
    uv = np.stack([gx, gy], -1).reshape(-1, 2) / uv_scale_m
    mesh = _mesh(pos, n.reshape(-1, 3), uv, _grid_triangles(ys.size, xs.size), color)
    if colors is not None:
        col = np.asarray(colors, dtype=np.float32).reshape(-1, 4)
        mesh = Mesh(mesh.positions, mesh.normals, col, mesh.uvs, mesh.triangles)
    return mesh


def sky_dome(
    radius_m: float,
    zenith: Sequence[float],
    horizon: Sequence[float],
    *,
    below: Sequence[float] | None = None,
    rings: int = 16,
    segments: int = 24,
) -> Mesh:
    """An inward-facing sphere coloured from ``zenith`` to ``horizon`` (vertex gradient).

    Below the horizon it fades to ``below`` (defaults to the horizon colour),
    which is what you see through gaps in distant geometry.
    """
    below = horizon if below is None else below
    m = sphere(radius_m, rings=rings, segments=segments)
    elev = m.positions[:, 2] / radius_m  # sin(elevation)
    zen, hor, bel = (np.asarray(c, dtype=np.float32) for c in (zenith, horizon, below))
    up = np.clip(elev, 0.0, 1.0)[:, None] ** 0.6
    down = np.clip(-elev * 4, 0.0, 1.0)[:, None]
    col = np.where(elev[:, None] >= 0, hor + (zen - hor) * up, hor + (bel - hor) * down)
    return Mesh(m.positions, -m.normals, col.astype(np.float32), m.uvs, m.triangles[:, ::-1].copy())


# --- to Panda3D -------------------------------------------------------------------


def to_geom_node(mesh: Mesh, name: str) -> GeomNode:
    """Copy a mesh into a new ``GeomNode`` (one Geom, one vertex buffer, uint32 indices)."""
    data = np.empty((mesh.n_vertices, _FLOATS_PER_VERTEX), dtype=np.float32)
    data[:, 0:3] = mesh.positions
    data[:, 3:6] = mesh.normals
    data[:, 6:10] = mesh.colors
    data[:, 10:12] = mesh.uvs
    vdata = GeomVertexData(name, _vertex_format(), Geom.UH_static)
    vdata.uncleanSetNumRows(mesh.n_vertices)
    memoryview(vdata.modifyArray(0)).cast("B")[:] = data.tobytes()
    prim = GeomTriangles(Geom.UH_static)
    prim.setIndexType(Geom.NT_uint32)
    handle = prim.modifyVertices()
    handle.uncleanSetNumRows(mesh.triangles.size)
    memoryview(handle).cast("B")[:] = np.ascontiguousarray(
        mesh.triangles, dtype=np.uint32
    ).tobytes()
    geom = Geom(vdata)
    geom.addPrimitive(prim)
    node = GeomNode(name)
    node.addGeom(geom)
    return node


def attach_mesh(parent: NodePath, mesh: Mesh, name: str) -> NodePath:
    """Attach ``mesh`` under ``parent`` as a new node and return its NodePath."""
    return parent.attachNewNode(to_geom_node(mesh, name))
