"""Where patient data lives: the data folder, the session folders and the database.

Defaults follow the platform's convention for per-user application data
(``platformdirs.user_data_dir("vrbalance")``, e.g. ``~/.local/share/vrbalance``).
``VRBALANCE_DATA`` moves the whole data folder; ``VRBALANCE_DB`` (or a
command's ``--db``) points at another database: a file path, or a clinic's
PostgreSQL server as a ``postgresql://`` URL (:func:`db_target`). Both are read
when a command runs, never at import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from vrbalance.resources import DATA_ENV, user_data_root

__all__ = ["DATA_ENV", "DB_ENV", "DB_FILENAME", "data_root", "db_path", "sessions_root"]

DB_ENV = "VRBALANCE_DB"
DB_FILENAME = "vrbalance.sqlite3"


def data_root(environ: Mapping[str, str] | None = None) -> Path:
    """The vrbalance data folder (``$VRBALANCE_DATA`` or the user data directory)."""
    return user_data_root(environ)


def sessions_root(environ: Mapping[str, str] | None = None) -> Path:
    """Folder holding one sub-folder per patient, each holding session folders."""
    return data_root(environ) / "sessions"


def db_path(
    override: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """The database: ``override`` (``--db``), else ``$VRBALANCE_DB``, else in the data folder."""
    env = os.environ if environ is None else environ
    if override:
        return Path(override).expanduser()
    if env.get(DB_ENV):
        return Path(env[DB_ENV]).expanduser()
    return data_root(env) / DB_FILENAME


def db_target(
    override: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> str | Path:
    """The database as ``--db`` / ``$VRBALANCE_DB`` name it: a server URL (str) or a file.

    A ``postgresql://`` or ``postgres://`` URL is returned unchanged (it may hold
    a password: print it with :func:`vrbalance.sessions.dbconn.redact`); anything
    else is a file path as :func:`db_path` resolves it.
    """
    from vrbalance.sessions.dbconn import is_server

    env = os.environ if environ is None else environ
    for value in (override, env.get(DB_ENV)):
        if value and is_server(os.fspath(value)):
            return os.fspath(value).strip()
        if value:
            break
    return db_path(override, env)


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """Where recordings fetched from the clinic database are unpacked (one folder each)."""
    return data_root(environ) / "cache"


def pending_root(environ: Mapping[str, str] | None = None) -> Path:
    """Sessions recorded here but not yet filed in the database (one marker file each)."""
    return data_root(environ) / "pending"
