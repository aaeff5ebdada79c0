"""The ``vrbalance`` command.

Subcommands live one per module in :mod:`vrbalance.commands`; each module
defines ``register(subparsers)`` which adds its parser and sets
``func=<callable(args) -> int>``. Discovery keeps this file free of merge
traffic, and the modules import heavy dependencies (Panda3D, pyserial) inside
their handlers so ``vrbalance --help`` stays instant.

Errors that vrbalance raises on purpose (:class:`~vrbalance.errors.VrBalanceError`,
missing files, permission problems) are printed as one clear line and exit
with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from vrbalance import __version__
from vrbalance import commands as _commands
from vrbalance.errors import VrBalanceError

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every discovered subcommand."""
    parser = argparse.ArgumentParser(
        prog="vrbalance",
        description=(
            "Virtual-reality balance training for clinics: scenes on a headset or "
            "desktop, force plates over serial, a safety monitor and adaptive difficulty."
        ),
    )
    parser.add_argument("--version", action="version", version=f"vrbalance {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{_commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    from vrbalance.interrupt import Interrupted, signals_as_interrupt

    try:
        # SIGTERM and SIGHUP unwind like Ctrl-C: sessions close and file, pty folders go.
        with signals_as_interrupt():
            return int(args.func(args) or 0)
    except Interrupted as exc:
        print(f"vrbalance: stopped by {exc.signal_name}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("vrbalance: interrupted", file=sys.stderr)
        return 130
    except (VrBalanceError, FileNotFoundError, PermissionError) as exc:
        print(f"vrbalance {args.command}: error: {exc}", file=sys.stderr)
        return 2
