"""``vrbalance patient``: add, list, show patients; set their envelope; import sessions."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "patient",
        help="manage patients: add, list, show, set-envelope, import a session folder",
        description=(
            "Patient records in the vrbalance database (default in the user data folder; "
            "--db or $VRBALANCE_DB for another file or a clinic's PostgreSQL server). "
            "Body sizes are entered in cm and kg."
        ),
    )
    parser.add_argument(
        "--db", metavar="DB", help="database file, or a clinic server as postgresql://USER@HOST/DB"
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add a patient")
    add.add_argument("id", help="pseudonymous id (letters, digits, _ . -)")
    add.add_argument("--name", default="", help="display name (optional)")
    add.add_argument("--birth-year", type=int, help="for age-matched reference values")
    add.add_argument("--sex", choices=("F", "M", ""), default="")
    add.add_argument("--height-cm", type=float, help="stature in cm")
    add.add_argument("--mass-kg", type=float, help="body mass in kg")
    add.add_argument("--foot-length-cm", type=float, help="foot length in cm")
    add.add_argument("--notes", default="")
    body = sub.add_parser(
        "set-body",
        help="record a patient's body size (height, mass, foot length)",
        description=(
            "Change a patient's recorded body size; flags not given keep their value. "
            "The mass is what the plate must read before each trial."
        ),
    )
    body.add_argument("id")
    body.add_argument("--height-cm", type=float, help="stature in cm")
    body.add_argument("--mass-kg", type=float, help="body mass in kg")
    body.add_argument("--foot-length-cm", type=float, help="foot length in cm")
    sub.add_parser("list", help="list patients")
    show = sub.add_parser("show", help="show a patient and their sessions")
    show.add_argument("id")
    show.add_argument(
        "--json", action="store_true", help="the record as JSON (SI units: metres, kg)"
    )
    env = sub.add_parser(
        "set-envelope",
        help="set a patient's safety envelope from a TOML file and/or flags",
        description=(
            "Set a patient's safety envelope: from FILE.toml (see docs/safety.md), or by "
            "changing the patient's current envelope with flags, e.g. "
            "--allowed-stances feet_apart,feet_together,tandem to allow tandem stance. "
            "Every value is checked against vrbalance's hard caps."
        ),
    )
    env.add_argument("id")
    env.add_argument(
        "file",
        nargs="?",
        metavar="FILE.toml",
        help="envelope file (default: the patient's current envelope, changed by the flags)",
    )
    from vrbalance.director.envelope import add_envelope_arguments

    add_envelope_arguments(env)
    env.add_argument(
        "--if-version",
        type=int,
        metavar="N",
        help="refuse if the envelope changed since version N (`patient show` gives it)",
    )
    imp = sub.add_parser("import", help="file session folders in the database (idempotent)")
    imp.add_argument("folders", nargs="+", metavar="SESSION_DIR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vrbalance.config.check import check_number
    from vrbalance.errors import ConfigError
    from vrbalance.sessions.paths import db_target
    from vrbalance.sessions.runner import check_patient_id
    from vrbalance.sessions.store import Patient, Store, import_session

    with Store(db_target(args.db)) as store:

        def opt(value: float | None, name: str, lo: float, hi: float, scale: float) -> float | None:
            if value is None:
                return None
            return check_number(value, name, min_value=lo, max_value=hi) * scale

        if args.action == "add":
            check_patient_id(args.id)

            patient = store.add_patient(
                Patient(
                    id=args.id,
                    name=args.name,
                    birth_year=None
                    if args.birth_year is None
                    else int(
                        check_number(
                            args.birth_year,
                            "--birth-year",
                            min_value=1900,
                            max_value=2100,
                            integer=True,
                        )
                    ),
                    sex=args.sex,
                    height_m=opt(args.height_cm, "--height-cm", 50, 260, 0.01),
                    mass_kg=opt(args.mass_kg, "--mass-kg", 1, 500, 1.0),
                    foot_length_m=opt(args.foot_length_cm, "--foot-length-cm", 5, 50, 0.01),
                    notes=args.notes,
                )
            )
            print(f"added patient {patient.id} to {store.where}")
        elif args.action == "set-body":
            from dataclasses import replace

            current = store.patient(args.id)
            changes = {
                name: value
                for name, value in (
                    ("height_m", opt(args.height_cm, "--height-cm", 50, 260, 0.01)),
                    ("mass_kg", opt(args.mass_kg, "--mass-kg", 1, 500, 1.0)),
                    ("foot_length_m", opt(args.foot_length_cm, "--foot-length-cm", 5, 50, 0.01)),
                )
                if value is not None
            }
            if not changes:
                raise ConfigError("set-body: give --height-cm, --mass-kg or --foot-length-cm")
            patient = store.update_patient(replace(current, **changes))
            print(
                f"body of {patient.id}: height {patient.height_m} m, mass {patient.mass_kg} kg, "
                f"foot length {patient.foot_length_m} m"
            )
        elif args.action == "list":
            for p in store.patients():
                n = len(store.sessions(p.id))
                print(f"{p.id:<16} {p.name:<20} born {p.birth_year or '?':<6} {n} session(s)")
        elif args.action == "show":
            p = store.patient(args.id)
            sessions = store.sessions(p.id)
            if args.json:
                print(json.dumps({**p.to_dict(), "sessions": sessions}, indent=2, default=str))
                return 0
            for line in describe_patient(p.to_dict()):
                print(line)
            print(f"sessions ({len(sessions)}):")
            for s in sessions:
                print(
                    f"  {s['started_utc'][:19].replace('T', ' ')}  {s['protocol']:<14} "
                    f"{(s['end_reason'] or '?').replace('_', ' '):<15} {s['id']}"
                )
        elif args.action == "set-envelope":
            _set_envelope(store, args)
        elif args.action == "import":
            for folder in args.folders:
                session = import_session(store, Path(folder))
                print(f"imported {session['id']} ({session['status']})")
    return 0


def _set_envelope(store: Any, args: argparse.Namespace) -> None:
    """A file replaces the envelope; flags change the file's, or else the patient's current one."""
    from vrbalance.director.envelope import envelope_from_args
    from vrbalance.errors import ConfigError
    from vrbalance.sessions.runner import patient_envelope

    if args.file and args.envelope:
        raise ConfigError("set-envelope: give the envelope file once (FILE.toml or --envelope)")
    args.envelope = args.file or args.envelope
    flags = [a for a in vars(args) if a.startswith("envelope_") and getattr(args, a) is not None]
    if not (args.envelope or flags or args.max_level or args.allowed_stances):
        raise ConfigError(
            "set-envelope: give FILE.toml or flags to change the current envelope "
            "(see `vrbalance patient set-envelope --help`)"
        )
    record = store.patient(args.id)
    envelope = envelope_from_args(args, base=patient_envelope(record))
    # Flags edit the envelope just read: refuse if another station changed it meanwhile
    # (its change would otherwise be silently undone). A whole file replaces it as given.
    if_version = args.if_version
    if if_version is None and not args.envelope:
        if_version = record.envelope_version
    saved = store.set_envelope(args.id, envelope.to_dict(), if_version=if_version)
    source = args.envelope or "the command line"
    print(
        f"envelope of {args.id} set from {source} (version {saved.envelope_version}): stances "
        f"{', '.join(envelope.allowed_stances)}; levels "
        + ", ".join(f"{k} <= {v}" for k, v in envelope.max_levels)  # type: ignore[misc]
    )


def describe_patient(record: dict[str, Any]) -> list[str]:
    """A patient record for people: cm and kg as they were entered, age, the envelope.

    The database keeps SI units (metres); heights were typed in cm, so they are
    shown in cm. ``--json`` keeps the raw record for tools.
    """
    from datetime import UTC, datetime

    def cm(value: float | None) -> str:
        return "not recorded" if value is None else f"{100 * value:.0f} cm"

    birth = record.get("birth_year")
    age = f" ({datetime.now(UTC).year - int(birth)} years)" if birth else ""
    mass = record.get("mass_kg")
    envelope = record.get("envelope") or {}
    lines = [
        f"patient {record['id']}",
        f"  name          {record.get('name') or '-'}",
        f"  born          {birth or 'not recorded'}{age}",
        f"  sex           {record.get('sex') or '-'}",
        f"  height        {cm(record.get('height_m'))}",
        f"  mass          {'not recorded' if mass is None else f'{mass:g} kg'}",
        f"  foot length   {cm(record.get('foot_length_m'))}",
    ]
    if record.get("notes"):
        lines.append(f"  notes         {record['notes']}")
    if envelope:
        lines.append(f"  envelope      own (version {record.get('envelope_version', '?')}):")
        for key, value in sorted(envelope.items()):
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            if isinstance(value, dict):
                shown = ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
            lines.append(f"    {key.replace('_', ' '):<24} {shown}")
    else:
        lines.append("  envelope      the default (scenes/envelopes/default.toml)")
    return lines
