"""Asymmetric OpenXR fields of view -> projection matrices for Panda3D.

A headset's eye frustum is off-axis: each view reports four half-angles
(``XrFovf``: ``angleLeft`` < 0 < ``angleRight``, ``angleDown`` < 0 < ``angleUp``
for a typical eye, in radians, measured from the view's forward axis). The
matrix below is the one the OpenXR SDK's ``XrMatrix4x4f_CreateProjectionFov``
builds for OpenGL (and pyopenxr's hello_xr port uses): OpenGL conventions,
eye space x right / y up / looking along -z, clip z in [-1, 1] with the near
plane at -1.

Panda3D's :class:`~panda3d.core.MatrixLens` wants the same clip space ("left-
handed Y-up", X and Y in [-1, 1] for the default film size 2, Z -1 at near
and +1 at far) but *from the lens's own frame*, which in Panda3D's default
coordinate system looks along +y with z up, and with Panda3D's row-vector
convention (``p_clip = p_lens * M``). So the lens matrix is
``(P_gl @ A)^T`` with ``A: (x, y, z)_panda -> (x, z, -y)_gl``.

Only numpy here; :func:`make_lens` and :func:`set_lens_fov` import Panda3D
lazily.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from panda3d.core import MatrixLens

#: The largest half-angle accepted, in radians (just under 90 degrees: tan() blows up).
MAX_HALF_ANGLE_RAD = math.radians(89.0)

#: Panda3D lens frame (x right, y forward, z up) -> OpenGL eye frame (x right, y up, z back).
PANDA_LENS_TO_GL_EYE = np.array(
    [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, -1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


@dataclass(frozen=True, slots=True)
class Fov:
    """An OpenXR view's field of view (``XrFovf``), radians from the forward axis.

    Attributes
    ----------
    angle_left_rad, angle_right_rad : float
        Horizontal edges; left < right (left is usually negative).
    angle_up_rad, angle_down_rad : float
        Vertical edges; down < up (down is usually negative).
    """

    angle_left_rad: float
    angle_right_rad: float
    angle_up_rad: float
    angle_down_rad: float

    def __post_init__(self) -> None:
        angles = (self.angle_left_rad, self.angle_right_rad, self.angle_up_rad, self.angle_down_rad)
        if not all(math.isfinite(a) and abs(a) <= MAX_HALF_ANGLE_RAD for a in angles):
            raise ValueError(
                "Fov angles must be finite and within +/-89 deg of forward, got "
                f"left={angles[0]!r}, right={angles[1]!r}, up={angles[2]!r}, down={angles[3]!r} rad"
            )
        if not self.angle_left_rad < self.angle_right_rad:
            raise ValueError(
                f"Fov: expected angle_left_rad < angle_right_rad, got {self.angle_left_rad!r} "
                f">= {self.angle_right_rad!r}"
            )
        if not self.angle_down_rad < self.angle_up_rad:
            raise ValueError(
                f"Fov: expected angle_down_rad < angle_up_rad, got {self.angle_down_rad!r} "
                f">= {self.angle_up_rad!r}"
            )

    @classmethod
    def from_xr(cls, fov: object) -> Fov:
        """Build from a pyopenxr ``xr.Fovf`` (attributes ``angle_left`` ... ``angle_down``)."""
        return cls(
            float(fov.angle_left),  # type: ignore[attr-defined]
            float(fov.angle_right),  # type: ignore[attr-defined]
            float(fov.angle_up),  # type: ignore[attr-defined]
            float(fov.angle_down),  # type: ignore[attr-defined]
        )

    @classmethod
    def symmetric(cls, horizontal_rad: float, vertical_rad: float) -> Fov:
        """A centred frustum with full angles ``horizontal_rad`` x ``vertical_rad``."""
        return cls(-horizontal_rad / 2, horizontal_rad / 2, vertical_rad / 2, -vertical_rad / 2)


def _check_clip(near_m: float, far_m: float) -> None:
    if not (math.isfinite(near_m) and math.isfinite(far_m) and 0.0 < near_m < far_m):
        raise ValueError(f"expected 0 < near_m < far_m (finite, metres), got {near_m!r}, {far_m!r}")


def gl_projection(fov: Fov, near_m: float, far_m: float) -> np.ndarray:
    """The OpenGL projection for an asymmetric FOV (``XrMatrix4x4f_CreateProjectionFov``).

    Parameters
    ----------
    fov : Fov
        The view's four half-angles.
    near_m, far_m : float
        Clip distances in metres, ``0 < near_m < far_m``.

    Returns
    -------
    ndarray, shape (4, 4)
        Column-vector convention (``clip = P @ eye``), eye space x right, y up,
        -z forward; clip z = -w at the near plane and +w at the far plane.
    """
    _check_clip(near_m, far_m)
    tan_left = math.tan(fov.angle_left_rad)
    tan_right = math.tan(fov.angle_right_rad)
    tan_up = math.tan(fov.angle_up_rad)
    tan_down = math.tan(fov.angle_down_rad)
    width = tan_right - tan_left
    height = tan_up - tan_down
    p = np.zeros((4, 4))
    p[0, 0] = 2.0 / width
    p[0, 2] = (tan_right + tan_left) / width
    p[1, 1] = 2.0 / height
    p[1, 2] = (tan_up + tan_down) / height
    p[2, 2] = -(far_m + near_m) / (far_m - near_m)
    p[2, 3] = -2.0 * far_m * near_m / (far_m - near_m)
    p[3, 2] = -1.0
    return p


def panda_lens_matrix(fov: Fov, near_m: float, far_m: float) -> np.ndarray:
    """The matrix for ``MatrixLens.set_user_mat``: Panda3D lens frame, row vectors.

    Returns
    -------
    ndarray, shape (4, 4)
        ``M`` with ``[x, y, z, 1] @ M`` = OpenGL clip coordinates of the lens-frame
        point (x right, y forward, z up, metres).
    """
    return (gl_projection(fov, near_m, far_m) @ PANDA_LENS_TO_GL_EYE).T


def make_lens(fov: Fov, near_m: float, far_m: float) -> MatrixLens:
    """A Panda3D :class:`~panda3d.core.MatrixLens` for ``fov`` (imports Panda3D)."""
    from panda3d.core import MatrixLens

    lens = MatrixLens()
    set_lens_fov(lens, fov, near_m, far_m)
    return lens


def set_lens_fov(lens: MatrixLens, fov: Fov, near_m: float, far_m: float) -> None:
    """Load ``fov``'s projection into an existing ``MatrixLens`` (per frame, cheap)."""
    from panda3d.core import LMatrix4f

    m = panda_lens_matrix(fov, near_m, far_m)
    lens.set_user_mat(LMatrix4f(*m.ravel().tolist()))


__all__ = [
    "MAX_HALF_ANGLE_RAD",
    "PANDA_LENS_TO_GL_EYE",
    "Fov",
    "gl_projection",
    "make_lens",
    "panda_lens_matrix",
    "set_lens_fov",
]
