"""``vrbalance info``: what this installation has (versions, data folders, devices)."""

from __future__ import annotations

import argparse
import platform
import sys
from importlib import metadata

from vrbalance import __version__
from vrbalance.resources import data_dir

_DEPENDENCIES = ("numpy", "scipy", "pyserial", "panda3d", "pyopenxr", "matplotlib")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show versions, data folders and what vrbalance can find on this machine",
        description="Show the vrbalance version, its dependencies and its shipped data folders.",
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
        print(f"  {name:<11} {version}", file=out)
    for kind in ("scenes", "models", "calibration"):
        folder = data_dir(kind)
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        print(f"  {kind + '/':<12} {folder} ({count} files)", file=out)
    return 0
