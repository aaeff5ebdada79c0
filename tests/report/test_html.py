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
    assert "cop_off_bos" in text and "safety_stop" in text
    assert "P9 (76 years)" in text and "Old, eyes closed, firm" in text
    assert steps[0] == "reading" and steps[-1] == "done"


def test_report_of_a_recording_cut_short_says_so(recording: Path, tmp_path: Path) -> None:
    sidecar = recording / "session.json"
    sidecar.write_text(sidecar.read_text().replace('"status": "complete"', '"status": "recording"'))
    text = session_report(recording, tmp_path / "r.html").read_text()
    assert "recording was cut short" in text


def test_default_report_location_is_the_session_folder(recording: Path) -> None:
    assert session_report(recording) == recording / "report.html"
