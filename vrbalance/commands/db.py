"""``vrbalance db``: the record's schema, moving a station's record to a clinic server, filing."""

from __future__ import annotations

import argparse

DB_HELP = (
    "database: a file, or a clinic server as postgresql://USER@HOST/DB (default $VRBALANCE_DB)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "db",
        help="the record database: info, migrate, copy a station's record, sync, grant",
        description=(
            "The record store is an SQLite file (one station) or a PostgreSQL server (a "
            "clinic; --db postgresql://USER@HOST/DB or $VRBALANCE_DB). Passwords are never "
            "printed; keep them in ~/.pgpass rather than in the URL. See docs/clinic-server.md."
        ),
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="schema version, back end, TLS, counts")
    info.add_argument("--db", metavar="DB", help=DB_HELP)
    mig = sub.add_parser("migrate", help="bring the schema up to this vrbalance's version")
    mig.add_argument("--db", metavar="DB", help=DB_HELP)
    copy = sub.add_parser(
        "copy",
        help="copy a record (patients, envelopes, sessions, recordings) into another; idempotent",
    )
    copy.add_argument("src", metavar="SRC", help="the station's database (file or URL)")
    copy.add_argument("dst", metavar="DST", help="the clinic's database (URL or file)")
    sync = sub.add_parser("sync", help="file sessions recorded while the database was away")
    sync.add_argument("--db", metavar="DB", help=DB_HELP)
    grant = sub.add_parser(
        "grant", help="give a station role exactly the rights it needs (PostgreSQL, as owner)"
    )
    grant.add_argument("role", help="the stations' login role, e.g. vrbalance_station")
    grant.add_argument("--db", metavar="DB", help=DB_HELP)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vrbalance.errors import ConfigError
    from vrbalance.sessions.filing import copy_store, file_pending
    from vrbalance.sessions.migrations import SCHEMA_VERSION, station_grants_sql
    from vrbalance.sessions.paths import db_target
    from vrbalance.sessions.store import Store

    if args.action == "copy":
        with Store(db_target(args.src)) as src, Store(db_target(args.dst)) as dst:
            s = copy_store(src, dst)
            print(
                f"copied {src.where} into {dst.where}: {s.patients_copied} patient(s) "
                f"({s.patients_present} already there), {s.sessions_copied} session(s) "
                f"({s.sessions_present} already there)"
            )
            if s.sessions_without_recording:
                print(
                    f"  {s.sessions_without_recording} session(s) without a recording here "
                    "(rows copied; file their folders with `vrbalance patient import`)"
                )
        return 0
    with Store(db_target(args.db), check_schema=args.action in ("sync", "grant")) as store:
        if args.action == "migrate":
            before = store.schema_version
            for step in store.migrate():
                print(f"{store.where}: schema {step.version - 1} -> {step.version}: ", end="")
                print(step.description)
            print(
                f"{store.where}: schema version {store.schema_version} (current"
                + (f"; was {before})" if before != store.schema_version else ")")
            )
        elif args.action == "info":
            version = store.schema_version
            print(f"database  {store.where} ({store.dialect})")
            print(f"schema    version {version} (this vrbalance: {SCHEMA_VERSION})")
            print(f"tls       {'yes' if store.tls else 'no'}")
            if version == SCHEMA_VERSION:
                n_patients, n_sessions = len(store.patients()), len(store.sessions())
                print(f"record    {n_patients} patient(s), {n_sessions} session(s)")
            else:
                print("record    (run `vrbalance db migrate` first)")
        elif args.action == "sync":
            results = file_pending(store)
            for r in results:
                print(f"{r.session_id}: {r.message}")
            print(f"{sum(r.filed for r in results)} of {len(results)} pending session(s) filed")
            return 0 if all(r.filed for r in results) else 1
        elif args.action == "grant":
            if store.dialect != "postgresql":
                raise ConfigError("vrbalance db grant: roles exist only on a PostgreSQL server")
            try:
                statements = station_grants_sql(args.role)
            except ValueError as exc:
                raise ConfigError(f"vrbalance db grant: {exc}") from None
            with store.conn.transaction():
                for sql in statements:
                    store.conn.query(sql)
            print(f"{args.role} may now file sessions in {store.where} (and nothing more)")
    return 0
