"""What makes a session unfit for a clinical trend: simulated, shortened, device lost, not started.

A baseline that "improves" from 10.8 to 7.9 mm/s because later baselines lasted
3 s instead of 30 s, or because a simulated patient stood in for the real one,
misleads a clinician. Reports mark such sessions, and the progress page leaves
them out of its trends unless asked (``vrbalance progress --include-all``).

One function serves the session report (reading the recording's sidecar and
trial rows) and the progress page (reading the database's session, trial and
measure rows), so both mark the same sessions for the same reasons.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Session-level measure that carries ``--seconds-scale`` into the database.
SECONDS_SCALE = "seconds_scale"


@dataclass(frozen=True, slots=True)
class SessionMarks:
    """Why a session is not comparable with a clinic's real, full-length sessions.

    Attributes
    ----------
    simulated : bool
        The simulated patient stood in (``vrbalance run --simulate``).
    seconds_scale : float
        Every trial was shortened by this factor (``--seconds-scale``); 1 is full length.
    device_lost : bool
        A device (plate, head, headset) was lost and ended a trial.
    started : bool
        At least one trial started (all inputs streamed); a session whose first
        trial never started recorded nothing to compare.
    """

    simulated: bool = False
    seconds_scale: float = 1.0
    device_lost: bool = False
    started: bool = True

    @property
    def shortened(self) -> bool:
        """Trials ran shorter than planned by the protocol (``seconds_scale < 1``)."""
        return self.seconds_scale < 1.0

    @property
    def comparable(self) -> bool:
        """Fit for a trend: real patient, full-length trials, devices kept, started."""
        return not (self.simulated or self.shortened or self.device_lost or not self.started)

    def labels(self) -> list[str]:
        """Short clinical words for each mark (empty when comparable)."""
        out = []
        if not self.started:
            out.append("not started")
        if self.simulated:
            out.append("simulated patient")
        if self.shortened:
            out.append(f"shortened to {100 * self.seconds_scale:g} % of the protocol's durations")
        if self.device_lost:
            out.append("device lost")
        return out


def _duration(trial: Mapping[str, Any]) -> float:
    try:
        return float(trial["end_t_s"]) - float(trial["start_t_s"])
    except (KeyError, TypeError, ValueError):
        return math.nan


def marks_of(
    *,
    simulated: Any,
    seconds_scale: Any,
    end_reason: str | None,
    trials: Iterable[Mapping[str, Any]],
) -> SessionMarks:
    """Marks of one session from its simulated flag, time scale, end reason and trial rows.

    Parameters
    ----------
    simulated : bool-like
        The sidecar's or database's ``simulated``.
    seconds_scale : float-like or None
        ``--seconds-scale`` (``None``: an older recording, taken as 1).
    end_reason : str or None
        The session's end reason.
    trials : iterable of Mapping
        ``trials.csv`` or database trial rows (``start_t_s``, ``end_t_s``,
        ``end_reason``).
    """
    rows = list(trials)
    try:
        scale = float(seconds_scale) if seconds_scale not in (None, "") else 1.0
    except (TypeError, ValueError):
        scale = 1.0
    if not math.isfinite(scale) or scale <= 0:
        scale = 1.0
    # A trial that never started has no ticks: its start and end times are equal.
    started = any(_duration(t) > 0 for t in rows)
    lost = end_reason == "device_lost" or any(t.get("end_reason") == "device_lost" for t in rows)
    return SessionMarks(
        simulated=simulated in (True, 1, "1", "true", "True"),
        seconds_scale=scale,
        device_lost=lost,
        started=started,
    )
