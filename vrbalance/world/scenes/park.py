"""The park path: a gravel path through a lawn with trees, benches and lamps.

The patient stands on the path at the origin, facing +y. Walking is simulated
by *optic flow*: the park (terrain, path, trees, furniture) is built periodic
in y with period :data:`TILE_M` and slides towards the patient at
``optic_flow_mps``, wrapping by one period, so it flows for ever without
seams. Distant hills stay put, as they would when walking.

Parameters (``scenes/park.toml``): ``optic_flow_mps``, ``path_width_m``,
``surround_*`` (sway, in :class:`SceneBase`), ``ground_unevenness_m``,
``dusk_fraction`` and ``fog_density_per_m`` (light, in :class:`SceneBase`;
lamps light up at dusk here), ``distractor_count`` (cyclists on the path,
dogs crossing it, birds circling overhead).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray
from panda3d.core import NodePath, TransparencyAttrib

from vrbalance.world import geometry as geo
from vrbalance.world import props
from vrbalance.world.scene import SceneBase, SceneContext

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

# --- tuning constants ----------------------------------------------------------
#: Period of the flowing park along y, m. Texture repeats must divide it.
TILE_M = 40.0
#: Copies of the tile laid out along y (from -1 tile): covers ~ -40 m .. 160 m.
N_TILES = 5
#: Half-width of the terrain strip that flows, m (beyond it, a static plain).
TERRAIN_HALF_WIDTH_M = 40.0
#: Ground mesh spacing along the path, m (bumps are >= 3 m long).
GROUND_STEP_M = 1.0
#: Texture repeat lengths, m (TILE_M must be a multiple of both).
GRASS_UV_M = 4.0
GRAVEL_UV_M = 2.0
#: Gentle rolling of the lawn away from the path, m (always there: it is a park).
LAWN_ROLL_M = 0.35
#: Path surface sits this far above the lawn to avoid z-fighting, m.
PATH_LIFT_M = 0.015
#: The path's own bumps are this fraction of the lawn's (paths are kept smoother).
PATH_BUMP_FRACTION = 0.6
#: Trees per tile, distance band from the path centre line, m.
TREES_PER_TILE = 16
TREE_BAND_M = (4.5, 34.0)
#: Distractor pool (the level shows the first ``distractor_count``).
MAX_DISTRACTORS = 12
CYCLIST_SPEED_MPS = (3.0, 5.0)
DOG_SPEED_MPS = (1.5, 3.0)
BIRD_SPEED_MPS = (4.0, 7.0)
#: Wing beat of the birds, Hz.
WING_BEAT_HZ = 3.0
#: Distractors fade out over this time when the scene is calmed, s.
CALM_FADE_S = 0.5
#: Dusk fraction above which the lamps are lit.
LAMPS_ON_DUSK = 0.35


class _Terrain:
    """Bumps as a sum of sinusoids, periodic in y with period TILE_M (seeded)."""

    def __init__(self, rng: np.random.Generator, n_waves: int = 7) -> None:
        self.kx = rng.uniform(0.25, 1.2, n_waves)  # rad/m across the path
        self.ky = 2 * math.pi * rng.integers(3, 14, n_waves) / TILE_M  # rad/m, periodic
        self.px = rng.uniform(0, 2 * math.pi, n_waves)
        self.py = rng.uniform(0, 2 * math.pi, n_waves)
        self.amp = rng.uniform(0.5, 1.0, n_waves) / math.sqrt(n_waves)
        # Slow rolling of the lawn (independent of the level).
        self.roll_kx = rng.uniform(0.08, 0.2, 3)
        self.roll_ky = 2 * math.pi * rng.integers(1, 3, 3) / TILE_M
        self.roll_p = rng.uniform(0, 2 * math.pi, (2, 3))

    def bumps(self, x: NDArray, y: NDArray) -> NDArray:
        """Unit-amplitude bumps (about -1..1) at (x, y)."""
        x = np.asarray(x, dtype=np.float64)[..., None]
        y = np.asarray(y, dtype=np.float64)[..., None]
        return np.sum(
            self.amp * np.sin(self.kx * x + self.px) * np.sin(self.ky * y + self.py), axis=-1
        )

    def height(self, x: NDArray, y: NDArray, unevenness_m: float, half_path_m: float) -> NDArray:
        """Ground height in m: level-dependent bumps plus rolling lawn away from the path."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        on_path = np.clip((np.abs(x) - half_path_m) / 1.0, 0.0, 1.0)  # 0 on path, 1 beyond 1 m
        bump_scale = unevenness_m * (PATH_BUMP_FRACTION + (1 - PATH_BUMP_FRACTION) * on_path)
        far = np.clip((np.abs(x) - half_path_m - 2.0) / 12.0, 0.0, 1.0)
        roll = np.sum(
            np.sin(self.roll_kx * x[..., None] + self.roll_p[0])
            * np.sin(self.roll_ky * y[..., None] + self.roll_p[1]),
            axis=-1,
        )
        return bump_scale * self.bumps(x, y) + LAWN_ROLL_M * far * far * roll


class _Distractor:
    """One moving thing: kind, node, a few parameters of its path."""

    __slots__ = ("base", "kind", "node", "phase", "speed_mps", "wings", "x_m", "y0_m")

    def __init__(
        self, kind: str, node: NodePath, x_m: float, y0_m: float, speed_mps: float, phase: float
    ) -> None:
        self.kind = kind
        self.node = node
        self.x_m = x_m
        self.y0_m = y0_m
        self.speed_mps = speed_mps
        self.phase = phase
        self.wings: list[NodePath] = []
        self.base = 0.0


class ParkScene(SceneBase):
    """The park path scene (see module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.flow_distance_m = 0.0
        self._flow: NodePath | None = None
        self._terrain: _Terrain | None = None
        self._ground: NodePath | None = None
        self._trees: NodePath | None = None
        self._tree_spots: list[tuple[float, float, geo.Mesh]] = []
        self._furniture: list[tuple[NodePath, float, float]] = []  # node, side, y
        self._lanterns: NodePath | None = None
        self._lantern_lights: list[NodePath] = []
        self._distractor_root: NodePath | None = None
        self._distractors: list[_Distractor] = []
        self._anim_t_s = 0.0
        self._fade = 0.0
        self._textures: dict[str, object] = {}

    # --- building -------------------------------------------------------------------
    def _build(self, ctx: SceneContext) -> None:
        if self.world is None:
            raise RuntimeError("ParkScene._build before SceneBase.build")
        rng = ctx.rng
        self._terrain = _Terrain(rng)
        self._textures = {
            "grass": ctx.texture("grass.png"),
            "gravel": ctx.texture("gravel.png"),
        }
        # Environment: a static plain and distant hills that do not flow (far
        # things barely move when walking), then the flowing strip on top.
        self._build_backdrop(rng)
        self._flow = self.world.attachNewNode("flow")
        # Trees: positions drawn once per tile (periodic), meshes merged per rebuild.
        for _ in range(TREES_PER_TILE):
            side = 1.0 if rng.random() < 0.5 else -1.0
            x = side * rng.uniform(*TREE_BAND_M)
            y = rng.uniform(0.0, TILE_M)
            height = rng.uniform(5.0, 11.0)
            mesh = (
                props.conifer_tree(rng, height)
                if rng.random() < 0.3
                else props.deciduous_tree(rng, height)
            )
            self._tree_spots.append((x, y, mesh.transformed(hpr_deg=(rng.uniform(0, 360), 0, 0))))
        # Furniture along the path edges: benches facing the path and lamps,
        # alternating sides, same spacing in every tile (periodic).
        bench_mesh = props.bench()
        post_mesh, glass_mesh = props.lamp_post()
        furniture_root = self._flow.attachNewNode("furniture")
        for tile in range(-1, N_TILES - 1):
            for y_in, side, kind in (
                (6.0, 1.0, "bench"),
                (16.0, -1.0, "lamp"),
                (26.0, -1.0, "bench"),
                (36.0, 1.0, "lamp"),
            ):
                y = tile * TILE_M + y_in
                if kind == "bench":
                    # Backrest away from the path: the bench faces the walker's path.
                    node = geo.attach_mesh(furniture_root, bench_mesh, "bench")
                    node.setH(90.0 if side > 0 else -90.0)
                    self._furniture.append((node, side * 1.0, y))
                else:
                    node = geo.attach_mesh(furniture_root, post_mesh, "lamp")
                    self._furniture.append((node, side * 0.6, y))
                    self._lantern_lights.append(node)
        # The lanterns are children of the posts so they move with them.
        for post in self._lantern_lights:
            lantern = geo.attach_mesh(post, glass_mesh, "lantern")
            lantern.setLightOff(1)  # self-lit: never darker than their own colour
        self._build_distractors(rng)

    def _build_backdrop(self, rng: np.random.Generator) -> None:
        if self.world is None:
            return
        plain = geo.heightfield(
            np.linspace(-400, 400, 9),
            np.linspace(-400, 400, 9),
            np.full((9, 9), -0.25),
            uv_scale_m=GRASS_UV_M,
        )
        node = geo.attach_mesh(self.world, plain, "plain")
        node.setTexture(self._textures["grass"])  # type: ignore[arg-type]
        node.setColorScale(0.85, 0.9, 0.85, 1)
        # A ring of low wooded hills far away: gives a horizon line to sway against.
        hills = []
        for i in range(36):
            a = 2 * math.pi * i / 36 + rng.uniform(-0.05, 0.05)
            r = rng.uniform(170, 230)
            h = rng.uniform(14, 30)
            colour = (0.16 + rng.uniform(-0.03, 0.03), 0.3 + rng.uniform(-0.05, 0.03), 0.16, 1)
            hills.append(
                geo.sphere(1.0, colour, rings=6, segments=10).transformed(
                    translate=(r * math.cos(a), r * math.sin(a), -h * 0.35),
                    scale=(rng.uniform(25, 45), rng.uniform(25, 45), h),
                )
            )
        geo.attach_mesh(self.world, geo.concat(hills), "hills")

    def _build_distractors(self, rng: np.random.Generator) -> None:
        if self.world is None:
            return
        self._distractor_root = self.world.attachNewNode("distractors")
        kinds = ["cyclist", "dog", "bird"]
        for i in range(MAX_DISTRACTORS):
            kind = kinds[i % 3]
            node = self._distractor_root.attachNewNode(f"{kind}-{i}")
            if kind == "cyclist":
                geo.attach_mesh(node, props.cyclist(rng), "body")
                # Cyclists use the path, alternating directions.
                speed = rng.uniform(*CYCLIST_SPEED_MPS) * (1 if i % 2 else -1)
                d = _Distractor(kind, node, 0.0, rng.uniform(5, 75), speed, 0.0)
            elif kind == "dog":
                geo.attach_mesh(node, props.dog(rng), "body")
                # Dogs run across the path, some way ahead of the patient.
                speed = rng.uniform(*DOG_SPEED_MPS) * (1 if rng.random() < 0.5 else -1)
                d = _Distractor(kind, node, rng.uniform(-20, 20), rng.uniform(6, 24), speed, 0.0)
            else:
                geo.attach_mesh(node, props.bird_body(), "body")
                speed = rng.uniform(*BIRD_SPEED_MPS)
                d = _Distractor(
                    kind, node, rng.uniform(6, 14), rng.uniform(8, 22), speed, rng.uniform(0, 6.3)
                )
                d.base = rng.uniform(4.0, 9.0)  # flight height, m
                for side in (1, -1):
                    wing = geo.attach_mesh(node, props.bird_wing(), "wing")
                    if side < 0:
                        wing.setH(180.0)
                    d.wings.append(wing)
            node.hide()
            self._distractors.append(d)

    def _rebuild_ground(self) -> None:
        """Rebuild lawn, path and kerbs for the current width and unevenness.

        One node per tile (lawn, path, trees) so that Panda3D culls the tiles
        behind the patient and beyond the view: llvmpipe is vertex-bound here.
        """
        if self._flow is None or self._terrain is None:
            return
        uneven = self.params.get("ground_unevenness_m", 0.0)
        half = self.params.get("path_width_m", 2.0) / 2
        if self._ground is not None:
            self._ground.removeNode()
        self._ground = self._flow.attachNewNode("ground")
        # Lawn: fine columns near the path (bumps and path edge), coarse far away.
        xs = np.unique(
            np.concatenate(
                [
                    np.linspace(-TERRAIN_HALF_WIDTH_M, -6, 10),
                    np.linspace(-6, 6, 25),
                    np.linspace(6, TERRAIN_HALF_WIDTH_M, 10),
                ]
            )
        )
        pxs = np.linspace(-half, half, max(3, int(half * 4) + 1))
        for tile in range(-1, N_TILES - 1):
            ys = np.linspace(tile * TILE_M, (tile + 1) * TILE_M, int(TILE_M / GROUND_STEP_M) + 1)
            gx, gy = np.meshgrid(xs, ys)
            z = self._terrain.height(gx, gy, uneven, half)
            # Lawn edges tuck under the static plain so the strip's border never shows.
            edge = np.clip((np.abs(gx) - (TERRAIN_HALF_WIDTH_M - 4)) / 4, 0, 1)
            z = z * (1 - edge) - 0.4 * edge
            lawn = geo.attach_mesh(
                self._ground, geo.heightfield(xs, ys, z, uv_scale_m=GRASS_UV_M), f"lawn-{tile}"
            )
            lawn.setTexture(self._textures["grass"])  # type: ignore[arg-type]
            # Path: its own strip, slightly above, sampling the same surface.
            pgx, pgy = np.meshgrid(pxs, ys)
            pz = self._terrain.height(pgx, pgy, uneven, half) + PATH_LIFT_M
            path = geo.attach_mesh(
                self._ground, geo.heightfield(pxs, ys, pz, uv_scale_m=GRAVEL_UV_M), f"path-{tile}"
            )
            path.setTexture(self._textures["gravel"])  # type: ignore[arg-type]
            # Kerb: darker edging strips along both sides make the width readable.
            kerbs = []
            for side in (-1.0, 1.0):
                kx = np.array([side * half - 0.06, side * half + 0.06])
                kgx, kgy = np.meshgrid(kx, ys)
                kz = self._terrain.height(kgx, kgy, uneven, half) + 2 * PATH_LIFT_M
                kerbs.append(geo.heightfield(kx, ys, kz, (0.45, 0.42, 0.38, 1)))
            geo.attach_mesh(self._ground, geo.concat(kerbs), f"kerbs-{tile}")
        self._rebuild_props(uneven, half)

    def _rebuild_props(self, uneven: float, half: float) -> None:
        """Re-seat trees and furniture on the (changed) ground."""
        if self._flow is None or self._terrain is None:
            return
        if self._trees is not None:
            self._trees.removeNode()
        self._trees = self._flow.attachNewNode("trees")
        for tile in range(-1, N_TILES - 1):
            meshes = []
            for x, y_in, mesh in self._tree_spots:
                y = tile * TILE_M + y_in
                z = float(self._terrain.height(np.array(x), np.array(y), uneven, half))
                meshes.append(mesh.transformed(translate=(x, y, z)))
            geo.attach_mesh(self._trees, geo.concat(meshes), f"trees-{tile}")
        for node, offset, y in self._furniture:
            side = math.copysign(1.0, offset)
            x = side * (half + abs(offset))
            z = float(self._terrain.height(np.array(x), np.array(y), uneven, half))
            node.setPos(x, y, z)

    # --- levels ---------------------------------------------------------------------
    def _apply(self, changed: Mapping[str, float]) -> None:
        if "path_width_m" in changed or "ground_unevenness_m" in changed:
            self._rebuild_ground()
        if "dusk_fraction" in changed:
            lit = self.params.get("dusk_fraction", 0.0) >= LAMPS_ON_DUSK
            for post in self._lantern_lights:
                lantern = post.find("lantern")
                if lit:
                    lantern.setColorScale(1.6, 1.45, 0.9, 1)
                else:
                    lantern.setColorScale(0.75, 0.75, 0.75, 1)
        if "distractor_count" in changed:
            n = int(self.params.get("distractor_count", 0))
            for i, d in enumerate(self._distractors):
                if i < n and not self.calmed:
                    d.node.show()
                else:
                    d.node.hide()
            # Place them at once so a screenshot right after a level change is right.
            self._place_distractors()

    # --- animation ------------------------------------------------------------------
    def _animate(self, t_s: float, dt_s: float, head_xy_m: tuple[float, float]) -> None:
        speed = self.params.get("optic_flow_mps", 0.0)
        self.flow_distance_m += speed * dt_s
        self._anim_t_s += dt_s
        if self._flow is not None:
            self._flow.setY(-(self.flow_distance_m % TILE_M))
        self._place_distractors()

    def _place_distractors(self) -> None:
        if self._terrain is None:
            return
        n = int(self.params.get("distractor_count", 0))
        t = self._anim_t_s
        flow = self.flow_distance_m
        uneven = self.params.get("ground_unevenness_m", 0.0)
        half = self.params.get("path_width_m", 2.0) / 2
        for d in self._distractors[:n]:
            if d.kind == "cyclist":
                # Riding along the path (keep to the right-hand side of travel).
                y = _wrap(d.y0_m + d.speed_mps * t - flow, -15.0, 85.0)
                x = math.copysign(max(0.35, half * 0.5), -d.speed_mps)
                heading = 0.0 if d.speed_mps > 0 else 180.0
                z = float(self._terrain.height(np.array(x), np.array(y + flow), uneven, half))
                d.node.setPosHpr(x, y, z, heading, 0, 0)
            elif d.kind == "dog":
                x = _wrap(d.x_m + d.speed_mps * t, -22.0, 22.0)
                y = _wrap(d.y0_m - flow, -10.0, 40.0)
                z = float(self._terrain.height(np.array(x), np.array(y + flow), uneven, half))
                bob = 0.04 * abs(math.sin(2 * math.pi * 2.5 * t + d.phase))
                d.node.setPosHpr(x, y, z + bob, -90.0 if d.speed_mps > 0 else 90.0, 0, 0)
            else:
                # Birds circle overhead ahead of the patient, beating their wings.
                a = d.phase + d.speed_mps * t / d.x_m
                x = d.x_m * math.cos(a)
                y = d.y0_m + d.x_m * 0.6 * math.sin(a)
                z = d.base + 0.5 * math.sin(0.7 * a)
                d.node.setPosHpr(x, y, z, math.degrees(a), 0, 0)
                flap = 35.0 * math.sin(2 * math.pi * WING_BEAT_HZ * t + d.phase)
                d.wings[0].setR(flap)
                d.wings[1].setR(-flap)

    def _on_calm(self) -> None:
        # Distractors stop where they are (no more _animate) and fade out.
        self._fade = 1.0
        if self._distractor_root is not None:
            self._distractor_root.setTransparency(TransparencyAttrib.M_alpha)

    def _calm_frame(self, dt_s: float) -> None:
        if self._distractor_root is None or self._fade <= 0.0:
            return
        self._fade = max(0.0, self._fade - dt_s / CALM_FADE_S)
        if self._fade == 0.0:
            self._distractor_root.hide()
            self._distractor_root.clearTransparency()
            self._distractor_root.clearColorScale()
        else:
            self._distractor_root.setAlphaScale(self._fade)

    def _on_resume(self) -> None:
        self._fade = 0.0
        if self._distractor_root is not None:
            self._distractor_root.clearTransparency()
            self._distractor_root.clearColorScale()
            self._distractor_root.show()
        n = int(self.params.get("distractor_count", 0))
        for i, d in enumerate(self._distractors):
            if i < n:
                d.node.show()


def _wrap(value: float, lo: float, hi: float) -> float:
    """Wrap ``value`` into [lo, hi)."""
    return lo + (value - lo) % (hi - lo)


__all__ = ["ParkScene"]
