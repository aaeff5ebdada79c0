"""The stance library: where the feet are, and the base of support they span.

A stance places one or two scaled foot outlines in the core frame (x right,
y anterior, metres, origin at the centre of the feet) and takes the convex
hull of the supporting feet as the base of support (BoS).

Foot placements
---------------
feet_apart
    Feet parallel (or turned out by ``toe_out_deg`` each), centres
    ``width_m`` apart (default 0.17 m: the preferred heel-centre separation
    of McIlroy & Maki 1997, *Clin Biomech* 12:66-70).
feet_together
    Feet parallel with their medial edges touching (Romberg).
semi_tandem
    Side by side, touching, the lead foot half a foot length ahead, its heel
    beside the big toe of the other (as in the SPPB balance test).
tandem
    Heel of the lead foot against the toes of the other, on one line.
single_left, single_right
    One foot, centred on the origin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vrbalance.balance.geometry import Body, FootTemplate, Polygon, convex_hull

STANCE_NAMES: tuple[str, ...] = (
    "feet_apart",
    "feet_together",
    "semi_tandem",
    "tandem",
    "single_left",
    "single_right",
)

#: Preferred heel-centre separation in quiet stance (McIlroy & Maki 1997).
DEFAULT_FEET_APART_WIDTH_M = 0.17


@dataclass(frozen=True, slots=True)
class Stance:
    """One stance: supporting feet and their base of support.

    Attributes
    ----------
    name : str
        One of :data:`STANCE_NAMES`.
    sides : tuple of str
        ``"left"``/``"right"`` for each supporting foot, same order as ``feet``.
    feet : tuple of Polygon
        Outline of each supporting foot in the core frame.
    base_of_support : Polygon
        Convex hull of the supporting feet.
    ankle_m : tuple of 2 float
        Floor projection of the ankle axis of the inverted pendulum: the mean
        of the supporting feet's ankle points, in metres.
    """

    name: str
    sides: tuple[str, ...]
    feet: tuple[Polygon, ...]
    base_of_support: Polygon
    ankle_m: tuple[float, float]


def make_stance(
    name: str,
    body: Body,
    template: FootTemplate,
    *,
    width_m: float = DEFAULT_FEET_APART_WIDTH_M,
    toe_out_deg: float = 0.0,
    lead: str = "right",
) -> Stance:
    """Build a stance for a patient.

    Parameters
    ----------
    name : str
        One of :data:`STANCE_NAMES`.
    body : Body
        Gives the foot length and width.
    template : FootTemplate
        The foot outline to scale.
    width_m : float
        ``feet_apart`` only: distance between the foot centres in metres; at
        least the foot width (feet may not overlap).
    toe_out_deg : float
        ``feet_apart`` only: outward rotation of each foot in degrees, in
        [0, 30] (McIlroy & Maki report about 7° per foot).
    lead : {"right", "left"}
        ``semi_tandem``/``tandem``: which foot is in front.

    Returns
    -------
    Stance

    Raises
    ------
    ValueError
        Unknown name or lead, width narrower than the foot, toe-out out of range.
    """
    if name not in STANCE_NAMES:
        raise ValueError(f"stance: expected one of {', '.join(STANCE_NAMES)}, got {name!r}")
    if lead not in ("left", "right"):
        raise ValueError(f"lead: expected 'left' or 'right', got {lead!r}")
    length = float(body.foot_length_m)  # type: ignore[arg-type]
    width = float(body.foot_width_m)  # type: ignore[arg-type]
    placements: list[tuple[str, tuple[float, float], float]]
    if name == "feet_apart":
        if not (math.isfinite(width_m) and width <= width_m <= 1.0):
            raise ValueError(
                f"width_m: expected a centre distance in [{width:.3f}, 1] m "
                f"(not narrower than the foot), got {width_m!r}"
            )
        if not (0.0 <= toe_out_deg <= 30.0):
            raise ValueError(f"toe_out_deg: expected a value in [0, 30], got {toe_out_deg!r}")
        turn = math.radians(toe_out_deg)
        placements = [("left", (-width_m / 2, 0.0), turn), ("right", (width_m / 2, 0.0), turn)]
    elif name == "feet_together":
        placements = [("left", (-width / 2, 0.0), 0.0), ("right", (width / 2, 0.0), 0.0)]
    elif name in ("semi_tandem", "tandem"):
        ahead = length / 4 if name == "semi_tandem" else length / 2
        side_x = width / 2 if name == "semi_tandem" else 0.0
        back = "left" if lead == "right" else "right"
        sign = {"left": -1.0, "right": 1.0}
        placements = [
            (back, (sign[back] * side_x, -ahead), 0.0),
            (lead, (sign[lead] * side_x, ahead), 0.0),
        ]
        placements.sort(key=lambda p: p[0])  # left first, like the other stances
    else:
        side = "left" if name == "single_left" else "right"
        placements = [(side, (0.0, 0.0), 0.0)]

    feet = []
    ankles = []
    for side, centre, turn in placements:
        poly, ankle = template.foot(side, length, width, centre_m=centre, toe_out_rad=turn)
        feet.append(poly)
        ankles.append(ankle)
    bos = convex_hull(np.concatenate([f.vertices for f in feet]))
    ankle_xy = np.mean(np.asarray(ankles), axis=0)
    return Stance(
        name=name,
        sides=tuple(p[0] for p in placements),
        feet=tuple(feet),
        base_of_support=bos,
        ankle_m=(float(ankle_xy[0]), float(ankle_xy[1])),
    )
