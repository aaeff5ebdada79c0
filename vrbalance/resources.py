"""Where the shipped data folders (scenes, models, calibration) are, and this machine's own.

In a wheel they are copied to ``vrbalance/_data/<kind>`` (see pyproject.toml);
in a source checkout or editable install they sit at the top of the repository.
Looking relative to this file, never to the working directory, is what lets an
installed vrbalance run from anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

DataKind = Literal["scenes", "models", "calibration"]
_KINDS: tuple[str, ...] = ("scenes", "models", "calibration")
_PACKAGE_DIR = Path(__file__).resolve().parent
#: Environment variable that moves the per-user data folder (sessions, database,
#: measured calibrations).
DATA_ENV = "VRBALANCE_DATA"


def data_dir(kind: DataKind) -> Path:
    """Return the folder holding the shipped ``kind`` data.

    Parameters
    ----------
    kind : {"scenes", "models", "calibration"}
        Which data folder.

    Returns
    -------
    pathlib.Path
        An existing directory.

    Raises
    ------
    ValueError
        If ``kind`` is not one of the known folders.
    FileNotFoundError
        If the installation is broken and neither location exists.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}; got {kind!r}")
    candidates = (_PACKAGE_DIR / "_data" / kind, _PACKAGE_DIR.parent / kind)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"vrbalance data folder {kind!r} not found; looked in "
        + ", ".join(str(c) for c in candidates)
    )


def data_file(kind: DataKind, *parts: str) -> Path:
    """Return the path of a shipped data file, raising if it does not exist."""
    path = data_dir(kind).joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"no shipped {kind} file {'/'.join(parts)!r} (looked at {path})")
    return path


def user_data_root(environ: Mapping[str, str] | None = None) -> Path:
    """This machine's vrbalance data folder: ``$VRBALANCE_DATA`` or the user data directory.

    It lives here, beside the shipped folders, so that every layer (devices for
    measured calibrations, sessions for recordings and the database) finds it
    without reaching into another layer. Read when called, never at import.
    """
    env = os.environ if environ is None else environ
    if env.get(DATA_ENV):
        return Path(env[DATA_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("vrbalance"))
