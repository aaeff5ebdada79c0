"""``vrbalance console``: the clinician's web console (patients, envelope, sessions, live view)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "console",
        help="the clinician's web console in a browser (token-protected, loopback by default)",
        description=(
            "Start the clinician console: a local web application for patients, safety "
            "envelopes, starting sessions, the live balance picture with the operator's "
            "controls, and reports. It prints one line 'console: http://HOST:PORT/?token=...' "
            "and opens the browser. Every session runs in its own process (vrbalance run). "
            "See docs/console.md."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="port (default %(default)s; 0 picks a free one)"
    )
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument(
        "--tls-cert", metavar="PEM", help="TLS certificate (needed beyond loopback)"
    )
    parser.add_argument("--tls-key", metavar="PEM", help="TLS private key (with --tls-cert)")
    parser.add_argument(
        "--seconds-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="default trial-duration factor on the start page, in (0, 1] (demos, CI: 0.05)",
    )
    parser.add_argument(
        "--db",
        metavar="DB",
        help="database file, or a clinic server as postgresql://USER@HOST/DB "
        "(default $VRBALANCE_DB or the data folder's file)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vrbalance.config.check import check_number
    from vrbalance.console.server import serve
    from vrbalance.sessions.paths import db_target

    check_number(args.port, "--port", min_value=0, max_value=65535, integer=True)
    check_number(
        args.seconds_scale, "--seconds-scale", min_value=0.0, max_value=1.0, min_inclusive=False
    )
    serve(
        host=args.host,
        port=args.port,
        db=db_target(args.db) if args.db else None,
        seconds_scale=args.seconds_scale,
        open_browser=not args.no_browser,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        announce=lambda line: print(line, flush=True),
    )
    return 0
