"""The report's section for the programme's exercises: walk, leg raises, tai chi.

Each exercise gets its own table (its own measures, against its own
prescription: the level's line, holds, repetitions, tolerance) and its own
chart, and is never placed among the quiet-stance reference values: no
published norm exists for these measures as vrbalance takes them, so the
report says so instead of showing a percentile (``docs/exercises.md`` lists
the published values that do exist and why they do not transfer).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vrbalance.exercises.live import foot_offset_m, plan_from_events, tai_chi_target
from vrbalance.exercises.plan import ExercisePlan
from vrbalance.sessions.recorder import column, read_rows

NO_NORM = (
    "No published norm exists for these measures as vrbalance takes them (head or "
    "plate, this exercise's prescription), so they are shown against the patient's "
    "prescription and earlier sessions, never as a percentile. Formulas and sources: "
    "docs/exercises.md."
)


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value * scale:.{digits}f}"


def _ok(value: float | None) -> str:
    if value is None:
        return "–"
    return "yes" if value >= 0.5 else '<span class="warning">no</span>'


def _trial_rows(folder: Any) -> dict[int, list[dict[str, str]]]:
    out: dict[int, list[dict[str, str]]] = {}
    for row in read_rows(folder / "state.csv"):
        out.setdefault(int(row["trial"]), []).append(row)
    return out


def exercise_sections(
    data: Any,
    by: Mapping[tuple[int, str], float | None],
    img: Callable[[bytes, str], str],
    table: Callable[..., str],
) -> list[str]:
    """HTML parts for every exercise trial of the session (empty when there is none).

    Parameters
    ----------
    data : vrbalance.report.figures.SessionData
    by : mapping
        ``{(trial, measure): value}`` from :func:`~vrbalance.sessions.summary.summarize_folder`.
    img, table : callable
        The report's image and table helpers.
    """
    plans: dict[str, list[tuple[dict[str, str], ExercisePlan]]] = {}
    for tr in data.trials:
        idx = int(tr["trial"])
        plan = plan_from_events([e for e in data.events if int(e["trial"]) == idx])
        if plan is not None:
            plans.setdefault(plan.task, []).append((tr, plan))
    if not plans:
        return []
    rows_by_trial = _trial_rows(data.folder)
    out = ["<h2>Exercises</h2>", f'<p class="note">{html.escape(NO_NORM)}</p>']
    if "tandem_walk" in plans:
        out += _walk(plans["tandem_walk"], by, rows_by_trial, img, table)
    if "leg_raise" in plans:
        out += _raises(plans["leg_raise"], by, rows_by_trial, img, table)
    if "tai_chi" in plans:
        out += _tai_chi(plans["tai_chi"], by, rows_by_trial, img, table)
    return out


def _walk(
    trials: Sequence[tuple[dict[str, str], ExercisePlan]],
    by: Mapping[tuple[int, str], float | None],
    rows_by_trial: Mapping[int, list[dict[str, str]]],
    img: Callable[[bytes, str], str],
    table: Callable[..., str],
) -> list[str]:
    from vrbalance.report.figures import legend, png

    rows = []
    fig = Figure(figsize=(7.0, 3.2), layout="constrained")
    ax = fig.add_subplot()
    for tr, plan in trials:
        i = int(tr["trial"])
        rows.append(
            [
                html.escape(tr["name"]),
                html.escape(tr["level"]),
                _fmt(plan.walk_length_m, 1.0, 1),
                _fmt(by.get((i, "walk_time_s"))),
                _fmt(by.get((i, "walk_speed_mps")), 1.0, 2),
                _fmt(by.get((i, "walk_steps")), 1.0, 0),
                _fmt(by.get((i, "walk_cadence_steps_per_min")), 1.0, 0),
                _fmt(by.get((i, "walk_lateral_rms_m")), 100.0),
                _fmt(by.get((i, "walk_lateral_max_m")), 100.0),
                _fmt(by.get((i, "walk_side_steps")), 1.0, 0),
                _fmt(by.get((i, "walk_stops")), 1.0, 0),
                _ok(by.get((i, "walk_completed"))),
                _ok(by.get((i, "exercise_success"))),
            ]
        )
        rows_i = rows_by_trial.get(i, [])
        if rows_i:
            x = column(rows_i, "head_x_m") * 100.0
            y = column(rows_i, "head_y_m")
            ax.plot(y, x, lw=1.0, label=tr["name"])
    length = max(plan.walk_length_m for _, plan in trials)
    ax.axhline(0.0, color="#d4a017", lw=3, alpha=0.5, label="the line")
    ax.axvline(0.0, color="#4c72b0", lw=1, ls=":")
    ax.axvline(length, color="#dd8452", lw=1, ls=":")
    ax.set_xlabel("along the line (m)")
    ax.set_ylabel("head off the line (cm)")
    ax.set_title("Head path seen from above (lateral scale enlarged)")
    legend(ax, fontsize=7, loc="upper right")
    chart = png(fig)
    return [
        "<h3>Heel-to-toe walk</h3>",
        table(
            [
                "Trial",
                "Level",
                "Line (m)",
                "Time (s)",
                "Speed (m/s)",
                "Steps",
                "Cadence (steps/min)",
                "Lateral RMS (cm)",
                "Lateral max (cm)",
                "Side-steps",
                "Stops",
                "Out and back",
                "Success",
            ],
            rows,
        ),
        img(chart, "tandem walk head path"),
        '<p class="note">From the head in the headset\'s stage space: steps from its '
        "vertical oscillation, deviation from the line, side-steps (a sideways jump of "
        "8 cm or more within 0.75 s), stops (no progress along the line for 1 s or more "
        "away from the ends). Success: out and back, at most one side-step, no stop.</p>",
    ]


def _raises(
    trials: Sequence[tuple[dict[str, str], ExercisePlan]],
    by: Mapping[tuple[int, str], float | None],
    rows_by_trial: Mapping[int, list[dict[str, str]]],
    img: Callable[[bytes, str], str],
    table: Callable[..., str],
) -> list[str]:
    from vrbalance.report.figures import legend, png

    rows = []
    fig = Figure(figsize=(7.0, 3.0), layout="constrained")
    ax = fig.add_subplot()
    offset = 0.0
    for tr, plan in trials:
        i = int(tr["trial"])
        rows.append(
            [
                html.escape(tr["name"]),
                html.escape(tr["level"]),
                f"{_fmt(by.get((i, 'raise_reps_left')), 1.0, 0)} / {plan.repetitions}",
                f"{_fmt(by.get((i, 'raise_reps_right')), 1.0, 0)} / {plan.repetitions}",
                f"{_fmt(by.get((i, 'raise_hold_left_s')))} / {plan.hold_s:.1f}",
                f"{_fmt(by.get((i, 'raise_hold_right_s')))} / {plan.hold_s:.1f}",
                _fmt(by.get((i, "raise_sway_velocity_mps")), 1000.0),
                _fmt(by.get((i, "raise_sway_rms_m")), 1000.0),
                _fmt(by.get((i, "raise_trunk_lean_deg"))),
                _ok(by.get((i, "exercise_success"))),
            ]
        )
        rows_i = rows_by_trial.get(i, [])
        if rows_i:
            t = column(rows_i, "t_s")
            x = column(rows_i, "cop_x_m") * 100.0
            ax.plot(t - t[0] + offset, x, lw=0.8, label=tr["name"])
            offset += float(t[-1] - t[0]) + 1.0
    for sign in (-1.0, 1.0):
        ax.axhline(sign * foot_offset_m() * 100.0, color="#999", lw=0.8, ls="--")
    ax.set_xlabel("time in the trials (s)")
    ax.set_ylabel("CoP to the right (cm)")
    ax.set_title("Centre of pressure: raising the left leg moves it onto the right foot")
    legend(ax, fontsize=7, loc="upper right")
    chart = png(fig)
    return [
        "<h3>Side leg raises</h3>",
        table(
            [
                "Trial",
                "Level",
                "Left raises (done / asked)",
                "Right raises",
                "Left hold (s, mean / asked)",
                "Right hold (s)",
                "Sway velocity (mm/s)",
                "Sway RMS (mm)",
                "Trunk lean (deg)",
                "Success",
            ],
            rows,
        ),
        img(chart, "leg raises centre of pressure"),
        '<p class="note">A raise: the CoP beyond half-way to the stance foot\'s centre '
        "(dashed), held until it comes back near the centre; hold from reaching 90 % of "
        "the shift to leaving it. Sway over the hold less 0.5 s at each end. Trunk lean: "
        "the line from the CoP to the head, from vertical, towards the stance side. "
        "Success: every repetition, holds at least 80 % of the prescription.</p>",
    ]


def _tai_chi(
    trials: Sequence[tuple[dict[str, str], ExercisePlan]],
    by: Mapping[tuple[int, str], float | None],
    rows_by_trial: Mapping[int, list[dict[str, str]]],
    img: Callable[[bytes, str], str],
    table: Callable[..., str],
) -> list[str]:
    from vrbalance.report.figures import legend, png

    rows = []
    tr0, plan0 = trials[0]
    fig = Figure(figsize=(7.0, 4.0), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    for tr, plan in trials:
        i = int(tr["trial"])
        rows.append(
            [
                html.escape(tr["name"]),
                html.escape(tr["level"]),
                html.escape(plan.sequence.replace("_", " "))
                + (" (tracked by the head)" if by.get((i, "track_by_head")) == 1.0 else ""),
                _fmt(plan.tempo, 1.0, 2),
                _fmt(by.get((i, "track_rms_error_m")), 100.0),
                _fmt(by.get((i, "track_lag_s")), 1.0, 2),
                f"{_fmt(by.get((i, 'track_time_within_pct')), 1.0, 0)} "
                f"(±{plan.tolerance_m * 100:.1f} cm)",
                f"{_fmt(by.get((i, 'track_max_excursion_m')), 100.0)} / "
                f"{_fmt(by.get((i, 'track_target_max_excursion_m')), 100.0)}",
                _ok(by.get((i, "exercise_success"))),
            ]
        )
    rows0 = rows_by_trial.get(int(tr0["trial"]), [])
    if rows0:
        t = column(rows0, "t_s")
        rel = t - t[0]
        cop = np.column_stack([column(rows0, "cop_x_m"), column(rows0, "cop_y_m")])
        quiet = (rel < 1.0) & np.all(np.isfinite(cop), axis=1)
        centre = np.nanmedian(cop[quiet], axis=0) if quiet.any() else np.zeros(2)
        target = tai_chi_target(plan0, rel)
        for k, (ax, name) in enumerate(
            zip(axes, ("right (+) / left (cm)", "forward (+) / back (cm)"), strict=True)
        ):
            ax.plot(rel, target[:, k] * 100.0, color="#4c72b0", lw=1.5, label="coach's target")
            ax.plot(rel, (cop[:, k] - centre[k]) * 100.0, color="#c44e52", lw=0.8, label="patient")
            ax.fill_between(
                rel,
                (target[:, k] - plan0.tolerance_m) * 100.0,
                (target[:, k] + plan0.tolerance_m) * 100.0,
                color="#4c72b0",
                alpha=0.12,
            )
            ax.set_ylabel(name, fontsize=8)
        legend(axes[0], fontsize=7, loc="upper right")
        axes[0].set_title(f"{tr0['name']}: CoP against the coach's target (band: tolerance)")
        axes[1].set_xlabel("time in the trial (s)")
    chart = png(fig)
    return [
        "<h3>Tai chi</h3>",
        table(
            [
                "Trial",
                "Level",
                "Sequence",
                "Tempo",
                "Tracking RMS (cm)",
                "Lag (s)",
                "Within tolerance (%)",
                "Largest excursion (cm, patient / target)",
                "Success",
            ],
            rows,
        ),
        img(chart, "tai chi tracking"),
        '<p class="note">Lag: the delay maximising the cross-correlation of the CoP '
        "with the coach's target (positive: behind the coach). Success: on target at "
        "least 60 % of the time and lag within 1 s.</p>",
    ]
