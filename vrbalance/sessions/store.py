"""The patient record store: patients, envelopes, sessions, trials, measures, events, recordings.

One interface, two back ends (:mod:`vrbalance.sessions.dbconn`): an SQLite
file for one station (the default, in the user's data folder) and a
PostgreSQL server for a clinic whose stations share one record
(``--db postgresql://...`` or ``$VRBALANCE_DB``). The schema comes from one
list of versioned migrations (:mod:`vrbalance.sessions.migrations`), applied
when a database is opened, with a message saying so; a database newer than
this program is refused.

The recording folder stays the source of truth: every session is first a
folder of CSV files (see :mod:`vrbalance.sessions.recorder`), and
:func:`import_session` (``vrbalance patient import FOLDER``, and ``run`` at
the end of a session) files it: its rows, its events and the recording files
themselves, gzip-compressed, in one transaction, so that ``report``,
``progress`` and ``replay`` work on any station (:func:`resolve_session_folder`
unpacks a recording another station filed). Filing twice replaces the rows.

Concurrency. A patient's envelope is versioned: :meth:`Store.set_envelope`
writes the next version under a row lock and keeps every version in the
``envelopes`` table (nothing is overwritten unseen; ``if_version=`` refuses a
change made from a stale copy), and a session keeps the envelope it ran with
(``sessions.envelope_json`` and ``envelope_version``, from its sidecar).

Errors are :class:`StoreError` with the database in the message (a server URL
without its password):

- a missing patient names the id and how to add one;
- a database another program holds locked past ``timeout_s`` says so;
- a file that is not an SQLite database says so (it is never overwritten);
- an unreachable server is :class:`StoreUnavailable` (the recording is kept).

An SQLite file is created ``0o600`` in a ``0o700`` folder (patient data).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import socket
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vrbalance.sessions.dbconn import (
    Connection,
    StoreError,
    StoreUnavailable,
    connect,
    is_server,
    redact,
)
from vrbalance.sessions.migrations import SCHEMA_VERSION, Migration, pending
from vrbalance.sessions.recorder import (
    FILE_MODE,
    SIDECAR,
    make_private_dir,
    read_rows,
    read_sidecar,
    utc_now_iso,
)

__all__ = [
    "SCHEMA_VERSION",
    "SESSION_LEVEL",
    "Patient",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "import_session",
    "resolve_session_folder",
    "session_rows_from_folder",
]

log = logging.getLogger(__name__)

#: Trial index used for session-level measures (e.g. the SOT composite).
SESSION_LEVEL = -1
#: gzip level of uploaded recordings: 3 packs the CSV streams 3.0x at 0.05 s/MB
#: on the development machine; zlib's default 6 packs them 3.2x but costs five
#: times as long (a minute for a 30-minute session), at the end of every session.
COMPRESS_LEVEL = 3
#: Bytes of compressed recording per database row: small enough that a
#: 30-minute session never needs one huge value in memory or on the wire.
CHUNK_BYTES = 4 << 20


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
    envelope_version : int
        How many times the envelope was set (0: never). A session records the
        version it ran with; :meth:`Store.set_envelope` can refuse a change
        made from an older version.
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
    envelope_version: int = 0

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
            "envelope_version": self.envelope_version,
            "notes": self.notes,
            "created_utc": self.created_utc,
        }


def _patient_from_row(row: Mapping[str, Any], where: str = "") -> Patient:
    try:
        envelope = json.loads(row["envelope_json"] or "{}")
    except json.JSONDecodeError as exc:
        raise StoreError(
            f"{where}: patient {row['id']!r}: the stored envelope is not valid JSON ({exc}); "
            f"set it again with `vrbalance patient set-envelope {row['id']} FILE.toml`"
        ) from None
    if not isinstance(envelope, dict):
        raise StoreError(
            f"{where}: patient {row['id']!r}: the stored envelope is not a table; "
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
        envelope_version=int(row.get("envelope_version") or 0),
    )


_SESSION_COLUMNS = (
    "id",
    "patient_id",
    "protocol",
    "started_utc",
    "ended_utc",
    "end_reason",
    "status",
    "folder",
    "software_version",
    "simulated",
    "envelope_json",
    "envelope_version",
    "station",
    "filed_utc",
)
_TRIAL_COLUMNS = (
    "session_id",
    "idx",
    "name",
    "kind",
    "scene",
    "stance",
    "eyes",
    "surface",
    "surround",
    "assessment",
    "condition",
    "director",
    "level",
    "planned_s",
    "start_t_s",
    "end_t_s",
    "end_reason",
)
_EVENT_COLUMNS = (
    "session_id",
    "seq",
    "trial",
    "t_s",
    "source",
    "kind",
    "severity",
    "message",
    "values_json",
)


def _insert(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


def _upsert(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return f"{_insert(table, columns)} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"


class Store:
    """An open vrbalance database: an SQLite file or a PostgreSQL server.

    Parameters
    ----------
    target : str or Path
        An SQLite file (created ``0o600`` in a ``0o700`` folder if missing), or
        a ``postgresql://user@host/db?sslmode=...`` URL.
    timeout_s : float
        How long to wait for a lock held by another program (or, on a server,
        for the connection) before giving up.
    migrate : bool
        Apply missing schema migrations now (default). With ``False`` an older
        schema is an error that says to run ``vrbalance db migrate``.
    check_schema : bool
        ``False`` opens the database whatever its schema, for
        ``vrbalance db migrate`` and ``db info`` (which then report on it).
    create : bool
        Create a missing SQLite file (default); ``False`` makes it an error.

    Raises
    ------
    StoreError
        If the file is not a database, is locked past ``timeout_s``, the server
        cannot be reached (:class:`StoreUnavailable`), or the schema was written
        by a newer vrbalance.
    """

    def __init__(
        self,
        target: str | os.PathLike[str],
        *,
        timeout_s: float = 5.0,
        migrate: bool = True,
        check_schema: bool = True,
        create: bool = True,
    ) -> None:
        self.timeout_s = float(timeout_s)
        self.conn: Connection = connect(target, timeout_s=timeout_s, create=create)
        self.where = self.conn.where
        self.path = self.conn.path
        self.dialect = self.conn.dialect
        try:
            if check_schema:
                self._check_schema(migrate=migrate)
        except BaseException:
            self.conn.close()
            raise

    # -- lifecycle ----------------------------------------------------------

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.conn.close()

    @property
    def tls(self) -> bool:
        """Whether the connection to the database is encrypted (never for a file)."""
        return self.conn.tls

    # -- schema -------------------------------------------------------------

    def _check_schema(self, *, migrate: bool) -> None:
        version = self.conn.read_version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.where}: database schema version {version} is newer than this "
                f"vrbalance understands ({SCHEMA_VERSION}); upgrade vrbalance"
            )
        if version < SCHEMA_VERSION:
            if not migrate:
                raise StoreError(
                    f"{self.where}: database schema version {version} is older than this "
                    f"vrbalance needs ({SCHEMA_VERSION}); run `vrbalance db migrate`"
                )
            self.migrate()

    def migrate(self) -> list[Migration]:
        """Apply the migrations this database lacks, each in one transaction.

        Another station migrating at the same moment waits (advisory lock on
        PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and then finds nothing left.

        Returns
        -------
        list of Migration
            Those applied (empty when the schema was current).
        """
        applied: list[Migration] = []
        fresh = self.conn.read_version() == 0
        while True:
            with self.conn.transaction():
                self.conn.lock_migrations()
                version = self.conn.read_version()
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.where}: database schema version {version} is newer than "
                        f"this vrbalance understands ({SCHEMA_VERSION}); upgrade vrbalance"
                    )
                todo = pending(version)
                if not todo:
                    return applied
                step = todo[0]
                # A new database is simply created; upgrading one deserves a word.
                log.log(
                    logging.INFO if fresh else logging.WARNING,
                    "%s: upgrading the record's schema from version %d to %d (%s)",
                    self.where,
                    version,
                    step.version,
                    step.description,
                )
                for statement in step.sql(self.dialect):
                    self.conn.query(statement)
                self.conn.write_version(step.version)
            applied.append(step)

    @property
    def schema_version(self) -> int:
        return self.conn.read_version()

    # -- patients -----------------------------------------------------------

    def add_patient(self, patient: Patient) -> Patient:
        """Insert a new patient (with its envelope as version 1 if it has one).

        Raises
        ------
        StoreError
            If the id exists already or is empty.
        """
        if not patient.id or not patient.id.strip():
            raise StoreError(f"{self.where}: a patient id must not be empty")
        created = patient.created_utc or utc_now_iso()
        envelope = dict(patient.envelope or {})
        with self.conn.transaction():
            self.conn.lock_key(f"patient:{patient.id}")
            if self.conn.query("SELECT id FROM patients WHERE id = ?", (patient.id,)):
                raise StoreError(f"{self.where}: patient {patient.id!r} already exists")
            self._insert_patient(patient, envelope, created, 1 if envelope else 0)
            if envelope:
                self._record_envelope(patient.id, 1, envelope, created)
        return self.patient(patient.id)

    def patient(self, patient_id: str) -> Patient:
        """Return one patient.

        Raises
        ------
        StoreError
            ``no patient 'X' in DB; add one with `vrbalance patient add X```.
        """
        rows = self.conn.query("SELECT * FROM patients WHERE id = ?", (patient_id,))
        if not rows:
            raise StoreError(
                f"no patient {patient_id!r} in {self.where}; "
                f"add one with `vrbalance patient add {patient_id}`"
            )
        return _patient_from_row(rows[0], self.where)

    def patients(self) -> list[Patient]:
        """All patients, by id."""
        rows = self.conn.query("SELECT * FROM patients ORDER BY id")
        return [_patient_from_row(r, self.where) for r in rows]

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
        self.conn.query(
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

    def set_envelope(
        self,
        patient_id: str,
        envelope: Mapping[str, Any],
        *,
        if_version: int | None = None,
    ) -> Patient:
        """Set a patient's safety envelope as its next version (the director's limits).

        Two stations setting it at the same moment both succeed, one after the
        other, and both versions stay in :meth:`envelope_history`.

        Parameters
        ----------
        patient_id : str
            The patient.
        envelope : Mapping
            The whole envelope (it replaces the current one).
        if_version : int, optional
            Refuse unless the current version is this one: a therapist who
            edited the envelope shown at version N does not silently undo a
            change another station made since.

        Raises
        ------
        StoreError
            No such patient, or ``if_version`` is not the current version.
        """
        with self.conn.transaction():
            rows = self.conn.query(
                "SELECT envelope_version FROM patients WHERE id = ?" + self.conn.for_update,
                (patient_id,),
            )
            if not rows:
                self.patient(patient_id)  # raises the usual "no patient" error
            current = int(rows[0]["envelope_version"] or 0)
            if if_version is not None and if_version != current:
                raise StoreError(
                    f"{self.where}: the envelope of {patient_id!r} changed meanwhile "
                    f"(version {current}, expected {if_version}); reload it and try again"
                )
            body = dict(envelope)
            self.conn.query(
                "UPDATE patients SET envelope_json = ?, envelope_version = ? WHERE id = ?",
                (json.dumps(body), current + 1, patient_id),
            )
            self._record_envelope(patient_id, current + 1, body, utc_now_iso())
        return self.patient(patient_id)

    def _insert_patient(
        self, patient: Patient, envelope: Mapping[str, Any], created_utc: str, version: int
    ) -> None:
        """INSERT one ``patients`` row: :meth:`add_patient` and :meth:`put_patient` share it.

        The caller holds the transaction and the patient's lock and has checked
        the id is free; ``version`` is the envelope version the row starts at.
        """
        self.conn.query(
            "INSERT INTO patients (id, name, birth_year, sex, height_m, mass_kg, "
            "foot_length_m, envelope_json, notes, created_utc, envelope_version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                patient.id,
                patient.name,
                patient.birth_year,
                patient.sex,
                patient.height_m,
                patient.mass_kg,
                patient.foot_length_m,
                json.dumps(dict(envelope)),
                patient.notes,
                created_utc,
                version,
            ),
        )

    def _record_envelope(
        self,
        patient_id: str,
        version: int,
        envelope: Mapping[str, Any],
        when: str,
        station: str | None = None,
    ) -> None:
        """INSERT one ``envelopes`` row; ``station`` defaults to this machine's name."""
        self.conn.query(
            "INSERT INTO envelopes (patient_id, version, envelope_json, set_utc, station) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                patient_id,
                version,
                json.dumps(dict(envelope)),
                when,
                socket.gethostname() if station is None else station,
            ),
        )

    def envelope_history(self, patient_id: str) -> list[dict[str, Any]]:
        """Every envelope the patient had, oldest first.

        Returns
        -------
        list of dict
            ``version, envelope, set_utc, station`` per version.
        """
        self.patient(patient_id)
        rows = self.conn.query(
            "SELECT version, envelope_json, set_utc, station FROM envelopes "
            "WHERE patient_id = ? ORDER BY version",
            (patient_id,),
        )
        return [
            {
                "version": int(r["version"]),
                "envelope": json.loads(r["envelope_json"]),
                "set_utc": r["set_utc"],
                "station": r["station"],
            }
            for r in rows
        ]

    def put_patient(self, patient: Patient, history: Sequence[Mapping[str, Any]] = ()) -> bool:
        """Insert ``patient`` with its envelope history unless the id exists (``db copy``).

        Returns
        -------
        bool
            ``True`` if inserted, ``False`` if a patient with that id was there
            (it is left as it is: the clinic's record wins over a station's).
        """
        with self.conn.transaction():
            self.conn.lock_key(f"patient:{patient.id}")
            if self.conn.query("SELECT id FROM patients WHERE id = ?", (patient.id,)):
                return False
            self._insert_patient(
                patient,
                dict(patient.envelope or {}),
                patient.created_utc or utc_now_iso(),
                patient.envelope_version,
            )
            for h in history:
                self._record_envelope(
                    patient.id,
                    int(h["version"]),
                    h["envelope"],
                    h["set_utc"],
                    station=h.get("station", ""),
                )
        return True

    # -- sessions -----------------------------------------------------------

    def add_session(
        self,
        session: Mapping[str, Any],
        trials: Sequence[Mapping[str, Any]],
        measures: Sequence[tuple[int, str, float | None, str]],
        *,
        events: Sequence[Mapping[str, Any]] | None = None,
        recording: Path | None = None,
        recording_from: Store | None = None,
    ) -> None:
        """Insert or replace one session with everything that belongs to it (one transaction).

        Parameters
        ----------
        session : Mapping
            Keys of the ``sessions`` table (``id``, ``patient_id``, ``protocol``...).
        trials : sequence of Mapping
            ``trials.csv`` rows (keys :data:`~vrbalance.sessions.recorder.TRIAL_COLUMNS`).
        measures : sequence of (trial_idx, name, value, unit)
            Summary measures; ``trial_idx`` :data:`SESSION_LEVEL` for the session.
        events : sequence of Mapping, optional
            ``events.csv`` rows; ``None`` keeps those already filed.
        recording : Path, optional
            The session folder whose files are uploaded (gzip, in chunks);
            ``None`` keeps the recording already filed, if any.
        recording_from : Store, optional
            Copy this session's stored recording from another store as it is
            (``vrbalance db copy``), instead of uploading a folder.

        Raises
        ------
        StoreError
            No such patient (nothing is written), or the database failed
            (nothing is written either: it is one transaction).
        """
        sid = str(session["id"])
        row = {
            "id": sid,
            "patient_id": session["patient_id"],
            "protocol": session["protocol"],
            "started_utc": session["started_utc"],
            "ended_utc": session.get("ended_utc"),
            "end_reason": session.get("end_reason"),
            "status": session.get("status", "complete"),
            "folder": str(session["folder"]),
            "software_version": session.get("software_version", ""),
            "simulated": int(bool(session.get("simulated", False))),
            "envelope_json": session.get("envelope_json"),
            "envelope_version": _opt_int(session.get("envelope_version")),
            "station": session.get("station") or socket.gethostname(),
            "filed_utc": utc_now_iso(),
        }
        with self.conn.transaction():
            self.conn.lock_key(f"session:{sid}")
            self.patient(str(session["patient_id"]))
            with self.conn.batch():
                self._write_session(sid, row, trials, measures, events, recording, recording_from)

    def _write_session(
        self,
        sid: str,
        row: Mapping[str, Any],
        trials: Sequence[Mapping[str, Any]],
        measures: Sequence[tuple[int, str, float | None, str]],
        events: Sequence[Mapping[str, Any]] | None,
        recording: Path | None,
        recording_from: Store | None,
    ) -> None:
        """The statements of :meth:`add_session`, results unread (sent as one batch)."""
        self.conn.execute("DELETE FROM measures WHERE session_id = ?", (sid,))
        self.conn.execute("DELETE FROM trials WHERE session_id = ?", (sid,))
        self.conn.execute(
            _upsert("sessions", _SESSION_COLUMNS, ("id",)),
            [row[c] for c in _SESSION_COLUMNS],
        )
        self.conn.execute_many(
            _insert("trials", _TRIAL_COLUMNS),
            [
                (
                    sid,
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
                )
                for t in trials
            ],
        )
        self.conn.execute_many(
            _upsert(
                "measures",
                ("session_id", "trial_idx", "name", "value", "unit"),
                ("session_id", "trial_idx", "name"),
            ),
            [(sid, int(i), n, v, u) for i, n, v, u in measures],
        )
        if events is not None:
            self.conn.execute("DELETE FROM events WHERE session_id = ?", (sid,))
            self.conn.execute_many(
                _insert("events", _EVENT_COLUMNS),
                [
                    (
                        sid,
                        seq,
                        int(e["trial"] or 0),
                        _opt_float(e.get("t_s")),
                        e["source"],
                        e["kind"],
                        e["severity"],
                        e["message"],
                        e.get("values_json") or "{}",
                    )
                    for seq, e in enumerate(events)
                ],
            )
        if recording is not None or recording_from is not None:
            # Its chunks go with it (ON DELETE CASCADE).
            self.conn.execute("DELETE FROM recording_files WHERE session_id = ?", (sid,))
        if recording is not None:
            for path in _recording_files(recording):
                self._upload_file(sid, path)
        elif recording_from is not None:
            for f in recording_from.recording_files(sid):
                self.conn.execute(
                    "INSERT INTO recording_files (session_id, name, raw_bytes, "
                    "stored_bytes, sha256, compression, chunks) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        sid,
                        f["name"],
                        f["raw_bytes"],
                        f["stored_bytes"],
                        f["sha256"],
                        f["compression"],
                        f["chunks"],
                    ),
                )
                for i, piece in enumerate(recording_from.recording_chunks(sid, f["name"])):
                    self.conn.execute(
                        "INSERT INTO recording_chunks (session_id, name, chunk, data) "
                        "VALUES (?, ?, ?, ?)",
                        (sid, f["name"], i, piece),
                    )

    def _upload_file(self, session_id: str, path: Path) -> None:
        """Store one recording file gzip-compressed in chunks of :data:`CHUNK_BYTES`."""
        size = path.stat().st_size
        if size <= CHUNK_BYTES:  # most files of short sessions: two statements, not three
            data = path.read_bytes()
            packed = gzip.compress(data, COMPRESS_LEVEL, mtime=0)
            if len(packed) <= CHUNK_BYTES:
                self.conn.execute(
                    "INSERT INTO recording_files (session_id, name, raw_bytes, stored_bytes, "
                    "sha256, compression, chunks) VALUES (?, ?, ?, ?, ?, 'gzip', 1)",
                    (
                        session_id,
                        path.name,
                        len(data),
                        len(packed),
                        hashlib.sha256(data).hexdigest(),
                    ),
                )
                self.conn.execute(
                    "INSERT INTO recording_chunks (session_id, name, chunk, data) "
                    "VALUES (?, ?, 0, ?)",
                    (session_id, path.name, packed),
                )
                return
        digest = hashlib.sha256()
        packer = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, 31)  # 31: gzip framing
        raw = stored = 0
        chunk_no = 0
        pending_out = bytearray()
        self.conn.execute(
            "INSERT INTO recording_files (session_id, name, raw_bytes, stored_bytes, sha256, "
            "compression, chunks) VALUES (?, ?, 0, 0, '', 'gzip', 0)",
            (session_id, path.name),
        )

        def flush(final: bool) -> None:
            nonlocal chunk_no, stored
            while len(pending_out) >= CHUNK_BYTES or (final and pending_out):
                piece = bytes(pending_out[:CHUNK_BYTES])
                del pending_out[:CHUNK_BYTES]
                self.conn.execute(
                    "INSERT INTO recording_chunks (session_id, name, chunk, data) "
                    "VALUES (?, ?, ?, ?)",
                    (session_id, path.name, chunk_no, piece),
                )
                chunk_no += 1
                stored += len(piece)

        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                raw += len(block)
                digest.update(block)
                pending_out += packer.compress(block)
                flush(False)
        pending_out += packer.flush()
        flush(True)
        self.conn.execute(
            "UPDATE recording_files SET raw_bytes = ?, stored_bytes = ?, sha256 = ?, chunks = ? "
            "WHERE session_id = ? AND name = ?",
            (raw, stored, digest.hexdigest(), chunk_no, session_id, path.name),
        )

    def sessions(self, patient_id: str | None = None) -> list[dict[str, Any]]:
        """Sessions (all, or one patient's), oldest first, as dicts."""
        if patient_id is None:
            return self.conn.query("SELECT * FROM sessions ORDER BY started_utc, id")
        self.patient(patient_id)
        return self.conn.query(
            "SELECT * FROM sessions WHERE patient_id = ? ORDER BY started_utc, id", (patient_id,)
        )

    def session(self, session_id: str) -> dict[str, Any]:
        """One session as a dict; :class:`StoreError` naming it if absent."""
        rows = self.conn.query("SELECT * FROM sessions WHERE id = ?", (session_id,))
        if not rows:
            raise StoreError(f"no session {session_id!r} in {self.where}")
        return rows[0]

    def last_levels(self, patient_id: str) -> dict[str, int]:
        """Level of the last director-adapted trial per scene across the patient's sessions.

        The director starts the next session there, so training continues where
        it stopped instead of from level 1 every week.
        """
        self.patient(patient_id)
        rows = self.conn.query(
            "SELECT t.scene, t.level FROM trials t JOIN sessions s ON s.id = t.session_id "
            "WHERE s.patient_id = ? AND t.director = 1 AND t.level IS NOT NULL "
            "ORDER BY s.started_utc, s.id, t.idx",
            (patient_id,),
        )
        return {r["scene"]: int(r["level"]) for r in rows}

    def trials(self, session_id: str) -> list[dict[str, Any]]:
        """A session's trials in order, as dicts."""
        return self.conn.query(
            "SELECT * FROM trials WHERE session_id = ? ORDER BY idx", (session_id,)
        )

    def measures(self, session_id: str) -> list[dict[str, Any]]:
        """A session's measures, as dicts with ``trial_idx, name, value, unit``."""
        return self.conn.query(
            "SELECT trial_idx, name, value, unit FROM measures WHERE session_id = ? "
            "ORDER BY trial_idx, name",
            (session_id,),
        )

    def events(self, session_id: str) -> list[dict[str, Any]]:
        """A session's events in recorded order (``events.csv`` columns, ``values_json``)."""
        return self.conn.query(
            "SELECT trial, t_s, source, kind, severity, message, values_json FROM events "
            "WHERE session_id = ? ORDER BY seq",
            (session_id,),
        )

    def recording_files(self, session_id: str) -> list[dict[str, Any]]:
        """The filed recording's files: ``name, raw_bytes, stored_bytes, sha256, chunks``."""
        return self.conn.query(
            "SELECT name, raw_bytes, stored_bytes, sha256, compression, chunks "
            "FROM recording_files WHERE session_id = ? ORDER BY name",
            (session_id,),
        )

    def recording_chunks(self, session_id: str, name: str) -> Iterator[bytes]:
        """The stored (gzip) bytes of one recording file, chunk by chunk."""
        count = self.conn.query(
            "SELECT chunks FROM recording_files WHERE session_id = ? AND name = ?",
            (session_id, name),
        )
        if not count:
            raise StoreError(f"{self.where}: session {session_id!r} has no recorded {name!r}")
        for i in range(int(count[0]["chunks"])):
            rows = self.conn.query(
                "SELECT data FROM recording_chunks WHERE session_id = ? AND name = ? AND chunk = ?",
                (session_id, name, i),
            )
            if not rows:
                raise StoreError(
                    f"{self.where}: session {session_id!r} {name}: chunk {i} is missing"
                )
            yield bytes(rows[0]["data"])

    def extract_recording(self, session_id: str, dest: Path) -> Path:
        """Unpack the filed recording into ``dest`` (``0o700``; files ``0o600``), verified.

        The files are written into a temporary sibling folder, checked against
        their SHA-256, and only then moved into place, so ``dest`` is either
        the whole recording or untouched.

        Raises
        ------
        StoreError
            No recording filed for the session, or a file does not match its checksum.
        """
        files = self.recording_files(session_id)
        if not files:
            raise StoreError(f"{self.where}: no recording filed for session {session_id!r}")
        dest = Path(dest)
        make_private_dir(dest.parent)
        tmp = dest.with_name(dest.name + ".partial")
        if tmp.exists():
            _remove_tree(tmp)
        make_private_dir(tmp)
        for f in files:
            digest = hashlib.sha256()
            unpack = zlib.decompressobj(31)
            fd = os.open(tmp / f["name"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with open(fd, "wb") as fh:
                for piece in self.recording_chunks(session_id, f["name"]):
                    data = unpack.decompress(piece)
                    digest.update(data)
                    fh.write(data)
                tail = unpack.flush()
                digest.update(tail)
                fh.write(tail)
            if digest.hexdigest() != f["sha256"]:
                _remove_tree(tmp)
                raise StoreError(
                    f"{self.where}: session {session_id!r} {f['name']}: checksum mismatch "
                    "(the stored recording is damaged)"
                )
        if dest.exists():
            _remove_tree(dest)
        os.replace(tmp, dest)
        return dest


def _remove_tree(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            _remove_tree(child)
        else:
            child.unlink()
    path.rmdir()


def _recording_files(folder: Path) -> list[Path]:
    """The files of a session folder that make its recording (streams and sidecar)."""
    folder = Path(folder)
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.is_symlink() and (p.suffix == ".csv" or p.name == SIDECAR)
    )


def gunzip_bytes(chunks: Iterator[bytes]) -> bytes:
    """Join and decompress a stored recording file (small files, tests)."""
    return gzip.decompress(b"".join(chunks))


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
    ``trials.csv``; measures are recomputed from ``state.csv``. The envelope
    the session ran with comes from the sidecar (``envelope``, and the
    ``patient`` record's ``envelope_version``), not from the patient's record
    now.
    """
    from vrbalance.sessions.summary import summarize_folder, trial_rows

    folder = Path(folder)
    meta = read_sidecar(folder)
    trials = trial_rows(folder, meta)
    status = meta.get("status", "recording")
    envelope = meta.get("envelope")
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
        "envelope_json": None if envelope is None else json.dumps(envelope, sort_keys=True),
        "envelope_version": (meta.get("patient") or {}).get("envelope_version"),
        "station": meta.get("station") or "",
    }
    measures = summarize_folder(folder, trials)
    return session, trials, measures


def import_session(store: Store, folder: Path, *, upload: bool = True) -> dict[str, Any]:
    """(Re)file a recording folder in the store; returns the session row.

    Rows, events and (with ``upload``) the recording files go in one
    transaction. Idempotent: importing twice replaces them. The patient must
    exist (add it first with ``vrbalance patient add``).
    """
    folder = Path(folder)
    session, trials, measures = session_rows_from_folder(folder)
    events_path = folder / "events.csv"
    events = read_rows(events_path) if events_path.exists() else []
    store.add_session(
        session, trials, measures, events=events, recording=folder if upload else None
    )
    log.info(
        "filed %s in %s (%d trials, %d measures, %d events%s)",
        folder,
        store.where,
        len(trials),
        len(measures),
        len(events),
        ", recording uploaded" if upload else "",
    )
    return session


def resolve_session_folder(text: str, db: str | os.PathLike[str] | None = None) -> Path:
    """A session folder from a path, or from a session id looked up in the database.

    When the session was recorded on another station (its folder is not here)
    the recording filed in the database is unpacked into this station's cache
    (``<data>/cache/<session id>``) and that folder is returned.

    Raises
    ------
    FileNotFoundError
        Neither an existing folder nor a known session id (names both places looked).
    """
    from vrbalance.sessions.paths import cache_root, db_target

    path = Path(text).expanduser()
    if path.is_dir():
        return path
    target = db_target(db)
    if is_server(target) or Path(target).exists():
        try:
            with Store(target) as store:
                row = store.session(text)
                folder = Path(row["folder"])
                if (folder / SIDECAR).exists():
                    return folder
                if store.recording_files(text):
                    out = store.extract_recording(text, cache_root() / text)
                    log.info("unpacked session %s from %s into %s", text, store.where, out)
                    return out
                raise FileNotFoundError(
                    f"{text}: the session is in {store.where} but its recording is neither "
                    f"here ({folder}) nor in the database; file it from the station that "
                    f"recorded it with `vrbalance patient import FOLDER`"
                )
        except StoreError as exc:
            log.debug("session lookup failed: %s", exc)
    raise FileNotFoundError(
        f"{text}: no such session folder, and no session with that id in {redact(target)}"
    )
