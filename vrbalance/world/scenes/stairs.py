"""The staircase: an outdoor stone flight of steps in a paved plaza.

The patient stands on a stone landing at the origin (z = 0), facing +y, where
the flight begins :data:`FLIGHT_START_M` ahead. With ``descending = 1`` the
steps go down in front of them towards the plaza; with ``descending = 0`` they
rise to an upper landing. ``landing_height_m`` lifts the patient's landing
above the plaza (the plaza, its trees, lamps, benches and houses sink by that
much), so the drop past the landing's edges is the exposure. Handrails run
along both sides of the flight and round the landing when ``handrail = 1``.
``edge_contrast`` blends the step nosings from the tread's stone to a bright
safety yellow. Light, fog and surround sway come from :class:`SceneBase`.

The staircase is rebuilt (a few dozen boxes, about a millisecond) when a
geometric parameter changes; the plaza is built once and only moved.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
from panda3d.core import NodePath

from vrbalance.world import geometry as geo
from vrbalance.world import props
from vrbalance.world.scene import SceneBase, SceneContext

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

# --- tuning constants ----------------------------------------------------------
#: Tread depth (going) of every step, m: a comfortable outdoor stair.
TREAD_M = 0.32
#: Width of the flight between its cheek walls, m.
FLIGHT_WIDTH_M = 2.2
#: Distance from the patient (origin) to the first step edge, m.
FLIGHT_START_M = 1.5
#: Patient's landing: half-width (x) and how far it extends behind them (y), m.
LANDING_HALF_WIDTH_M = 1.6
LANDING_BACK_M = 3.0
#: Depth of the landing at the other end of the flight, m.
FAR_LANDING_M = 3.0
#: Nosing (edge strip) depth and thickness, m.
NOSING_DEPTH_M = 0.05
NOSING_THICK_M = 0.012
#: Handrail height above the pitch line / landing, m (building codes: 0.85-1.0 m).
RAIL_HEIGHT_M = 0.9
RAIL_RADIUS_M = 0.025
#: Stone colours (modulate the stone texture).
STONE_RGBA = (0.92, 0.9, 0.86, 1.0)
WALL_RGBA = (0.78, 0.75, 0.7, 1.0)
SAFETY_YELLOW = np.array((1.0, 0.85, 0.05))
#: Suggested gaze for screenshots/demo: slightly down, so the steps are in view.
DEFAULT_GAZE_PITCH_DEG = -24.0


class StairsScene(SceneBase):
    """The stairs scene (see module docstring)."""

    default_gaze_pitch_deg = DEFAULT_GAZE_PITCH_DEG

    def __init__(self) -> None:
        super().__init__()
        self._plaza: NodePath | None = None
        self._stairs: NodePath | None = None
        self._nosings: NodePath | None = None
        self._textures: dict[str, object] = {}
        self.ground_z_m = 0.0

    # --- building -------------------------------------------------------------------
    def _build(self, ctx: SceneContext) -> None:
        if self.world is None:
            raise RuntimeError("StairsScene._build before SceneBase.build")
        self._textures = {"stone": ctx.texture("stone.png"), "paving": ctx.texture("paving.png")}
        self._plaza = self.world.attachNewNode("plaza")
        self._build_plaza(ctx.rng)

    def _build_plaza(self, rng: np.random.Generator) -> None:
        """Paved plaza (z = 0 in its own node), lawns, trees, lamps, benches, houses."""
        if self._plaza is None:
            return
        paving = geo.heightfield(
            np.linspace(-60, 60, 7), np.linspace(-40, 80, 7), np.zeros((7, 7)), uv_scale_m=4.0
        )
        node = geo.attach_mesh(self._plaza, paving, "paving")
        node.setTexture(self._textures["paving"])  # type: ignore[arg-type]
        far = geo.heightfield(
            np.linspace(-400, 400, 5),
            np.linspace(-400, 400, 5),
            np.full((5, 5), -0.05),
            (0.3, 0.45, 0.22, 1),
        )
        geo.attach_mesh(self._plaza, far, "fields")
        parts: list[geo.Mesh] = []
        # Trees in two rows flanking the plaza, and a few scattered beyond.
        for side in (-1.0, 1.0):
            for y in np.arange(-6.0, 60.0, 7.0):
                x = side * (9.0 + rng.uniform(-0.8, 0.8))
                parts.append(
                    props.deciduous_tree(rng, rng.uniform(6, 9)).transformed(
                        translate=(x, y + rng.uniform(-1, 1), 0)
                    )
                )
        for _ in range(14):
            x = rng.choice([-1.0, 1.0]) * rng.uniform(22, 55)
            y = rng.uniform(-20, 90)
            parts.append(
                props.conifer_tree(rng, rng.uniform(7, 12)).transformed(translate=(x, y, 0))
            )
        # Benches along the tree rows, facing the plaza centre.
        bench = props.bench()
        for side in (-1.0, 1.0):
            for y in (4.0, 18.0, 32.0):
                parts.append(
                    bench.transformed(translate=(side * 7.2, y, 0), hpr_deg=(-90 * side, 0, 0))
                )
        # Lamps.
        post, glass = props.lamp_post()
        lamp = geo.concat([post, glass])
        for side in (-1.0, 1.0):
            for y in (10.0, 25.0, 40.0):
                parts.append(lamp.transformed(translate=(side * 6.0, y, 0)))
        # Houses at the far end and sides: blocks with rows of windows and a roof.
        for i, (x, y, w, d, h) in enumerate(
            (
                (-24, 58, 14, 10, 11),
                (-6, 66, 12, 9, 14),
                (12, 62, 16, 10, 10),
                (30, 54, 10, 10, 12),
                (-40, 30, 10, 14, 9),
                (42, 24, 10, 14, 10),
            )
        ):
            parts.extend(_house(x, y, w, d, h, i))
        geo.attach_mesh(self._plaza, geo.concat(parts), "plaza-props")

    def _rebuild_stairs(self) -> None:
        if self.world is None or self._plaza is None:
            return
        p = self.params
        rise = p.get("step_rise_m", 0.15)
        count = int(p.get("step_count", 5))
        descending = p.get("descending", 0.0) >= 0.5
        height = p.get("landing_height_m", 0.0)
        rails = p.get("handrail", 1.0) >= 0.5
        drop = rise * count
        # Plaza level: the landing's height above it, and never above the foot of a
        # descending flight (the flight must reach the ground it leads to).
        ground = -max(height, drop) if descending else -height
        self.ground_z_m = ground
        self._plaza.setZ(ground)
        if self._stairs is not None:
            self._stairs.removeNode()
        self._stairs = self.world.attachNewNode("stairs")
        stone: list[geo.Mesh] = []
        nosings: list[geo.Mesh] = []
        rail_parts: list[geo.Mesh] = []
        half_w = FLIGHT_WIDTH_M / 2
        # Patient's landing: a stone block from the ground up to z = 0.
        lw = 2 * LANDING_HALF_WIDTH_M
        land_len = LANDING_BACK_M + FLIGHT_START_M
        stone.append(
            _block(lw, land_len, -ground, (0.0, (FLIGHT_START_M - LANDING_BACK_M) / 2, ground))
        )
        sign = -1.0 if descending else 1.0
        for i in range(count):
            top = sign * rise * (i + 1)
            y0 = FLIGHT_START_M + i * TREAD_M
            stone.append(
                _block(FLIGHT_WIDTH_M, TREAD_M, top - ground, (0.0, y0 + TREAD_M / 2, ground))
            )
            # Nosing: the tread edge above each riser, what a foot must find. Going up
            # it is each step's near edge; going down it is the far edge of the tread
            # above the drop (the landing's edge first), the only edge visible from above.
            if descending:
                edge_y, edge_z = y0 - NOSING_DEPTH_M / 2, top + rise
            else:
                edge_y, edge_z = y0 + NOSING_DEPTH_M / 2, top
            nosings.append(
                geo.box(FLIGHT_WIDTH_M, NOSING_DEPTH_M, NOSING_THICK_M).transformed(
                    translate=(0.0, edge_y, edge_z + NOSING_THICK_M / 2 - 0.004)
                )
            )
        end_y = FLIGHT_START_M + count * TREAD_M
        end_z = sign * drop
        stone.append(
            _block(lw, FAR_LANDING_M, end_z - ground, (0.0, end_y + FAR_LANDING_M / 2, ground))
        )
        # Cheek walls along the flight, low parapets (20 cm above the pitch line).
        for side in (-1.0, 1.0):
            x = side * (half_w + 0.15)
            for i in range(count):
                top = sign * rise * (i + 1)
                y0 = FLIGHT_START_M + i * TREAD_M
                wall_top = max(top, top - sign * rise) + 0.2
                stone.append(
                    _block(
                        0.3, TREAD_M, wall_top - ground, (x, y0 + TREAD_M / 2, ground), WALL_RGBA
                    )
                )
        if rails:
            rail_parts.extend(self._rails(rise, count, sign, end_y, end_z))
        node = geo.attach_mesh(self._stairs, geo.concat(stone), "stone")
        node.setTexture(self._textures["stone"])  # type: ignore[arg-type]
        if nosings:
            self._nosings = geo.attach_mesh(self._stairs, geo.concat(nosings), "nosings")
            self._nosings.setTextureOff(1)
        else:
            self._nosings = None
        if rail_parts:
            geo.attach_mesh(self._stairs, geo.concat(rail_parts), "rails").setTextureOff(1)
        self._apply_contrast()

    def _rails(
        self, rise: float, count: int, sign: float, end_y: float, end_z: float
    ) -> list[geo.Mesh]:
        """Handrails on both sides of the flight and guard rails round the patient's landing."""
        parts: list[geo.Mesh] = []
        x_rail = FLIGHT_WIDTH_M / 2 - 0.05
        y_a, z_a = FLIGHT_START_M, 0.0
        y_b, z_b = end_y, end_z
        length = math.hypot(y_b - y_a, z_b - z_a)
        pitch = math.degrees(math.atan2(z_b - z_a, y_b - y_a))
        for side in (-1.0, 1.0):
            x = side * x_rail
            # Sloped rail (a cylinder along +y after pitching from +z).
            parts.append(
                geo.cylinder(RAIL_RADIUS_M, length, props.IRON, segments=8).transformed(
                    translate=(x, y_a, z_a + RAIL_HEIGHT_M), hpr_deg=(0, pitch - 90, 0)
                )
            )
            for k in range(0, count + 1, 3):
                y = y_a + k * TREAD_M
                z = sign * rise * k
                parts.append(
                    geo.cylinder(0.02, RAIL_HEIGHT_M, props.IRON, segments=6).transformed(
                        translate=(x, y, z)
                    )
                )
        # Landing guard rails on the open sides (left, right, back).
        hw, back = LANDING_HALF_WIDTH_M - 0.05, -LANDING_BACK_M + 0.05
        edges = (
            ((-hw, back), (-hw, FLIGHT_START_M)),
            ((hw, back), (hw, FLIGHT_START_M)),
            ((-hw, back), (hw, back)),
            ((-hw, FLIGHT_START_M), (-x_rail, FLIGHT_START_M)),
            ((x_rail, FLIGHT_START_M), (hw, FLIGHT_START_M)),
        )
        for (xa, ya), (xb, yb) in edges:
            length = math.hypot(xb - xa, yb - ya)
            heading = math.degrees(math.atan2(-(xb - xa), yb - ya))
            for h_m in (RAIL_HEIGHT_M + 0.1, 0.5):
                parts.append(
                    geo.cylinder(RAIL_RADIUS_M, length, props.IRON, segments=8).transformed(
                        translate=(xa, ya, h_m), hpr_deg=(heading, -90, 0)
                    )
                )
            n_posts = max(2, int(length / 1.2) + 1)
            for t in np.linspace(0, 1, n_posts):
                parts.append(
                    geo.cylinder(0.025, RAIL_HEIGHT_M + 0.1, props.IRON, segments=6).transformed(
                        translate=(xa + t * (xb - xa), ya + t * (yb - ya), 0)
                    )
                )
        return parts

    def _apply_contrast(self) -> None:
        if self._nosings is None:
            return
        c = self.params.get("edge_contrast", 1.0)
        stone = np.array(STONE_RGBA[:3]) * 0.62  # the textured stone's average brightness
        rgb = stone + (SAFETY_YELLOW - stone) * c
        self._nosings.setColorScale(*rgb, 1.0)

    # --- levels ---------------------------------------------------------------------
    def _apply(self, changed: Mapping[str, float]) -> None:
        geometric = {"step_rise_m", "step_count", "descending", "landing_height_m", "handrail"}
        if geometric & set(changed):
            self._rebuild_stairs()
        elif "edge_contrast" in changed:
            self._apply_contrast()


def _block(
    size_x: float,
    size_y: float,
    size_z: float,
    bottom_centre: tuple[float, float, float],
    color: tuple[float, float, float, float] = STONE_RGBA,
) -> geo.Mesh:
    """A stone block standing on ``bottom_centre`` (textured 1 repeat per metre)."""
    size_z = max(size_z, 0.01)
    x, y, z = bottom_centre
    return geo.box(size_x, size_y, size_z, color).transformed(translate=(x, y, z + size_z / 2))


def _house(x: float, y: float, w: float, d: float, h: float, i: int) -> list[geo.Mesh]:
    """A simple town house: rendered walls, rows of dark windows, a pitched roof."""
    walls = ((0.86, 0.8, 0.7, 1), (0.8, 0.68, 0.58, 1), (0.9, 0.88, 0.82, 1), (0.75, 0.7, 0.66, 1))
    parts = [geo.box(w, d, h, walls[i % len(walls)]).transformed(translate=(x, y, h / 2))]
    roof = geo.box(w + 0.6, d * 0.75, 0.3, (0.45, 0.2, 0.15, 1))
    for side in (-1.0, 1.0):
        parts.append(
            roof.transformed(
                translate=(x, y + side * d * 0.27, h + d * 0.18), hpr_deg=(0, side * -35.0, 0)
            )
        )
    window = geo.box(1.0, 0.1, 1.3, (0.15, 0.18, 0.24, 1))
    floors = max(1, int((h - 1.0) / 3.0))
    for f in range(floors):
        for k in np.arange(-w / 2 + 1.5, w / 2 - 1.0, 2.5):
            for face in (-1.0, 1.0):
                parts.append(window.transformed(translate=(x + k, y + face * d / 2, 1.8 + 3.0 * f)))
    return parts
