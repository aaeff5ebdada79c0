"""``vrbalance db``: copy a station's SQLite record into the server (twice), migrate, sync."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vrbalance.cli import main
from vrbalance.sessions.filing import pending_sessions, queue_pending
from vrbalance.sessions.migrations import MIGRATIONS, SCHEMA_VERSION
from vrbalance.sessions.store import Patient, Store, import_session
from vrbalance.sessions.synthetic import write_synthetic_session


def test_copy_station_record_into_server_is_idempotent(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    station = tmp_path / "station.sqlite3"
    folders = [
        write_synthetic_session(
            tmp_path / f"s{i}",
            session_id=f"S{i}",
            patient_id="P1",
            duration_s=0.2,
            rate_hz=50.0,
            started_utc=f"2026-03-0{i + 1}T10:00:00.000000Z",
        )
        for i in range(2)
    ]
    with Store(station) as store:
        store.add_patient(Patient("P1", birth_year=1950, envelope={"max_level": 2}))
        store.set_envelope("P1", {"max_level": 3})
        store.add_patient(Patient("P2"))
        for folder in folders:
            import_session(store, folder)
    with Store(pg_url) as server:  # the clinic already knows P2 (kept as it is there)
        server.add_patient(Patient("P2", name="clinic's"))
    assert main(["db", "copy", str(station), pg_url]) == 0
    first = capsys.readouterr().out
    assert "1 patient(s) (1 already there), 2 session(s) (0 already there)" in first
    assert main(["db", "copy", str(station), pg_url]) == 0
    second = capsys.readouterr().out
    assert "0 patient(s) (2 already there), 0 session(s) (2 already there)" in second
    assert "pw-" not in first + second and "***" in first
    with Store(pg_url) as server:
        assert [s["id"] for s in server.sessions("P1")] == ["S0", "S1"]
        assert [h["envelope"] for h in server.envelope_history("P1")] == [
            {"max_level": 2},
            {"max_level": 3},
        ]
        assert server.patient("P1").envelope_version == 2
        assert server.patient("P2").name == "clinic's"
        out = server.extract_recording("S1", tmp_path / "fetched")
    assert all((out / p.name).read_bytes() == p.read_bytes() for p in folders[1].iterdir())


def test_migrate_says_what_it_does_and_sync_files_pending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tmp_path / "old.sqlite3"
    con = sqlite3.connect(old)
    for sql in MIGRATIONS[0].sql("sqlite"):
        con.execute(sql)
    con.execute("INSERT INTO patients (id, created_utc) VALUES ('P1', 'x')")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    assert main(["db", "migrate", "--db", str(old)]) == 0
    out = capsys.readouterr()
    assert "schema 1 -> 2: events, compressed recordings" in out.out
    assert f"schema version {SCHEMA_VERSION} (current; was 1)" in out.out
    monkeypatch.setenv("VRBALANCE_DATA", str(tmp_path / "data"))
    folder = write_synthetic_session(
        tmp_path / "s", session_id="S9", patient_id="P1", duration_s=0.2, rate_hz=50.0
    )
    queue_pending(folder)
    assert main(["db", "sync", "--db", str(old)]) == 0
    assert "1 of 1 pending session(s) filed" in capsys.readouterr().out
    assert pending_sessions() == []
    with Store(old) as store:
        assert store.session("S9")["status"] == "complete"
