"""``vrbalance replay``: feed a recording back through the same estimator and safety monitor."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay a recorded session through the same pipeline (and optionally render it)",
        description=(
            "Feed a session recording tick by tick through the balance estimator and the "
            "safety monitor on a manual clock, and check that every balance state and every "
            "safety event comes out exactly as recorded. Exit status 0 when identical, 1 when not."
        ),
    )
    parser.add_argument("session", metavar="SESSION", help="session folder or session id")
    parser.add_argument("--render", action="store_true", help="render the replay offscreen")
    parser.add_argument("--out", metavar="DIR", help="with --render: write PNG frames here")
    parser.add_argument("--fps", type=float, default=5.0, help="frames per session second")
    parser.add_argument(
        "--size",
        default="1280x720",
        metavar="WxH",
        help="with --render: frame size (default %(default)s, the overlay readable)",
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

    from vrbalance.config.check import check_number
    from vrbalance.sessions.recorder import make_private_dir
    from vrbalance.sessions.replay import replay_session
    from vrbalance.sessions.runner import ProgressBar
    from vrbalance.sessions.store import resolve_session_folder

    check_number(args.fps, "--fps", min_value=0.1, max_value=60.0)
    folder = resolve_session_folder(args.session, args.db)
    world = None
    out = None
    if args.render:
        from vrbalance.commands.demo import parse_size
        from vrbalance.sessions.assembly import open_session_world

        world = open_session_world(offscreen=True, size_px=parse_size(args.size))
        if args.out:
            out = make_private_dir(Path(args.out))
    bar = ProgressBar()
    try:
        result = replay_session(
            folder,
            world=world,
            out_dir=out,
            fps=args.fps,
            on_progress=lambda f: bar.update("replay", f, f * 1e3),
        )
    finally:
        bar.done()
        if world is not None:
            world.close()
    print(f"replayed {len(result.states)} ticks of {folder}")
    print(
        f"  states identical: {result.mismatched_states == 0} ({result.mismatched_states} differ)"
    )
    print(
        f"  safety events: {len(result.safety_events)} replayed, "
        f"{len(result.recorded_safety_events)} recorded, identical: "
        f"{result.safety_events == result.recorded_safety_events}"
    )
    if result.frames_rendered:
        print(f"  rendered {result.frames_rendered} frames" + (f" to {out}" if out else ""))
    if not result.identical:
        if result.first_mismatch:
            print(f"  first difference: {result.first_mismatch}", file=sys.stderr)
        return 1
    return 0
