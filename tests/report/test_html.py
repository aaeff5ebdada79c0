"""Session report: self-contained, every section, numbers identical to the summary."""

from __future__ import annotations

import base64
import re
import stat
from pathlib import Path

from vrbalance.report.html import measures_from_html, session_report
from vrbalance.sessions.summary import summarize_folder


def test_report_has_every_section_and_the_summary_numbers(recording: Path, tmp_path: Path) -> None:
    steps: list[str] = []
    out = session_report(
        recording, tmp_path / "out" / "r.html", on_progress=lambda f, s: steps.append(s)
    )
    text = out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    for heading in (
        "Trials",
        "Sensory Organization Test",
        "mCTSIB",
        "Limits of Stability",
        "Statokinesigram",
        "Stabilogram",
        "Difficulty and safety events",
        "Standing against reference values",
        "Events",
    ):
        assert f"<h2>{heading}" in text, heading
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) >= 6
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert not re.search(r'src="https?:', text) and "<link" not in text  # self-contained
    assert measures_from_html(text) == summarize_folder(recording)
    assert "cop_off_bos" in text and "safety stop" in text
    assert "P9 (76 years)" in text and "Old, eyes closed, firm" in text
    assert steps[0] == "reading" and steps[-1] == "done"


def test_report_of_a_recording_cut_short_says_so(recording: Path, tmp_path: Path) -> None:
    sidecar = recording / "session.json"
    sidecar.write_text(sidecar.read_text().replace('"status": "complete"', '"status": "recording"'))
    text = session_report(recording, tmp_path / "r.html").read_text()
    assert "recording was cut short" in text


def test_default_report_location_is_the_session_folder(recording: Path) -> None:
    assert session_report(recording) == recording / "report.html"


def _visible(text: str) -> str:
    """The page without its machine-readable JSON (what a clinician reads)."""
    return re.sub(r"<script.*?</script>", "", text, flags=re.S)


def test_only_comparable_trials_get_reference_percentiles(recording: Path, tmp_path: Path) -> None:
    """Quiet stance, feet apart, still world, completed: the rest say why there is none."""
    text = _visible(session_report(recording, tmp_path / "r.html").read_text())
    reference = text[text.index("<h2>Standing against reference") : text.index("<h2>Events")]
    ranked, _, unranked = reference.partition("Why no reference")
    # Baseline (eyes open) and mCTSIB 2 (eyes closed) are quiet stance on a firm plate.
    assert "Old, eyes open, firm" in ranked and "Old, eyes closed, firm" in ranked
    for name in ("SOT 3", "LoS", "Crowd"):
        assert f'<td class="l">{name}</td>' not in ranked, name
    assert 'SOT 3</td><td class="l">sway-referenced surround' in unranked
    assert 'LoS</td><td class="l">reach task' in unranked
    assert 'Crowd</td><td class="l">walk task' in unranked
    # Clinical labels and units, no internal keys.
    assert "CoP mean velocity" in ranked and "mm/s" in ranked and "cm²" in ranked
    assert not re.search(r"cop[ _](velocity|area|mfreq)|_mps|_m2", text)
    assert "Not comparable" not in text  # a real, full-length session is not marked


def test_simulated_and_shortened_sessions_are_marked() -> None:
    """The marks a report and the progress page both show (one function for both)."""
    from vrbalance.report.marks import marks_of

    done = [{"start_t_s": "1.0", "end_t_s": "31.0", "end_reason": "completed"}]
    real = marks_of(simulated=False, seconds_scale=None, end_reason="completed", trials=done)
    assert real.comparable and real.labels() == []
    sim = marks_of(simulated=True, seconds_scale=0.1, end_reason="completed", trials=done)
    assert not sim.comparable
    assert sim.labels() == [
        "simulated patient",
        "shortened to 10 % of the protocol's durations",
    ]
    lost = marks_of(simulated="0", seconds_scale="1.0", end_reason="device_lost", trials=done)
    assert lost.labels() == ["device lost"]


def test_report_of_a_session_that_never_started(tmp_path: Path) -> None:
    """No states at all (the plate was missing): a report without warnings, marked."""
    from vrbalance.events import Event
    from vrbalance.sessions.recorder import SessionRecorder

    folder = tmp_path / "P9" / "never"
    meta = {"session_id": "P9-never", "patient_id": "P9", "rate_hz": 100.0}
    with SessionRecorder(folder, meta) as rec:
        rec.event(0, Event(5.0, "device", "device_open_failed", "no plate", "alarm"))
        row = {"trial": 0, "name": "Baseline", "stance": "feet_apart", "level": 1}
        rec.trial_finished({**row, "start_t_s": 5.0, "end_t_s": 5.0, "end_reason": "device_lost"})
    text = session_report(folder, tmp_path / "r.html").read_text()
    assert "not started; device lost" in text and "no plate" in text
    assert "Not comparable with full-length sessions of a real patient" in text
