"""``vrbalance report``: a self-contained HTML report of one session."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a session's HTML report (plots embedded, reference values)",
        description=(
            "Write one self-contained HTML page for a session: trials and measures, assessment "
            "scores, statokinesigram, stabilogram, difficulty with safety events, and the "
            "patient's standing against the BDS reference values (Santos & Duarte 2016)."
        ),
    )
    parser.add_argument("session", metavar="SESSION", help="session folder or session id")
    parser.add_argument(
        "--out",
        metavar="FILE.html",
        help="output file (default: report.html in the session folder)",
    )
    parser.add_argument(
        "--db",
        metavar="DB",
        help="database for session ids (a file or postgresql://...); a session recorded "
        "on another station is fetched from it",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vrbalance.report.html import session_report
    from vrbalance.sessions.runner import ProgressBar
    from vrbalance.sessions.store import resolve_session_folder

    folder = resolve_session_folder(args.session, args.db)
    bar = ProgressBar()
    try:
        out = session_report(
            folder,
            Path(args.out) if args.out else None,
            on_progress=lambda f, step: bar.update(step, f, f, force=True),
        )
    finally:
        bar.done()
    print(f"report written to {out}")
    return 0
