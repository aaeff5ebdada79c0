"""Figures of a session report, as PNG bytes (matplotlib's object API, no pyplot state).

Every function takes a :class:`SessionData` (read once from the recording
folder) and returns PNG bytes. Plots show centimetres and seconds from the
session's start (the recording keeps metres and the loop clock).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vrbalance.sessions.recorder import column, read_rows, read_sidecar
from vrbalance.sessions.summary import trial_rows

DPI = 100
#: Horizontal box plots: ``orientation=`` since Matplotlib 3.10 (``vert=`` is deprecated).
_HORIZONTAL: dict[str, Any] = (
    {"orientation": "horizontal"}
    if tuple(int(p) for p in matplotlib.__version__.split(".")[:2]) >= (3, 10)
    else {"vert": False}
)
SEVERITY_COLOURS = {"info": "#4c72b0", "warning": "#dd8452", "alarm": "#c44e52"}


@dataclass(frozen=True, slots=True)
class SessionData:
    """A recording loaded for reporting (arrays in SI units, times from session start).

    Attributes
    ----------
    folder : Path
    meta : dict
        The sidecar.
    trials : list of dict
        ``trials.csv`` rows.
    events : list of dict
        ``events.csv`` rows.
    t_s : ndarray, shape (N,)
        Tick times minus the session's clock origin, s.
    trial : ndarray of int, shape (N,)
    cop_m, xcom_m : ndarray, shape (N, 2)
        NaN where undefined.
    level : ndarray, shape (N,)
    response : list of str
        Safety response per tick.
    """

    folder: Path
    meta: dict[str, Any]
    trials: list[dict[str, str]]
    events: list[dict[str, str]]
    t_s: np.ndarray
    trial: np.ndarray
    cop_m: np.ndarray
    xcom_m: np.ndarray
    com_m: np.ndarray
    level: np.ndarray
    response: list[str]
    origin_s: float = 0.0

    def __post_init__(self) -> None:
        # A snapshot of the recording: every figure reads the same arrays, so
        # none may change them under the others.
        for array in (self.t_s, self.trial, self.cop_m, self.xcom_m, self.com_m, self.level):
            array.flags.writeable = False

    @classmethod
    def load(cls, folder: Path, rows: list[dict[str, str]] | None = None) -> SessionData:
        """Read a recording folder once (sidecar, ``state.csv``, ``events.csv``, trials).

        Times are shifted by the sidecar's ``clock_origin_s`` so every figure
        shares one axis starting at the session start. ``rows``: the
        ``state.csv`` rows when the caller has read them already.
        """
        folder = Path(folder)
        meta = read_sidecar(folder)
        rows = read_rows(folder / "state.csv") if rows is None else rows
        origin = float(meta.get("clock_origin_s", 0.0))
        if rows:
            t = column(rows, "t_s") - origin
            trial = np.array([int(r["trial"]) for r in rows])
        else:
            t = np.zeros(0)
            trial = np.zeros(0, dtype=int)

        def pair(a: str, b: str) -> np.ndarray:
            if not rows:
                return np.zeros((0, 2))
            return np.column_stack([column(rows, a), column(rows, b)])

        return cls(
            folder=folder,
            meta=meta,
            trials=trial_rows(folder, meta, rows),
            events=read_rows(folder / "events.csv"),
            t_s=t,
            trial=trial,
            cop_m=pair("cop_x_m", "cop_y_m"),
            xcom_m=pair("xcom_x_m", "xcom_y_m"),
            com_m=pair("com_x_m", "com_y_m"),
            level=column(rows, "level") if rows else np.zeros(0),
            response=[r["response"] for r in rows],
            origin_s=origin,
        )

    def event_time(self, row: dict[str, str]) -> float:
        """An ``events.csv`` row's time on the figures' axis (s from the session start)."""
        return float(row["t_s"]) - self.origin_s


def png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def legend(ax: Any, **kwargs: Any) -> None:
    """``ax.legend`` only when something is labelled (an empty trial has no lines).

    Matplotlib warns "No artists with labels found" otherwise, and a warning
    has no place in a clinical report's output.
    """
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _bos_cm(data: SessionData, stance_name: str) -> np.ndarray | None:
    try:
        from vrbalance.balance.geometry import Body
        from vrbalance.balance.stance import make_stance
        from vrbalance.config.plates import load_foot_template

        body = Body(**data.meta["body"])
        template = load_foot_template(data.meta.get("foot_template", "adult"))
        stance = make_stance(stance_name, body, template)
    except (KeyError, ValueError, TypeError, FileNotFoundError):
        return None
    v = np.asarray(stance.base_of_support.vertices) * 100.0
    return np.vstack([v, v[:1]])


def statokinesigram(data: SessionData, max_trials: int = 24) -> bytes:
    """CoP (blue) and XCoM (orange) paths over the base of support, one panel per trial."""
    trials = data.trials[:max_trials] or [
        {"trial": "0", "name": "(no trial finished)", "stance": "feet_apart"}
    ]
    n = len(trials)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.2 * cols, 3.2 * rows + 0.4), layout="constrained")
    for k, tr in enumerate(trials):
        ax = fig.add_subplot(rows, cols, k + 1)
        sel = data.trial == int(tr["trial"])
        bos = _bos_cm(data, tr.get("stance", "feet_apart"))
        if bos is not None:
            ax.fill(bos[:, 0], bos[:, 1], color="#dddddd", zorder=0, label="base of support")
            ax.plot(bos[:, 0], bos[:, 1], color="#888888", lw=0.8)
        cop = data.cop_m[sel] * 100.0
        xcom = data.xcom_m[sel] * 100.0
        ax.plot(xcom[:, 0], xcom[:, 1], color="#dd8452", lw=0.6, alpha=0.8, label="XCoM")
        ax.plot(cop[:, 0], cop[:, 1], color="#4c72b0", lw=0.6, label="CoP")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(tr["name"], fontsize=9)
        ax.tick_params(labelsize=7)
        if k % cols == 0:
            ax.set_ylabel("y anterior (cm)", fontsize=8)
        if k >= n - cols:
            ax.set_xlabel("x right (cm)", fontsize=8)
        if k == 0:
            legend(ax, fontsize=7, loc="upper right")
    fig.suptitle("Statokinesigram: CoP and extrapolated CoM over the base of support")
    return png(fig)


def _shade_trials(ax: Any, data: SessionData) -> None:
    for k, tr in enumerate(data.trials):
        sel = data.trial == int(tr["trial"])
        if not np.any(sel):
            continue
        t0, t1 = data.t_s[sel][0], data.t_s[sel][-1]
        if k % 2 == 0:
            ax.axvspan(t0, t1, color="#f0f0f0", zorder=0)


def stabilogram(data: SessionData) -> bytes:
    """CoP x (ML) and y (AP) against session time, trials shaded."""
    fig = Figure(figsize=(11, 4.5))
    axes = [fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)]
    for i, (ax, name) in enumerate(zip(axes, ("ML (x right)", "AP (y anterior)"), strict=True)):
        _shade_trials(ax, data)
        # One line per trial: no line is drawn across the gap between two trials.
        for k, idx in enumerate(np.unique(data.trial)):
            sel = data.trial == idx
            ax.plot(
                data.t_s[sel],
                data.cop_m[sel, i] * 100.0,
                color="#4c72b0",
                lw=0.6,
                label="CoP" if k == 0 else None,
            )
            ax.plot(
                data.t_s[sel],
                data.com_m[sel, i] * 100.0,
                color="#55a868",
                lw=0.8,
                label="CoM" if k == 0 else None,
            )
        ax.set_ylabel(f"{name} (cm)", fontsize=9)
        ax.tick_params(labelsize=8)
    legend(axes[0], fontsize=8, loc="upper right")
    axes[1].set_xlabel("time from session start (s)")
    fig.suptitle("Stabilogram (shaded bands: alternate trials)")
    return png(fig)


def difficulty_timeline(data: SessionData) -> bytes:
    """Difficulty level over time; safety responses shaded, events marked by severity."""
    fig = Figure(figsize=(11, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    _shade_trials(ax, data)
    if data.t_s.size:
        ax.step(data.t_s, data.level, where="post", color="#333333", lw=1.2, label="level")
        active = np.array([r not in ("", "none") for r in data.response])
        if np.any(active):
            top = np.nanmax(data.level) + 1 if np.any(np.isfinite(data.level)) else 2
            ax.fill_between(
                data.t_s,
                0,
                top,
                where=active,
                color="#dd8452",
                alpha=0.25,
                step="post",
                label="safety response active",
            )
    seen: set[str] = set()
    for ev in data.events:
        if ev["source"] not in ("safety", "director", "operator", "device"):
            continue
        if ev["source"] == "device" and ev["severity"] == "info":
            continue
        if ev["source"] == "safety" and ev["kind"] == "monitor_reset":
            continue
        t = data.event_time(ev)
        colour = SEVERITY_COLOURS.get(ev["severity"], "#4c72b0")
        label = f"{ev['source']} {ev['severity']}"
        ax.axvline(
            t,
            color=colour,
            lw=0.9,
            alpha=0.8,
            label=None if label in seen else label,
            ls="-" if ev["source"] == "safety" else ":",
        )
        seen.add(label)
    ax.set_xlabel("time from session start (s)")
    ax.set_ylabel("difficulty level")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # levels are whole numbers
    if data.t_s.size:
        ax.set_ylim(bottom=0)
    else:
        ax.set_ylim(0, 1)
    legend(ax, fontsize=7, loc="upper left", ncol=3)
    ax.set_title("Difficulty over time with safety, director and operator events")
    return png(fig)


def reference_plot(rows: Sequence[tuple[str, Any]]) -> bytes:
    """Each comparable trial's measures (red) against the BDS reference spread (box: 5-95 %).

    ``rows`` is ``[(trial label, Standing), ...]``.
    """
    from vrbalance.report.reference import DISPLAY, VARIABLES, reference_values

    measures = list(DISPLAY)
    labels = sorted({label for label, _ in rows}, key=[label for label, _ in rows].index)
    fig = Figure(figsize=(11, 0.7 * len(labels) + 1.6))
    for m, measure in enumerate(measures):
        ax = fig.add_subplot(1, len(measures), m + 1)
        for y, label in enumerate(labels):
            st = next((s for lab, s in rows if lab == label and s.measure == measure), None)
            if st is None:
                continue
            group, _, cond = st.group.partition(", ")
            eyes = "open" if "eyes open" in cond else "closed"
            surface = "firm" if cond.endswith("firm") else "foam"
            ref = reference_values(
                None if group == "all ages" else group, eyes, surface, VARIABLES[measure][0]
            )
            k = DISPLAY[measure][2]
            ax.boxplot(
                [k * ref[np.isfinite(ref)]],
                positions=[y],
                **_HORIZONTAL,
                widths=0.5,
                whis=(5, 95),
                showfliers=False,
            )
            ax.plot([k * st.value], [y], "o", color="#c44e52", ms=7)
            ax.annotate(
                f"P{st.percentile:.0f}",
                (k * st.value, y),
                xytext=(4, 6),
                textcoords="offset points",
                fontsize=7,
                color="#c44e52",
            )
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels if m == 0 else [""] * len(labels), fontsize=8)
        ax.set_xlabel(f"{DISPLAY[measure][0]} ({DISPLAY[measure][1]})", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.set_ylim(-0.7, len(labels) - 0.3)
    fig.suptitle(
        "Patient (red) among BDS adults of the same age group and condition "
        "(box: quartiles, whiskers 5-95 %)",
        fontsize=10,
    )
    return png(fig)


def sot_plot(scores: dict[int, float], composite: float) -> bytes:
    """Equilibrium score per SOT condition and the composite."""
    fig = Figure(figsize=(6.5, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    conds = sorted(scores)
    ax.bar([str(c) for c in conds], [scores[c] for c in conds], color="#4c72b0")
    if math.isfinite(composite):
        ax.axhline(composite, color="#c44e52", ls="--", label=f"composite {composite:.0f}")
        ax.legend(fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_xlabel("SOT condition")
    ax.set_ylabel("equilibrium score")
    ax.set_title("Sensory Organization Test")
    return png(fig)


def los_plot(data: SessionData, trial_idx: int) -> bytes:
    """Limits of Stability: CoM path of the trial with the 8 target directions."""
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot(1, 1, 1)
    sel = data.trial == trial_idx
    xy = data.com_m[sel] * 100.0
    for ev in data.events:
        if ev["kind"] != "los_target" or int(ev["trial"]) != trial_idx:
            continue
        v = json.loads(ev["values_json"] or "{}")
        d = float(v.get("distance_m", 0.1)) * 100.0
        a = float(v.get("direction_rad", 0.0))
        x0, y0 = xy[0] if xy.size else (0.0, 0.0)
        ax.plot([x0, x0 + d * math.sin(a)], [y0, y0 + d * math.cos(a)], color="#bbbbbb", lw=0.8)
        ax.plot(x0 + d * math.sin(a), y0 + d * math.cos(a), "s", color="#dd8452", ms=6)
    ax.plot(xy[:, 0], xy[:, 1], color="#4c72b0", lw=0.8, label="CoM")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x right (cm)")
    ax.set_ylabel("y anterior (cm)")
    ax.set_title("Limits of Stability: targets and CoM path")
    return png(fig)
