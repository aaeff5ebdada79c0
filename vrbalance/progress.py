"""The console's live progress line: task, bar, time and the live safety verdict (rich).

A full SOT takes about ten minutes and an mCTSIB trial 30 s: without a live
line the operator's terminal says nothing between a trial's start and its end.
:class:`ProgressBar` redraws one line in place (rich's ``Progress``) with the
trial's name, a bar, its time ("12 / 30 s") and what the safety monitor says
right now ("steady", "warn: margin near edge", "CALM: plate stale").

It is called from the balance-loop thread every tick, so it redraws at most
five times a second and returns at once otherwise; with no terminal (a pipe, a
log file, CI) it draws nothing at all.
"""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO

#: Fewest seconds between two redraws (the loop calls at its rate).
MIN_REDRAW_S = 0.2


class ProgressBar:
    """A one-line progress display on a terminal, redrawn at most every :data:`MIN_REDRAW_S`.

    Parameters
    ----------
    stream : text stream, optional
        Default ``sys.stderr``; nothing is drawn unless it is a terminal.
    width : int
        Width of the bar in characters.
    """

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._last_draw_s = -math.inf
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._progress: Any = None
        self._task: Any = None

    def update(
        self, label: str, fraction: float, now_s: float, *, force: bool = False, detail: str = ""
    ) -> None:
        """Show ``label`` at ``fraction`` (0-1) with ``detail`` (time, verdict) after the bar.

        ``now_s`` is the caller's clock, used only to limit the redraw rate;
        ``force`` redraws regardless (a step of a short job).
        """
        if not self.enabled or (not force and now_s - self._last_draw_s < MIN_REDRAW_S):
            return
        self._last_draw_s = now_s
        f = min(max(fraction, 0.0), 1.0)
        if self._progress is None:
            self._start()
        self._progress.update(self._task, description=label[:40], completed=f, detail=detail)
        self._progress.refresh()

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        console = Console(file=self.stream, highlight=False)
        # No refresh thread: the caller's updates drive the redraws.
        self._progress = Progress(
            TextColumn("  {task.description}"),
            BarColumn(bar_width=self.width),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
            transient=True,
            auto_refresh=False,
        )
        self._task = self._progress.add_task("", total=1.0, detail="")
        self._progress.start()

    def done(self) -> None:
        """Clear the line (the next ``update`` starts a new one)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None
        self._last_draw_s = -math.inf


def verdict_text(response: str, cause: str | None) -> str:
    """The live verdict in words, with rich markup: steady, warn, CALM, STOP.

    Parameters
    ----------
    response : str
        The monitor's response label (``none``, ``warn``, ``calm``, ``stop_trial``...).
    cause : str or None
        The trigger behind it (``margin_near_edge``...).
    """
    why = f": {cause.replace('_', ' ')}" if cause else ""
    if response in ("", "none"):
        return "[green]steady[/]"
    if response == "warn":
        return f"[yellow]warn{why}[/]"
    if response == "calm":
        return f"[bold dark_orange]CALM{why}[/]"
    return f"[bold red]{response.replace('_', ' ').upper()}{why}[/]"
