"""The live progress line: trial time and live verdict on a terminal, nothing on a pipe."""

from __future__ import annotations

import io

from vrbalance.progress import ProgressBar, verdict_text


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal (what rich and the bar look at)."""

    def isatty(self) -> bool:
        return True


def test_progress_line_shows_the_trial_time_and_the_live_verdict() -> None:
    term = _Terminal()
    bar = ProgressBar(term)
    verdict = verdict_text("calm", "plate_stale")
    bar.update("3: SOT condition 4", 0.4, 10.0, detail=f"  12 / 30 s  {verdict}")
    text = term.getvalue()
    assert "3: SOT condition 4" in text and "12 / 30 s" in text
    assert "CALM: plate stale" in text and "40%" in text
    # Redrawn at most every 0.2 s of the caller's clock: this update is dropped.
    bar.update("3: SOT condition 4", 0.41, 10.1, detail="  12 / 30 s  dropped")
    assert "dropped" not in term.getvalue()
    bar.update("3: SOT condition 4", 0.5, 10.3, detail="  15 / 30 s  " + verdict_text("none", None))
    assert "15 / 30 s" in term.getvalue() and "steady" in term.getvalue()
    bar.done()


def test_no_terminal_no_progress_line() -> None:
    pipe = io.StringIO()
    bar = ProgressBar(pipe)
    bar.update("1: Baseline", 0.5, 1.0, detail="15 / 30 s")
    bar.done()
    assert pipe.getvalue() == ""


def test_verdicts_in_words() -> None:
    assert verdict_text("warn", "margin_near_edge") == "[yellow]warn: margin near edge[/]"
    assert "STOP TRIAL: cop off bos" in verdict_text("stop_trial", "cop_off_bos")
