"""``vrbalance info``: what this installation has (versions, data folders, devices)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from vrbalance import __version__
from vrbalance.resources import data_dir

_DEPENDENCIES = (
    "numpy",
    "scipy",
    "pyserial",
    "panda3d",
    "pyopenxr",
    "matplotlib",
    "evdev-binary",
    "pylsl",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show versions, data folders and what vrbalance can find on this machine",
        description=(
            "Show the vrbalance version, its dependencies, its shipped data folders, the data "
            "folder and database, the force plates found and the OpenXR runtime."
        ),
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    python = platform.python_version()
    print(f"vrbalance {__version__} on Python {python} ({sys.platform})", file=out)
    for name in _DEPENDENCIES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        print(f"  {name:<13} {version}", file=out)
    for kind in ("scenes", "models", "calibration"):
        folder = data_dir(kind)
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        print(f"  {kind + '/':<13} {folder} ({count} files)", file=out)
    for label, value in _machine_lines():
        print(f"{label:<15}{value}", file=out)
    return 0


def _machine_lines() -> list[tuple[str, str]]:
    """What this machine has: data, database, plates, headset runtime (cheap checks only)."""
    from vrbalance.commands.plates import describe_input_plates
    from vrbalance.devices import discovery
    from vrbalance.sessions.dbconn import redact
    from vrbalance.sessions.paths import DATA_ENV, data_root, db_target

    root = data_root()
    where = f"${DATA_ENV}" if os.environ.get(DATA_ENV) else "default"
    lines = [("data folder", f"{root} ({where}{'' if root.is_dir() else ', not created yet'})")]
    target = db_target()
    if isinstance(target, Path):
        lines.append(("database", f"{target}{'' if target.is_file() else ' (not created yet)'}"))
    else:
        lines.append(("database", f"{redact(target)} (server)"))
    ports = discovery.list_serial_ports()
    lines.append(("serial ports", ", ".join(p.device for p in ports) or "none"))
    plates = describe_input_plates(battery=False)
    lines.append(("input plates", "; ".join(plates) if plates else "none (vrbalance plates)"))
    lines.append(("OpenXR", describe_openxr_runtime()))
    return lines


def openxr_runtime_manifest(environ: Mapping[str, str] | None = None) -> tuple[Path, str] | None:
    """The OpenXR runtime manifest the loader would use, and why, or None.

    The Linux loader's order (OpenXR loader specification, "Runtime
    Discovery"): ``$XR_RUNTIME_JSON``; else ``openxr/1/active_runtime.json``
    in ``$XDG_CONFIG_HOME`` (default ``~/.config``), each of
    ``$XDG_CONFIG_DIRS`` (default ``/etc/xdg``), then ``/etc``.
    """
    env = os.environ if environ is None else environ
    if env.get("XR_RUNTIME_JSON"):
        return Path(env["XR_RUNTIME_JSON"]), "XR_RUNTIME_JSON"
    home = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    dirs = [home, *(env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":"), "/etc"]
    for folder in dirs:
        if not folder:
            continue
        for name in (f"active_runtime.{platform.machine()}.json", "active_runtime.json"):
            path = Path(folder) / "openxr" / "1" / name
            if path.is_file():
                return path, "active runtime"
    return None


def describe_openxr_runtime(environ: Mapping[str, str] | None = None) -> str:
    """One line: which OpenXR runtime is configured (name, manifest), or how to configure one."""
    found = openxr_runtime_manifest(environ)
    if found is None:
        return (
            "no runtime configured (no active_runtime.json; set XR_RUNTIME_JSON to a runtime's "
            "manifest, e.g. Monado's, for --xr)"
        )
    path, why = found
    try:
        runtime = json.loads(path.read_text(encoding="utf-8")).get("runtime", {})
    except (OSError, ValueError, AttributeError) as exc:
        return f"{path} ({why}) cannot be read: {exc}"
    name = runtime.get("name") or runtime.get("library_path") or "unnamed runtime"
    return f"{name} ({why}: {path})"
