"""Versioned schema migrations of the record store, one list for SQLite and PostgreSQL.

Each :class:`Migration` moves the schema from ``version - 1`` to ``version``.
The SQL is written once, in the subset both databases share (``TEXT``,
``INTEGER``, ``PRIMARY KEY``, ``REFERENCES ... ON DELETE CASCADE``,
``ALTER TABLE ... ADD COLUMN``, ``INSERT ... ON CONFLICT ... DO UPDATE``); the
only dialect differences are the two type names in braces:

``{real}``  a 64-bit float: SQLite ``REAL``, PostgreSQL ``DOUBLE PRECISION``
            (PostgreSQL's ``REAL`` is 32-bit and would round measures)
``{blob}``  bytes: SQLite ``BLOB``, PostgreSQL ``BYTEA``

To change the schema, append a migration (never edit a released one): the
store applies the missing ones in order, each in its own transaction, when it
opens a database, and refuses a database whose version is newer than the last
one here. SQLite keeps the version in ``PRAGMA user_version`` (as version 1
always did); PostgreSQL in the one-row table ``vrbalance_schema``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Per-dialect spellings of the placeholders used in :data:`MIGRATIONS`.
TYPES: dict[str, dict[str, str]] = {
    "sqlite": {"real": "REAL", "blob": "BLOB"},
    "postgresql": {"real": "DOUBLE PRECISION", "blob": "BYTEA"},
}


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema.

    Attributes
    ----------
    version : int
        The schema version after this step (1, 2, ...; no gaps).
    description : str
        What it adds, shown when it is applied.
    statements : tuple of str
        SQL statements, with ``{real}`` / ``{blob}`` for the dialect's types.
    """

    version: int
    description: str
    statements: tuple[str, ...]

    def sql(self, dialect: str) -> list[str]:
        """The statements spelled for ``dialect`` (``"sqlite"`` or ``"postgresql"``)."""
        return [s.format(**TYPES[dialect]) for s in self.statements]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "patients, sessions, trials and measures",
        (
            """CREATE TABLE IF NOT EXISTS patients (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL DEFAULT '',
                birth_year INTEGER,
                sex TEXT NOT NULL DEFAULT '',
                height_m {real},
                mass_kg {real},
                foot_length_m {real},
                envelope_json TEXT NOT NULL DEFAULT '{{}}',
                notes TEXT NOT NULL DEFAULT '',
                created_utc TEXT NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS sessions (
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
            )""",
            "CREATE INDEX IF NOT EXISTS sessions_patient ON sessions(patient_id, started_utc)",
            """CREATE TABLE IF NOT EXISTS trials (
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
                planned_s {real} NOT NULL,
                start_t_s {real},
                end_t_s {real},
                end_reason TEXT NOT NULL,
                PRIMARY KEY (session_id, idx)
            )""",
            """CREATE TABLE IF NOT EXISTS measures (
                session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
                trial_idx INTEGER NOT NULL,
                name TEXT NOT NULL,
                value {real},
                unit TEXT NOT NULL DEFAULT '',
                PRIMARY KEY (session_id, trial_idx, name)
            )""",
        ),
    ),
    Migration(
        2,
        "events, compressed recordings, envelope history, the envelope each session ran with",
        (
            "ALTER TABLE patients ADD COLUMN envelope_version INTEGER NOT NULL DEFAULT 0",
            """CREATE TABLE envelopes (
                patient_id TEXT NOT NULL REFERENCES patients(id),
                version INTEGER NOT NULL,
                envelope_json TEXT NOT NULL,
                set_utc TEXT NOT NULL,
                station TEXT NOT NULL DEFAULT '',
                PRIMARY KEY (patient_id, version)
            )""",
            "ALTER TABLE sessions ADD COLUMN envelope_json TEXT",
            "ALTER TABLE sessions ADD COLUMN envelope_version INTEGER",
            "ALTER TABLE sessions ADD COLUMN station TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE sessions ADD COLUMN filed_utc TEXT",
            """CREATE TABLE events (
                session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                trial INTEGER NOT NULL,
                t_s {real},
                source TEXT NOT NULL,
                kind TEXT NOT NULL,
                severity TEXT NOT NULL,
                message TEXT NOT NULL,
                values_json TEXT NOT NULL,
                PRIMARY KEY (session_id, seq)
            )""",
            """CREATE TABLE recording_files (
                session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                raw_bytes INTEGER NOT NULL,
                stored_bytes INTEGER NOT NULL,
                sha256 TEXT NOT NULL,
                compression TEXT NOT NULL,
                chunks INTEGER NOT NULL,
                PRIMARY KEY (session_id, name)
            )""",
            """CREATE TABLE recording_chunks (
                session_id TEXT NOT NULL,
                name TEXT NOT NULL,
                chunk INTEGER NOT NULL,
                data {blob} NOT NULL,
                PRIMARY KEY (session_id, name, chunk),
                FOREIGN KEY (session_id, name) REFERENCES recording_files(session_id, name)
                    ON DELETE CASCADE
            )""",
        ),
    ),
)

#: The schema version this code writes (the last migration's).
SCHEMA_VERSION = MIGRATIONS[-1].version


def pending(current: int) -> tuple[Migration, ...]:
    """The migrations a database at version ``current`` still needs, in order."""
    return tuple(m for m in MIGRATIONS if m.version > current)


#: What a station's role may do to each table (PostgreSQL): add patients, set
#: envelopes (a new version), file sessions and replace what re-filing
#: replaces. No DELETE of patients, sessions or envelopes, no schema changes.
STATION_PRIVILEGES: dict[str, str] = {
    "vrbalance_schema": "SELECT",
    "patients": "SELECT, INSERT, UPDATE",
    "envelopes": "SELECT, INSERT",
    "sessions": "SELECT, INSERT, UPDATE",
    "trials": "SELECT, INSERT, UPDATE, DELETE",
    "measures": "SELECT, INSERT, UPDATE, DELETE",
    "events": "SELECT, INSERT, UPDATE, DELETE",
    "recording_files": "SELECT, INSERT, UPDATE, DELETE",
    "recording_chunks": "SELECT, INSERT, UPDATE, DELETE",
}


def station_grants_sql(role: str) -> list[str]:
    """The ``GRANT`` statements that give ``role`` exactly :data:`STATION_PRIVILEGES`.

    Run by the owner after every migration (``vrbalance db grant ROLE``): a new
    table is not readable by stations until then.
    """
    if not role.replace("_", "").isalnum() or not role[:1].isalpha():
        raise ValueError(f"role: expected letters, digits and _, got {role!r}")
    out = [f"REVOKE ALL ON {t} FROM {role}" for t in STATION_PRIVILEGES]
    out += [f"GRANT {privs} ON {t} TO {role}" for t, privs in STATION_PRIVILEGES.items()]
    return out
