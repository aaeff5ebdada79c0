"""``vrbalance demo``: the scene tour for a simulated person, as a session, in a window.

A thin adapter from arguments to the session's assembly: the demo is a
session (:mod:`vrbalance.sessions.demo`: the ``tour`` protocol for a
simulated 70 kg person with the default envelope, never filed) on the same
devices, world and :class:`~vrbalance.sessions.runner.SessionRunner` as
``vrbalance run --simulate`` (:mod:`vrbalance.sessions.assembly`): the plate
in the plate process, the start gate and its load check, the safety monitor
every tick, the director between trials and behind the level keys, the
recording. What only the demo has:

* a window by default, the simulated person's head leaning with W/A/S/D and
  looking around with the right mouse button (the desktop stand-in feeds the
  balance loop, so this world stays in this process);
* ``--offscreen --out DIR``: the world drawn in the render process, the
  operator's level keys played on a schedule, screenshots and the recording
  in ``DIR``;
* ``--xr``: the headset, its head pose for the loop, focus and loss handled
  as in a session; ``--exercise tandem_walk``: the simulated walker.

Keys (window): Space pause/resume, Esc emergency stop, +/- level (through the
director, inside the envelope), W/A/S/D lean; closing the window ends the
demo.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vrbalance.errors import ConfigError
from vrbalance.sessions.lsl_scope import add_lsl_arguments

log = logging.getLogger(__name__)

#: Balance loop rate, Hz (the project's default).
LOOP_RATE_HZ = 250.0
#: Frames per second: a window's (the desktop lean should look smooth) and an
#: offscreen buffer's (screenshots only; software GL).
WINDOW_FPS = 30.0
OFFSCREEN_FPS = 15.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the scene tour for a simulated person, as a session, in a window",
        description=(
            "Run the scene tour (park, stairs, crowd; the director adapting the level) for a "
            "simulated person on a simulated force plate, exactly as `vrbalance run --simulate` "
            "runs a session: start gate, safety monitor every tick, recording; never filed. "
            "Keys: Space pause/resume, Esc emergency stop, +/- (PageUp/PageDown) level through "
            "the director, W/A/S/D lean, right mouse button look around; close the window to end."
        ),
    )
    parser.add_argument(
        "--scene", default="park", help="the tour's first scene (park, stairs, crowd)"
    )
    parser.add_argument(
        "--level",
        type=int,
        default=1,
        help="the director's first level there, from 1 (inside the envelope)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--offscreen", action="store_true", help="render without a display (needs --out)"
    )
    output.add_argument(
        "--desktop",
        action="store_true",
        help="render to a desktop window (the default; the head is the desktop stand-in)",
    )
    parser.add_argument(
        "--xr",
        action="store_true",
        help="render to the OpenXR headset; the head pose comes from it",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="trial time in all, s (offscreen default 20; a window tours until closed, at most "
        "the envelope's session time)",
    )
    parser.add_argument("--out", type=Path, help="folder for screenshots and the recording")
    parser.add_argument(
        "--shot-every", type=float, default=5.0, help="screenshot interval with --out, s"
    )
    parser.add_argument("--size", default="1280x720", help="window/buffer size WxH")
    parser.add_argument("--no-plate", action="store_true", help="head only (no simulated plate)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated person")
    parser.add_argument(
        "--exercise",
        choices=["tandem_walk"],
        help="show an exercise: tandem_walk = the simulated person walks the heel-to-toe "
        "line and back, head only, the safety monitor guarding the walking corridor "
        "(docs/exercises.md)",
    )
    parser.add_argument(
        "--walk-length", type=float, default=4.0, metavar="M", help="the line, 3-6 m (default 4)"
    )
    add_lsl_arguments(parser)
    parser.set_defaults(func=run)


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)``; ConfigError naming the flag otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size: expected WIDTHxHEIGHT like 1280x720, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise ConfigError(f"--size: expected sizes in [16, 8192], got {text!r}")
    return w, h


def run(args: argparse.Namespace) -> int:
    from vrbalance.clock import MonotonicClock
    from vrbalance.devices.pty_server import DEFAULT_PLATE
    from vrbalance.sessions.assembly import (
        open_lsl,
        open_session_world,
        session_devices,
        session_runner,
    )
    from vrbalance.sessions.demo import (
        DEMO_PATIENT,
        DEMO_PERSON_SCRIPT,
        ShotWorld,
        demo_plan,
        schedule_tour,
    )
    from vrbalance.sessions.recorder import make_private_dir
    from vrbalance.sessions.runner import OperatorControls

    size = parse_size(args.size)
    xr = bool(getattr(args, "xr", False))
    if xr and args.offscreen:
        raise ConfigError(
            "--xr cannot render --offscreen: an OpenXR runtime shares the OpenGL context of a "
            "desktop window (GLX on Linux), which an offscreen buffer does not have; run --xr "
            "on a display (or under Xvfb), or drop --xr"
        )
    if xr and getattr(args, "desktop", False):
        raise ConfigError("--xr and --desktop: choose one (the headset or the desktop window)")
    if args.offscreen and args.out is None:
        raise ConfigError("--offscreen needs --out DIR for its screenshots")
    seconds = args.seconds if args.seconds is not None else (20.0 if args.offscreen else None)
    plan = demo_plan(
        scene=args.scene,
        level=args.level,
        seconds=seconds,
        exercise=getattr(args, "exercise", None),
        walk_length_m=args.walk_length,
        with_plate=not args.no_plate,
    )
    clock = MonotonicClock()
    out: Path | None = args.out
    # The window first: without a display nothing else is started.
    world: Any = open_session_world(
        offscreen=args.offscreen,
        xr=xr,
        clock=clock,
        size_px=size,
        **({} if xr or args.offscreen else {"desktop_head": True}),
    )
    try:
        devices = session_devices(
            protocol=plan.protocol,
            patient=DEMO_PATIENT,
            clock=clock,
            plate_id=DEFAULT_PLATE,
            simulate=True,
            seed=args.seed,
            sim_script=DEMO_PERSON_SCRIPT,
        )
    except BaseException:
        world.close()
        raise
    if out is not None:
        make_private_dir(out)
        world = ShotWorld(world, out, args.shot_every)
        folder = _free_folder(out / "recording")
    else:  # a window without --out: recorded for the session's sake, then removed
        folder = Path(tempfile.mkdtemp(prefix="vrbalance-demo-")) / "recording"
    controls = OperatorControls()
    if args.offscreen:
        schedule_tour(controls, plan.protocol)
    lsl = open_lsl(
        lsl=getattr(args, "lsl", False),
        network=getattr(args, "lsl_network", False),
        clock=clock,
        rate_hz=LOOP_RATE_HZ,
    )
    runner = session_runner(
        lsl=lsl,
        protocol=plan.protocol,
        patient=DEMO_PATIENT,
        folder=folder,
        session_id=folder.name,
        devices=devices,
        clock=clock,
        world=world,
        controls=controls,
        rate_hz=LOOP_RATE_HZ,
        seed=args.seed,
        render_fps=WINDOW_FPS if not args.offscreen else OFFSCREEN_FPS,
        metadata={"simulated": True, "demo": True, "headset": xr},
        echo=print,
        start_levels=plan.start_levels,
        seconds_scale=plan.seconds_scale,
    )
    try:
        if lsl is not None:
            lsl.start()
        t0_s = clock.now_s()
        result = runner.run()
        elapsed_s = max(clock.now_s() - t0_s, 1e-9)
    finally:
        if lsl is not None:
            lsl.close()
        if out is None:
            shutil.rmtree(folder.parent, ignore_errors=True)
    _summary(result, world, out, folder, elapsed_s)
    # Closing the window (the operator's end) or the tour's end is a normal end; a lost
    # device (the headset, the simulated plate) is not, and says so in the exit status.
    return 1 if result.end_reason.value == "device_lost" else 0


def _summary(result: Any, world: Any, out: Path | None, folder: Path, elapsed_s: float) -> None:
    """What the demo showed: frames, screenshots, the recording, the headset's figures."""
    frames = getattr(world, "frames", 0)
    shots = getattr(world, "shots", [])
    print(
        f"vrbalance demo: {frames} frames in {elapsed_s:.0f} s, "
        f"{len(result.trials)} trials, ended {result.end_reason.value}"
        + (f", {len(shots)} screenshots in {out}" if out is not None else "")
        + (f", recording in {folder}" if out is not None else "")
    )
    stats = getattr(world, "xr_stats", None)
    if stats is not None:
        print(stats.summary(elapsed_s))


def _free_folder(path: Path) -> Path:
    """``path`` if unused, else ``path-2``, ``path-3`` ... (a recording never overwrites)."""
    candidate, n = path, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate
