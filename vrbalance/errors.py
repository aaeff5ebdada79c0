"""The one exception tree of vrbalance.

Callers catch :class:`VrBalanceError` at the command-line boundary and print its
message; everything below it says *which* port, path, field or frame failed and
what was expected, so a therapist or technician can act on it without a
traceback.
"""

from __future__ import annotations


class VrBalanceError(Exception):
    """Base of every error vrbalance raises on purpose."""


class ConfigError(VrBalanceError, ValueError):
    """A settings, scene, protocol or calibration file (or flag) is invalid.

    Subclasses ``ValueError`` so generic callers that validate values keep
    working; the message names the file and field.
    """


class DeviceError(VrBalanceError):
    """A device (plate, headset) cannot be opened or was lost."""


class ProtocolError(DeviceError):
    """Bytes arrived but no valid frame could be made of them."""


class SafetyStop(VrBalanceError):
    """A trial or session was stopped by the safety monitor or the operator."""
