"""Self-contained HTML reports: one file, figures embedded as base64 PNG, no network.

:func:`session_report` reads only the recording folder (the source of truth),
computes its measures with :func:`vrbalance.sessions.summary.summarize_folder`
(the same function that fills the database, so report and database agree),
and writes one HTML page: header, trials and their measures, assessment
scores, statokinesigram, stabilogram, difficulty over time with safety events,
the patient's standing against the BDS reference values, and the event log.
The measures are also embedded as JSON (``<script id="vrbalance-measures">``)
for tools and tests.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vrbalance import __version__
from vrbalance.report import figures
from vrbalance.report.exercises import exercise_sections
from vrbalance.report.marks import SessionMarks, marks_of
from vrbalance.report.reference import CITATION, DISPLAY, comparable, standing
from vrbalance.sessions.recorder import FILE_MODE, make_private_dir, read_rows
from vrbalance.sessions.summary import Measure, summarize_folder

log = logging.getLogger(__name__)

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.meta td { text-align: left; border: none; padding: 1px 10px 1px 0; }
img { max-width: 100%; } .note { color: #666; font-size: 0.85em; }
.alarm { color: #c44e52; font-weight: bold; } .warning { color: #b8641d; }
.marks { background: #fff3cd; border: 1px solid #e0b84c; padding: 0.5em 1em; }
"""


def _img(data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value * scale:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    head = "".join(
        f'<th class="l">{html.escape(h)}</th>' if i < left else f"<th>{html.escape(h)}</th>"
        for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>" for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def patient_age(meta: dict[str, Any]) -> float | None:
    """Age in years at the session (from the sidecar's birth year), or ``None``."""
    birth = (meta.get("patient") or {}).get("birth_year")
    started = str(meta.get("started_utc", ""))[:4]
    if birth is None or not started.isdigit():
        return None
    return float(int(started) - int(birth))


def session_report(
    folder: Path,
    out: Path | None = None,
    *,
    on_progress: Callable[[float, str], None] | None = None,
) -> Path:
    """Write the HTML report of one session; returns its path.

    Parameters
    ----------
    folder : Path
        The session recording.
    out : Path, optional
        Output file (default ``<folder>/report.html``); written ``0o600``.
    on_progress : callable, optional
        ``on_progress(fraction, step)`` as figures are made.
    """
    folder = Path(folder)
    step = on_progress or (lambda _f, _s: None)
    step(0.0, "reading")
    states = read_rows(folder / "state.csv")  # read once: figures and measures
    data = figures.SessionData.load(folder, states)
    measures = summarize_folder(folder, data.trials, states)
    by = {(i, n): v for i, n, v, _ in measures}
    meta = data.meta
    age = patient_age(meta)
    parts: list[str] = []
    pid = html.escape(str(meta.get("patient_id", "?")))
    proto = meta.get("protocol") or {}
    parts.append(f"<h1>Balance session: {html.escape(str(proto.get('title', '')))}</h1>")
    meta_rows = [
        ("Patient", pid + (f" ({age:.0f} years)" if age is not None else "")),
        ("Session", html.escape(str(meta.get("session_id", "")))),
        ("Started (UTC)", html.escape(str(meta.get("started_utc", ""))[:19].replace("T", " "))),
        ("Ended", html.escape(str(meta.get("end_reason", meta.get("status", "?"))))),
        ("Protocol", html.escape(str(proto.get("name", "")))),
        ("Plate", html.escape(str((meta.get("plate") or {}).get("id") or "none (headset only)"))),
        ("Simulated", "yes" if meta.get("simulated") else "no"),
        (
            "Recorded by",
            f"vrbalance {html.escape(str((meta.get('software') or {}).get('vrbalance', '')))}",
        ),
    ]
    marks = session_marks(meta, data.trials)
    if marks.labels():
        meta_rows.append(
            ("Marked", '<span class="warning">' + "; ".join(marks.labels()) + "</span>")
        )
    if meta.get("status") == "recording":
        meta_rows.append(
            (
                "Note",
                '<span class="alarm">recording was cut short (crash or '
                "power loss); everything up to the last second is shown</span>",
            )
        )
    if not marks.comparable:
        parts.append(
            '<p class="marks"><b>Not comparable with full-length sessions of a real '
            f"patient:</b> {html.escape('; '.join(marks.labels()))}. The progress page "
            "leaves this session out of its trends (vrbalance progress --include-all "
            "shows it).</p>"
        )
    parts.append(
        '<table class="meta">'
        + "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in meta_rows)
        + "</table>"
    )

    # Trials and their measures.
    rows = []
    for tr in data.trials:
        i = int(tr["trial"])
        reason = tr["end_reason"]
        cls = "alarm" if reason in ("safety_stop", "device_lost") else ""
        rows.append(
            [
                html.escape(tr["name"]),
                html.escape(tr["scene"]),
                html.escape(tr["stance"].replace("_", " ")),
                f"{tr['eyes']}/{tr['surface']}"
                + (" (sway-ref.)" if tr["surround"] == "sway_referenced" else ""),
                html.escape(tr["level"]),
                _fmt(by.get((i, "duration_s"))),
                f'<span class="{cls}">{html.escape(reason.replace("_", " "))}</span>',
                _fmt(by.get((i, "cop_velocity_mps")), 1000.0),
                _fmt(by.get((i, "cop_area_m2")), 1e4, 2),
                _fmt(by.get((i, "cop_mfreq_hz")), 1.0, 2),
                _fmt(by.get((i, "min_margin_xcom_m")), 1000.0, 0),
                _fmt(by.get((i, "safety_events")), 1.0, 0),
            ]
        )
    parts.append("<h2>Trials</h2>")
    parts.append(
        _table(
            [
                "Trial",
                "Scene",
                "Stance",
                "Eyes/surface",
                "Level",
                "Duration (s)",
                "Ended",
                "CoP velocity (mm/s)",
                "95% ellipse (cm²)",
                "Mean freq. (Hz)",
                "Min XCoM margin (mm)",
                "Safety events",
            ],
            rows,
            left=4,
        )
    )
    parts.append(
        '<p class="note">CoP measures after Prieto et al. (1996), computed exactly as '
        "Santos &amp; Duarte (2016) did. XCoM margin: extrapolated centre of mass to "
        "the edge of the base of support (Hof et al. 2005), positive inside.</p>"
    )

    step(0.1, "assessments")
    parts.extend(_assessments(data, by))
    parts.extend(exercise_sections(data, by, _img, _table))  # walk, leg raises, tai chi
    step(0.3, "statokinesigram")
    parts.append("<h2>Statokinesigram</h2>")
    parts.append(_img(figures.statokinesigram(data), "statokinesigram"))
    step(0.5, "stabilogram")
    parts.append("<h2>Stabilogram</h2>")
    parts.append(_img(figures.stabilogram(data), "stabilogram"))
    step(0.65, "difficulty")
    parts.append("<h2>Difficulty and safety events</h2>")
    parts.append(_img(figures.difficulty_timeline(data), "difficulty over time"))
    step(0.8, "reference")
    parts.extend(_reference(data, by, age))
    parts.append("<h2>Events</h2>")
    parts.append(_events(data))
    parts.append(
        f'<p class="note">Generated by vrbalance {__version__}. Reference values: '
        f"{html.escape(CITATION)}.</p>"
    )
    payload = json.dumps(
        [{"trial": i, "name": n, "value": v, "unit": u} for i, n, v, u in measures],
        separators=(",", ":"),
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>vrbalance session {pid}</title><style>{CSS}</style></head><body>"
        + "\n".join(parts)
        + f'<script type="application/json" id="vrbalance-measures">{payload}</script>'
        + "</body></html>"
    )
    out = Path(out) if out is not None else folder / "report.html"
    _write_private(out, page)
    step(1.0, "done")
    return out


def _write_private(path: Path, text: str) -> None:
    """Write a report readable by its user only (``0o600``): it holds patient data."""
    import os

    if not path.parent.exists():
        make_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    with open(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _assessments(data: figures.SessionData, by: dict[tuple[int, str], float | None]) -> list[str]:
    out: list[str] = []
    sot = {
        int(n.split("_")[2]): v
        for (i, n), v in by.items()
        if i == -1 and n.startswith("sot_condition_") and v is not None
    }
    if sot:
        composite = by.get((-1, "sot_composite"))
        out.append("<h2>Sensory Organization Test</h2>")
        out.append(
            _img(
                figures.sot_plot(sot, composite if composite is not None else math.nan),
                "SOT equilibrium scores",
            )
        )
        rows = [[f"condition {c}", _fmt(v, 1.0, 0)] for c, v in sorted(sot.items())]
        rows.append(["<b>composite</b>", f"<b>{_fmt(composite, 1.0, 0)}</b>"])
        for name in ("somatosensory", "visual", "vestibular", "preference"):
            rows.append([f"{name} ratio", _fmt(by.get((-1, f"sot_ratio_{name}")), 1.0, 2)])
        out.append(_table(["", "Equilibrium score"], rows))
        out.append(
            '<p class="note">Equilibrium score 100·(1 − AP sway range / 12.5°), 0 for a '
            "fall; composite = NeuroCom weighted mean (conditions 1-2 once, 3-6 per "
            "trial). Conditions 3 and 6: visual surround sway-referenced; 4-6 on foam "
            "(a fixed plate cannot sway-reference the support).</p>"
        )
    mct = {
        int(n.split("_")[2]): v
        for (i, n), v in by.items()
        if i == -1 and n.startswith("mctsib_condition_")
    }
    if mct:
        names = {
            1: "eyes open, firm",
            2: "eyes closed, firm",
            3: "eyes open, foam",
            4: "eyes closed, foam",
        }
        out.append("<h2>mCTSIB</h2>")
        out.append(
            _table(
                ["Condition", "CoP velocity (mm/s)"],
                [[names.get(c, str(c)), _fmt(v, 1000.0)] for c, v in sorted(mct.items())],
            )
        )
    los_trials = [int(t["trial"]) for t in data.trials if t["assessment"] == "los"]
    for idx in los_trials:
        out.append("<h2>Limits of Stability</h2>")
        out.append(_img(figures.los_plot(data, idx), "limits of stability"))
        rows = []
        k = 1
        while (idx, f"los_t{k}_reaction_time_s") in by:
            rows.append(
                [
                    f"target {k}",
                    _fmt(by.get((idx, f"los_t{k}_reaction_time_s")), 1.0, 2),
                    _fmt(by.get((idx, f"los_t{k}_movement_velocity_mps")), 100.0, 1),
                    _fmt(by.get((idx, f"los_t{k}_endpoint_excursion_pct")), 1.0, 0),
                    _fmt(by.get((idx, f"los_t{k}_max_excursion_pct")), 1.0, 0),
                    _fmt(by.get((idx, f"los_t{k}_directional_control_pct")), 1.0, 0),
                ]
            )
            k += 1
        rows.append(
            [
                "<b>mean</b>",
                _fmt(by.get((idx, "los_reaction_time_s")), 1.0, 2),
                _fmt(by.get((idx, "los_movement_velocity_mps")), 100.0, 1),
                _fmt(by.get((idx, "los_endpoint_excursion_pct")), 1.0, 0),
                _fmt(by.get((idx, "los_max_excursion_pct")), 1.0, 0),
                _fmt(by.get((idx, "los_directional_control_pct")), 1.0, 0),
            ]
        )
        out.append(
            _table(
                [
                    "",
                    "Reaction time (s)",
                    "Movement velocity (cm/s)",
                    "End-point excursion (%)",
                    "Max excursion (%)",
                    "Directional control (%)",
                ],
                rows,
            )
        )
    return out


def session_marks(meta: dict[str, Any], trials: Sequence[dict[str, str]]) -> SessionMarks:
    """The marks of a recorded session (simulated, shortened, device lost, not started)."""
    return marks_of(
        simulated=meta.get("simulated", False),
        seconds_scale=meta.get("seconds_scale"),
        end_reason=meta.get("end_reason"),
        trials=trials,
    )


def trial_task(meta: dict[str, Any], trial: dict[str, str]) -> str:
    """A trial's task (``quiet``, ``step_up``...) from the protocol in the sidecar.

    ``trials.csv`` has no task column; the sidecar keeps the whole protocol,
    matched by the trial's name. Unknown (an older or hand-made recording): the
    task is ``"unknown"``, which no reference compares with.
    """
    name = trial.get("name", "").removesuffix(" (incomplete)")
    for planned in (meta.get("protocol") or {}).get("trials") or []:
        if planned.get("name") == name:
            return str(planned.get("task", "quiet"))
    return "unknown"


def _reference(
    data: figures.SessionData, by: dict[tuple[int, str], float | None], age: float | None
) -> list[str]:
    pairs = []
    without: list[tuple[str, str]] = []
    for tr in data.trials:
        why = comparable(tr, trial_task(data.meta, tr))
        if why is not None:
            without.append((tr["name"], why))
            continue
        i = int(tr["trial"])
        found = False
        for measure in DISPLAY:
            value = by.get((i, measure))
            st = (
                standing(
                    measure,
                    value,
                    age_years=age,
                    eyes=tr["eyes"],  # type: ignore[arg-type]
                    surface=tr["surface"],
                )
                if value is not None
                else None
            )
            if st is not None:
                pairs.append((tr["name"], st))
                found = True
        if not found:
            without.append((tr["name"], "no centre-of-pressure measures (plate not loaded?)"))
    out = ["<h2>Standing against reference values (BDS, Santos &amp; Duarte 2016)</h2>"]
    if not pairs:
        out.append("<p>No completed quiet-stance trial to compare.</p>")
    else:
        out.append(_img(figures.reference_plot(pairs), "reference values"))
        rows = []
        for label, s in pairs:
            name, unit, k = DISPLAY[s.measure]
            rows.append(
                [
                    html.escape(label),
                    html.escape(s.group),
                    html.escape(name),
                    f"{s.value * k:.2f} {unit}",
                    f"{s.median * k:.2f}",
                    f"{s.p5 * k:.2f}–{s.p95 * k:.2f}",
                    f"{s.percentile:.0f}",
                    str(s.n),
                ]
            )
        out.append(
            _table(
                [
                    "Trial",
                    "Reference group",
                    "Measure",
                    "Patient",
                    "Median",
                    "5–95 %",
                    "Percentile",
                    "n",
                ],
                rows,
                left=3,
            )
        )
        out.append(
            '<p class="note">Reference: quiet standing, 60 s, feet apart, of 163 adults '
            f"({html.escape(CITATION)}). Groups: Young 18-59, Old 60+ years"
            + ("" if age is not None else " (age unknown: all ages)")
            + ". Shorter trials give smaller ellipse areas; velocity compares best.</p>"
        )
    if without:
        out.append(
            "<p>No reference for these trials (only quiet stance, feet apart, with a "
            "still world, is comparable; their own measures are in the Trials table "
            "and the assessment sections):</p>"
        )
        out.append(
            _table(
                ["Trial", "Why no reference"],
                [[html.escape(n), html.escape(w)] for n, w in without],
                left=2,
            )
        )
    return out


def _events(data: figures.SessionData) -> str:
    rows = []
    for ev in data.events:
        if ev["source"] == "device" and ev["severity"] == "info":
            continue
        sev = ev["severity"]
        rows.append(
            [
                f"{data.event_time(ev):.2f}",
                html.escape(ev["trial"]),
                html.escape(ev["source"]),
                f'<span class="{sev}">{html.escape(ev["kind"])}</span>',
                html.escape(ev["message"]),
            ]
        )
    return _table(["t (s)", "Trial", "Source", "Kind", "Message"], rows, left=5)


def measures_from_html(text: str) -> list[Measure]:
    """The measures embedded in a report (for tools and tests)."""
    start = text.index('<script type="application/json" id="vrbalance-measures">')
    start = text.index(">", start) + 1
    end = text.index("</script>", start)
    return [(m["trial"], m["name"], m["value"], m["unit"]) for m in json.loads(text[start:end])]
