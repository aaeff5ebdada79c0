"""Progress page from the database."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from vrbalance.report.progress import MAX_DATE_LABELS, _chart, _date_ticks, progress_report
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
        # The second session's report is already written (newer than its
        # recording): linked as it is, not written again.
        (second / "report.html").write_text("<html>kept</html>")
        out = progress_report(store, "P9", tmp_path / "progress.html")
        with pytest.raises(StoreError, match="no patient 'NOPE'"):
            progress_report(store, "NOPE", tmp_path / "x.html")
    text = out.read_text()
    assert "2 session(s) in the record; 2 charted" in text
    assert text.count("data:image/png;base64,") >= 6  # baseline x3, SOT, LoS, mCTSIB, levels...
    assert "<h2>Assessments</h2>" in text and "<h2>Training</h2>" in text
    assert "2026-03-01" in text and "2026-03-08" in text
    # Reports written where missing, linked relative to the page (movable, no file://).
    assert "file://" not in text
    links = re.findall(r'<a href="([^"]+)">report</a>', text)
    assert len(links) == 2 and all(not link.startswith("/") for link in links)
    assert all((out.parent / link).is_file() for link in links)
    assert (second / "report.html").read_text() == "<html>kept</html>"
    assert "vrbalance-measures" in (recording / "report.html").read_text()  # written now


def _copy(recording: Path, name: str, started: str, **meta: object) -> Path:
    folder = recording.parent / name
    shutil.copytree(recording, folder)
    sidecar = read_sidecar(folder)
    sidecar.update(session_id=f"P9-{name}", started_utc=started, **meta)
    write_json_atomic(folder / "session.json", sidecar)
    return folder


def test_unfit_sessions_are_marked_and_left_out_of_trends(recording: Path, tmp_path: Path) -> None:
    day = "2026-03-02T1{}:00:00.000000Z"
    folders = [
        recording,
        _copy(recording, "sim", day.format(1), simulated=True),
        _copy(recording, "short", day.format(2), seconds_scale=0.1),
        _copy(recording, "lost", day.format(3), end_reason="device_lost"),
    ]
    with Store(tmp_path / "db.sqlite3") as store:
        store.add_patient(Patient("P9", birth_year=1950))
        for folder in folders:
            import_session(store, folder)
        trend = progress_report(store, "P9", tmp_path / "a.html", make_reports=False)
    text = trend.read_text()
    assert "4 session(s) in the record; 1 charted" in text
    assert "3 session(s) left out of the charts" in text and "--include-all" in text
    for mark in ("simulated patient", "shortened to 10 %", "device lost"):
        assert mark in text, mark
    # --include-all charts them too: tests/commands/test_run.py's end-to-end session.


def test_chart_axes_are_readable_with_many_sessions_a_day() -> None:
    # 3 days with 10 sessions each: one label per day, where the day starts.
    dates = [f"2026-03-0{d}" for d in (1, 2, 3) for _ in range(10)]
    assert _date_ticks(dates) == ([0, 10, 20], ["2026-03-01", "2026-03-02", "2026-03-03"])
    # 40 days: at most MAX_DATE_LABELS labels, still at day starts.
    many = [f"2026-{1 + d // 28:02d}-{1 + d % 28:02d}" for d in range(40) for _ in range(2)]
    ticks, labels = _date_ticks(many)
    assert len(labels) <= MAX_DATE_LABELS and all(
        many[t] == lab for t, lab in zip(ticks, labels, strict=True)
    )
    fig = _chart(
        "levels", dates, {"park": [float(i % 3 + 1) for i in range(30)]}, "level", integer=True
    )
    yticks = fig.axes[0].get_yticks()
    assert len(yticks) >= 2 and all(float(y).is_integer() for y in yticks)
