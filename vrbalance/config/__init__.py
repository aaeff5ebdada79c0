"""Typed settings loaded from TOML files, validated with errors naming file and field.

Each subsystem keeps its own frozen dataclass (plate, scene, envelope, protocol)
and builds it with :class:`vrbalance.config.check.Fields`, so every file error
reads the same way: ``<file> [<table>] <field>: expected ..., got ...``.
"""

from vrbalance.config.check import Fields, check_number, check_option, load_toml

__all__ = ["Fields", "check_number", "check_option", "load_toml"]
