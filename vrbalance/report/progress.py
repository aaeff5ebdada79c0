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

Only sessions fit for a trend are charted by default: simulated, shortened
(``--seconds-scale``), device-lost and never-started sessions are listed and
marked but left out of the charts (:mod:`vrbalance.report.marks`);
``include_all`` charts them too, drawn as hollow markers. The x axis is the
session's order, labelled with the date of the first session of each day, so
several sessions a day stay readable. Each session links to its report by a
path relative to the progress page; a missing or outdated report is written
when the page is (once per session, not every time).
"""

from __future__ import annotations

import html
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vrbalance import __version__
from vrbalance.errors import VrBalanceError
from vrbalance.report.figures import legend, png
from vrbalance.report.html import CSS, _img, _table, _write_private
from vrbalance.report.marks import SECONDS_SCALE, SessionMarks, marks_of
from vrbalance.report.scores import MCTSIB_CONDITIONS

log = logging.getLogger(__name__)
#: Most date labels on a chart's x axis (more would overlap).
MAX_DATE_LABELS = 10


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


def _date_ticks(dates: Sequence[str]) -> tuple[list[int], list[str]]:
    """Tick positions and labels: the first session of each day, at most MAX_DATE_LABELS.

    Sessions are plotted in order (one x step each) so that ten sessions on one
    day do not pile up on one date; the axis names each day once, where it starts.
    """
    firsts = [i for i, d in enumerate(dates) if i == 0 or d != dates[i - 1]]
    step = max(1, math.ceil(len(firsts) / MAX_DATE_LABELS))
    shown = firsts[::step]
    return shown, [dates[i] for i in shown]


def _chart(
    title: str,
    dates: Sequence[str],
    series: dict[str, list[float]],
    ylabel: str,
    ylim: tuple[float, float] | None = None,
    *,
    integer: bool = False,
    hollow: Sequence[bool] = (),
) -> Figure:
    """One trend chart, a point per session; ``hollow`` marks sessions unfit for a trend.

    ``integer`` puts whole-number ticks on the y axis (levels, counts).
    """
    fig = Figure(figsize=(5.4, 3.0))
    ax = fig.add_subplot(1, 1, 1)
    x = list(range(len(dates)))
    for name, ys in series.items():
        (line,) = ax.plot(x, ys, "o-", label=name, ms=4)
        marked = [i for i, h in enumerate(hollow) if h]
        if marked:
            ax.plot(
                marked,
                [ys[i] for i in marked],
                "o",
                ms=6,
                mfc="white",
                mec=line.get_color(),
                label=None,
            )
    ticks, labels = _date_ticks(dates)
    ax.set_xticks(ticks)
    ax.set_xticks(x, minor=True)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
    ax.set_xlim(-0.5, max(len(dates) - 0.5, 0.5))
    ax.set_xlabel("sessions in order (date of each day's first)", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(title, fontsize=10)
    if integer:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if ylim is not None:
        ax.set_ylim(*ylim)
    elif integer:
        # Counts and levels start at 0 and need room for at least one whole step
        # (all-zero counts would otherwise get a ±0.05 axis).
        finite = [y for ys in series.values() for y in ys if math.isfinite(y)]
        ax.set_ylim(0, max([1.0, *finite]) + 0.5)
    if len(series) > 1:
        legend(ax, fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def session_marks(
    session: dict[str, Any],
    trials: Sequence[dict[str, Any]],
    measures: dict[tuple[int, str], float | None],
) -> SessionMarks:
    """The marks of a filed session, from its database rows (as the report's from its files)."""
    return marks_of(
        simulated=session.get("simulated", 0),
        seconds_scale=measures.get((-1, SECONDS_SCALE)),
        end_reason=session.get("end_reason"),
        trials=trials,
    )


def report_link(folder: Path, page: Path, *, make: bool = True) -> str | None:
    """A link to the session's report relative to ``page``, writing the report if needed.

    The report is (re)written only when it is missing or older than the
    recording's sidecar, so a progress page over many sessions costs one report
    per new session. ``None`` when the recording is not there (moved, deleted).
    """
    from vrbalance.report.html import session_report

    report = folder / "report.html"
    sidecar = folder / "session.json"
    if not sidecar.exists():
        return None
    if make and (not report.exists() or report.stat().st_mtime < sidecar.stat().st_mtime):
        try:
            session_report(folder, report)
        except (OSError, ValueError, KeyError, VrBalanceError) as exc:
            log.warning("report of %s not written: %s", folder, exc)
            return None
    if not report.exists():
        return None
    return Path(os.path.relpath(report, page.resolve().parent)).as_posix()


def progress_report(
    store: Any,
    patient_id: str,
    out: Path,
    *,
    include_all: bool = False,
    make_reports: bool = True,
) -> Path:
    """Write the progress page of ``patient_id``; returns its path.

    Parameters
    ----------
    store : Store
    patient_id : str
    out : Path
        The page (``0o600``).
    include_all : bool
        Chart simulated, shortened, device-lost and never-started sessions too
        (hollow markers); by default they are only listed.
    make_reports : bool
        Write each listed session's missing or outdated report, to link to it.

    Raises
    ------
    StoreError
        Unknown patient, or the database cannot be read.
    """
    out = Path(out)
    patient = store.patient(patient_id)
    every = store.sessions(patient_id)
    rows_all = []
    for s in every:
        m = {(m["trial_idx"], m["name"]): m["value"] for m in store.measures(s["id"])}
        ts = store.trials(s["id"])
        rows_all.append((s, m, ts, session_marks(s, ts, m)))
    charted = [r for r in rows_all if include_all or r[3].comparable]
    sessions = [r[0] for r in charted]
    measures = [r[1] for r in charted]
    trials = [r[2] for r in charted]
    hollow = [not r[3].comparable for r in charted]
    labels = [s["started_utc"][:10] for s in sessions]
    left_out = len(rows_all) - len(charted)
    parts = [
        f"<h1>Progress of patient {html.escape(patient.id)}</h1>",
        f"<p>{len(rows_all)} session(s) in the record; {len(charted)} charted.</p>",
    ]
    if left_out:
        parts.append(
            f'<p class="marks">{left_out} session(s) left out of the charts: simulated, '
            "shortened (--seconds-scale), device lost or never started (marked in the "
            "table below). <code>vrbalance progress --include-all</code> charts them as "
            "hollow markers.</p>"
        )
    elif include_all and any(hollow):
        parts.append(
            '<p class="marks">Hollow markers: simulated, shortened, device-lost or '
            "never-started sessions, not comparable with the others.</p>"
        )

    def chart(title: str, series: dict[str, list[float]], unit: str, **kw: Any) -> bytes:
        return png(_chart(title, labels, series, unit, hollow=hollow, **kw))

    if sessions:
        parts.append("<h2>Quiet-stance baseline (first trial of every session)</h2>")
        parts.append(
            _img(
                chart(
                    "Baseline sway velocity",
                    {"CoP velocity": _series(sessions, measures, (0, "cop_velocity_mps"), 1000.0)},
                    "mm/s",
                ),
                "baseline velocity",
            )
        )
        parts.append(
            _img(
                chart(
                    "Baseline sway area",
                    {"95% ellipse": _series(sessions, measures, (0, "cop_area_m2"), 1e4)},
                    "cm²",
                ),
                "baseline area",
            )
        )
        parts.append(
            _img(
                chart(
                    "Baseline margin of stability",
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
                {
                    name: (-1, f"mctsib_condition_{c}_velocity_mps")
                    for c, name in MCTSIB_CONDITIONS.items()
                },
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
                parts.append(_img(chart(title, series, unit, ylim=ylim), title))
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
            _img(chart("Highest level reached per scene", levels, "level", integer=True), "levels")
        )
        stops = [float(sum(1 for t in ts if t["end_reason"] == "safety_stop")) for ts in trials]
        parts.append(
            _img(
                chart(
                    "Trials stopped by the safety monitor",
                    {"safety stops": stops},
                    "trials",
                    integer=True,
                ),
                "safety stops",
            )
        )
    if rows_all:
        rows = []
        for s, _m, ts, marks in rows_all:
            link = report_link(Path(s["folder"]), out, make=make_reports)
            rows.append(
                [
                    html.escape(s["started_utc"][:19].replace("T", " ")),
                    html.escape(s["protocol"]),
                    str(len(ts)),
                    html.escape((s["end_reason"] or s["status"]).replace("_", " ")),
                    f'<span class="warning">{html.escape("; ".join(marks.labels()))}</span>',
                    f'<a href="{html.escape(link)}">report</a>' if link else "",
                ]
            )
        parts.append("<h2>Sessions</h2>")
        parts.append(
            _table(["Started (UTC)", "Protocol", "Trials", "Ended", "Marked", ""], rows, left=6)
        )
    parts.append(f'<p class="note">Generated by vrbalance {__version__}.</p>')
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>vrbalance progress {html.escape(patient.id)}</title><style>{CSS}</style>"
        "</head><body>" + "\n".join(parts) + "</body></html>"
    )
    _write_private(out, page)
    return out
