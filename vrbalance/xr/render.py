"""Panda3D side of the headset: one offscreen buffer and camera per eye, and the mirror.

Each eye renders the 3-D scene graph (never ``render2d``/``aspect2d``, where
the operator overlay lives) into its own offscreen buffer of the swapchain's
size, through a camera placed at the eye's located pose with a
:class:`~panda3d.core.MatrixLens` holding that eye's asymmetric projection.
After Panda3D has drawn the frame, the eye textures are copied into the
swapchain images (:class:`~vrbalance.xr.gl.TextureCopier`).

The desktop mirror is a card showing the left eye (or both side by side) in
a display region of the main window placed *below* the window's 2-D region,
so the operator overlay is drawn on top of the mirror on the desktop only;
the main 3-D camera is switched off while mirroring, so the scene is not
drawn a third time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from vrbalance.xr.frames import (
    IDENTITY_ALIGNMENT,
    StageAlignment,
    core_to_panda_quat,
    xr_pose_to_core,
)
from vrbalance.xr.projection import Fov, set_lens_fov
from vrbalance.xr.session import EyeView

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

Mirror = Literal["left", "both", "none"]
MIRRORS: tuple[str, ...] = ("left", "both", "none")

#: Eye buffers render before the main window (lower sort draws first).
EYE_BUFFER_SORT = -50
#: The mirror's display region: above the main 3-D region (0), below the 2-D overlay (10).
MIRROR_REGION_SORT = 5


class StereoRig:
    """Eye buffers, eye cameras and the desktop mirror inside one ShowBase.

    Parameters
    ----------
    base : ShowBase
        The application's ShowBase (``WorldApp.base``), already open.
    scene : NodePath
        The 3-D graph the eyes see (``WorldApp.render``).
    sizes : sequence of (int, int)
        Swapchain size per eye, pixels.
    near_m, far_m : float
        Clip planes.
    mirror : {"left", "both", "none"}
        What the desktop window shows under the overlay.
    alignment : StageAlignment
        Where the plate sits in the tracking space (eyes are placed in the core frame).
    make_camera : callable, optional
        ``make_camera(buffer, lens, name) -> NodePath`` (``WorldApp.make_camera``);
        default: ``base.makeCamera``.
    """

    def __init__(
        self,
        base: Any,
        scene: Any,
        sizes: Sequence[tuple[int, int]],
        *,
        near_m: float,
        far_m: float,
        mirror: Mirror = "left",
        alignment: StageAlignment = IDENTITY_ALIGNMENT,
        make_camera: Any = None,
    ) -> None:
        from panda3d.core import FrameBufferProperties, MatrixLens, Texture

        if mirror not in MIRRORS:
            raise ValueError(f"mirror: expected one of {', '.join(MIRRORS)}, got {mirror!r}")
        self.base = base
        self.scene = scene
        self.sizes = tuple((int(w), int(h)) for w, h in sizes)
        self.near_m = near_m
        self.far_m = far_m
        self.alignment = alignment
        self.mirror = mirror
        self.tracking_root = scene.attach_new_node("xr-tracking-space")
        self.buffers: list[Any] = []
        self.textures: list[Any] = []
        self.cameras: list[Any] = []
        self.lenses: list[Any] = []
        self._fovs: list[Fov | None] = []
        self._texture_ids: list[int] = []
        self._mirror_region: Any = None
        self._mirror_root: Any = None
        self._main_cam_was_active: bool | None = None
        clear_color = base.win.get_clear_color()
        for i, (w, h) in enumerate(self.sizes):
            fbp = FrameBufferProperties()
            fbp.set_rgba_bits(8, 8, 8, 8)
            fbp.set_depth_bits(24)
            tex = Texture(f"xr-eye-{i}")
            buf = base.win.make_texture_buffer(f"xr-eye-{i}", w, h, tex, False, fbp)
            if buf is None:
                from vrbalance.xr.errors import XrError

                raise XrError(f"Panda3D could not create the {w}x{h} eye buffer {i}")
            buf.set_sort(EYE_BUFFER_SORT + i)
            buf.set_clear_color(clear_color)
            buf.set_clear_color_active(True)
            lens = MatrixLens()
            if make_camera is not None:
                cam = make_camera(buf, lens, f"xr-eye-{i}")
            else:
                cam = base.makeCamera(buf, lens=lens, camName=f"xr-eye-{i}", scene=scene)
            cam.reparent_to(self.tracking_root)
            self.buffers.append(buf)
            self.textures.append(tex)
            self.cameras.append(cam)
            self.lenses.append(lens)
            self._fovs.append(None)
        if mirror != "none":
            self._make_mirror()

    # -- per frame ------------------------------------------------------------------------

    def apply_views(self, views: Sequence[EyeView]) -> None:
        """Place each eye camera at its located pose with its own projection."""
        from panda3d.core import LQuaternionf

        for view in views:
            position, orientation = xr_pose_to_core(
                view.position_xr, view.orientation_xr, self.alignment
            )
            cam = self.cameras[view.index]
            cam.set_pos_quat(position, LQuaternionf(*core_to_panda_quat(orientation)))
            if view.fov != self._fovs[view.index]:
                set_lens_fov(self.lenses[view.index], view.fov, self.near_m, self.far_m)
                self._fovs[view.index] = view.fov

    def set_active(self, active: bool) -> None:
        """Render the eye buffers (True) or skip them (runtime not showing the app)."""
        for buf in self.buffers:
            buf.set_active(active)

    def texture_id(self, index: int) -> int:
        """The OpenGL name of eye ``index``'s texture (valid after the first render)."""
        if len(self._texture_ids) <= index or not self._texture_ids[index]:
            gsg = self.base.win.get_gsg()
            ids = []
            for tex in self.textures:
                ctx = tex.prepare_now(0, gsg.get_prepared_objects(), gsg)
                ids.append(int(ctx.get_native_id()) if ctx is not None else 0)
            self._texture_ids = ids
        return self._texture_ids[index]

    # -- mirror ---------------------------------------------------------------------------

    def _make_mirror(self) -> None:
        from panda3d.core import (
            Camera,
            CardMaker,
            NodePath,
            OrthographicLens,
        )

        base = self.base
        win = base.win
        root = NodePath("xr-mirror-2d")
        root.set_depth_test(False)
        root.set_depth_write(False)
        eyes = [0] if self.mirror == "left" else list(range(len(self.textures)))
        total_w = sum(self.sizes[i][0] for i in eyes)
        max_h = max(self.sizes[i][1] for i in eyes)
        x = -total_w / 2
        for i in eyes:
            w, h = self.sizes[i]
            card = CardMaker(f"xr-mirror-eye-{i}")
            card.set_frame(x, x + w, -h / 2, h / 2)
            x += w
            node = root.attach_new_node(card.generate())
            node.set_texture(self.textures[i])
        lens = OrthographicLens()
        win_w, win_h = max(1, win.get_x_size()), max(1, win.get_y_size())
        # Fit the eyes' pixels into the window, keeping their aspect (letterbox).
        scale = max(total_w / win_w, max_h / win_h)
        lens.set_film_size(win_w * scale, win_h * scale)
        lens.set_near_far(-10, 10)
        cam_node = Camera("xr-mirror-cam", lens)
        # CardMaker builds in the x-z plane facing -y; the camera looks along +y.
        cam = root.attach_new_node(cam_node)
        cam.set_y(-1.0)
        region = win.make_display_region()
        region.set_sort(MIRROR_REGION_SORT)
        region.set_camera(cam)
        self._mirror_region = region
        self._mirror_root = root
        # The main 3-D camera would draw the scene a third time under the mirror.
        cam_np = getattr(base, "cam", None)
        if cam_np is not None and not cam_np.is_empty():
            self._main_cam_was_active = bool(cam_np.node().is_active())
            cam_np.node().set_active(False)

    def destroy(self) -> None:
        """Remove buffers, cameras and mirror; give the main camera back. Idempotent."""
        if self._mirror_region is not None:
            self.base.win.remove_display_region(self._mirror_region)
            self._mirror_region = None
        if self._mirror_root is not None:
            self._mirror_root.remove_node()
            self._mirror_root = None
        if self._main_cam_was_active is not None:
            cam_np = getattr(self.base, "cam", None)
            if cam_np is not None and not cam_np.is_empty():
                cam_np.node().set_active(self._main_cam_was_active)
            self._main_cam_was_active = None
        engine = self.base.graphicsEngine
        for buf in self.buffers:
            engine.remove_window(buf)
        self.buffers.clear()
        for cam in self.cameras:
            cam.remove_node()
        self.cameras.clear()
        if not self.tracking_root.is_empty():
            self.tracking_root.remove_node()
        self._texture_ids = []


__all__ = ["EYE_BUFFER_SORT", "MIRRORS", "MIRROR_REGION_SORT", "Mirror", "StereoRig"]
