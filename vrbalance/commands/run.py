"""``vrbalance run``: run a protocol for a patient, record it, file it in the database."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from typing import Any

from vrbalance.sessions.lsl_scope import add_lsl_arguments

log = logging.getLogger(__name__)

#: How long ``run`` waits for a database another program holds locked, s.
DB_TIMEOUT_S = 5.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a session protocol for a patient (recorded, then filed in the database)",
        description=(
            "Run a protocol (baseline first) for a patient: every trial on the balance loop with "
            "the safety monitor every tick and the director between trials; every sample and "
            "event is recorded to the patient's session folder as it happens, and the session "
            "is filed in the database at the end. --simulate uses the simulated patient (pty "
            "plate + scripted head); --seconds-scale 0.1 shortens every trial for quick checks. "
            "Exit status: 0 when the protocol ran to its end, 1 when the session ended before "
            "(stopped, device lost, time limit) or never started (then it is not filed), "
            "2 for a refused or invalid request."
        ),
    )
    parser.add_argument(
        "--patient", required=True, metavar="ID", help="patient id (see `vrbalance patient`)"
    )
    parser.add_argument(
        "--protocol",
        required=True,
        metavar="NAME",
        help="shipped protocol name (baseline, mctsib, sot, los, ...) or a .toml path",
    )
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="simulated patient: simulated plate on a pty + scripted head (without --simulate "
        "and --port, --xr runs a headset-only session: head-only protocols such as tandem_walk)",
    )
    parser.add_argument(
        "--sim-script",
        default="",
        metavar="EVENTS",
        help="extra simulator events for every trial, e.g. 'fall@2s'",
    )
    parser.add_argument(
        "--port",
        help="a real plate (without --simulate): serial port, or input device "
        "(/dev/input/eventN, or 'auto' to find a paired Wii Balance Board)",
    )
    parser.add_argument(
        "--plate", default="wii-balance-board", help="plate id (default %(default)s)"
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--offscreen", action="store_true", help="render offscreen (no window)")
    output.add_argument(
        "--desktop", action="store_true", help="render to a desktop window (the default)"
    )
    output.add_argument(
        "--xr",
        action="store_true",
        help="render to the OpenXR headset; the head pose comes from it (needs a display)",
    )
    parser.add_argument(
        "--no-render",
        action="store_true",
        help="do not render at all (balance loop, safety and recording only)",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=15.0,
        help="render frame rate while the loop runs (default %(default)s)",
    )
    parser.add_argument(
        "--seconds-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="multiply every trial duration by F in (0, 1] (CI: 0.1)",
    )
    parser.add_argument("--rate", type=float, default=250.0, help="balance-loop rate in Hz")
    parser.add_argument("--seed", type=int, default=0, help="seed of director and simulation")
    parser.add_argument(
        "--confirm",
        action="store_true",
        help="before each trial, show its instructions and wait for Enter",
    )
    parser.add_argument(
        "--walk-length",
        type=float,
        metavar="M",
        help="free floor the operator measured for the heel-to-toe walk's line, 3-6 m "
        "(within the patient's envelope max_walk_length_m; default: the protocol's)",
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="do not prepend the baseline trial (not recommended)",
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="database: a file, or a clinic server as postgresql://USER@HOST/DB "
        "(default $VRBALANCE_DB or the data folder's file; the data folder is "
        "$VRBALANCE_DATA)",
    )
    parser.add_argument(
        "--start-level",
        action="append",
        default=[],
        metavar="SCENE=N",
        help="level a director scene starts at (default: where the last session left it)",
    )
    parser.add_argument(
        "--console-channel",
        metavar="SOCKET",
        help="publish live state and take operator commands on this Unix socket (its folder "
        "must be 0700); each trial waits for the console's start (docs/console.md)",
    )
    add_lsl_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vrbalance.clock import MonotonicClock
    from vrbalance.config.check import check_number
    from vrbalance.errors import ConfigError
    from vrbalance.sessions.assembly import (
        open_lsl,
        open_session_world,
        session_devices,
        session_runner,
    )
    from vrbalance.sessions.dbconn import redact
    from vrbalance.sessions.filing import file_pending
    from vrbalance.sessions.paths import db_target, sessions_root
    from vrbalance.sessions.protocol import load_protocol
    from vrbalance.sessions.runner import (
        ProgressBar,
        check_patient_id,
        check_protocol,
        new_session_folder,
        patient_envelope,
    )
    from vrbalance.sessions.store import Store, StoreError

    check_patient_id(args.patient)
    xr = bool(getattr(args, "xr", False))
    if xr and args.no_render:
        raise ConfigError("--xr and --no-render: the headset needs the world rendered")
    check_number(args.rate, "--rate", min_value=10.0, max_value=2000.0)
    check_number(args.fps, "--fps", min_value=1.0, max_value=120.0)
    # Headset only (no plate): the quiet-stance baseline is a plate measurement.
    headset_only = xr and not args.simulate and not args.port
    if headset_only and not args.no_baseline:
        print(
            "vrbalance run: no plate (headset only): the quiet-stance baseline, a plate "
            "measurement, is left out of this session"
        )
    protocol = load_protocol(
        args.protocol,
        with_baseline=not (args.no_baseline or headset_only),
        seconds_scale=args.seconds_scale,
        walk_length_m=args.walk_length,
    )
    path = db_target(args.db)
    start_levels: dict[str, int] = {}
    try:
        with Store(path, timeout_s=DB_TIMEOUT_S) as store:
            for filed in file_pending(store):  # sessions recorded while the store was away
                print(f"vrbalance run: pending session {filed.session_id}: {filed.message}")
            patient = store.patient(args.patient)
            start_levels = store.last_levels(args.patient)
    except StoreError as exc:
        if str(exc).startswith("no patient"):
            raise
        # Fail closed: the envelope and body come from the record, never from defaults
        # (a locked database must not relax a patient's limits to the shipped ones).
        raise StoreError(
            f"cannot read patient {args.patient}'s safety envelope and body: {exc}; "
            "the session was not started (vrbalance never runs a patient on default limits)"
        ) from None
    start_levels.update(parse_start_levels(args.start_level))
    # Refuse what the envelope does not allow before opening devices or the world.
    # The command shown names the database without its password (never printed).
    patient_command = "vrbalance patient" + (
        f" --db {shlex.quote(redact(args.db))}" if args.db else ""
    )
    check_protocol(
        protocol,
        patient_envelope(patient),
        args.seconds_scale,
        patient_id=args.patient,
        patient_command=patient_command,
    )
    clock = MonotonicClock()
    devices = session_devices(
        protocol=protocol,
        patient=patient,
        clock=clock,
        plate_id=args.plate,
        simulate=args.simulate,
        port=args.port,
        headset=xr,
        seed=args.seed,
        sim_script=args.sim_script,
    )
    world = None
    if not args.no_render:
        world = open_session_world(offscreen=args.offscreen, xr=xr, clock=clock)
    session_id, folder = new_session_folder(sessions_root(), args.patient, protocol.name)
    total = protocol.duration_s
    print(
        f"session {session_id}: {protocol.title}, {len(protocol.trials)} trials, "
        f"{total:.0f} s planned -> {folder}"
    )
    lsl = open_lsl(
        lsl=getattr(args, "lsl", False),
        network=getattr(args, "lsl_network", False),
        clock=clock,
        rate_hz=args.rate,
    )  # started below, closed in finally
    channel = None
    if args.console_channel:
        from vrbalance.console.channel import open_session_channel

        channel = open_session_channel(args.console_channel, session_id, folder, patient, protocol)
    runner = session_runner(
        lsl=lsl,
        channel=channel,
        before_trial=_confirm if args.confirm and channel is None else _announce,
        protocol=protocol,
        patient=patient,
        folder=folder,
        session_id=session_id,
        devices=devices,
        clock=clock,
        world=world,
        rate_hz=args.rate,
        seed=args.seed,
        render_fps=args.fps,
        metadata={
            "simulated": bool(args.simulate),
            "seconds_scale": args.seconds_scale,
            "sim_script": args.sim_script,
            "headset": xr,
        },
        echo=print,
        progress=ProgressBar(),
        start_levels=start_levels,
        seconds_scale=args.seconds_scale,
    )
    try:
        if lsl is not None:
            lsl.start()
        if channel is not None:
            channel.bind(runner)
        t_run = clock.now_s()
        result = runner.run()
        return _file(path, folder, session_id, result, world, clock, t_run, channel)
    finally:
        if channel is not None:
            channel.close()
        if lsl is not None:
            lsl.close()


def _file(
    path: Any,
    folder: Any,
    session_id: str,
    result: Any,
    world: Any,
    clock: Any,
    t_run: float,
    channel: Any,
) -> int:
    """Print the headset's figures, file the session in the database, tell the console."""
    from vrbalance.sessions.filing import file_or_queue

    stats = getattr(world, "xr_stats", None)
    if stats is not None:
        print(stats.summary(clock.now_s() - t_run))
    from vrbalance.report.marks import marks_of
    from vrbalance.sessions.runner import EndReason

    marks = marks_of(
        simulated=False,
        seconds_scale=None,
        end_reason=result.end_reason.value,
        trials=[r.row() for r in result.trials],
    )
    if not marks.started:
        # Nothing was measured: not a session of the patient's record.
        print(
            f"vrbalance run: session {session_id} did not start: no trial started "
            f"({result.end_reason.value.replace('_', ' ')}); not filed in the database. "
            f"What happened is recorded in {folder / 'events.csv'}",
            file=sys.stderr,
        )
        if channel is not None:
            channel.finish({"end_reason": result.end_reason.value, "filed": False})
        return 1
    filing = file_or_queue(path, folder, timeout_s=DB_TIMEOUT_S)
    if not filing.filed:
        print(f"vrbalance run: warning: {filing.message}", file=sys.stderr)
        print(f"session {session_id} ended: {result.end_reason.value} (not in the database)")
        if channel is not None:
            channel.finish({"end_reason": result.end_reason.value, "filed": False})
        return 1
    if channel is not None:
        channel.finish({"end_reason": result.end_reason.value, "filed": True})
    print(f"session {session_id} ended: {result.end_reason.value}; {filing.message}")
    _print_scores(folder)
    print(f"report: vrbalance report {folder}")
    if result.end_reason is not EndReason.COMPLETED:
        done = sum(1 for r in result.trials if r.end_reason is EndReason.COMPLETED)
        print(
            f"vrbalance run: the session ended before its trials were done "
            f"({result.end_reason.value.replace('_', ' ')}; {done} of the "
            f"{len(result.trials)} trials run completed)",
            file=sys.stderr,
        )
        return 1
    return 0


def _print_scores(folder: Any) -> None:
    """The session's scores in a few lines (recomputed from the recording, as filed)."""
    from vrbalance.report.scores import score_lines
    from vrbalance.sessions.summary import measures_dict, summarize_folder

    for line in score_lines(measures_dict(summarize_folder(folder))):
        print(f"  {line}")


def parse_start_levels(items: list[str]) -> dict[str, int]:
    """``["park=3"]`` -> ``{"park": 3}`` (``--start-level``); the director clamps to the envelope.

    Raises
    ------
    ConfigError
        Naming the option and the item.
    """
    from vrbalance.errors import ConfigError

    levels: dict[str, int] = {}
    for item in items:
        scene, sep, text = item.partition("=")
        if not sep or not scene or not text.strip().isdigit() or int(text) < 1:
            raise ConfigError(f"--start-level {item!r}: expected SCENE=N with a level N >= 1")
        levels[scene.strip()] = int(text)
    return levels


def _announce(index: int, trial: Any) -> None:
    """Print what the patient is asked to do (no waiting)."""
    where = f"{trial.scene}, {trial.stance.replace('_', ' ')}, eyes {trial.eyes}, {trial.surface}"
    print(f"[{index + 1}] {trial.name} ({where}, {trial.duration_s:g} s)")
    if trial.instructions:
        print(f"    say: {trial.instructions}")


def _confirm(index: int, trial: Any) -> None:
    """Print the instructions and wait until the operator presses Enter."""
    _announce(index, trial)
    input("    press Enter when the patient is ready ")
