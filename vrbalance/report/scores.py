"""The assessment's scores in a few console lines, printed when ``vrbalance run`` ends.

The operator sees the result at once (SOT composite, Limits of Stability,
mCTSIB, the baseline's sway) without opening the report; the numbers are the
database's, computed by :func:`vrbalance.sessions.summary.summarize_folder`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

MCTSIB_CONDITIONS = {
    1: "eyes open, firm",
    2: "eyes closed, firm",
    3: "eyes open, foam",
    4: "eyes closed, foam",
}


def _f(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value * scale:.{digits}f}"


def score_lines(by: Mapping[tuple[int, str], float | None]) -> list[str]:
    """Console lines for the measures of one session (``{(trial, name): value}``).

    Only what was measured is printed: a baseline-only session gives one line.
    """
    lines = []
    if by.get((0, "cop_velocity_mps")) is not None:
        lines.append(
            f"baseline sway: CoP velocity {_f(by.get((0, 'cop_velocity_mps')), 1000.0)} mm/s, "
            f"95 % ellipse {_f(by.get((0, 'cop_area_m2')), 1e4, 2)} cm²"
        )
    sot = sorted(
        int(name.split("_")[2])
        for i, name in by
        if i == -1 and name.startswith("sot_condition_") and name.endswith("_score")
    )
    if sot:
        per = ", ".join(f"{c}: {_f(by.get((-1, f'sot_condition_{c}_score')), 1.0, 0)}" for c in sot)
        lines.append(f"SOT composite {_f(by.get((-1, 'sot_composite')), 1.0, 0)} ({per})")
    mct = sorted(
        int(name.split("_")[2])
        for i, name in by
        if i == -1 and name.startswith("mctsib_condition_")
    )
    if mct:
        per = "; ".join(
            f"{MCTSIB_CONDITIONS.get(c, c)} "
            f"{_f(by.get((-1, f'mctsib_condition_{c}_velocity_mps')), 1000.0)}"
            for c in mct
        )
        lines.append(f"mCTSIB sway velocity (mm/s): {per}")
    if (-1, "los_directional_control_pct") in by:
        lines.append(
            "Limits of Stability: reaction time "
            f"{_f(by.get((-1, 'los_reaction_time_s')), 1.0, 2)} s, movement velocity "
            f"{_f(by.get((-1, 'los_movement_velocity_mps')), 100.0)} cm/s, end-point "
            f"excursion {_f(by.get((-1, 'los_endpoint_excursion_pct')), 1.0, 0)} %, max "
            f"excursion {_f(by.get((-1, 'los_max_excursion_pct')), 1.0, 0)} %, directional "
            f"control {_f(by.get((-1, 'los_directional_control_pct')), 1.0, 0)} %"
        )
    return lines
