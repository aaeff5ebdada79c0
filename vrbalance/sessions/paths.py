"""Where patient data lives: the data folder, the session folders and the database.

Defaults follow the platform's convention for per-user application data
(``platformdirs.user_data_dir("vrbalance")``, e.g. ``~/.local/share/vrbalance``).
``VRBALANCE_DATA`` moves the whole data folder; ``VRBALANCE_DB`` (or a
command's ``--db PATH``) points at another database file. Both are read when a
command runs, never at import.
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
