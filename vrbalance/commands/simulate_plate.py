"""``vrbalance simulate-plate``: a simulated force plate on a pseudo-terminal.

Prints the port path on the first line of standard output (alone, so scripts
can read it), describes what it serves on standard error, and streams until
Ctrl-C or ``--seconds``. Open the path with any serial program, or with
``vrbalance`` itself (the demo, ``calibrate plate --port PATH``).
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate-plate",
        help="serve a simulated force plate (a standing person) on a pseudo-terminal",
        description=(
            "Serve a simulated force plate on a pseudo-terminal, in the plate's own wire "
            "protocol, paced in real time. The first line printed is the port path."
        ),
        epilog=(
            "script events: lean@T[:x=M][:y=M][:ramp=S][:hold=S], fall@T[:x=..][:y=..], "
            "stepoff@T[:load=F], stepon@T, unplug@T, replug@T, stall@T[:duration=S]; "
            "e.g. --script lean@10s:y=0.06,fall@25s. Calibration mode: --load-script "
            "empty@0s,centre@3s,front-left@6s,... with --mass-kg puts a known mass there."
        ),
    )
    parser.add_argument("--plate", default="wii-balance-board", help="plate id or TOML path")
    parser.add_argument("--protocol", choices=("ascii", "binary"), help="default: the plate's")
    parser.add_argument(
        "--rate-hz", type=float, help="frames per second (default 100 ascii, 1000 binary)"
    )
    parser.add_argument("--script", action="append", default=[], help="events, comma-separated")
    parser.add_argument("--load-script", help="known mass positions instead of a person")
    parser.add_argument("--mass-kg", type=float, default=20.0, help="mass for --load-script")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vrbalance.clock import MonotonicClock
    from vrbalance.config.check import check_number
    from vrbalance.config.plates import load_plate
    from vrbalance.devices.pty_server import SimulatedPlateServer
    from vrbalance.devices.simulator import parse_load_script, parse_script

    plate = load_plate(args.plate)
    script = parse_script(args.script)
    loads = None
    if args.load_script:
        mass = check_number(args.mass_kg, "--mass-kg", min_value=0.0, max_value=500.0)
        loads = parse_load_script(args.load_script, plate, mass)
    if args.rate_hz is not None:
        check_number(args.rate_hz, "--rate-hz", min_value=1.0, max_value=5000.0)
    if args.seconds is not None:
        check_number(args.seconds, "--seconds", min_value=0.0)
    check_number(args.seed, "--seed", min_value=0, integer=True)
    clock = MonotonicClock()
    with SimulatedPlateServer(
        plate,
        protocol=args.protocol,
        rate_hz=args.rate_hz,
        script=script,
        loads=loads,
        seed=args.seed,
        clock=clock,
    ) as sim:
        print(sim.port_path, flush=True)
        what = "known-mass loads" if loads is not None else "a standing person"
        print(
            f"simulated {plate.id} ({sim.protocol}, {sim.rate_hz:g} Hz, {plate.serial.baud} baud "
            f"nominal) with {what} on {sim.port_path}; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        end_s = None if args.seconds is None else clock.now_s() + args.seconds
        try:
            while end_s is None or clock.now_s() < end_s:
                clock.sleep_s(0.1 if end_s is None else min(0.1, end_s - clock.now_s()))
                if sim.error is not None:
                    raise sim.error
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (vrbalance.interrupt)
            from vrbalance.interrupt import interrupt_reason

            print(f"{interrupt_reason(exc)}: stopping", file=sys.stderr)
        print(f"stopped after {sim.frames_sent} frames", file=sys.stderr)
    return 0
