"""Progress page from the database."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vrbalance.report.progress import progress_report
from vrbalance.sessions.recorder import read_sidecar, write_json_atomic
from vrbalance.sessions.store import Patient, Store, StoreError, import_session


def test_progress_charts_every_session(recording: Path, tmp_path: Path) -> None:
    second = recording.parent / "session2"
    shutil.copytree(recording, second)
    meta = read_sidecar(second)
    meta.update(session_id="P9-test-2", started_utc="2026-03-08T10:00:00.000000Z")
    write_json_atomic(second / "session.json", meta)
    with Store(tmp_path / "db.sqlite3") as store:
        store.add_patient(Patient("P9", birth_year=1950))
        import_session(store, recording)
        import_session(store, second)
        out = progress_report(store, "P9", tmp_path / "progress.html")
        with pytest.raises(StoreError, match="no patient 'NOPE'"):
            progress_report(store, "NOPE", tmp_path / "x.html")
    text = out.read_text()
    assert "2 session(s)" in text
    assert text.count("data:image/png;base64,") >= 6  # baseline x3, SOT, LoS, mCTSIB, levels...
    assert "<h2>Assessments</h2>" in text and "<h2>Training</h2>" in text
    assert "2026-03-01" in text and "2026-03-08" in text
