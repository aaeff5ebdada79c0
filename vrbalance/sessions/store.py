"""The patient record store: patients, sessions, trials and summary measures in SQLite.

The database is an index, not the source of truth: every session is first a
recording folder (see :mod:`vrbalance.sessions.recorder`), and
:func:`import_session` (``vrbalance patient import FOLDER``) can (re)build the
rows from it at any time. A session whose database was locked, damaged or
missing during the run is therefore never lost.

Errors are :class:`StoreError` with the database file in the message:

- a missing patient names the id and how to add one;
- a database another program holds locked past ``timeout_s`` says so;
- a file that is not an SQLite database says so (it is never overwritten).

The file is created ``0o600`` in a ``0o700`` folder (patient data). The schema
version is SQLite's ``user_version`` pragma; :data:`SCHEMA_VERSION` is what
this code writes, and an older file is migrated forward on open.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vrbalance.errors import VrBalanceError
from vrbalance.sessions.recorder import (
    FILE_MODE,
    make_private_dir,
    read_sidecar,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    birth_year INTEGER,
    sex TEXT NOT NULL DEFAULT '',
    height_m REAL,
    mass_kg REAL,
    foot_length_m REAL,
    envelope_json TEXT NOT NULL DEFAULT '{}',
    notes TEXT NOT NULL DEFAULT '',
    created_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    protocol TEXT NOT NULL,
    started_utc TEXT NOT NULL,
    ended_utc TEXT,
    end_reason TEXT,
    status TEXT NOT NULL,
    folder TEXT NOT NULL,
    software_version TEXT NOT NULL DEFAULT '',
    simulated INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_patient ON sessions(patient_id, started_utc);
CREATE TABLE IF NOT EXISTS trials (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    scene TEXT NOT NULL,
    stance TEXT NOT NULL,
    eyes TEXT NOT NULL,
    surface TEXT NOT NULL,
    surround TEXT NOT NULL,
    assessment TEXT NOT NULL,
    condition INTEGER NOT NULL,
    director INTEGER NOT NULL DEFAULT 0,
    level INTEGER,
    planned_s REAL NOT NULL,
    start_t_s REAL,
    end_t_s REAL,
    end_reason TEXT NOT NULL,
    PRIMARY KEY (session_id, idx)
);
CREATE TABLE IF NOT EXISTS measures (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    trial_idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    unit TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (session_id, trial_idx, name)
);
"""

#: Trial index used for session-level measures (e.g. the SOT composite).
SESSION_LEVEL = -1


class StoreError(VrBalanceError):
    """The record store cannot do what was asked; the message names the file."""


@dataclass(frozen=True, slots=True)
class Patient:
    """One patient record (SI units; ``None`` = not recorded).

    Attributes
    ----------
    id : str
        The clinic's pseudonymous identifier (no names needed).
    name : str
        Optional display name.
    birth_year : int or None
        For age-matched reference values.
    sex : str
        ``"F"``, ``"M"`` or ``""``.
    height_m, mass_kg, foot_length_m : float or None
        Body size, for the CoM model and base-of-support scaling.
    envelope : Mapping
        The therapist's safety envelope for this patient (director settings).
    notes : str
        Free text.
    created_utc : str
        ISO 8601 time of creation.
    """

    id: str
    name: str = ""
    birth_year: int | None = None
    sex: str = ""
    height_m: float | None = None
    mass_kg: float | None = None
    foot_length_m: float | None = None
    envelope: Mapping[str, Any] | None = None
    notes: str = ""
    created_utc: str = ""

    def age_years(self, year: int) -> int | None:
        """Age in whole years during calendar ``year`` (``None`` if unknown)."""
        return None if self.birth_year is None else year - self.birth_year

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "birth_year": self.birth_year,
            "sex": self.sex,
            "height_m": self.height_m,
            "mass_kg": self.mass_kg,
            "foot_length_m": self.foot_length_m,
            "envelope": dict(self.envelope or {}),
            "notes": self.notes,
            "created_utc": self.created_utc,
        }


def _patient_from_row(row: sqlite3.Row, path: Path | None = None) -> Patient:
    try:
        envelope = json.loads(row["envelope_json"] or "{}")
    except json.JSONDecodeError as exc:
        raise StoreError(
            f"{path}: patient {row['id']!r}: the stored envelope is not valid JSON ({exc}); "
            f"set it again with `vrbalance patient set-envelope {row['id']} FILE.toml`"
        ) from None
    if not isinstance(envelope, dict):
        raise StoreError(
            f"{path}: patient {row['id']!r}: the stored envelope is not a table; "
            f"set it again with `vrbalance patient set-envelope {row['id']} FILE.toml`"
        )
    return Patient(
        id=row["id"],
        name=row["name"],
        birth_year=row["birth_year"],
        sex=row["sex"],
        height_m=row["height_m"],
        mass_kg=row["mass_kg"],
        foot_length_m=row["foot_length_m"],
        envelope=envelope,
        notes=row["notes"],
        created_utc=row["created_utc"],
    )


class Store:
    """An open vrbalance database.

    Parameters
    ----------
    path : Path
        The SQLite file; created (``0o600``, folder ``0o700``) if missing.
    timeout_s : float
        How long to wait for a lock held by another program before giving up.

    Raises
    ------
    StoreError
        If the file is not a database, is locked past ``timeout_s``, or was
        written by a newer vrbalance.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.timeout_s = float(timeout_s)
        make_private_dir(self.path.parent)
        if not self.path.exists():
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            os.close(fd)
        os.chmod(self.path, FILE_MODE)
        try:
            self._db = sqlite3.connect(self.path, timeout=self.timeout_s)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        self._db.row_factory = sqlite3.Row
        try:
            with self._guard():
                self._db.execute("PRAGMA foreign_keys = ON")
                self._migrate()
        except StoreError:
            self._db.close()
            raise

    # -- lifecycle ----------------------------------------------------------

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._db.close()

    def _error(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return StoreError(
                f"{self.path}: database is locked by another program "
                f"(waited {self.timeout_s:g} s); close it and try again"
            )
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return StoreError(
                f"{self.path}: not a vrbalance database (the file is not SQLite or is "
                "damaged); move it aside, then re-import sessions with "
                "`vrbalance patient import FOLDER`"
            )
        return StoreError(f"{self.path}: database error: {text}")

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Run a transaction, turning SQLite errors into :class:`StoreError`."""
        try:
            with self._db:
                yield
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: database schema version {version} is newer than this "
                f"vrbalance understands ({SCHEMA_VERSION}); upgrade vrbalance"
            )
        if version < SCHEMA_VERSION:
            self._db.executescript(
                "BEGIN;" + _SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};COMMIT;"
            )
            log.info("%s: schema %d -> %d", self.path, version, SCHEMA_VERSION)

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # -- patients -----------------------------------------------------------

    def add_patient(self, patient: Patient) -> Patient:
        """Insert a new patient.

        Raises
        ------
        StoreError
            If the id exists already or is empty.
        """
        if not patient.id or not patient.id.strip():
            raise StoreError(f"{self.path}: a patient id must not be empty")
        from vrbalance.sessions.recorder import utc_now_iso

        created = patient.created_utc or utc_now_iso()
        try:
            with self._guard():
                self._db.execute(
                    "INSERT INTO patients (id, name, birth_year, sex, height_m, mass_kg, "
                    "foot_length_m, envelope_json, notes, created_utc) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        patient.id,
                        patient.name,
                        patient.birth_year,
                        patient.sex,
                        patient.height_m,
                        patient.mass_kg,
                        patient.foot_length_m,
                        json.dumps(dict(patient.envelope or {})),
                        patient.notes,
                        created,
                    ),
                )
        except StoreError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise StoreError(f"{self.path}: patient {patient.id!r} already exists") from None
            raise
        return self.patient(patient.id)

    def patient(self, patient_id: str) -> Patient:
        """Return one patient.

        Raises
        ------
        StoreError
            ``no patient 'X' in FILE; add one with `vrbalance patient add X```.
        """
        with self._guard():
            row = self._db.execute("SELECT * FROM patients WHERE id = ?", (patient_id,)).fetchone()
        if row is None:
            raise StoreError(
                f"no patient {patient_id!r} in {self.path}; "
                f"add one with `vrbalance patient add {patient_id}`"
            )
        return _patient_from_row(row, self.path)

    def patients(self) -> list[Patient]:
        """All patients, by id."""
        with self._guard():
            rows = self._db.execute("SELECT * FROM patients ORDER BY id").fetchall()
        return [_patient_from_row(r, self.path) for r in rows]

    def update_patient(self, patient: Patient) -> Patient:
        """Replace a patient's details (name, birth year, sex, body size, notes).

        The id, creation time and envelope are kept: the envelope changes only
        through :meth:`set_envelope`, after validation against the hard caps.

        Raises
        ------
        StoreError
            If there is no such patient.
        """
        self.patient(patient.id)
        with self._guard():
            self._db.execute(
                "UPDATE patients SET name = ?, birth_year = ?, sex = ?, height_m = ?, "
                "mass_kg = ?, foot_length_m = ?, notes = ? WHERE id = ?",
                (
                    patient.name,
                    patient.birth_year,
                    patient.sex,
                    patient.height_m,
                    patient.mass_kg,
                    patient.foot_length_m,
                    patient.notes,
                    patient.id,
                ),
            )
        return self.patient(patient.id)

    def set_envelope(self, patient_id: str, envelope: Mapping[str, Any]) -> Patient:
        """Replace a patient's safety envelope (the director's per-patient limits)."""
        self.patient(patient_id)
        with self._guard():
            self._db.execute(
                "UPDATE patients SET envelope_json = ? WHERE id = ?",
                (json.dumps(dict(envelope)), patient_id),
            )
        return self.patient(patient_id)

    # -- sessions -----------------------------------------------------------

    def add_session(
        self,
        session: Mapping[str, Any],
        trials: Sequence[Mapping[str, Any]],
        measures: Sequence[tuple[int, str, float | None, str]],
    ) -> None:
        """Insert or replace one session with its trials and measures (one transaction).

        Parameters
        ----------
        session : Mapping
            Keys of the ``sessions`` table (``id``, ``patient_id``, ``protocol``...).
        trials : sequence of Mapping
            ``trials.csv`` rows (keys :data:`~vrbalance.sessions.recorder.TRIAL_COLUMNS`).
        measures : sequence of (trial_idx, name, value, unit)
            Summary measures; ``trial_idx`` :data:`SESSION_LEVEL` for the session.
        """
        self.patient(str(session["patient_id"]))
        with self._guard():
            self._db.execute("DELETE FROM measures WHERE session_id = ?", (session["id"],))
            self._db.execute("DELETE FROM trials WHERE session_id = ?", (session["id"],))
            self._db.execute(
                "INSERT OR REPLACE INTO sessions (id, patient_id, protocol, started_utc, "
                "ended_utc, end_reason, status, folder, software_version, simulated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session["id"],
                    session["patient_id"],
                    session["protocol"],
                    session["started_utc"],
                    session.get("ended_utc"),
                    session.get("end_reason"),
                    session.get("status", "complete"),
                    str(session["folder"]),
                    session.get("software_version", ""),
                    int(bool(session.get("simulated", False))),
                ),
            )
            for t in trials:
                self._db.execute(
                    "INSERT INTO trials (session_id, idx, name, kind, scene, stance, eyes, "
                    "surface, surround, assessment, condition, director, level, planned_s, "
                    "start_t_s, end_t_s, end_reason) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        session["id"],
                        int(t["trial"]),
                        t["name"],
                        t["kind"],
                        t["scene"],
                        t["stance"],
                        t["eyes"],
                        t["surface"],
                        t["surround"],
                        t["assessment"],
                        int(t["condition"] or 0),
                        int(t.get("director") or 0),
                        _opt_int(t.get("level")),
                        float(t["planned_s"]),
                        _opt_float(t.get("start_t_s")),
                        _opt_float(t.get("end_t_s")),
                        t["end_reason"],
                    ),
                )
            self._db.executemany(
                "INSERT OR REPLACE INTO measures (session_id, trial_idx, name, value, unit) "
                "VALUES (?, ?, ?, ?, ?)",
                [(session["id"], int(i), n, v, u) for i, n, v, u in measures],
            )

    def sessions(self, patient_id: str | None = None) -> list[dict[str, Any]]:
        """Sessions (all, or one patient's), oldest first, as dicts."""
        with self._guard():
            if patient_id is None:
                rows = self._db.execute("SELECT * FROM sessions ORDER BY started_utc").fetchall()
            else:
                self.patient(patient_id)
                rows = self._db.execute(
                    "SELECT * FROM sessions WHERE patient_id = ? ORDER BY started_utc",
                    (patient_id,),
                ).fetchall()
        return [dict(r) for r in rows]

    def session(self, session_id: str) -> dict[str, Any]:
        """One session as a dict; :class:`StoreError` naming it if absent."""
        with self._guard():
            row = self._db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise StoreError(f"no session {session_id!r} in {self.path}")
        return dict(row)

    def last_levels(self, patient_id: str) -> dict[str, int]:
        """Level of the last director-adapted trial per scene across the patient's sessions.

        The director starts the next session there, so training continues where
        it stopped instead of from level 1 every week.
        """
        self.patient(patient_id)
        with self._guard():
            rows = self._db.execute(
                "SELECT t.scene, t.level FROM trials t JOIN sessions s ON s.id = t.session_id "
                "WHERE s.patient_id = ? AND t.director = 1 AND t.level IS NOT NULL "
                "ORDER BY s.started_utc, t.idx",
                (patient_id,),
            ).fetchall()
        return {r["scene"]: int(r["level"]) for r in rows}

    def trials(self, session_id: str) -> list[dict[str, Any]]:
        """A session's trials in order, as dicts."""
        with self._guard():
            rows = self._db.execute(
                "SELECT * FROM trials WHERE session_id = ? ORDER BY idx", (session_id,)
            ).fetchall()
        return [dict(r) for r in rows]

    def measures(self, session_id: str) -> list[dict[str, Any]]:
        """A session's measures, as dicts with ``trial_idx, name, value, unit``."""
        with self._guard():
            rows = self._db.execute(
                "SELECT trial_idx, name, value, unit FROM measures WHERE session_id = ? "
                "ORDER BY trial_idx, name",
                (session_id,),
            ).fetchall()
        return [dict(r) for r in rows]


def _opt_float(value: object) -> float | None:
    if value is None or value == "":
        return None
    return float(value)  # type: ignore[arg-type]


def _opt_int(value: object) -> int | None:
    if value is None or value == "":
        return None
    return int(float(value))  # type: ignore[arg-type]


def session_rows_from_folder(
    folder: Path,
) -> tuple[dict[str, Any], list[dict[str, str]], list[tuple[int, str, float | None, str]]]:
    """Read a recording folder into the rows :meth:`Store.add_session` takes.

    A recording that never finished (killed, power lost) still imports: its
    status is ``"incomplete"`` and its finished trials are those in
    ``trials.csv``; measures are recomputed from ``state.csv``.
    """
    from vrbalance.sessions.summary import summarize_folder, trial_rows

    folder = Path(folder)
    meta = read_sidecar(folder)
    trials = trial_rows(folder, meta)
    status = meta.get("status", "recording")
    session = {
        "id": meta["session_id"],
        "patient_id": meta["patient_id"],
        "protocol": meta.get("protocol", {}).get("name", ""),
        "started_utc": meta["started_utc"],
        "ended_utc": meta.get("ended_utc"),
        "end_reason": meta.get("end_reason") if status != "recording" else "incomplete",
        "status": "incomplete" if status == "recording" else status,
        "folder": str(folder.resolve()),
        "software_version": meta.get("software", {}).get("vrbalance", ""),
        "simulated": bool(meta.get("simulated", False)),
    }
    measures = summarize_folder(folder, trials)
    return session, trials, measures


def import_session(store: Store, folder: Path) -> dict[str, Any]:
    """(Re)import a recording folder into the store; returns the session row.

    Idempotent: importing twice replaces the rows. The patient must exist
    (add it first with ``vrbalance patient add``).
    """
    session, trials, measures = session_rows_from_folder(folder)
    store.add_session(session, trials, measures)
    log.info("imported %s (%d trials, %d measures)", folder, len(trials), len(measures))
    return session


def resolve_session_folder(text: str, db: str | os.PathLike[str] | None = None) -> Path:
    """A session folder from a path, or from a session id looked up in the database.

    Raises
    ------
    FileNotFoundError
        Neither an existing folder nor a known session id (names both places looked).
    """
    from vrbalance.sessions.paths import db_path

    path = Path(text).expanduser()
    if path.is_dir():
        return path
    database = db_path(db)
    if database.exists():
        try:
            with Store(database) as store:
                return Path(store.session(text)["folder"])
        except StoreError as exc:
            log.debug("session lookup failed: %s", exc)
    raise FileNotFoundError(
        f"{text}: no such session folder, and no session with that id in {database}"
    )
