"""Record store on both back ends (an SQLite file and a real PostgreSQL server), errors, import.

Tests taking ``store_target`` run twice: on an SQLite file and on a fresh
schema of the temporary PostgreSQL server started by ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from vrbalance.sessions.dbconn import redact
from vrbalance.sessions.paths import db_path, sessions_root
from vrbalance.sessions.store import SCHEMA_VERSION, Patient, Store, StoreError


def test_add_and_read_patients_with_envelope(store_target: str | Path) -> None:
    with Store(store_target) as store:
        store.add_patient(Patient("P01", birth_year=1950, sex="F", height_m=1.62))
        store.add_patient(Patient("P00"))
        assert [p.id for p in store.patients()] == ["P00", "P01"]
        p = store.set_envelope("P01", {"max_level": 4})
        assert p.envelope == {"max_level": 4} and p.height_m == 1.62
        assert p.age_years(2026) == 76
        with pytest.raises(StoreError, match=r"patient 'P01' already exists"):
            store.add_patient(Patient("P01"))
        assert store.schema_version == SCHEMA_VERSION


def test_missing_patient_names_the_id_and_the_fix(store_target: str | Path) -> None:
    with Store(store_target) as store, pytest.raises(StoreError) as err:
        store.patient("X9")
    assert str(err.value) == (
        f"no patient 'X9' in {redact(store_target)}; add one with `vrbalance patient add X9`"
    )


def test_locked_database_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite3"
    Store(path).close()
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(
            StoreError,
            match=rf"^{path}: database is locked by another program "
            r"\(waited 0.1 s\); close it and try again$",
        ):
            Store(path, timeout_s=0.1)
    finally:
        holder.rollback()
        holder.close()


def test_corrupt_database_names_the_file_and_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite3"
    garbage = b"this is not sqlite at all" * 100
    path.write_bytes(garbage)
    with pytest.raises(
        StoreError,
        match=rf"^{path}: not a vrbalance database \(the file is not "
        r"SQLite or is damaged\)",
    ):
        Store(path)
    assert path.read_bytes() == garbage


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite3"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(
        StoreError, match=rf"schema version {SCHEMA_VERSION + 1} is newer than this vrbalance"
    ):
        Store(path)


def test_database_file_and_folder_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "v.sqlite3"
    Store(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_locations_follow_flag_then_env_then_data_dir(tmp_path: Path) -> None:
    env = {"VRBALANCE_DATA": str(tmp_path / "data")}
    assert db_path(None, env) == tmp_path / "data" / "vrbalance.sqlite3"
    assert sessions_root(env) == tmp_path / "data" / "sessions"
    env["VRBALANCE_DB"] = str(tmp_path / "other.db")
    assert db_path(None, env) == tmp_path / "other.db"
    assert db_path(tmp_path / "flag.db", env) == tmp_path / "flag.db"
    assert "vrbalance" in str(db_path(None, {}))  # platformdirs user data dir


def test_sessions_trials_measures_replace_on_reimport(
    store_target: str | Path, tmp_path: Path
) -> None:
    with Store(store_target) as store:
        store.add_patient(Patient("P"))
        session = {
            "id": "S1",
            "patient_id": "P",
            "protocol": "baseline",
            "started_utc": "2026-01-01T00:00:00Z",
            "folder": str(tmp_path),
        }
        trial = {
            "trial": "0",
            "name": "Baseline",
            "kind": "exercise",
            "scene": "park",
            "stance": "feet_apart",
            "eyes": "open",
            "surface": "firm",
            "surround": "fixed",
            "assessment": "none",
            "condition": "0",
            "level": "0",
            "planned_s": "30.0",
            "start_t_s": "0.0",
            "end_t_s": "30.0",
            "end_reason": "completed",
        }
        for _ in range(2):
            store.add_session(session, [trial], [(0, "cop_velocity_mps", 0.01, "m/s")])
        assert [s["id"] for s in store.sessions("P")] == ["S1"]
        assert store.trials("S1")[0]["level"] == 0
        assert store.measures("S1") == [
            {"trial_idx": 0, "name": "cop_velocity_mps", "value": 0.01, "unit": "m/s"}
        ]
        assert store.last_levels("P") == {}  # the only trial was not the director's
        store.add_session(
            {**session, "id": "S0", "started_utc": "2025-12-01T00:00:00Z"},
            [{**trial, "director": "1", "level": "4"}],
            [],
        )
        store.add_session(
            {**session, "id": "S2", "started_utc": "2026-02-01T00:00:00Z"},
            [{**trial, "director": "1", "level": "6", "scene": "crowd"}],
            [],
        )
        assert store.last_levels("P") == {"park": 4, "crowd": 6}
        with pytest.raises(StoreError, match=r"no patient 'Q'"):
            store.add_session({**session, "id": "S2", "patient_id": "Q"}, [], [])
        with pytest.raises(StoreError, match=r"no session 'S9'"):
            store.session("S9")


def test_update_patient_replaces_details_and_keeps_envelope_and_creation(
    store_target: str | Path,
) -> None:
    with Store(store_target) as store:
        first = store.add_patient(Patient("P07", name="A", height_m=1.6))
        store.set_envelope("P07", {"max_trial_s": 60.0})
        p = store.update_patient(
            Patient(
                "P07",
                name="<b>Bo</b>",
                birth_year=1950,
                sex="F",
                height_m=1.71,
                mass_kg=64.5,
                foot_length_m=0.25,
                notes="left knee",
            )
        )
        assert (p.name, p.birth_year, p.sex, p.height_m, p.mass_kg, p.foot_length_m, p.notes) == (
            "<b>Bo</b>",
            1950,
            "F",
            1.71,
            64.5,
            0.25,
            "left knee",
        )
        assert p.envelope == {"max_trial_s": 60.0} and p.created_utc == first.created_utc
        with pytest.raises(StoreError, match="no patient 'P99'"):
            store.update_patient(Patient("P99"))


def test_newer_schema_is_refused_on_the_server(pg_url: str) -> None:
    import psycopg

    Store(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute("UPDATE vrbalance_schema SET version = version + 1")
    with pytest.raises(StoreError) as err:
        Store(pg_url)
    assert f"schema version {SCHEMA_VERSION + 1} is newer than this vrbalance" in str(err.value)
    assert redact(pg_url) in str(err.value)


def test_version_1_file_is_migrated_with_a_message_and_keeps_its_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from vrbalance.sessions.migrations import MIGRATIONS

    path = tmp_path / "old.sqlite3"
    con = sqlite3.connect(path)
    for sql in MIGRATIONS[0].sql("sqlite"):  # what vrbalance 0.1 wrote
        con.execute(sql)
    con.execute(
        "INSERT INTO patients (id, envelope_json, created_utc) VALUES ('P', '{\"a\": 1}', 'x')"
    )
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    with caplog.at_level("WARNING"), Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.patient("P").envelope == {"a": 1}
        assert store.patient("P").envelope_version == 0
        assert store.set_envelope("P", {"a": 2}).envelope_version == 1
    assert f"upgrading the record's schema from version 1 to {SCHEMA_VERSION}" in caplog.text
    with Store(path, migrate=False) as store:  # current now: nothing to do
        assert store.schema_version == SCHEMA_VERSION


def test_older_schema_without_migrate_says_how(store_target: str | Path) -> None:
    from vrbalance.sessions import store as store_module

    with Store(store_target) as store:
        with store.conn.transaction():
            store.conn.write_version(1)
        assert store_module.SCHEMA_VERSION > 1
    with pytest.raises(StoreError, match=r"older than this vrbalance needs .*vrbalance db migrate"):
        Store(store_target, migrate=False)


def test_envelope_versions_are_kept_and_stale_changes_refused(store_target: str | Path) -> None:
    with Store(store_target) as store:
        store.add_patient(Patient("P", envelope={"max_level": 3}))
        assert store.patient("P").envelope_version == 1
        store.set_envelope("P", {"max_level": 4}, if_version=1)
        with pytest.raises(StoreError, match=r"changed meanwhile \(version 2, expected 1\)"):
            store.set_envelope("P", {"max_level": 9}, if_version=1)
        assert [h["envelope"] for h in store.envelope_history("P")] == [
            {"max_level": 3},
            {"max_level": 4},
        ]
        assert store.patient("P").envelope == {"max_level": 4}


def test_filed_session_holds_events_and_the_exact_recording(
    store_target: str | Path, tmp_path: Path
) -> None:
    from vrbalance.sessions.recorder import read_rows
    from vrbalance.sessions.store import import_session
    from vrbalance.sessions.synthetic import write_synthetic_session

    folder = write_synthetic_session(
        tmp_path / "rec",
        session_id="S1",
        patient_id="P",
        duration_s=2.0,
        rate_hz=100.0,
        trials=2,
        envelope={"max_level": 5},
        envelope_version=3,
    )
    with Store(store_target) as store:
        store.add_patient(Patient("P"))
        for _ in range(2):  # idempotent
            import_session(store, folder)
        row = store.session("S1")
        assert row["status"] == "complete" and row["envelope_version"] == 3
        assert json.loads(row["envelope_json"]) == {"max_level": 5}
        assert len(store.trials("S1")) == 2
        events = store.events("S1")
        assert [e["kind"] for e in events] == [r["kind"] for r in read_rows(folder / "events.csv")]
        files = {f["name"]: f for f in store.recording_files("S1")}
        assert set(files) == {p.name for p in folder.iterdir()}
        state = folder / "state.csv"
        assert files["state.csv"]["raw_bytes"] == state.stat().st_size
        assert files["state.csv"]["stored_bytes"] < state.stat().st_size / 2  # compressed
        out = store.extract_recording("S1", tmp_path / "elsewhere" / "S1")
    for p in folder.iterdir():
        assert (out / p.name).read_bytes() == p.read_bytes()
        assert stat.S_IMODE((out / p.name).stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_a_folder_is_refused_and_existing_folders_keep_their_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    with pytest.raises(StoreError, match=rf"^{shared}: is a folder, not a database file"):
        Store(shared)
    Store(shared / "v.sqlite3").close()  # a new file in an existing folder
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # the folder is not the store's to chmod
    with pytest.raises(StoreError, match=r"no such database file"):
        Store(tmp_path / "missing.sqlite3", create=False)
    assert not (tmp_path / "missing.sqlite3").exists()
