"""Summary measures of a recorded session, computed from its folder alone.

The same function serves the runner (rows for the database at the end of a
session), the importer (a recording made while the database was unavailable)
and the report, so the three always agree: one number, one computation.

Each measure is ``(trial_idx, name, value, unit)``; session-level measures use
``trial_idx = -1``. Names carry their unit as everywhere else.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vrbalance.exercises import live
from vrbalance.sessions import assessments
from vrbalance.sessions.recorder import column, read_rows, read_sidecar

log = logging.getLogger(__name__)

Measure = tuple[int, str, float | None, str]
SESSION_LEVEL = -1

#: CoM height as a fraction of body height (Winter 2009, anthropometric tables),
#: used for sway angles when the estimator did not record one.
COM_HEIGHT_FRACTION = 0.5527
DEFAULT_HEIGHT_M = 1.70


def unit_of(name: str) -> str:
    """The unit implied by a measure name's suffix."""
    for suffix, unit in (
        ("_m2", "m²"),
        ("_mps", "m/s"),
        ("_hz", "Hz"),
        ("_s", "s"),
        ("_m", "m"),
        ("_pct", "%"),
        ("_rad", "rad"),
        ("_deg", "deg"),
    ):
        if name.endswith(suffix):
            return unit
    return ""


def _sway(cop: np.ndarray, rate_hz: float) -> dict[str, float]:
    """Sway measures through :func:`vrbalance.balance.sway.sway_metrics` (H1)."""
    from vrbalance.balance.sway import MIN_SAMPLES, sway_metrics

    if cop.shape[0] < MIN_SAMPLES:
        return {}
    m = sway_metrics(cop, rate_hz)
    return {
        "cop_area_m2": m.prediction_ellipse_area_m2,
        "cop_velocity_mps": m.mean_velocity_mps,
        "cop_mfreq_hz": m.mean_frequency_hz,
        "cop_rms_m": m.rms_m,
        "cop_range_ap_m": m.range_ap_m,
        "cop_range_ml_m": m.range_ml_m,
    }


def sway_angle(rows: Sequence[Mapping[str, str]], com_height_m: float) -> np.ndarray:
    """AP sway angle per state row: recorded if present, else ``atan(com_y/h)``."""
    theta = column(rows, "sway_angle_ap_rad")
    if rows and np.all(np.isnan(theta)):
        theta = np.arctan2(column(rows, "com_y_m"), com_height_m)
    return theta


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def summarize_folder(
    folder: Path,
    trials: Sequence[Mapping[str, str]] | None = None,
    states: Sequence[Mapping[str, str]] | None = None,
) -> list[Measure]:
    """Compute every summary measure of a session folder.

    Parameters
    ----------
    folder : Path
        A session recording.
    trials : sequence of Mapping, optional
        ``trials.csv`` rows if already read.
    states : sequence of Mapping, optional
        ``state.csv`` rows if already read (the report reads them once for its
        figures and its measures: half its time on a long session).

    Returns
    -------
    list of (trial_idx, name, value, unit)
    """
    folder = Path(folder)
    meta = read_sidecar(folder)
    states = read_rows(folder / "state.csv") if states is None else states
    trials = trial_rows(folder, meta, states) if trials is None else trials
    events = read_rows(folder / "events.csv")
    rate_hz = float(meta.get("rate_hz", 250.0))
    body = meta.get("body") or {}
    height_m = float(body.get("height_m") or DEFAULT_HEIGHT_M)
    com_height_m = float(body.get("com_height_m") or COM_HEIGHT_FRACTION * height_m)
    by_trial: dict[int, list[dict[str, str]]] = {}
    for r in states:
        by_trial.setdefault(int(r["trial"]), []).append(r)
    out: list[Measure] = []

    def add(idx: int, name: str, value: float | None) -> None:
        out.append((idx, name, _finite(value), unit_of(name)))

    sot: dict[int, list[float]] = {}
    mctsib: dict[int, float] = {}
    los_all: list[assessments.LosTarget] = []
    for trial in trials:
        idx = int(trial["trial"])
        rows = by_trial.get(idx, [])
        start = float(trial["start_t_s"]) if trial["start_t_s"] else math.nan
        end = float(trial["end_t_s"]) if trial["end_t_s"] else math.nan
        add(idx, "duration_s", end - start)
        loaded = [r for r in rows if r["plate_loaded"] == "1" and r["cop_x_m"] != ""]
        cop = (
            np.column_stack([column(loaded, "cop_x_m"), column(loaded, "cop_y_m")])
            if loaded
            else np.zeros((0, 2))
        )
        for name, value in _sway(cop, rate_hz).items():
            add(idx, name, value)
        trial_events = [e for e in events if int(e["trial"]) == idx]
        plan = live.plan_from_events(trial_events)
        margins = column(rows, "margin_xcom_m") if rows else np.array([])
        margins = margins[np.isfinite(margins)]
        if plan is not None and plan.task == "tandem_walk":
            margins = margins[:0]  # walking: no fixed base of support for a margin
        add(idx, "min_margin_xcom_m", float(margins.min()) if margins.size else None)
        if plan is not None:
            for name, value in live.measures_from_rows(plan, rows).items():
                add(idx, name, value)
        alarms = [e for e in trial_events if e["source"] == "safety" and e["severity"] != "info"]
        add(idx, "safety_events", float(len(alarms)))
        fell = trial["end_reason"] == "safety_stop"
        if trial["assessment"] == "sot":
            es = assessments.equilibrium_score(sway_angle(rows, com_height_m), fell=fell)
            add(idx, "equilibrium_score", es)
            sot.setdefault(int(trial["condition"]), []).append(es)
        elif trial["assessment"] == "mctsib":
            vel = _sway(cop, rate_hz).get("cop_velocity_mps", math.nan)
            mctsib[int(trial["condition"])] = vel
        elif trial["assessment"] == "los":
            targets = _los_targets(rows, trial_events, com_height_m)
            for k, tgt in enumerate(targets, start=1):
                add(idx, f"los_t{k}_reaction_time_s", tgt.reaction_time_s)
                add(idx, f"los_t{k}_movement_velocity_mps", tgt.movement_velocity_mps)
                add(idx, f"los_t{k}_endpoint_excursion_pct", tgt.endpoint_excursion_pct)
                add(idx, f"los_t{k}_max_excursion_pct", tgt.max_excursion_pct)
                add(idx, f"los_t{k}_directional_control_pct", tgt.directional_control_pct)
            for name, value in assessments.los_summary(targets).items():
                add(idx, name, value)
            los_all.extend(targets)
    if sot:
        for c, values in sorted(sot.items()):
            add(SESSION_LEVEL, f"sot_condition_{c}_score", float(np.mean(values)))
        add(SESSION_LEVEL, "sot_composite", assessments.sot_composite(sot))
        means = {c: float(np.mean(v)) for c, v in sot.items()}
        for name, value in assessments.sensory_ratios(means).items():
            add(SESSION_LEVEL, f"sot_ratio_{name}", value)
    for c, vel in sorted(mctsib.items()):
        add(SESSION_LEVEL, f"mctsib_condition_{c}_velocity_mps", vel)
    if los_all:
        for name, value in assessments.los_summary(los_all).items():
            add(SESSION_LEVEL, name, value)
    # --seconds-scale travels with the measures so that the database (and the
    # progress page reading it) knows a shortened session from a full one.
    add(SESSION_LEVEL, "seconds_scale", float(meta.get("seconds_scale") or 1.0))
    return out


def trial_rows(
    folder: Path,
    meta: Mapping[str, Any] | None = None,
    states: Sequence[Mapping[str, str]] | None = None,
) -> list[dict[str, str]]:
    """``trials.csv`` plus a row for a trial the recording stopped in (crash, kill).

    A trial's row is written when it ends, so a recording cut short has states
    of one more trial than rows. That trial gets a row rebuilt from the
    protocol in the sidecar and its states, with ``end_reason = "incomplete"``,
    so reports and the database show what was recorded of it.
    """
    folder = Path(folder)
    rows = [dict(r) for r in read_rows(folder / "trials.csv")]
    meta = read_sidecar(folder) if meta is None else meta
    states = read_rows(folder / "state.csv") if states is None else states
    have = {int(r["trial"]) for r in rows}
    spans: dict[int, list[Mapping[str, str]]] = {}
    for r in states:
        idx = int(r["trial"])
        if idx >= 0 and idx not in have:
            spans.setdefault(idx, []).append(r)
    planned = (meta.get("protocol") or {}).get("trials") or []
    started: dict[int, dict[str, Any]] = {}
    if spans:
        for e in read_rows(folder / "events.csv"):
            if e["kind"] == "trial_start" and e["source"] == "session":
                started[int(e["trial"])] = json.loads(e["values_json"] or "{}")
    for idx, srows in sorted(spans.items()):
        # The trial_start event names the trial (repeats shift protocol indices).
        name = started.get(idx, {}).get("name")
        plan: Mapping[str, Any] = next(
            (p for p in planned if name is not None and p.get("name") == name),
            planned[idx] if idx < len(planned) else {},
        )
        rows.append(
            {
                "trial": str(idx),
                "name": f"{name or plan.get('name', f'trial {idx + 1}')} (incomplete)",
                "kind": str(plan.get("kind", "exercise")),
                "scene": str(plan.get("scene", "")),
                "stance": srows[0]["stance"],
                "eyes": str(plan.get("eyes", "open")),
                "surface": str(plan.get("surface", "firm")),
                "surround": str(plan.get("surround", "fixed")),
                "assessment": str(plan.get("assessment", "none")),
                "condition": str(plan.get("condition", 0)),
                "director": "1" if plan.get("director") else "0",
                "level": srows[-1]["level"],
                "planned_s": str(plan.get("duration_s", "")) or srows[-1]["t_s"],
                "start_t_s": srows[0]["t_s"],
                "end_t_s": srows[-1]["t_s"],
                "end_reason": "incomplete",
            }
        )
    return sorted(rows, key=lambda r: int(r["trial"]))


def _los_targets(
    rows: Sequence[Mapping[str, str]], events: Sequence[Mapping[str, str]], com_height_m: float
) -> list[assessments.LosTarget]:
    cues = [e for e in events if e["kind"] == "los_target"]
    if not cues or not rows:
        return []
    t = column(rows, "t_s")
    xy = np.column_stack([column(rows, "com_x_m"), column(rows, "com_y_m")])
    if np.all(np.isnan(xy)):
        xy = np.column_stack([column(rows, "cop_x_m"), column(rows, "cop_y_m")])
    out = []
    for k, cue in enumerate(cues):
        values: dict[str, Any] = json.loads(cue["values_json"] or "{}")
        t0 = float(cue["t_s"])
        t1 = float(cues[k + 1]["t_s"]) if k + 1 < len(cues) else float(t[-1]) + 1e-9
        sel = (t >= t0) & (t < t1)
        direction = float(values.get("direction_rad", 0.0))
        distance = float(
            values.get("distance_m") or assessments.los_target_distance_m(direction, com_height_m)
        )
        out.append(assessments.los_target(t[sel], xy[sel], t0, direction, distance))
    return out


def measures_dict(measures: Sequence[Measure]) -> dict[tuple[int, str], float | None]:
    """``{(trial_idx, name): value}`` for lookups and comparisons."""
    return {(i, n): v for i, n, v, _ in measures}
