"""``vrbalance progress``: a patient's progress across sessions, as an HTML page of charts."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "progress",
        help="write a patient's progress across sessions (HTML with charts)",
        description=(
            "Chart a patient's measures across all their sessions in the database: baseline "
            "sway, assessment scores (SOT composite, Limits of Stability, mCTSIB) and the "
            "difficulty levels reached per scene. Simulated, shortened (--seconds-scale), "
            "device-lost and never-started sessions are marked and left out of the charts "
            "unless --include-all. Each session links to its report (written if missing)."
        ),
    )
    parser.add_argument("patient", metavar="PATIENT", help="patient id")
    parser.add_argument(
        "--out",
        metavar="FILE.html",
        help="output file (default: progress.html in the patient's folder)",
    )
    parser.add_argument(
        "--include-all",
        action="store_true",
        help="chart simulated, shortened, device-lost and never-started sessions too "
        "(by default they are listed, marked, and left out of the charts)",
    )
    parser.add_argument(
        "--no-reports",
        action="store_true",
        help="do not write missing session reports (link only those already written)",
    )
    parser.add_argument(
        "--db", metavar="DB", help="database file, or a clinic server as postgresql://USER@HOST/DB"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vrbalance.report.progress import progress_report
    from vrbalance.sessions.paths import db_target, sessions_root
    from vrbalance.sessions.store import Store

    with Store(db_target(args.db)) as store:
        out = Path(args.out) if args.out else sessions_root() / args.patient / "progress.html"
        progress_report(
            store,
            args.patient,
            out,
            include_all=args.include_all,
            make_reports=not args.no_reports,
        )
    print(f"progress report written to {out}")
    return 0
