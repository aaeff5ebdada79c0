"""Where the shipped data folders (scenes, models, calibration) are.

In a wheel they are copied to ``vrbalance/_data/<kind>`` (see pyproject.toml);
in a source checkout or editable install they sit at the top of the repository.
Looking relative to this file, never to the working directory, is what lets an
installed vrbalance run from anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

DataKind = Literal["scenes", "models", "calibration"]
_KINDS: tuple[str, ...] = ("scenes", "models", "calibration")
_PACKAGE_DIR = Path(__file__).resolve().parent


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
