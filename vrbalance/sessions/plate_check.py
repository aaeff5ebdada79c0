"""Is the plate plausible? Its vertical load against the patient's body weight.

Every plate trigger of the safety monitor (``load_collapse``, ``contact_lost``,
the margins, ``cop_jump``) reads the plate's forces, and the load triggers are
*relative* to the standing load the plate reports. A calibration 1000 times
too small (0.7 N for a 70 kg patient) or a patient standing half off the plate
gives a "standing load" the monitor happily tracks, and a fall then goes
unseen. Nothing in the monitor can tell; only the patient's known weight can.

So before each trial starts (the runner's start gate), with the patient on the
plate, the mean vertical load over the gate's hold window must match the
patient's weight within :data:`LOAD_TOLERANCE`; otherwise the trial does not
start and the operator is told what the plate reads, what was expected, and to
check the calibration and the patient's stance on the plate.

Pure: no I/O, no clock; the runner hands in the loads it drained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from vrbalance.balance.geometry import STANDARD_GRAVITY_MPS2
from vrbalance.samples import PlateFrame

__all__ = ["LOAD_TOLERANCE", "STANDARD_GRAVITY_MPS2", "LoadCheck", "check_load", "vertical_load_n"]

#: Accepted deviation of the plate's standing load from the patient's weight,
#: as a fraction (a documented constant, not an envelope field: it guards the
#: plate, not the patient's training). Quiet stance moves the vertical force by
#: 1-2 % (the CoM's vertical accelerations are small); shoes and clothes add
#: 1-4 % to a body mass weighed without them; a mass recorded weeks ago drifts
#: a few percent; a plate on its nominal (not measured) calibration reads within
#: about 5-10 %. 15 % admits all of these together, while a gross calibration
#: error (a gain 1000x, or even 2x, off), a cell wired wrong, or one foot off
#: the plate (about half the weight) fails.
LOAD_TOLERANCE = 0.15


def vertical_load_n(frame: PlateFrame) -> float:
    """Vertical load of one frame, in N: the four cells' sum, or a six-axis plate's Fz."""
    if frame.kind == "six_axis":
        return float(frame.channels[2])
    return float(sum(frame.channels))


@dataclass(frozen=True, slots=True)
class LoadCheck:
    """The verdict of :func:`check_load`.

    Attributes
    ----------
    ok : bool
        The mean load lies within ``expected_n x (1 +- LOAD_TOLERANCE)``.
    measured_n : float
        Mean vertical load over the window, N (NaN without frames).
    expected_n : float
        The patient's weight, N.
    n_frames : int
        Frames averaged.
    message : str
        For the operator: what the plate reads, what was expected, what to check.
    """

    ok: bool
    measured_n: float
    expected_n: float
    n_frames: int
    message: str


def check_load(loads_n: Sequence[float], mass_kg: float, *, who: str = "the patient") -> LoadCheck:
    """Compare the plate's mean vertical load with ``mass_kg``'s weight.

    Parameters
    ----------
    loads_n : Sequence[float]
        Vertical loads of the frames in the window, N.
    mass_kg : float
        The patient's body mass, kg (> 0).
    who : str
        How to name the patient in the message.

    Returns
    -------
    LoadCheck
    """
    if not (math.isfinite(mass_kg) and mass_kg > 0.0):
        raise ValueError(f"mass_kg: expected a positive mass, got {mass_kg!r}")
    expected_n = mass_kg * STANDARD_GRAVITY_MPS2
    finite = [v for v in loads_n if math.isfinite(v)]
    measured_n = sum(finite) / len(finite) if finite else math.nan
    ok = bool(finite) and abs(measured_n - expected_n) <= LOAD_TOLERANCE * expected_n
    if ok:
        message = (
            f"plate reads {measured_n:.0f} N, {who} weighs {expected_n:.0f} N "
            f"({mass_kg:g} kg): within {LOAD_TOLERANCE:.0%}"
        )
    else:
        reading = (
            "no plate frame"
            if not finite
            else f"the plate reads {measured_n:.3g} N ({measured_n / STANDARD_GRAVITY_MPS2:.3g} kg)"
        )
        message = (
            f"{reading} but {who} weighs {expected_n:.0f} N ({mass_kg:g} kg); more than "
            f"{LOAD_TOLERANCE:.0%} apart, the plate cannot be trusted to see a fall: check "
            "the plate's calibration (`vrbalance calibrate plate`) and that the patient "
            "stands with both feet fully on the plate"
        )
    return LoadCheck(ok, measured_n, expected_n, len(finite), message)
