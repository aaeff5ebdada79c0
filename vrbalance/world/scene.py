"""The scene interface: what every world (park, stairs, crowd) provides.

A scene is data (``scenes/<name>.toml``, see :mod:`vrbalance.config.scenes`)
plus one builder class registered in :data:`SCENE_BUILDERS`. The app calls,
in this order::

    scene = scene_class(name)()
    scene.build(ctx)                    # once: geometry, lights, layout from ctx.rng
    scene.apply_level(values)           # any time: live parameter change, no rebuild
    scene.update(t_s, dt_s, head_xy_m)  # every frame: animation only
    scene.calm() / scene.resume()       # safety: freeze + level horizon, and back
    scene.destroy()

:class:`SceneBase` implements the parts every scene shares (sky dome, sun and
ambient light, fog and dusk, the swaying visual surround, calm/resume, timing
of the Python work per frame) so a concrete scene writes only ``_build``,
``_apply`` and ``_animate``.

Comfort rules enforced here rather than in each scene: the camera is never
touched by a scene (the head pose alone drives it); the only deliberate visual
perturbation is a rotation of the *surround* node about the eye point, bounded
by the level's amplitude *and* its peak angular rate; :meth:`SceneBase.calm`
zeroes it on the next frame and stops all motion.
"""

from __future__ import annotations

import importlib
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import numpy as np
from panda3d.core import (
    AmbientLight,
    DirectionalLight,
    Fog,
    NodePath,
    Texture,
)

from vrbalance.config.scenes import SceneDef
from vrbalance.errors import ConfigError
from vrbalance.world import geometry as geo

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

# --- tuning constants -------------------------------------------------------
#: Standing eye height used as the sway pivot, m (the head pose sets the camera).
EYE_HEIGHT_M = 1.6
#: Fastest growth of a sway amplitude (new scene, resume, level up), deg/s; it
#: shrinks twice as fast. Growth also stays within the level's rate cap.
AMPLITUDE_SLEW_DPS = 1.0
#: Sky dome radius, m; the camera far plane must exceed it.
SKY_RADIUS_M = 450.0
#: Sky and light colours at noon and at dusk (linear RGB).
NOON_ZENITH = (0.22, 0.42, 0.85)
NOON_HORIZON = (0.72, 0.84, 0.97)
DUSK_ZENITH = (0.05, 0.06, 0.20)
DUSK_HORIZON = (0.85, 0.45, 0.25)
NOON_SUN = (1.0, 0.97, 0.9)
DUSK_SUN = (0.55, 0.28, 0.15)
NOON_AMBIENT = (0.45, 0.47, 0.52)
DUSK_AMBIENT = (0.12, 0.11, 0.16)

#: Registry: scene builder name -> "module:Class". Imported lazily so that a
#: scene whose module is not written yet (or fails to import) breaks only
#: itself, never ``import vrbalance.world.scene``.
SCENE_BUILDERS: Mapping[str, str] = MappingProxyType(
    {
        "park": "vrbalance.world.scenes.park:ParkScene",
        "stairs": "vrbalance.world.scenes.stairs:StairsScene",
        "crowd": "vrbalance.world.scenes.crowd:CrowdScene",
        "tandem_walk": "vrbalance.world.scenes.exercises:TandemWalkScene",
        "leg_raises": "vrbalance.world.scenes.exercises:LegRaisesScene",
        "tai_chi": "vrbalance.world.scenes.exercises:TaiChiScene",
    }
)


@dataclass(frozen=True, slots=True)
class SceneContext:
    """What a builder gets to build with.

    Attributes
    ----------
    parent : NodePath
        Node to attach the scene under (the app's scene root; the eye buffers
        of a headset render exactly this subtree).
    loader : direct.showbase.Loader.Loader
        The app's loader (textures, models).
    rng : numpy.random.Generator
        Seeded from the scene file's ``seed``: layouts are reproducible.
    models_dir : pathlib.Path
        Shipped ``models/`` folder (``data_dir("models")``).
    scene_def : SceneDef
        The validated scene definition.
    anisotropy : int
        Anisotropic filtering degree for ground textures: 4 on a GPU, 1 on a
        software rasteriser (Mesa llvmpipe filters anisotropically at a cost of
        seconds per frame on tilted ground).
    """

    parent: NodePath
    loader: object
    rng: np.random.Generator
    models_dir: Path
    scene_def: SceneDef
    anisotropy: int = 1

    def texture(self, filename: str, *, repeat: bool = True) -> Texture:
        """Load ``models/textures/<filename>`` with mipmaps and (optionally) wrap-around."""
        path = self.models_dir / "textures" / filename
        if not path.is_file():
            raise FileNotFoundError(f"texture {filename!r} not found at {path}")
        tex = self.loader.loadTexture(str(path))  # type: ignore[attr-defined]
        tex.setMinfilter(Texture.FT_linear_mipmap_linear)
        tex.setMagfilter(Texture.FT_linear)
        tex.setAnisotropicDegree(self.anisotropy)
        if repeat:
            tex.setWrapU(Texture.WM_repeat)
            tex.setWrapV(Texture.WM_repeat)
        return tex


@runtime_checkable
class SceneBuilder(Protocol):
    """The contract between the app (and the headset renderer) and a scene."""

    name: str

    def build(self, ctx: SceneContext) -> None:
        """Create all nodes under ``ctx.parent``; called once."""

    def apply_level(self, params: Mapping[str, float]) -> None:
        """Set (a subset of) the scene's parameters live, without rebuilding everything."""

    def update(self, t_s: float, dt_s: float, head_xy_m: tuple[float, float]) -> None:
        """Advance animation by ``dt_s`` (render time: visuals only, never balance maths)."""

    def calm(self) -> None:
        """Freeze every perturbation and level the horizon from the next frame on."""

    def resume(self) -> None:
        """Undo :meth:`calm`; perturbations ramp back in."""

    def destroy(self) -> None:
        """Remove every node; idempotent."""


def scene_class(builder: str) -> type[SceneBase]:
    """Import and return the builder class registered as ``builder``.

    Raises
    ------
    ConfigError
        If the name is not registered or its module cannot be imported.
    """
    target = SCENE_BUILDERS.get(builder)
    if target is None:
        raise ConfigError(
            f"unknown scene builder {builder!r}; known: {', '.join(sorted(SCENE_BUILDERS))}"
        )
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, cls_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"scene builder {builder!r} ({target}) is not available: {exc}") from exc


def _lerp(a: tuple[float, ...], b: tuple[float, ...], f: float) -> tuple[float, ...]:
    return tuple(x + (y - x) * f for x, y in zip(a, b, strict=True))


def sway_amplitude_deg(amplitude_deg: float, freq_hz: float, max_rate_dps: float | None) -> float:
    """Amplitude actually used: ``amplitude_deg`` capped so the peak rate stays <= ``max_rate_dps``.

    A sinusoid ``A sin(2 pi f t)`` peaks at angular rate ``2 pi f A``; the cap
    keeps a high frequency from producing a fast (sickening) rotation.
    """
    if amplitude_deg <= 0 or freq_hz <= 0:
        return 0.0
    if max_rate_dps is None:
        return amplitude_deg
    return min(amplitude_deg, max_rate_dps / (2 * math.pi * freq_hz))


class SceneBase(ABC):
    """Shared scene machinery: environment, surround sway, calm, timing.

    Standard parameters it reacts to when a scene declares them:
    ``surround_roll_deg``, ``surround_pitch_deg``, ``surround_freq_hz``,
    ``surround_rate_dps`` (sway of the visual surround about the eye point),
    ``dusk_fraction`` (0 noon .. 1 dusk: sky, sun, ambient) and
    ``fog_density_per_m`` (exponential fog).

    Node layout::

        root ("scene-<name>")
          sky        (not swayed: a sky has no visible features to sway)
          surround   (pivot at eye height; the sway rotation lives here)
            world    (offset back down: the scene's geometry goes under it)
    """

    #: Gaze pitch (deg, negative = down) for a still screenshot/demo head, so the
    #: interesting part is in view (stairs look down the flight). A constant.
    default_gaze_pitch_deg: float = 0.0

    def __init__(self) -> None:
        self.name = type(self).__name__.removesuffix("Scene").lower()
        self.params: dict[str, float] = {}
        self.calmed = False
        self.root: NodePath | None = None
        self.surround: NodePath | None = None
        self.world: NodePath | None = None
        self._sky: NodePath | None = None
        self._sun: NodePath | None = None
        self._ambient: NodePath | None = None
        self._fog: Fog | None = None
        self._ctx: SceneContext | None = None
        self._sway_phase_rad = 0.0
        # Applied (pitch, roll) amplitudes: they start at 0 and slew towards the
        # level's, so a new scene, a resume or a level change never jolts.
        self._amp_deg = [0.0, 0.0]
        #: Python time spent in the last :meth:`update`, s (benchmarks read it).
        self.last_update_s = 0.0

    # --- contract -------------------------------------------------------------
    def build(self, ctx: SceneContext) -> None:
        """Build environment and scene content under ``ctx.parent``."""
        self._ctx = ctx
        self.name = ctx.scene_def.name
        self.root = ctx.parent.attachNewNode(f"scene-{self.name}")
        self.surround = self.root.attachNewNode("surround")
        self.surround.setPos(0.0, 0.0, EYE_HEIGHT_M)
        self.world = self.surround.attachNewNode("world")
        self.world.setPos(0.0, 0.0, -EYE_HEIGHT_M)
        self._build_environment()
        self._build(ctx)
        defaults = ctx.scene_def.levels[0].values
        self.apply_level(defaults)

    def apply_level(self, params: Mapping[str, float]) -> None:
        """Validate against the scene definition, then apply what changed."""
        if self._ctx is None:
            raise RuntimeError("apply_level() before build()")
        values = self._ctx.scene_def.check_values(params, f"scene {self.name!r} level values")
        changed = {k: v for k, v in values.items() if self.params.get(k) != v}
        self.params.update(values)
        if changed:
            self._apply_environment(changed)
            self._apply(changed)

    def update(self, t_s: float, dt_s: float, head_xy_m: tuple[float, float]) -> None:
        """Per-frame animation; measures its own Python time in :attr:`last_update_s`."""
        start = time.perf_counter()
        if self.surround is not None:
            if self.calmed:
                self.surround.setHpr(0.0, 0.0, 0.0)
                self._calm_frame(dt_s)
            else:
                self._advance_sway(dt_s)
                self.surround.setHpr(0.0, *self.sway_pitch_roll_deg())
                self._animate(t_s, dt_s, head_xy_m)
        self.last_update_s = time.perf_counter() - start

    def calm(self) -> None:
        """Freeze perturbations and level the horizon (effective immediately)."""
        if not self.calmed:
            log.info("scene %s: calm", self.name)
        self.calmed = True
        self._sway_phase_rad = 0.0
        self._amp_deg = [0.0, 0.0]
        if self.surround is not None:
            self.surround.setHpr(0.0, 0.0, 0.0)
        self._on_calm()

    def resume(self) -> None:
        """Leave calm; sway restarts from zero phase and amplitude and slews back in."""
        if self.calmed:
            log.info("scene %s: resume", self.name)
        self.calmed = False
        self._sway_phase_rad = 0.0
        self._amp_deg = [0.0, 0.0]
        self._on_resume()

    def destroy(self) -> None:
        """Remove all nodes (idempotent)."""
        if self.root is not None:
            self.root.clearFog()
            self.root.clearLight()
            self.root.removeNode()
        self.root = self.surround = self.world = None

    # --- shared behaviour -------------------------------------------------------
    def _advance_sway(self, dt_s: float) -> None:
        """Advance the sway's phase and slew its amplitudes towards the level's.

        The phase is integrated (not ``2 pi f t``), so a frequency change at a
        level change does not make the surround jump; amplitudes move towards
        their targets at no more than :data:`AMPLITUDE_SLEW_DPS` for the same reason.
        """
        self._sway_phase_rad = (
            self._sway_phase_rad + 2 * math.pi * self.params.get("surround_freq_hz", 0.0) * dt_s
        ) % (2 * math.pi * 100.0)  # 100 whole periods: keeps the float small, no jump
        f = self.params.get("surround_freq_hz", 0.0)
        rate = self.params.get("surround_rate_dps")
        targets = (
            sway_amplitude_deg(self.params.get("surround_pitch_deg", 0.0), f, rate),
            sway_amplitude_deg(self.params.get("surround_roll_deg", 0.0), f, rate),
        )
        for i, target in enumerate(targets):
            current = self._amp_deg[i]
            if target > current:
                # Grow only within the rate headroom, so amplitude growth plus
                # oscillation never exceed the level's peak-rate cap.
                headroom = math.inf if rate is None else rate - 2 * math.pi * f * current
                slew = max(0.0, min(AMPLITUDE_SLEW_DPS, headroom))
                self._amp_deg[i] = min(target, current + slew * dt_s)
            else:
                self._amp_deg[i] = max(target, current - 2 * AMPLITUDE_SLEW_DPS * dt_s)

    def sway_pitch_roll_deg(self) -> tuple[float, float]:
        """Current surround (pitch, roll) in degrees, bounded by amplitude and peak rate."""
        pitch, roll = self._amp_deg
        phase = self._sway_phase_rad
        # Pitch runs at 0.83 of the roll frequency, so the surround does not
        # trace one fixed, learnable ellipse.
        return (pitch * math.sin(0.83 * phase), roll * math.sin(phase))

    def _build_environment(self) -> None:
        if self.root is None or self.world is None:
            raise RuntimeError("_build_environment() before the scene's root nodes exist")
        # Sky: vertex-coloured dome, drawn first, never fogged or lit, no depth writes,
        # so anything at any distance draws over it.
        self._sky = self.root.attachNewNode("sky")
        self._sky.setBin("background", 0)
        self._sky.setDepthWrite(False)
        self._sky.setLightOff(1)
        self._sky.setFogOff(1)
        self._sky_mesh = geo.sky_dome(SKY_RADIUS_M, (*NOON_ZENITH, 1), (*NOON_HORIZON, 1))
        self._sky_geom = geo.attach_mesh(self._sky, self._sky_mesh, "sky-dome")
        # Lights: one sun (directional), one ambient fill; on the world node so
        # the sky and the operator overlay stay unlit.
        sun = DirectionalLight("sun")
        self._sun = self.root.attachNewNode(sun)
        self._sun.setHpr(35.0, -50.0, 0.0)
        self._ambient = self.root.attachNewNode(AmbientLight("ambient"))
        self.world.setLight(self._sun)
        self.world.setLight(self._ambient)
        self._fog = Fog("scene-fog")
        self._fog.setExpDensity(0.0)
        self.world.setFog(self._fog)

    def _apply_environment(self, changed: Mapping[str, float]) -> None:
        if "dusk_fraction" in changed or "fog_density_per_m" in changed:
            dusk = self.params.get("dusk_fraction", 0.0)
            zenith = _lerp(NOON_ZENITH, DUSK_ZENITH, dusk)
            horizon = _lerp(NOON_HORIZON, DUSK_HORIZON, dusk)
            density = self.params.get("fog_density_per_m", 0.0)
            # Fog colour is the horizon colour dimmed at dusk, so distant things melt
            # into the sky instead of into a grey wall.
            fog_rgb = _lerp(horizon, (0.25, 0.22, 0.28), dusk * 0.6)
            # Heavier fog also washes out the sky near the horizon.
            haze = min(1.0, density * 25.0)
            horizon_hazed = _lerp(horizon, fog_rgb, haze)
            zenith_hazed = _lerp(zenith, fog_rgb, haze * 0.5)
            mesh = geo.sky_dome(SKY_RADIUS_M, (*zenith_hazed, 1), (*horizon_hazed, 1))
            if self._sky_geom is not None:
                self._sky_geom.removeNode()
            self._sky_geom = geo.attach_mesh(self._sky, mesh, "sky-dome")
            if self._fog is not None:
                self._fog.setColor(*fog_rgb)
                self._fog.setExpDensity(density)
            if self._sun is not None and self._ambient is not None:
                self._sun.node().setColor((*_lerp(NOON_SUN, DUSK_SUN, dusk), 1))
                self._ambient.node().setColor((*_lerp(NOON_AMBIENT, DUSK_AMBIENT, dusk), 1))
                # The sun sinks towards the horizon at dusk (longer, warmer light).
                self._sun.setHpr(35.0, -50.0 + 42.0 * dusk, 0.0)
            self.sky_horizon_rgb = horizon_hazed

    # --- hooks for concrete scenes ----------------------------------------------
    @abstractmethod
    def _build(self, ctx: SceneContext) -> None:
        """Create the scene's geometry under :attr:`world`."""

    @abstractmethod
    def _apply(self, changed: Mapping[str, float]) -> None:
        """React to changed parameters (only those that changed are passed)."""

    def _animate(self, t_s: float, dt_s: float, head_xy_m: tuple[float, float]) -> None:  # noqa: B027
        """Per-frame motion (optic flow, distractors). Not called while calm."""

    def _calm_frame(self, dt_s: float) -> None:  # noqa: B027
        """Per frame while calm: nothing may move; fades (alpha only) are allowed."""

    def _on_calm(self) -> None:  # noqa: B027
        """Extra freezing beyond the surround (e.g. hide fast distractors)."""

    def _on_resume(self) -> None:  # noqa: B027
        """Undo :meth:`_on_calm`."""
