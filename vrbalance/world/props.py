"""Scene furniture built from geometry primitives: trees, benches, lamps, animals, bicycles.

Each function returns a :class:`~vrbalance.world.geometry.Mesh` standing on the
origin (z = 0 is the ground, y is the object's forward direction), so a scene
places it with ``mesh.transformed(translate=..., hpr_deg=...)`` and merges
many into one node. Sizes are real-world metres (a bench seat is 0.45 m high)
because the patient sees them at true scale in a headset.
"""

from __future__ import annotations

import numpy as np

from vrbalance.world.geometry import Color, Mesh, box, concat, cone, cylinder, sphere

# --- palette (linear RGBA) --------------------------------------------------
BARK: Color = (0.36, 0.25, 0.16, 1.0)
WOOD: Color = (0.55, 0.36, 0.2, 1.0)
IRON: Color = (0.12, 0.13, 0.14, 1.0)
LAMP_GLASS: Color = (0.95, 0.9, 0.7, 1.0)
LEAF_GREENS: tuple[Color, ...] = (
    (0.18, 0.42, 0.14, 1.0),
    (0.24, 0.5, 0.16, 1.0),
    (0.3, 0.46, 0.12, 1.0),
    (0.14, 0.34, 0.16, 1.0),
)
CONIFER_GREENS: tuple[Color, ...] = ((0.08, 0.26, 0.12, 1.0), (0.1, 0.3, 0.16, 1.0))


def _pick(rng: np.random.Generator, palette: tuple[Color, ...]) -> Color:
    base = np.asarray(palette[int(rng.integers(len(palette)))])
    jitter = rng.uniform(0.9, 1.1)
    return (*np.clip(base[:3] * jitter, 0, 1), 1.0)


def deciduous_tree(rng: np.random.Generator, height_m: float) -> Mesh:
    """A broadleaf tree: tapered trunk and a crown of 3-5 overlapping spheres."""
    trunk_h = height_m * 0.45
    parts = [
        cylinder(
            0.05 * height_m + 0.05, trunk_h + 0.4, BARK, segments=8, top_radius=0.03 * height_m
        ).transformed(translate=(0, 0, -0.4))
    ]
    green = _pick(rng, LEAF_GREENS)
    crown_r = height_m * 0.28
    for _ in range(int(rng.integers(3, 6))):
        offset = rng.normal(0, crown_r * 0.35, 3)
        r = crown_r * rng.uniform(0.65, 1.0)
        parts.append(
            sphere(r, green, rings=5, segments=8).transformed(
                translate=(offset[0], offset[1], trunk_h + crown_r * 0.8 + offset[2] * 0.5)
            )
        )
    return concat(parts)


def conifer_tree(rng: np.random.Generator, height_m: float) -> Mesh:
    """A fir: thin trunk under three stacked cones."""
    parts = [
        cylinder(0.12, height_m * 0.3 + 0.4, BARK, segments=6).transformed(translate=(0, 0, -0.4))
    ]
    green = _pick(rng, CONIFER_GREENS)
    for i, (base_frac, r_frac) in enumerate(((0.18, 0.3), (0.42, 0.23), (0.64, 0.15))):
        h = height_m * (0.45 - 0.08 * i)
        parts.append(
            cone(height_m * r_frac, h, green, segments=10).transformed(
                translate=(0, 0, height_m * base_frac)
            )
        )
    return concat(parts)


def bench() -> Mesh:
    """A park bench, 1.6 m long along x, seat 0.45 m high, backrest towards -y."""
    parts = []
    for i in range(3):  # seat slats
        parts.append(box(1.6, 0.12, 0.04, WOOD).transformed(translate=(0, -0.16 + 0.15 * i, 0.45)))
    for i in range(2):  # backrest slats
        parts.append(
            box(1.6, 0.04, 0.1, WOOD).transformed(
                translate=(0, -0.27, 0.62 + 0.16 * i), hpr_deg=(0, 0, 0)
            )
        )
    for x in (-0.7, 0.7):  # cast-iron frames
        parts.append(box(0.05, 0.5, 0.05, IRON).transformed(translate=(x, -0.05, 0.42)))
        parts.append(box(0.05, 0.05, 0.45, IRON).transformed(translate=(x, 0.17, 0.22)))
        parts.append(box(0.05, 0.05, 0.85, IRON).transformed(translate=(x, -0.27, 0.42)))
    return concat(parts)


def lamp_post(height_m: float = 3.6) -> tuple[Mesh, Mesh]:
    """A park lamp: (iron post and arm, glass lantern) - separate so the lantern can glow."""
    post = concat(
        [
            cylinder(0.09, 0.3, IRON, segments=8),
            cylinder(0.05, height_m, IRON, segments=8),
            cylinder(0.12, 0.08, IRON, segments=8).transformed(translate=(0, 0, height_m)),
            cone(0.2, 0.18, IRON, segments=8).transformed(translate=(0, 0, height_m + 0.42)),
        ]
    )
    glass = cylinder(0.13, 0.34, LAMP_GLASS, segments=8, top_radius=0.17).transformed(
        translate=(0, 0, height_m + 0.08)
    )
    return post, glass


def cyclist(rng: np.random.Generator) -> Mesh:
    """A person on a bicycle, travelling along +y: wheels, frame, rider with head."""
    shirt = (*rng.uniform(0.1, 0.9, 3), 1.0)
    skin = (0.85, 0.66, 0.52, 1.0)
    wheel = cylinder(0.34, 0.04, IRON, segments=14).transformed(hpr_deg=(0, 0, 90))
    parts = [
        wheel.transformed(translate=(0.02, 0.52, 0.34)),
        wheel.transformed(translate=(0.02, -0.52, 0.34)),
        box(0.04, 1.0, 0.04, (0.7, 0.1, 0.1, 1)).transformed(translate=(0, 0, 0.62)),
        box(0.04, 0.04, 0.5, (0.7, 0.1, 0.1, 1)).transformed(translate=(0, -0.2, 0.55)),
        box(0.5, 0.04, 0.04, IRON).transformed(translate=(0, 0.45, 1.0)),  # handlebar
        box(0.34, 0.24, 0.6, shirt).transformed(translate=(0, -0.05, 1.25), hpr_deg=(0, -25, 0)),
        sphere(0.11, skin, rings=6, segments=8).transformed(translate=(0, 0.12, 1.68)),
        box(0.12, 0.12, 0.55, (0.15, 0.15, 0.25, 1)).transformed(translate=(-0.12, -0.1, 0.8)),
        box(0.12, 0.12, 0.55, (0.15, 0.15, 0.25, 1)).transformed(translate=(0.12, -0.1, 0.8)),
    ]
    return concat(parts)


def dog(rng: np.random.Generator) -> Mesh:
    """A medium dog facing +y: body, four legs, head, tail."""
    fur = (*(np.array((0.45, 0.3, 0.15)) * rng.uniform(0.5, 1.4)).clip(0, 1), 1.0)
    parts = [
        box(0.26, 0.7, 0.26, fur).transformed(translate=(0, 0, 0.5)),
        box(0.2, 0.26, 0.22, fur).transformed(translate=(0, 0.42, 0.7)),
        box(0.12, 0.14, 0.1, fur).transformed(translate=(0, 0.6, 0.66)),
        box(0.05, 0.3, 0.05, fur).transformed(translate=(0, -0.45, 0.7), hpr_deg=(0, 30, 0)),
    ]
    for x in (-0.09, 0.09):
        for y in (-0.27, 0.27):
            parts.append(box(0.07, 0.07, 0.4, fur).transformed(translate=(x, y, 0.2)))
    return concat(parts)


def bird_body() -> Mesh:
    """A bird (about pigeon/crow size, scaled up slightly so it reads at distance)."""
    return concat(
        [
            sphere(0.12, (0.15, 0.15, 0.18, 1), rings=5, segments=8).transformed(
                scale=(0.8, 1.6, 0.8)
            ),
            sphere(0.08, (0.15, 0.15, 0.18, 1), rings=5, segments=8).transformed(
                translate=(0, 0.2, 0.05)
            ),
        ]
    )


def bird_wing() -> Mesh:
    """One wing, hinged at the origin, extending along +x."""
    return box(0.45, 0.16, 0.02, (0.2, 0.2, 0.24, 1)).transformed(translate=(0.225, 0, 0))
