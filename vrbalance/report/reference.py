"""Reference values: where a patient's quiet stance stands among 163 adults of the BDS.

The shipped table ``data/bds_reference.tsv`` is ``BDSinfoCOP_all.tsv`` of
Santos & Duarte (2016), *A public data set of human balance evaluations*,
PeerJ 4:e2648 (CC BY 4.0): 1930 trials of 60 s quiet standing, eyes open or
closed, on a firm surface or foam, with the published 95 % prediction-ellipse
area (``COParea``, cm²), mean CoP velocity (``COPvelo``, cm/s) and mean
frequency (``COPmfreq``, Hz). vrbalance computes the same three variables with
the same recipe (:func:`vrbalance.balance.sway.sway_metrics`, tested against
this data set), so a patient's trial can be placed among the trials of the
same age group (``Young`` 18-59 years, ``Old`` 60+, the data set's own split),
vision and surface.

Caveats the report states: the reference trials last 60 s at 100 Hz with
feet apart; area and mean frequency depend on trial duration (a shorter trial
has a smaller ellipse), mean velocity much less.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

REFERENCE_FILE = Path(__file__).resolve().parent / "data" / "bds_reference.tsv"
CITATION = (
    "Santos DA, Duarte M. (2016) A public data set of human balance evaluations. "
    "PeerJ 4:e2648. doi:10.7717/peerj.2648 (data CC BY 4.0)"
)
#: The data set's own split: its young adults are 18-59 years old, its old 60-86.
OLD_FROM_YEARS = 60
#: Our measure name -> (BDS column, factor from SI to the BDS unit, BDS unit).
VARIABLES: dict[str, tuple[str, float, str]] = {
    "cop_area_m2": ("COParea", 1e4, "cm²"),
    "cop_velocity_mps": ("COPvelo", 100.0, "cm/s"),
    "cop_mfreq_hz": ("COPmfreq", 1.0, "Hz"),
}

#: How reports show each measure: clinical label, display unit, factor from the BDS unit.
DISPLAY: dict[str, tuple[str, str, float]] = {
    "cop_velocity_mps": ("CoP mean velocity", "mm/s", 10.0),
    "cop_area_m2": ("95 % ellipse area", "cm²", 1.0),
    "cop_mfreq_hz": ("CoP mean frequency", "Hz", 1.0),
}
#: The only stance the BDS recorded (quiet standing, feet apart).
REFERENCE_STANCE = "feet_apart"


def comparable(trial: dict[str, str], task: str) -> str | None:
    """Why a trial cannot be placed among the BDS trials, or ``None`` when it can.

    The BDS trials are 60 s of quiet standing, feet apart, the world still,
    eyes open or closed, firm or foam: a dynamic trial (weight shifts, step-ups,
    reaching for Limits of Stability) or a sway-referenced surround would land
    at the 100th percentile for reasons that are not a balance deficit.

    Parameters
    ----------
    trial : dict
        A ``trials.csv`` row.
    task : str
        The trial's task in its protocol (``quiet``, ``weight_shift``...).
    """
    if trial.get("assessment") == "los" or task != "quiet":
        return f"{task.replace('_', ' ')} task (the reference is quiet stance)"
    if trial.get("surround", "fixed") != "fixed":
        return "sway-referenced surround (the reference had a still world)"
    if trial.get("stance") != REFERENCE_STANCE:
        return f"{trial.get('stance', '?').replace('_', ' ')} (the reference stood feet apart)"
    if trial.get("end_reason") != "completed":
        return f"ended early ({trial.get('end_reason', '?').replace('_', ' ')})"
    return None


@dataclass(frozen=True, slots=True)
class Standing:
    """One measure of one trial placed among the reference trials.

    Attributes
    ----------
    measure : str
        Our measure name (``cop_velocity_mps``).
    value : float
        The patient's value, in the BDS unit (``unit``).
    unit : str
    percentile : float
        Percentage of reference trials with a smaller value (0-100); high
        means more sway than most.
    median, p5, p95 : float
        Of the reference group, in ``unit``.
    n : int
        Number of reference trials in the group.
    group : str
        e.g. ``"Old, eyes open, firm"``.
    """

    measure: str
    value: float
    unit: str
    percentile: float
    median: float
    p5: float
    p95: float
    n: int
    group: str


@cache
def _table() -> tuple[dict[str, str], ...]:
    with REFERENCE_FILE.open(encoding="utf-8", newline="") as fh:
        return tuple(csv.DictReader(fh, delimiter="\t"))


def age_group(age_years: float | None) -> str | None:
    """``"Young"`` (< 60 years), ``"Old"`` or ``None`` when the age is unknown."""
    if age_years is None:
        return None
    return "Old" if age_years >= OLD_FROM_YEARS else "Young"


def reference_values(group: str | None, eyes: str, surface: str, column: str) -> np.ndarray:
    """Reference values of one BDS column for an age group (``None``: all) and condition."""
    vision = "Open" if eyes == "open" else "Closed"
    surf = "Firm" if surface == "firm" else "Foam"
    return np.array(
        [
            float(r[column])
            for r in _table()
            if r["Vision"] == vision
            and r["Surface"] == surf
            and (group is None or r["AgeGroup"] == group)
            and r[column] not in ("", "NaN")
        ],
        dtype=float,
    )


def standing(
    measure: str, value_si: float, *, age_years: float | None, eyes: str, surface: str
) -> Standing | None:
    """Place one trial measure among the matching reference trials.

    Returns ``None`` for a measure without reference or a non-finite value.
    """
    if measure not in VARIABLES or value_si is None or not math.isfinite(value_si):
        return None
    column, factor, unit = VARIABLES[measure]
    group = age_group(age_years)
    ref = reference_values(group, eyes, surface, column)
    ref = ref[np.isfinite(ref)]
    if ref.size == 0:
        return None
    value = value_si * factor
    label = (
        f"{group or 'all ages'}, eyes {eyes}, {surface}"
        if group
        else f"all ages, eyes {eyes}, {surface}"
    )
    return Standing(
        measure=measure,
        value=value,
        unit=unit,
        percentile=float(100.0 * np.count_nonzero(ref < value) / ref.size),
        median=float(np.median(ref)),
        p5=float(np.percentile(ref, 5)),
        p95=float(np.percentile(ref, 95)),
        n=int(ref.size),
        group=label,
    )
