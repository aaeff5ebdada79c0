"""Events: every notable thing that happens in a session, with its cause.

Safety triggers and responses, director level changes, operator actions and
device state changes are all :class:`Event` records, so the recorder writes
one stream, reports plot one timeline, and replay can compare them exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

EventSource = Literal["safety", "director", "operator", "device", "session", "xr", "world"]
Severity = Literal["info", "warning", "alarm"]


def _freeze(values: Mapping[str, object] | None) -> Mapping[str, object]:
    return MappingProxyType(dict(values or {}))


@dataclass(frozen=True, slots=True)
class Event:
    """One timestamped event.

    Attributes
    ----------
    t_s : float
        Time on the session clock (the balance loop's injected clock), in s.
    source : str
        Which part raised it: ``"safety"``, ``"director"``, ``"operator"``,
        ``"device"``, ``"session"``, ``"xr"`` or ``"world"``.
    kind : str
        A stable machine-readable name, e.g. ``"xcom_outside_bos"``,
        ``"level_change"``, ``"plate_lost"``.
    message : str
        A human sentence for the operator, e.g. ``"3 successes at level 4 -> 5"``.
    severity : str
        ``"info"``, ``"warning"`` or ``"alarm"``.
    values : Mapping[str, object]
        The numbers behind it (read-only), with units in the keys
        (``margin_m``, ``dwell_s``).
    """

    t_s: float
    source: EventSource
    kind: str
    message: str
    severity: Severity = "info"
    values: Mapping[str, object] = field(default_factory=lambda: _freeze(None))

    def __post_init__(self) -> None:
        if not math.isfinite(self.t_s):
            raise ValueError(f"Event.t_s must be finite, got {self.t_s!r}")
        if not isinstance(self.values, MappingProxyType):
            object.__setattr__(self, "values", _freeze(self.values))

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (the recorder's and report's format)."""
        return {
            "t_s": self.t_s,
            "source": self.source,
            "kind": self.kind,
            "message": self.message,
            "severity": self.severity,
            "values": dict(self.values),
        }
