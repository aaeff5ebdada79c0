"""A patient's progress across sessions: one self-contained HTML page of charts.

Reads the database (sessions, trials, measures) that the runner and the
importer fill from the recordings. Each chart has one point per session, in
order, labelled with its date:

- the quiet-stance baseline that starts every session (CoP velocity, 95 %
  ellipse area, smallest XCoM margin): the same trial every time, so the
  trend is comparable;
- assessment scores where those protocols were run (SOT composite, Limits of
  Stability excursion and directional control, mCTSIB sway velocities);
- the highest difficulty level reached per scene, and trials stopped by the
  safety monitor.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from vrbalance import __version__
from vrbalance.report.figures import png
from vrbalance.report.html import CSS, _img, _table, _write_private


def _series(
    sessions: Sequence[dict[str, Any]],
    measures: Sequence[dict[tuple[int, str], float | None]],
    key: tuple[int, str],
    scale: float,
) -> list[float]:
    return [
        (m.get(key) * scale if m.get(key) is not None else math.nan)  # type: ignore[operator]
        for m in measures
    ]


def _chart(
    title: str,
    labels: Sequence[str],
    series: dict[str, list[float]],
    ylabel: str,
    ylim: tuple[float, float] | None = None,
) -> bytes:
    fig = Figure(figsize=(5.4, 3.0))
    ax = fig.add_subplot(1, 1, 1)
    x = list(range(len(labels)))
    for name, ys in series.items():
        ax.plot(x, ys, "o-", label=name, ms=4)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(title, fontsize=10)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if len(series) > 1:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return png(fig)


def progress_report(store: Any, patient_id: str, out: Path) -> Path:
    """Write the progress page of ``patient_id``; returns its path.

    Raises
    ------
    StoreError
        Unknown patient, or the database cannot be read.
    """
    patient = store.patient(patient_id)
    sessions = store.sessions(patient_id)
    measures: list[dict[tuple[int, str], float | None]] = []
    trials: list[list[dict[str, Any]]] = []
    for s in sessions:
        measures.append({(m["trial_idx"], m["name"]): m["value"] for m in store.measures(s["id"])})
        trials.append(store.trials(s["id"]))
    labels = [f"{s['started_utc'][:10]} {s['protocol']}" for s in sessions]
    parts = [
        f"<h1>Progress of patient {html.escape(patient.id)}</h1>",
        f"<p>{len(sessions)} session(s) in the record.</p>",
    ]
    if sessions:
        parts.append("<h2>Quiet-stance baseline (first trial of every session)</h2>")
        parts.append(
            _img(
                _chart(
                    "Baseline sway velocity",
                    labels,
                    {"CoP velocity": _series(sessions, measures, (0, "cop_velocity_mps"), 1000.0)},
                    "mm/s",
                ),
                "baseline velocity",
            )
        )
        parts.append(
            _img(
                _chart(
                    "Baseline sway area",
                    labels,
                    {"95% ellipse": _series(sessions, measures, (0, "cop_area_m2"), 1e4)},
                    "cm²",
                ),
                "baseline area",
            )
        )
        parts.append(
            _img(
                _chart(
                    "Baseline margin of stability",
                    labels,
                    {
                        "min XCoM margin": _series(
                            sessions, measures, (0, "min_margin_xcom_m"), 1000.0
                        )
                    },
                    "mm",
                ),
                "baseline margin",
            )
        )
        assessment_charts = [
            ("SOT composite", {"composite": (-1, "sot_composite")}, 1.0, "score", (0, 100)),
            (
                "Limits of Stability",
                {
                    "max excursion": (-1, "los_max_excursion_pct"),
                    "end-point excursion": (-1, "los_endpoint_excursion_pct"),
                    "directional control": (-1, "los_directional_control_pct"),
                },
                1.0,
                "%",
                None,
            ),
            (
                "mCTSIB sway velocity",
                {f"condition {c}": (-1, f"mctsib_condition_{c}_velocity_mps") for c in range(1, 5)},
                1000.0,
                "mm/s",
                None,
            ),
        ]
        shown = False
        for title, keys, scale, unit, ylim in assessment_charts:
            series = {name: _series(sessions, measures, key, scale) for name, key in keys.items()}
            series = {k: v for k, v in series.items() if any(math.isfinite(y) for y in v)}
            if series:
                if not shown:
                    parts.append("<h2>Assessments</h2>")
                    shown = True
                parts.append(_img(_chart(title, labels, series, unit, ylim), title))
        scenes = sorted({t["scene"] for ts in trials for t in ts if t["kind"] == "exercise"})
        levels = {
            sc: [
                max((t["level"] or 0 for t in ts if t["scene"] == sc), default=math.nan)
                for ts in trials
            ]
            for sc in scenes
        }
        parts.append("<h2>Training</h2>")
        parts.append(
            _img(_chart("Highest level reached per scene", labels, levels, "level"), "levels")
        )
        stops = [float(sum(1 for t in ts if t["end_reason"] == "safety_stop")) for ts in trials]
        parts.append(
            _img(
                _chart(
                    "Trials stopped by the safety monitor",
                    labels,
                    {"safety stops": stops},
                    "trials",
                ),
                "safety stops",
            )
        )
        rows = []
        for s, ts in zip(sessions, trials, strict=True):
            report = Path(s["folder"]) / "report.html"
            link = f'<a href="{html.escape(report.as_uri())}">report</a>' if report.exists() else ""
            rows.append(
                [
                    html.escape(s["started_utc"][:19].replace("T", " ")),
                    html.escape(s["protocol"]),
                    str(len(ts)),
                    html.escape(s["end_reason"] or s["status"]),
                    link,
                ]
            )
        parts.append("<h2>Sessions</h2>")
        parts.append(_table(["Started (UTC)", "Protocol", "Trials", "Ended", ""], rows, left=2))
    parts.append(f'<p class="note">Generated by vrbalance {__version__}.</p>')
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>vrbalance progress {html.escape(patient.id)}</title><style>{CSS}</style>"
        "</head><body>" + "\n".join(parts) + "</body></html>"
    )
    out = Path(out)
    _write_private(out, page)
    return out
