"""Validators that return what they checked and say exactly what was wrong.

Modelled on MNE-Python's ``_check_option``/``_validate_type``: every error
names *where* (file and table), the field, what is allowed, and what was given.
``bool`` is rejected where a number is expected on purpose: TOML's ``true``
silently becoming ``1`` would turn a typo into a difficulty setting.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vrbalance.errors import ConfigError

_MISSING: Any = object()


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning every failure into a :class:`ConfigError` naming it.

    Raises
    ------
    FileNotFoundError
        If the file does not exist (the built-in, with the path).
    PermissionError
        If it cannot be read.
    ConfigError
        If it is not valid TOML (message gives the parser's line and column),
        or the path is a folder.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except PermissionError:
        raise PermissionError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected a .toml file") from None
    except NotADirectoryError:
        raise ConfigError(f"{path}: a part of the path is not a folder") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from exc


def check_number(
    value: object,
    name: str,
    *,
    where: str = "",
    min_value: float | None = None,
    max_value: float | None = None,
    integer: bool = False,
    min_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite number inside ``[min_value, max_value]``.

    Parameters
    ----------
    value : object
        What was given.
    name : str
        The field name, used in the message.
    where : str
        Context such as ``"scenes/park.toml [levels.3]"``.
    min_value, max_value : float or None
        Inclusive bounds (``min_inclusive=False`` makes the lower one strict).
    integer : bool
        Require an ``int`` (and return it as one).
    """
    prefix = f"{where} {name}".strip()
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{prefix}: expected {kind}, got {value!r} ({type(value).__name__})")
    if integer and not isinstance(value, int):
        raise ConfigError(f"{prefix}: expected an integer, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{prefix}: expected a finite number, got {value!r}")
    low_bad = min_value is not None and (value < min_value if min_inclusive else value <= min_value)
    if low_bad or (max_value is not None and value > max_value):
        lo = "-inf" if min_value is None else f"{min_value:g}"
        hi = "inf" if max_value is None else f"{max_value:g}"
        bracket = "[" if min_inclusive else "("
        raise ConfigError(f"{prefix}: expected a value in {bracket}{lo}, {hi}], got {value!r}")
    return value


def check_option(value: object, name: str, allowed: Iterable[str], *, where: str = "") -> str:
    """Return ``value`` if it is one of ``allowed``, else raise naming the choices."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        prefix = f"{where} {name}".strip()
        raise ConfigError(
            f"{prefix}: expected one of {', '.join(repr(a) for a in allowed)}, got {value!r}"
        )
    return value


class Fields:
    """Typed, validated access to one TOML table, with unknown keys rejected.

    Read each expected field through the typed getters, then call
    :meth:`finish`: any key that was never read is an error, so a misspelt
    parameter (``optic_flow_sped``) never silently falls back to a default.

    Parameters
    ----------
    table : Mapping
        The parsed TOML table.
    where : str
        How to name this table in errors, e.g. ``"scenes/park.toml [levels.3]"``.
    """

    def __init__(self, table: object, where: str) -> None:
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
        self._table: Mapping[str, Any] = table
        self.where = where
        self._seen: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key in self._table

    def keys(self) -> list[str]:
        return list(self._table.keys())

    def _get(self, key: str, default: Any) -> Any:
        self._seen.add(key)
        if key in self._table:
            return self._table[key]
        if default is _MISSING:
            raise ConfigError(f"{self.where} {key}: required field is missing")
        return default

    def number(
        self,
        key: str,
        *,
        default: Any = _MISSING,
        min_value: float | None = None,
        max_value: float | None = None,
        min_inclusive: bool = True,
    ) -> float:
        value = self._get(key, default)
        return float(
            check_number(
                value,
                key,
                where=self.where,
                min_value=min_value,
                max_value=max_value,
                min_inclusive=min_inclusive,
            )
        )

    def integer(
        self,
        key: str,
        *,
        default: Any = _MISSING,
        min_value: int | None = None,
        max_value: int | None = None,
    ) -> int:
        value = self._get(key, default)
        return int(
            check_number(
                value,
                key,
                where=self.where,
                min_value=min_value,
                max_value=max_value,
                integer=True,
            )
        )

    def boolean(self, key: str, *, default: Any = _MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where} {key}: expected true or false, got {value!r}")
        return value

    def string(
        self, key: str, *, default: Any = _MISSING, options: Sequence[str] | None = None
    ) -> str:
        value = self._get(key, default)
        if options is not None:
            return check_option(value, key, options, where=self.where)
        if not isinstance(value, str):
            raise ConfigError(f"{self.where} {key}: expected a string, got {value!r}")
        return value

    def numbers(
        self,
        key: str,
        *,
        length: int | None = None,
        default: Any = _MISSING,
        min_value: float | None = None,
        max_value: float | None = None,
    ) -> tuple[float, ...]:
        value = self._get(key, default)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{self.where} {key}: expected an array of numbers, got {value!r}")
        if length is not None and len(value) != length:
            raise ConfigError(
                f"{self.where} {key}: expected {length} numbers, got {len(value)}: {value!r}"
            )
        return tuple(
            float(
                check_number(
                    v,
                    f"{key}[{i}]",
                    where=self.where,
                    min_value=min_value,
                    max_value=max_value,
                )
            )
            for i, v in enumerate(value)
        )

    def table(self, key: str, *, default: Any = _MISSING) -> Fields:
        value = self._get(key, default)
        return Fields(value, f"{self.where} [{key}]".strip())

    def tables(self, key: str) -> list[Fields]:
        """An array of tables (``[[key]]``), each named by its index in errors."""
        value = self._get(key, _MISSING)
        if not isinstance(value, list):
            raise ConfigError(f"{self.where} {key}: expected an array of tables, got {value!r}")
        return [Fields(v, f"{self.where} [{key}.{i + 1}]".strip()) for i, v in enumerate(value)]

    def raw(self, key: str, *, default: Any = _MISSING) -> Any:
        return self._get(key, default)

    def finish(self) -> None:
        """Raise if the table holds a key no getter asked for."""
        unknown = sorted(set(self._table) - self._seen)
        if unknown:
            known = ", ".join(sorted(self._seen)) or "(none)"
            raise ConfigError(
                f"{self.where}: unknown field(s) {', '.join(unknown)}; known fields: {known}"
            )
