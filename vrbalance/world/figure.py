"""An articulated person built by code: the tai chi coach and the tandem walk's passers-by.

Unlike the crowd's pedestrians (one shared mesh whose limbs swing in a
shader, :mod:`vrbalance.world.scenes.crowd`), this figure is a small node
hierarchy with a joint per limb segment, so any pose can be set from Python:
a few dozen figures at most are ever on screen, and tai chi needs poses a
walk cycle cannot give (arms raised and spread, a turned trunk, bent knees, a
knee lifted). Every part is a procedural mesh (:mod:`vrbalance.world.geometry`).

Joints (children of ``root``, feet on z = 0, facing +y)::

    root
      pelvis                     (translates: weight shifts, knee bend)
        hip_l, hip_r             (pitch: flexion, roll: leg out)
          knee_l, knee_r         (pitch: bend)
        torso                    (heading: trunk turn)
          shoulder_l, shoulder_r (pitch: raise forward, roll: spread sideways)
            elbow_l, elbow_r     (pitch: bend)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from panda3d.core import NodePath

from vrbalance.world import geometry as geo

#: Segment lengths, m (a 1.72 m adult; Winter's anthropometric proportions).
HIP_Z_M = 0.92
THIGH_M = 0.44
SHIN_M = 0.44
TRUNK_M = 0.52
UPPER_ARM_M = 0.3
FOREARM_M = 0.28
HIP_HALF_WIDTH_M = 0.1
SHOULDER_HALF_WIDTH_M = 0.2


@dataclass(frozen=True, slots=True)
class Outfit:
    """Colours of one figure (linear RGBA)."""

    skin: geo.Color = (0.86, 0.68, 0.55, 1.0)
    hair: geo.Color = (0.12, 0.1, 0.09, 1.0)
    top: geo.Color = (0.93, 0.93, 0.9, 1.0)
    trousers: geo.Color = (0.08, 0.08, 0.1, 1.0)
    shoes: geo.Color = (0.05, 0.05, 0.05, 1.0)
    belt: geo.Color | None = (0.1, 0.1, 0.12, 1.0)


#: The tai chi coach: loose white top, black trousers and sash (a classic tai chi outfit).
COACH_OUTFIT = Outfit()


class Figure:
    """One articulated person (see module docstring).

    Parameters
    ----------
    parent : NodePath
        Where to attach the figure.
    outfit : Outfit
        Its colours.
    name : str
        Node name.
    loose : bool
        Wider sleeves and trouser legs (tai chi clothes).
    """

    def __init__(
        self,
        parent: NodePath,
        outfit: Outfit = COACH_OUTFIT,
        name: str = "figure",
        *,
        loose: bool = False,
    ) -> None:
        o = outfit
        widen = 1.25 if loose else 1.0
        self.root = parent.attachNewNode(name)
        self.pelvis = self.root.attachNewNode("pelvis")
        self.pelvis.setZ(HIP_Z_M)
        geo.attach_mesh(
            self.pelvis,
            geo.cylinder(0.16, 0.22, o.trousers, segments=12, top_radius=0.165).transformed(
                translate=(0.0, 0.0, -0.12), scale=(1.0, 0.68, 1.0)
            ),
            "hips",
        )
        self.torso = self.pelvis.attachNewNode("torso")
        self.torso.setZ(0.08)
        chest = geo.cylinder(0.17 * widen, TRUNK_M, o.top, segments=14, top_radius=0.2)
        geo.attach_mesh(self.torso, chest.transformed(scale=(1.0, 0.62, 1.0)), "chest")
        if o.belt is not None:
            sash = geo.cylinder(0.175 * widen, 0.07, o.belt, segments=14)
            geo.attach_mesh(self.torso, sash.transformed(scale=(1.0, 0.64, 1.0)), "sash")
        neck = geo.cylinder(0.05, 0.1, o.skin, segments=8).transformed(translate=(0, 0, TRUNK_M))
        head = geo.sphere(0.105, o.skin, rings=8, segments=12).transformed(
            translate=(0.0, 0.01, TRUNK_M + 0.2), scale=(0.9, 1.0, 1.12)
        )
        hair = geo.sphere(0.112, o.hair, rings=6, segments=12).transformed(
            translate=(0.0, -0.02, TRUNK_M + 0.23), scale=(0.93, 1.0, 0.88)
        )
        nose = geo.box(0.03, 0.04, 0.05, o.skin).transformed(translate=(0.0, 0.105, TRUNK_M + 0.19))
        eyes = [
            geo.sphere(0.016, (0.1, 0.08, 0.07, 1), rings=3, segments=6).transformed(
                translate=(0.037 * s, 0.09, TRUNK_M + 0.225)
            )
            for s in (-1.0, 1.0)
        ]
        geo.attach_mesh(self.torso, geo.concat([neck, head, hair, nose, *eyes]), "head")
        self.shoulders: dict[str, NodePath] = {}
        self.elbows: dict[str, NodePath] = {}
        for side, sx in (("l", -1.0), ("r", 1.0)):
            shoulder = self.torso.attachNewNode(f"shoulder_{side}")
            shoulder.setPos(sx * (SHOULDER_HALF_WIDTH_M * widen + 0.03), 0.0, TRUNK_M - 0.05)
            geo.attach_mesh(shoulder, geo.sphere(0.065 * widen, o.top, rings=4, segments=8), "ball")
            sleeve = geo.cylinder(0.055 * widen, UPPER_ARM_M, o.top, segments=8, top_radius=0.062)
            geo.attach_mesh(shoulder, sleeve.transformed(translate=(0, 0, -UPPER_ARM_M)), "upper")
            elbow = shoulder.attachNewNode(f"elbow_{side}")
            elbow.setZ(-UPPER_ARM_M)
            forearm = geo.cylinder(0.04, FOREARM_M, o.skin, segments=8, top_radius=0.046)
            hand = geo.sphere(0.05, o.skin, rings=4, segments=6).transformed(
                translate=(0.0, 0.0, -FOREARM_M - 0.04), scale=(0.7, 1.0, 1.3)
            )
            geo.attach_mesh(
                elbow,
                geo.concat([forearm.transformed(translate=(0, 0, -FOREARM_M)), hand]),
                "lower",
            )
            self.shoulders[side] = shoulder
            self.elbows[side] = elbow
        self.hips: dict[str, NodePath] = {}
        self.knees: dict[str, NodePath] = {}
        for side, sx in (("l", -1.0), ("r", 1.0)):
            hip = self.pelvis.attachNewNode(f"hip_{side}")
            hip.setPos(sx * HIP_HALF_WIDTH_M, 0.0, -0.04)
            thigh = geo.cylinder(0.07 * widen, THIGH_M, o.trousers, segments=8, top_radius=0.088)
            geo.attach_mesh(hip, thigh.transformed(translate=(0, 0, -THIGH_M)), "thigh")
            knee = hip.attachNewNode(f"knee_{side}")
            knee.setZ(-THIGH_M)
            shin = geo.cylinder(
                0.058 * widen, SHIN_M - 0.06, o.trousers, segments=8, top_radius=0.07
            )
            shoe = geo.box(0.1, 0.27, 0.08, o.shoes).transformed(
                translate=(0, 0.05, -SHIN_M + 0.04)
            )
            geo.attach_mesh(
                knee,
                geo.concat(
                    [
                        shin.transformed(translate=(0, 0, -SHIN_M + 0.06)),
                        geo.sphere(0.07 * widen, o.trousers, rings=4, segments=8),
                        shoe,
                    ]
                ),
                "lower",
            )
            self.hips[side] = hip
            self.knees[side] = knee
        # Contact shadow so the figure stands on the ground.
        shadow = geo.cylinder(0.35, 0.002, (0.05, 0.06, 0.05, 1), segments=16)
        node = geo.attach_mesh(self.root, shadow.transformed(translate=(0, 0, 0.005)), "shadow")
        node.setLightOff(1)
        node.setColorScale(1, 1, 1, 1)

    # --- poses -------------------------------------------------------------------------
    def set_stance(
        self,
        *,
        shift_x_m: float = 0.0,
        shift_y_m: float = 0.0,
        knee_bend: float = 0.0,
        stance_half_width_m: float = 0.17,
        lift_l: float = 0.0,
        lift_r: float = 0.0,
    ) -> None:
        """Feet planted ``stance_half_width_m`` either side; the pelvis shifts and sinks.

        ``shift_*`` move the pelvis (body's own x right, y forward), ``knee_bend``
        in [0, 1] sinks it (thighs forward up to 35°), ``lift_*`` in [0, 1] raise
        a knee (hip flexion up to 85°, knee bend up to 95°).
        """
        sink = math.radians(35.0) * max(0.0, min(1.0, knee_bend))
        leg = (THIGH_M + SHIN_M) * math.cos(sink)
        self.pelvis.setPos(shift_x_m, shift_y_m, leg + 0.04)
        for side, sx, lift in (("l", -1.0, lift_l), ("r", 1.0, lift_r)):
            foot_x = sx * stance_half_width_m - (shift_x_m + sx * HIP_HALF_WIDTH_M)
            roll = math.degrees(math.atan2(foot_x, leg))
            back = math.degrees(math.atan2(-shift_y_m, leg))
            hip_pitch = math.degrees(sink) + back + 85.0 * lift
            knee_pitch = -2.0 * math.degrees(sink) - 95.0 * lift
            # Panda3D roll turns a leg hanging down towards -x for positive values.
            self.hips[side].setHpr(0.0, hip_pitch, -roll)
            self.knees[side].setP(knee_pitch)

    def set_arms(self, *, raise_deg: float, spread_deg: float, elbow_deg: float = 20.0) -> None:
        """Both arms: raised forward ``raise_deg``, spread sideways ``spread_deg``, elbows bent."""
        for side, sx in (("l", -1.0), ("r", 1.0)):
            self.shoulders[side].setHpr(0.0, raise_deg, -sx * spread_deg)
            self.elbows[side].setP(elbow_deg)

    def set_arm(self, side: str, *, raise_deg: float, spread_deg: float, elbow_deg: float) -> None:
        """One arm (``"l"`` or ``"r"``), as :meth:`set_arms`."""
        sx = -1.0 if side == "l" else 1.0
        self.shoulders[side].setHpr(0.0, raise_deg, -sx * spread_deg)
        self.elbows[side].setP(elbow_deg)

    def set_turn(self, turn_deg: float) -> None:
        """Turn the trunk (positive: to the figure's left)."""
        self.torso.setH(turn_deg)

    def walk_pose(self, phase_rad: float, swing_deg: float = 24.0) -> None:
        """A walk cycle at ``phase_rad``: legs and arms swing in opposition, the body bobs."""
        s = math.sin(phase_rad)
        self.pelvis.setPos(0.0, 0.0, HIP_Z_M - 0.02 + 0.02 * abs(math.cos(phase_rad)))
        for side, sign in (("l", 1.0), ("r", -1.0)):
            self.hips[side].setHpr(0.0, sign * swing_deg * s, 0.0)
            self.knees[side].setP(-max(0.0, -sign * s) * 35.0)
            self.shoulders[side].setHpr(0.0, -sign * 0.8 * swing_deg * s, 0.0)
            self.elbows[side].setP(15.0)
