"""Polygons, signed distances, foot templates and body dimensions.

Everything here is pure: numbers in, numbers out, in the core frame (x to the
patient's right, y anterior, z up, metres, origin at the centre of the feet or
plate on the floor). Arrays handed out are read-only.

Anthropometric defaults come from the segment-length fractions of stature of
Drillis & Contini (1966) as tabulated by Winter (2009, *Biomechanics and Motor
Control of Human Movement*, 4th ed., Fig. 4.1): foot length 0.152 H, foot width
0.055 H, ankle (malleolus) height 0.039 H, eye level 0.936 H. The whole-body
centre of mass is taken at 0.55 H, the usual rounded value of the whole-body
centre of mass from Dempster's segment parameters as tabulated by Winter (2009,
Table 4.1). All of them can be overridden per patient.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

logger = logging.getLogger(__name__)

#: Fractions of body height H (Winter 2009, Fig. 4.1, after Drillis & Contini 1966).
FOOT_LENGTH_PER_HEIGHT = 0.152
FOOT_WIDTH_PER_HEIGHT = 0.055
ANKLE_HEIGHT_PER_HEIGHT = 0.039
EYE_HEIGHT_PER_HEIGHT = 0.936
#: Whole-body CoM height as a fraction of H (about 55 % of stature; Winter 2009).
COM_HEIGHT_PER_HEIGHT = 0.55

#: Standard gravity in m/s².
STANDARD_GRAVITY_MPS2 = 9.80665

# Points are processed in chunks so that the (points x edges) temporaries stay
# around a few MB whatever the number of points.
_CHUNK_ELEMENTS = 1 << 20


def _readonly(array: NDArray[np.float64]) -> NDArray[np.float64]:
    array.setflags(write=False)
    return array


def _as_points(points: ArrayLike, name: str = "points") -> NDArray[np.float64]:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 1 and arr.shape == (2,):
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name}: expected shape (M, 2) of (x, y) in metres, got {arr.shape}")
    return arr


def polygon_area_m2(vertices: ArrayLike) -> float:
    """Signed area of a polygon (shoelace), positive when counter-clockwise.

    Parameters
    ----------
    vertices : array_like, shape (K, 2)
        Vertices in order, in metres; the closing edge is implied.
    """
    v = _as_points(vertices, "vertices")
    x, y = v[:, 0], v[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


@dataclass(frozen=True, slots=True, eq=False)
class Polygon:
    """A simple polygon in the floor plane, stored counter-clockwise.

    Parameters
    ----------
    vertices : array_like, shape (K, 2)
        Vertices in metres in either orientation (clockwise input is reversed);
        the closing edge from the last vertex to the first is implied. Edge
        ``i`` runs from vertex ``i`` to vertex ``(i + 1) % K``.

    Raises
    ------
    ValueError
        Fewer than 3 vertices, non-finite values or zero area.
    """

    vertices: NDArray[np.float64]
    _edges: tuple[tuple[float, float, float, float, float], ...] = field(repr=False)

    def __init__(self, vertices: ArrayLike) -> None:
        v = np.array(_as_points(vertices, "vertices"), dtype=np.float64, copy=True)
        if not np.all(np.isfinite(v)):
            raise ValueError("vertices: expected finite coordinates, got NaN or inf")
        # Drop repeated consecutive vertices (zero-length edges).
        if v.shape[0] > 1:
            v = v[np.any(v != np.roll(v, -1, axis=0), axis=1)]
        if v.shape[0] < 3:
            raise ValueError(f"vertices: a polygon needs at least 3 vertices, got {v.shape[0]}")
        area = polygon_area_m2(v)
        if not abs(area) > 0.0:
            raise ValueError("vertices: polygon has zero area")
        if area < 0.0:
            v = v[::-1].copy()
        object.__setattr__(self, "vertices", _readonly(v))
        # Per edge (ax, ay, ex, ey, 1/|e|²) as plain floats for the scalar path,
        # which runs every tick of a 1 kHz loop where numpy call overhead
        # would dominate a few dozen float operations.
        nxt = np.roll(v, -1, axis=0)
        e = nxt - v
        len2 = np.einsum("ij,ij->i", e, e)
        edges = tuple(
            (float(a[0]), float(a[1]), float(d[0]), float(d[1]), float(1.0 / l2))
            for a, d, l2 in zip(v, e, len2, strict=True)
        )
        object.__setattr__(self, "_edges", edges)

    @property
    def n_edges(self) -> int:
        """Number of edges (equal to the number of vertices)."""
        return int(self.vertices.shape[0])

    @property
    def area_m2(self) -> float:
        """Area in m² (positive)."""
        return polygon_area_m2(self.vertices)

    @property
    def centroid_m(self) -> tuple[float, float]:
        """Area centroid ``(x, y)`` in metres."""
        v = self.vertices
        x, y = v[:, 0], v[:, 1]
        xn, yn = np.roll(x, -1), np.roll(y, -1)
        cross = x * yn - xn * y
        a6 = 3.0 * float(cross.sum())
        return float(((x + xn) * cross).sum() / a6), float(((y + yn) * cross).sum() / a6)

    def translated(self, dx_m: float, dy_m: float) -> Polygon:
        """A copy shifted by ``(dx_m, dy_m)``."""
        return Polygon(self.vertices + np.array([dx_m, dy_m]))

    def signed_distance(self, points: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
        """Signed distance of many points to the boundary, positive inside.

        Parameters
        ----------
        points : array_like, shape (M, 2) or (2,)
            Points ``(x, y)`` in metres. NaN rows give NaN distance and edge -1.

        Returns
        -------
        distance_m : ndarray, shape (M,)
            Euclidean distance to the nearest boundary point, positive inside
            the polygon, negative outside, 0 on the boundary.
        edge : ndarray of intp, shape (M,)
            Index of the nearest edge (first one on ties, e.g. at a vertex).
        """
        p = _as_points(points)
        m = p.shape[0]
        dist = np.empty(m, dtype=np.float64)
        edge = np.empty(m, dtype=np.intp)
        v = self.vertices
        ax, ay = v[:, 0], v[:, 1]
        nxt = np.roll(v, -1, axis=0)
        ex, ey = nxt[:, 0] - ax, nxt[:, 1] - ay
        inv_len2 = 1.0 / (ex * ex + ey * ey)
        by = nxt[:, 1]
        # Crossing-number inside test: edges that straddle the horizontal
        # line through the point and cross it to the point's right. The
        # crossing is px < ax + dy·ex/ey; multiplying by ey (keeping its sign)
        # avoids dividing by tiny ey: (dx·ey - dy·ex)·sign(ey) < 0.
        sign_ey = np.sign(ey)
        chunk = max(1, _CHUNK_ELEMENTS // self.n_edges)
        for start in range(0, m, chunk):
            stop = min(m, start + chunk)
            px = p[start:stop, 0:1]
            py = p[start:stop, 1:2]
            dx = px - ax
            dy = py - ay
            t = np.clip((dx * ex + dy * ey) * inv_len2, 0.0, 1.0)
            qx = dx - t * ex
            qy = dy - t * ey
            d2 = qx * qx + qy * qy
            idx = np.argmin(d2, axis=1)
            dmin = np.sqrt(np.take_along_axis(d2, idx[:, None], axis=1)[:, 0])
            straddle = (ay > py) != (by > py)
            crosses = straddle & ((dx * ey - dy * ex) * sign_ey < 0.0)
            inside = (np.count_nonzero(crosses, axis=1) % 2) == 1
            dist[start:stop] = np.where(inside, dmin, -dmin)
            edge[start:stop] = idx
        bad = ~np.all(np.isfinite(p), axis=1)
        if np.any(bad):
            dist[bad] = np.nan
            edge[bad] = -1
        return dist, edge

    def signed_distance_xy(self, x_m: float, y_m: float) -> tuple[float, int]:
        """Scalar fast path of :meth:`signed_distance` for one point.

        Plain float arithmetic, for the per-tick estimator.

        Returns
        -------
        distance_m : float
            Signed distance, positive inside; NaN for a NaN point.
        edge : int
            Nearest edge index, -1 for a NaN point.
        """
        if not (math.isfinite(x_m) and math.isfinite(y_m)):
            return math.nan, -1
        best = math.inf
        best_i = 0
        inside = False
        for i, (ax, ay, ex, ey, inv) in enumerate(self._edges):
            dx = x_m - ax
            dy = y_m - ay
            t = (dx * ex + dy * ey) * inv
            if t < 0.0:
                t = 0.0
            elif t > 1.0:
                t = 1.0
            qx = dx - t * ex
            qy = dy - t * ey
            d2 = qx * qx + qy * qy
            if d2 < best:
                best = d2
                best_i = i
            by = ay + ey
            if (ay > y_m) != (by > y_m):
                cross = dx * ey - dy * ex
                if (cross < 0.0) if ey > 0.0 else (cross > 0.0):
                    inside = not inside
        d = math.sqrt(best)
        return (d if inside else -d), best_i

    def contains(self, points: ArrayLike) -> NDArray[np.bool_]:
        """Whether each point lies inside or on the boundary."""
        d, _ = self.signed_distance(points)
        return d >= 0.0


def convex_hull(points: ArrayLike) -> Polygon:
    """Convex hull of a point set (Andrew's monotone chain), counter-clockwise.

    Parameters
    ----------
    points : array_like, shape (M, 2)
        At least three non-collinear points, in metres.

    Raises
    ------
    ValueError
        If the points do not span an area.
    """
    p = _as_points(points)
    if not np.all(np.isfinite(p)):
        raise ValueError("points: expected finite coordinates")
    uniq = np.unique(p, axis=0)  # sorted by x then y
    pts = [(float(a), float(b)) for a, b in uniq]
    if len(pts) < 3:
        raise ValueError(f"points: need at least 3 distinct points, got {len(pts)}")

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    for q in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], q) <= 0.0:
            lower.pop()
        lower.append(q)
    upper: list[tuple[float, float]] = []
    for q in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], q) <= 0.0:
            upper.pop()
        upper.append(q)
    hull = lower[:-1] + upper[:-1]
    if len(hull) < 3:
        raise ValueError("points: all points are collinear, the hull has no area")
    return Polygon(np.array(hull))


@dataclass(frozen=True, slots=True, eq=False)
class FootTemplate:
    """A normalised right-foot outline that stances scale to a patient's feet.

    The outline is normalised so that its bounding box is exactly
    ``[-0.5, 0.5] × [-0.5, 0.5]``: x across the foot (positive lateral for
    the right foot), y along it (heel at -0.5, longest toe at +0.5). Scaling
    x by the foot width and y by the foot length gives the foot in metres,
    centred on its bounding box. The left foot is the mirror image.

    Parameters
    ----------
    name : str
        Template id (the file stem of ``calibration/feet/<name>.toml``).
    outline : array_like, shape (K, 2)
        Outline vertices of the right foot in any units; renormalised here.
    ankle : tuple of 2 float
        Ankle axis (midpoint of the malleoli, projected on the floor) in the
        same units as ``outline``.
    source : str
        Where the outline comes from.

    Raises
    ------
    ValueError
        If the outline is not a valid polygon or the ankle lies outside it.
    """

    name: str
    outline: NDArray[np.float64]
    ankle: tuple[float, float]
    source: str = ""

    def __init__(
        self,
        name: str,
        outline: ArrayLike,
        ankle: Sequence[float],
        source: str = "",
    ) -> None:
        poly = Polygon(outline)
        v = poly.vertices
        lo = v.min(axis=0)
        span = v.max(axis=0) - lo
        if np.any(span <= 0.0):
            raise ValueError("outline: zero width or length")
        centre = lo + span / 2.0
        norm = (v - centre) / span
        if len(ankle) != 2:
            raise ValueError(f"ankle: expected 2 numbers, got {len(ankle)}")
        a = (np.asarray(ankle, dtype=np.float64) - centre) / span
        norm_poly = Polygon(norm)
        if norm_poly.signed_distance(a)[0][0] < 0.0:
            raise ValueError(f"ankle: {tuple(ankle)} lies outside the foot outline")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "outline", norm_poly.vertices)
        object.__setattr__(self, "ankle", (float(a[0]), float(a[1])))
        object.__setattr__(self, "source", source)

    def foot(
        self,
        side: str,
        length_m: float,
        width_m: float,
        *,
        centre_m: tuple[float, float] = (0.0, 0.0),
        toe_out_rad: float = 0.0,
    ) -> tuple[Polygon, tuple[float, float]]:
        """Place one foot: scale, mirror for the left side, rotate, translate.

        Parameters
        ----------
        side : {"left", "right"}
            Which foot.
        length_m, width_m : float
            Foot length (heel to longest toe) and maximum width in metres.
        centre_m : tuple of 2 float
            Where the centre of the foot's bounding box goes, in metres.
        toe_out_rad : float
            Outward rotation of the toes about the foot centre in radians
            (the right foot turns clockwise, the left counter-clockwise).

        Returns
        -------
        polygon : Polygon
            The foot outline in the core frame.
        ankle_m : tuple of 2 float
            The ankle axis point of this foot in the core frame.
        """
        if side not in ("left", "right"):
            raise ValueError(f"side: expected 'left' or 'right', got {side!r}")
        if not (length_m > 0.0 and width_m > 0.0):
            raise ValueError(f"foot size must be positive, got {length_m!r} x {width_m!r} m")
        mirror = -1.0 if side == "left" else 1.0
        scale = np.array([mirror * width_m, length_m])
        pts = self.outline * scale
        ankle = np.asarray(self.ankle) * scale
        angle = -toe_out_rad * mirror  # right toes turn to +x: clockwise
        c, s = math.cos(angle), math.sin(angle)
        rot = np.array([[c, -s], [s, c]])
        pts = pts @ rot.T + np.asarray(centre_m)
        ankle = rot @ ankle + np.asarray(centre_m)
        return Polygon(pts), (float(ankle[0]), float(ankle[1]))


@dataclass(frozen=True, slots=True)
class Body:
    """The patient's body dimensions the balance core needs.

    Unset dimensions are derived from the height by the anthropometric ratios
    at the top of this module (Winter 2009, after Drillis & Contini 1966).

    Parameters
    ----------
    height_m : float
        Stature in metres.
    mass_kg : float or None
        Body mass in kg; ``None`` when unknown (then the plate's minimum load
        falls back to a fixed value).
    foot_length_m, foot_width_m : float or None
        Foot length and width in metres (default 0.152 H and 0.055 H).
    com_height_m : float or None
        Height of the whole-body centre of mass above the floor (default 0.55 H).
    eye_height_m : float or None
        Height of the eyes (the headset's centre-eye point) above the floor
        in quiet stance (default 0.936 H).
    ankle_height_m : float or None
        Height of the ankle joint axis above the floor (default 0.039 H).

    Raises
    ------
    ValueError
        Non-positive or inconsistent dimensions (e.g. CoM above the eyes).
    """

    height_m: float = 1.70
    mass_kg: float | None = None
    foot_length_m: float | None = None
    foot_width_m: float | None = None
    com_height_m: float | None = None
    eye_height_m: float | None = None
    ankle_height_m: float | None = None

    def __post_init__(self) -> None:
        h = self.height_m
        if isinstance(h, bool) or not (isinstance(h, int | float) and 0.5 <= h <= 2.6):
            raise ValueError(f"height_m: expected a stature in [0.5, 2.6] m, got {h!r}")
        if self.mass_kg is not None and not (0.0 < self.mass_kg < 500.0):
            raise ValueError(f"mass_kg: expected a mass in (0, 500) kg, got {self.mass_kg!r}")
        defaults = {
            "foot_length_m": FOOT_LENGTH_PER_HEIGHT * h,
            "foot_width_m": FOOT_WIDTH_PER_HEIGHT * h,
            "com_height_m": COM_HEIGHT_PER_HEIGHT * h,
            "eye_height_m": EYE_HEIGHT_PER_HEIGHT * h,
            "ankle_height_m": ANKLE_HEIGHT_PER_HEIGHT * h,
        }
        for name, default in defaults.items():
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, float(default))
            elif not (isinstance(value, int | float) and 0.0 < value < h * 1.01):
                raise ValueError(f"{name}: expected a length in (0, height] m, got {value!r}")
        if not (self.ankle_height_m < self.com_height_m < self.eye_height_m):  # type: ignore[operator]
            raise ValueError(
                "expected ankle_height_m < com_height_m < eye_height_m, got "
                f"{self.ankle_height_m:.3f}, {self.com_height_m:.3f}, {self.eye_height_m:.3f}"
            )

    @property
    def pendulum_length_m(self) -> float:
        """Length of the inverted pendulum: CoM height above the ankle axis, m."""
        return float(self.com_height_m - self.ankle_height_m)  # type: ignore[operator]

    @property
    def head_lever_m(self) -> float:
        """Distance from the ankle axis up to the eyes in quiet stance, m."""
        return float(self.eye_height_m - self.ankle_height_m)  # type: ignore[operator]

    @property
    def com_per_head(self) -> float:
        """Pendulum scaling from head to CoM: ``pendulum_length_m / head_lever_m``."""
        return self.pendulum_length_m / self.head_lever_m

    @property
    def omega0_rad_s(self) -> float:
        """Eigenfrequency ``sqrt(g / l)`` of the inverted pendulum (Hof 2005), rad/s."""
        return math.sqrt(STANDARD_GRAVITY_MPS2 / self.pendulum_length_m)

    @property
    def weight_n(self) -> float | None:
        """Body weight in N, ``None`` when the mass is unknown."""
        return None if self.mass_kg is None else self.mass_kg * STANDARD_GRAVITY_MPS2
