"""Connections of the record store: an SQLite file or a PostgreSQL server, one small interface.

:func:`connect` takes what ``--db`` / ``$VRBALANCE_DB`` gave: a
``postgresql://`` (or ``postgres://``) URL opens a server through psycopg 3,
anything else is an SQLite file. Both give a :class:`Connection` whose
:meth:`~Connection.query` takes SQL with ``?`` placeholders and returns rows
as dicts, and whose :meth:`~Connection.transaction` is one transaction
(``BEGIN IMMEDIATE`` on SQLite, so two writers queue instead of failing
half-way). The store's SQL is otherwise the same for both.

Passwords. A connection string may hold a password (``postgresql://user:pw@
host/db`` or ``password=pw``). It is never printed: :attr:`Connection.where`
is the string with the password replaced by ``***``, and every error message
this module builds is scrubbed of the password's text, even where the driver
repeats it. Better still, keep it out of the string: libpq reads
``~/.pgpass`` (mode 0600) and ``$PGPASSWORD``.

TLS is libpq's: ``sslmode`` in the URL (``require``, ``verify-full`` with
``sslrootcert=...``) is honoured; libpq's default (``prefer``) uses TLS
whenever the server offers it. :attr:`Connection.tls` says whether it is in use.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from vrbalance.errors import VrBalanceError

log = logging.getLogger(__name__)

SERVER_SCHEMES = ("postgresql://", "postgres://")
#: Key for PostgreSQL advisory locks taken by migrations ("vrbalance" in ASCII, folded).
MIGRATION_LOCK_KEY = 0x7672_6261


class StoreError(VrBalanceError):
    """The record store cannot do what was asked; the message names the database."""


class StoreUnavailable(StoreError):
    """The database cannot be reached now (server down, connection lost, file locked).

    What was being filed is kept on disk and can be filed later
    (:func:`vrbalance.sessions.filing.file_pending`).
    """


def is_server(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` names a PostgreSQL server (a ``postgresql://`` URL)."""
    return isinstance(target, str) and target.strip().lower().startswith(SERVER_SCHEMES)


def _password(target: str) -> str | None:
    """The password inside a connection string, or ``None``."""
    if is_server(target):
        parts = urlsplit(target)
        if parts.password:
            return unquote(parts.password)
        for key, value in parse_qsl(parts.query):
            if key == "password" and value:
                return value
        return None
    match = re.search(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", target)
    return match.group(1).strip("'") if match else None


def redact(target: str | os.PathLike[str]) -> str:
    """``target`` fit to print: a URL's or conninfo's password replaced by ``***``."""
    text = os.fspath(target)
    if not is_server(text):
        return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", text)
    parts = urlsplit(text)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostinfo}"
    query = re.sub(r"(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub(text: str, target: str | os.PathLike[str]) -> str:
    """``text`` with every occurrence of ``target``'s password replaced by ``***``."""
    raw = os.fspath(target)
    secret = _password(raw) if isinstance(raw, str) else None
    text = text.replace(raw, redact(raw)) if raw else text
    if secret:
        text = text.replace(secret, "***")
        if is_server(raw):
            quoted = urlsplit(raw).password
            if quoted:
                text = text.replace(quoted, "***")
    return text


class Connection:
    """One open database, SQLite or PostgreSQL, behind the calls the store needs.

    Attributes
    ----------
    dialect : str
        ``"sqlite"`` or ``"postgresql"``.
    where : str
        The database for messages: the file path, or the URL without its password.
    path : Path or None
        The SQLite file (``None`` for a server).
    for_update : str
        ``" FOR UPDATE"`` on PostgreSQL (row lock inside a transaction); empty on
        SQLite, whose ``BEGIN IMMEDIATE`` already serialises writers.
    """

    dialect: str
    where: str
    path: Path | None
    for_update: str = ""
    timeout_s: float

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one statement (``?`` placeholders); rows as dicts (empty if none)."""
        raise NotImplementedError

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement whose result is not needed (may be sent without waiting)."""
        self.query(sql, params)

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for every parameter row."""
        raise NotImplementedError

    def batch(self) -> Any:
        """Context manager: statements sent back to back (PostgreSQL pipeline), checked at exit.

        Inside, use :meth:`execute` and :meth:`execute_many` only: on a server
        a round trip per statement costs more than the statement (and, on a
        busy station, a scheduler wake-up each).
        """
        return nullcontext()

    def transaction(self) -> Any:
        """Context manager: one write transaction, committed on success."""
        raise NotImplementedError

    def read_version(self) -> int:
        """The schema version stored in the database (0 when empty)."""
        raise NotImplementedError

    def write_version(self, version: int) -> None:
        """Store the schema version (inside a :meth:`transaction`)."""
        raise NotImplementedError

    def lock_migrations(self) -> None:
        """Inside a transaction: keep other stations from migrating at the same time."""

    def lock_key(self, key: str) -> None:
        """Inside a transaction: serialise writers of the same ``key`` (e.g. a session id)."""

    @property
    def tls(self) -> bool:
        """Whether the connection is encrypted (never for a local file)."""
        return False

    def error(self, exc: Exception) -> StoreError:
        """A :class:`StoreError` for a driver error, naming the database, without password."""
        raise NotImplementedError

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Turn driver errors raised inside into :class:`StoreError` (see :meth:`error`)."""
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            if not self._is_driver_error(exc):
                raise
            raise self.error(exc) from None

    def _is_driver_error(self, exc: Exception) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection (idempotent)."""
        raise NotImplementedError


# --------------------------------------------------------------------------- SQLite


class SqliteConnection(Connection):
    """An SQLite file, created ``0o600`` in a ``0o700`` folder if missing."""

    dialect = "sqlite"

    def __init__(
        self, path: str | os.PathLike[str], *, timeout_s: float, create: bool = True
    ) -> None:
        from vrbalance.sessions.recorder import FILE_MODE, make_private_dir

        self.path = Path(path)
        self.where = str(self.path)
        self.timeout_s = float(timeout_s)
        if self.path.is_dir():
            # Never chmod or open a folder as the database (``--db /tmp`` as root
            # once made /tmp 0600 and / 0700 for everybody).
            raise StoreError(f"{self.where}: is a folder, not a database file; give a file path")
        if not self.path.exists():
            if not create:
                raise StoreError(f"{self.where}: no such database file")
            if not self.path.parent.exists():
                make_private_dir(self.path.parent)  # only the folders it creates become 0700
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            except OSError as exc:
                raise StoreError(f"{self.where}: cannot create the database: {exc}") from None
            os.close(fd)
        elif self.path.is_file():
            os.chmod(self.path, FILE_MODE)  # patient data: owner only, whatever made it
        try:
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE below).
            self._db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise self.error(exc) from exc
        self._db.row_factory = sqlite3.Row
        self._depth = 0
        with self.guard():
            self._db.execute("PRAGMA foreign_keys = ON")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.guard():
            return [dict(r) for r in self._db.execute(sql, tuple(params)).fetchall()]

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.guard():
            self._db.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with self.guard():
            self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._db.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            with self.guard():
                self._db.execute("COMMIT")
        except StoreError:
            self._db.execute("ROLLBACK")
            raise

    def read_version(self) -> int:
        return int(self.query("PRAGMA user_version")[0]["user_version"])

    def write_version(self, version: int) -> None:
        self.query(f"PRAGMA user_version = {int(version)}")

    def error(self, exc: Exception) -> StoreError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return StoreUnavailable(
                f"{self.where}: database is locked by another program "
                f"(waited {self.timeout_s:g} s); close it and try again"
            )
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return StoreError(
                f"{self.where}: not a vrbalance database (the file is not SQLite or is "
                "damaged); move it aside, then re-import sessions with "
                "`vrbalance patient import FOLDER`"
            )
        return StoreError(f"{self.where}: database error: {text}")

    def _is_driver_error(self, exc: Exception) -> bool:
        return isinstance(exc, sqlite3.Error)

    def close(self) -> None:
        self._db.close()


# --------------------------------------------------------------------------- PostgreSQL


class PostgresConnection(Connection):
    """A PostgreSQL server through psycopg 3 (autocommit; explicit transactions)."""

    dialect = "postgresql"
    # NO KEY UPDATE: sessions being filed hold KEY SHARE on their patient's row
    # (foreign key); a plain FOR UPDATE would make an envelope change wait for them.
    for_update = " FOR NO KEY UPDATE"

    def __init__(self, url: str, *, timeout_s: float) -> None:
        self._url = url
        self.where = redact(url)
        self.path = None
        self.timeout_s = float(timeout_s)
        try:
            import psycopg
            from psycopg.rows import dict_row
        except ImportError as exc:  # pragma: no cover - psycopg is a dependency
            raise StoreError(
                f"{self.where}: PostgreSQL needs psycopg 3 (pip install 'psycopg[binary]')"
            ) from exc
        self._psycopg = psycopg
        self._sql_cache: dict[str, str] = {}
        try:
            self._db = psycopg.connect(
                url,
                autocommit=True,
                row_factory=dict_row,
                # libpq's minimum is 2 s; a dead server must not hang a station.
                connect_timeout=max(2, round(self.timeout_s)),
                application_name="vrbalance",
            )
        except psycopg.Error as exc:
            raise self.error(exc) from None
        except Exception as exc:  # e.g. a malformed URL: ProgrammingError/ValueError
            raise StoreError(f"{self.where}: cannot open: {scrub(str(exc), url)}") from None
        # A row another station holds locked fails after timeout_s instead of hanging.
        with self.guard():
            self._db.execute(f"SET lock_timeout = '{int(self.timeout_s * 1000)}ms'")

    def _sql(self, sql: str) -> str:
        cached = self._sql_cache.get(sql)
        if cached is None:
            cached = sql.replace("%", "%%").replace("?", "%s")
            self._sql_cache[sql] = cached
        return cached

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.guard():
            cur = self._db.execute(self._sql(sql), tuple(params))  # type: ignore[call-overload]
            return list(cur.fetchall()) if cur.description else []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.guard():
            self._db.execute(self._sql(sql), tuple(params))  # type: ignore[call-overload]

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        with self.guard(), self._db.cursor() as cur:
            cur.executemany(self._sql(sql), rows)  # type: ignore[arg-type]

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self.guard(), self._db.pipeline():
            yield

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.guard(), self._db.transaction():
            yield

    def read_version(self) -> int:
        rows = self.query("SELECT to_regclass('vrbalance_schema') IS NOT NULL AS present")
        if not rows[0]["present"]:
            return 0
        rows = self.query("SELECT version FROM vrbalance_schema")
        return int(rows[0]["version"]) if rows else 0

    def write_version(self, version: int) -> None:
        self.query("CREATE TABLE IF NOT EXISTS vrbalance_schema (version INTEGER NOT NULL)")
        self.query("DELETE FROM vrbalance_schema")
        self.query("INSERT INTO vrbalance_schema (version) VALUES (?)", (int(version),))

    def lock_migrations(self) -> None:
        self.query("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK_KEY,))

    def lock_key(self, key: str) -> None:
        self.query("SELECT pg_advisory_xact_lock(?, hashtext(?))", (MIGRATION_LOCK_KEY, key))

    @property
    def tls(self) -> bool:
        return bool(self._db.pgconn.ssl_in_use)

    def error(self, exc: Exception) -> StoreError:
        errors = self._psycopg.errors
        text = scrub(str(exc).strip(), self._url)
        if isinstance(exc, errors.InsufficientPrivilege):
            return StoreError(
                f"{self.where}: permission denied ({text.splitlines()[0]}); this role may not "
                "do that: schema changes need the owner role (`vrbalance db migrate`)"
            )
        if isinstance(exc, errors.LockNotAvailable):
            return StoreUnavailable(
                f"{self.where}: a row is locked by another station "
                f"(waited {self.timeout_s:g} s); try again"
            )
        refused = ("authentication failed", "pg_hba.conf", "certificate", "does not exist")
        if isinstance(exc, self._psycopg.OperationalError) and any(r in text for r in refused):
            # Waiting will not help: wrong password, role, database or certificate.
            return StoreError(f"{self.where}: cannot connect: {text}")
        if isinstance(exc, self._psycopg.OperationalError) or self._db_closed():
            return StoreUnavailable(f"{self.where}: server unavailable: {text}")
        return StoreError(f"{self.where}: database error: {text}")

    def _db_closed(self) -> bool:
        db = getattr(self, "_db", None)
        return db is not None and bool(db.closed)

    def _is_driver_error(self, exc: Exception) -> bool:
        return isinstance(exc, self._psycopg.Error)

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()


def connect(
    target: str | os.PathLike[str], *, timeout_s: float = 5.0, create: bool = True
) -> Connection:
    """Open ``target``: a ``postgresql://`` URL (server) or an SQLite file path.

    ``create=False`` refuses a missing SQLite file instead of creating it (a
    server's database is never created here).
    """
    if is_server(target):
        return PostgresConnection(str(target).strip(), timeout_s=timeout_s)
    return SqliteConnection(target, timeout_s=timeout_s, create=create)
