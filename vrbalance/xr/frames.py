"""The one place where OpenXR's axes meet the core's and Panda3D's.

Three frames meet at the headset:

* **OpenXR** (every reference space, and every view's local frame):
  x right, y up, z backwards (the viewer looks along -z), metres.
* **Core** (the balance core, :class:`~vrbalance.samples.HeadPose`):
  x patient's right, y anterior, z up, metres, origin at the centre of the
  feet/plate on the floor.
* **Panda3D** (``CS_zup_right``, the default): x right, y forward, z up. Its
  axes are the core's, so the only differences are the quaternion's storage
  order (Panda3D stores ``(w, x, y, z)``; vrbalance stores ``(x, y, z, w)``)
  and, for cameras, that a Panda3D camera looks along its local +y.

The change of axes from OpenXR to core is the proper rotation of +90 degrees
about x, ``C: (x, y, z) -> (x, -z, y)``; an OpenXR forward vector ``(0, 0, -1)``
becomes ``(0, 1, 0)``, OpenXR up ``(0, 1, 0)`` becomes ``(0, 0, 1)``. A
rotation ``R`` expressed in OpenXR axes is ``C R C^-1`` in core axes, and
because conjugating a quaternion by a rotation rotates its vector part, the
quaternion's ``(x, y, z)`` part maps exactly like a position. Both maps are
signed permutations, so they are exact in floating point and round-trip
bit-for-bit.

The same conjugation maps an OpenXR *view-local* frame (look along -z, y up)
onto a Panda3D camera's local frame (look along +y, z up): a view pose
converted with :func:`xr_pose_to_core` can be given to a Panda3D camera as is.

:class:`StageAlignment` places the core origin (the plate centre on the floor)
inside the tracking space, so head poses are reported relative to the plate.

Nothing here imports pyopenxr or Panda3D: poses are plain tuples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Vec3 = tuple[float, float, float]
QuatXYZW = tuple[float, float, float, float]
QuatWXYZ = tuple[float, float, float, float]

#: The OpenXR -> core change of axes as a unit quaternion (x, y, z, w): +90 deg about x.
XR_TO_CORE_QUAT: QuatXYZW = (math.sqrt(0.5), 0.0, 0.0, math.sqrt(0.5))


def xr_to_core_position(p_xr: Vec3) -> Vec3:
    """OpenXR (x right, y up, z back) -> core (x right, y anterior, z up); metres.

    Parameters
    ----------
    p_xr : tuple of 3 float
        A position or direction in an OpenXR space.

    Returns
    -------
    tuple of 3 float
        The same point in core axes: ``(x, -z, y)``.
    """
    x, y, z = p_xr
    return (float(x), -float(z), float(y))


def core_to_xr_position(p_core: Vec3) -> Vec3:
    """Core (x right, y anterior, z up) -> OpenXR (x right, y up, z back); inverse of
    :func:`xr_to_core_position`."""
    x, y, z = p_core
    return (float(x), float(z), -float(y))


def xr_to_core_quat(q_xr: QuatXYZW) -> QuatXYZW:
    """Re-express an OpenXR rotation (quaternion ``(x, y, z, w)``) in core axes.

    ``q_core = C q_xr C^-1`` with ``C`` = :data:`XR_TO_CORE_QUAT`; the vector part
    maps like a position and ``w`` is unchanged. Applied to a view orientation
    (view-local axes -> OpenXR space) it gives the rotation from head-local axes
    (x right, y forward, z up) to core axes, as :class:`~vrbalance.samples.HeadPose`
    wants.
    """
    x, y, z, w = q_xr
    return (float(x), -float(z), float(y), float(w))


def core_to_xr_quat(q_core: QuatXYZW) -> QuatXYZW:
    """Inverse of :func:`xr_to_core_quat`."""
    x, y, z, w = q_core
    return (float(x), float(z), -float(y), float(w))


def core_to_panda_quat(q_core: QuatXYZW) -> QuatWXYZ:
    """Core quaternion ``(x, y, z, w)`` -> Panda3D's storage order ``(w, x, y, z)``.

    The axes are the same, so only the order changes: pass the result to
    ``LQuaternionf(*q)`` / ``NodePath.set_quat``.
    """
    x, y, z, w = q_core
    return (float(w), float(x), float(y), float(z))


def panda_to_core_quat(q_panda: QuatWXYZ) -> QuatXYZW:
    """Panda3D ``(w, x, y, z)`` -> core ``(x, y, z, w)``; inverse of :func:`core_to_panda_quat`."""
    w, x, y, z = q_panda
    return (float(x), float(y), float(z), float(w))


def quat_multiply(a: QuatXYZW, b: QuatXYZW) -> QuatXYZW:
    """Hamilton product ``a * b`` of ``(x, y, z, w)`` quaternions (apply ``b``, then ``a``)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    )


def quat_conjugate(q: QuatXYZW) -> QuatXYZW:
    """The inverse of a unit quaternion ``(x, y, z, w)``."""
    x, y, z, w = q
    return (-x, -y, -z, w)


def quat_rotate(q: QuatXYZW, v: Vec3) -> Vec3:
    """Rotate vector ``v`` by unit quaternion ``q`` (``(x, y, z, w)``), right-handed."""
    qx, qy, qz, qw = q
    vx, vy, vz = v
    # t = 2 * cross(q.xyz, v); v' = v + w t + cross(q.xyz, t)
    tx = 2.0 * (qy * vz - qz * vy)
    ty = 2.0 * (qz * vx - qx * vz)
    tz = 2.0 * (qx * vy - qy * vx)
    return (
        vx + qw * tx + (qy * tz - qz * ty),
        vy + qw * ty + (qz * tx - qx * tz),
        vz + qw * tz + (qx * ty - qy * tx),
    )


@dataclass(frozen=True, slots=True)
class StageAlignment:
    """Where the core origin (plate centre on the floor) sits in the tracking space.

    Attributes
    ----------
    origin_m : tuple of 3 float
        The core origin's position in the tracking space, already in core axes
        (x right, y anterior, z up), metres. For the STAGE space (origin on the
        floor at the centre of the play area) this is the plate's offset from
        that centre; ``z`` stays 0 when the floor is the floor.
    yaw_rad : float
        Rotation of the core frame about the vertical, counter-clockwise seen
        from above, in radians: the patient's anterior direction is the
        tracking space's forward turned by ``yaw_rad``.
    """

    origin_m: Vec3 = (0.0, 0.0, 0.0)
    yaw_rad: float = 0.0

    def __post_init__(self) -> None:
        values = (*self.origin_m, self.yaw_rad)
        if len(self.origin_m) != 3 or not all(math.isfinite(v) for v in values):
            raise ValueError(
                "StageAlignment needs a finite origin_m (3 values) and yaw_rad, "
                f"got origin_m={self.origin_m!r}, yaw_rad={self.yaw_rad!r}"
            )

    @property
    def _inverse_yaw_quat(self) -> QuatXYZW:
        half = -0.5 * self.yaw_rad
        return (0.0, 0.0, math.sin(half), math.cos(half))

    def tracking_to_core(
        self, position_m: Vec3, orientation_xyzw: QuatXYZW
    ) -> tuple[Vec3, QuatXYZW]:
        """Map a pose given in core *axes* relative to the tracking origin onto the core frame.

        ``p_core = Rz(-yaw) (p - origin)``, ``q_core = Rz(-yaw) q``.
        """
        ox, oy, oz = self.origin_m
        rel = (position_m[0] - ox, position_m[1] - oy, position_m[2] - oz)
        if self.yaw_rad == 0.0:
            return rel, orientation_xyzw
        r = self._inverse_yaw_quat
        return quat_rotate(r, rel), quat_multiply(r, orientation_xyzw)


#: The identity alignment: tracking-space origin and axes are the core's.
IDENTITY_ALIGNMENT = StageAlignment()


def xr_pose_to_core(
    position_xr: Vec3,
    orientation_xr: QuatXYZW,
    alignment: StageAlignment = IDENTITY_ALIGNMENT,
) -> tuple[Vec3, QuatXYZW]:
    """An OpenXR pose in a reference space -> the same pose in the core frame.

    Parameters
    ----------
    position_xr : tuple of 3 float
        ``XrPosef.position`` (x, y, z), metres.
    orientation_xr : tuple of 4 float
        ``XrPosef.orientation`` as ``(x, y, z, w)``.
    alignment : StageAlignment
        Where the plate is in the tracking space.

    Returns
    -------
    position_m, orientation_xyzw
        Core-frame position (m) and the rotation from head-local (x right,
        y forward, z up) axes to core axes. A Panda3D camera placed with them
        (see :func:`core_to_panda_quat`) sees what the OpenXR view sees.
    """
    return alignment.tracking_to_core(
        xr_to_core_position(position_xr), xr_to_core_quat(orientation_xr)
    )


__all__ = [
    "IDENTITY_ALIGNMENT",
    "XR_TO_CORE_QUAT",
    "StageAlignment",
    "core_to_panda_quat",
    "core_to_xr_position",
    "core_to_xr_quat",
    "panda_to_core_quat",
    "quat_conjugate",
    "quat_multiply",
    "quat_rotate",
    "xr_pose_to_core",
    "xr_to_core_position",
    "xr_to_core_quat",
]
