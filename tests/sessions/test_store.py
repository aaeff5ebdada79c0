"""Record store: real SQLite files, pinned error messages, permissions, import."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from vrbalance.sessions.paths import db_path, sessions_root
from vrbalance.sessions.store import SCHEMA_VERSION, Patient, Store, StoreError


def test_add_and_read_patients_with_envelope(tmp_path: Path) -> None:
    with Store(tmp_path / "db" / "v.sqlite3") as store:
        store.add_patient(Patient("P01", birth_year=1950, sex="F", height_m=1.62))
        store.add_patient(Patient("P00"))
        assert [p.id for p in store.patients()] == ["P00", "P01"]
        p = store.set_envelope("P01", {"max_level": 4})
        assert p.envelope == {"max_level": 4} and p.height_m == 1.62
        assert p.age_years(2026) == 76
        with pytest.raises(StoreError, match=r"patient 'P01' already exists"):
            store.add_patient(Patient("P01"))
        assert store.schema_version == SCHEMA_VERSION


def test_missing_patient_names_the_id_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite3"
    with (
        Store(path) as store,
        pytest.raises(
            StoreError,
            match=rf"^no patient 'X9' in {path}; add one with `vrbalance patient add X9`$",
        ),
    ):
        store.patient("X9")


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
    with pytest.raises(StoreError, match=r"schema version 2 is newer than this vrbalance"):
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


def test_sessions_trials_measures_replace_on_reimport(tmp_path: Path) -> None:
    with Store(tmp_path / "v.sqlite3") as store:
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


def test_update_patient_replaces_details_and_keeps_envelope_and_creation(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
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
