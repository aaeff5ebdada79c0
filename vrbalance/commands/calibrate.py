"""``vrbalance calibrate plate``: tare and fit a force plate with a known mass.

Guided steps in the terminal: (1) clear the plate and tare it over a few
seconds; (2-6) put the known mass at the centre, then at each corner, each
recorded for a couple of seconds; then fit each channel's gain by least
squares, print the residuals, reject a bad fit, and write the calibration
file. ``--non-interactive`` does the same without prompts: it waits at each
step until a steady load of about the right weight rests near the expected
place (so a script or a robot can move the mass), with a timeout per step.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="calibrate a device (a force plate) with guided steps",
        description="Calibrate a device. `vrbalance calibrate plate --help` for the plate.",
    )
    devices = parser.add_subparsers(dest="device", metavar="DEVICE", required=True)
    plate = devices.add_parser(
        "plate",
        help="tare a force plate and fit its gains with a known mass",
        description=(
            "Tare a force plate, then fit each channel's gain from a known mass placed at "
            "the centre and at each corner (least squares), report residuals, reject a bad "
            "fit and write the calibration file."
        ),
    )
    plate.add_argument(
        "--port",
        required=True,
        help="serial port (/dev/ttyUSB0), or input device (/dev/input/eventN, or 'auto' for "
        "a paired Wii Balance Board: tare and per-cell gains on top of the kernel's values)",
    )
    plate.add_argument("--plate", default="wii-balance-board", help="plate id or TOML path")
    plate.add_argument("--protocol", choices=("ascii", "binary"), help="default: the plate's")
    plate.add_argument("--baud", type=int, help="default: the plate's")
    plate.add_argument("--mass-kg", type=float, help="the known mass (required non-interactively)")
    plate.add_argument(
        "--non-interactive",
        action="store_true",
        help="no prompts: detect each placement by its weight and position",
    )
    plate.add_argument("--out", help="calibration file to write (default: your data folder)")
    plate.add_argument("--tare-s", type=float, default=3.0, help="tare duration (s)")
    plate.add_argument("--record-s", type=float, default=2.0, help="recording per placement (s)")
    plate.add_argument(
        "--step-timeout-s", type=float, default=60.0, help="longest wait per step (s)"
    )
    plate.add_argument(
        "--max-residual-n", type=float, help="reject above this (default max(2 N, 2 %% of m g))"
    )
    plate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vrbalance.config.check import check_number
    from vrbalance.config.plates import load_plate
    from vrbalance.devices.calibration import (
        GRAVITY_M_S2,
        find_calibration,
        fit_calibration,
        user_calibration_path,
        write_calibration,
    )
    from vrbalance.devices.discovery import is_input_port
    from vrbalance.devices.driver import ForcePlate
    from vrbalance.devices.evdev_plate import EvdevPlate
    from vrbalance.devices.guided_calibration import GuidedCalibration
    from vrbalance.errors import ConfigError

    plate = load_plate(args.plate)
    evdev = is_input_port(args.port)
    if evdev and plate.evdev is None:
        raise ConfigError(
            f"--port {args.port}: plate {plate.id!r} ({plate.path}) has no [evdev] table, so it "
            "cannot be read as an input device"
        )
    if args.mass_kg is None:
        if args.non_interactive:
            raise ConfigError("--mass-kg: required with --non-interactive")
        typed = input("Known mass in kg: ").strip()
        try:
            args.mass_kg = float(typed)
        except ValueError:
            raise ConfigError(f"--mass-kg: expected a number of kg, got {typed!r}") from None
    mass_kg = check_number(args.mass_kg, "--mass-kg", min_value=0.5, max_value=300.0)
    for name in ("tare_s", "record_s", "step_timeout_s"):
        check_number(getattr(args, name), f"--{name.replace('_', '-')}", min_value=0.05)
    # An input device's counts are the kernel's (10 g units), not the serial plate's:
    # they have their own calibration, named in the plate's [evdev] table.
    calibration_id = plate.evdev.calibration if evdev and plate.evdev else plate.id
    base = find_calibration(calibration_id)
    out = args.out or user_calibration_path(calibration_id)
    weight_n = mass_kg * GRAVITY_M_S2
    if evdev:
        # The kernel sends nothing while no cell changes (an empty board): repeat the
        # held state so the tare has frames to average.
        device_cm: ForcePlate = EvdevPlate(args.port, plate, base, hold_repeat_s=0.02)
        plate = device_cm.plate  # cells already in core order: identity channel map
    else:
        device_cm = ForcePlate(
            args.port, plate, base, protocol=args.protocol, baud=args.baud, stall_after_s=0.5
        )
    with device_cm as device:
        tare, loads = GuidedCalibration(
            device,
            plate,
            base,
            mass_kg=mass_kg,
            interactive=not args.non_interactive,
            tare_s=args.tare_s,
            record_s=args.record_s,
            step_timeout_s=args.step_timeout_s,
            say=print,
            progress=_text_progress(print),
        ).run()
    calibration = fit_calibration(plate, tare, loads, base=base, max_residual_n=args.max_residual_n)
    print("fit accepted:")
    for i, gain in enumerate(calibration.gains):
        print(
            f"  wire channel {i}: offset {calibration.offsets_counts[i]:12.1f} counts, "
            f"gain {gain:.6g} (was {base.gains[i]:.6g})"
        )
    print(
        f"  residuals: rms {calibration.residual_rms_n:.2f} N, "
        f"max {calibration.residual_max_n:.2f} N (load {weight_n:.1f} N)"
    )
    path = write_calibration(calibration, out)
    print(f"wrote {path}")
    return 0


def _text_progress(say: Callable[[str], None]) -> Callable[[str, float], None]:
    """A ``[#####     ] 50%`` bar redrawn in place on a terminal, one line otherwise."""
    tty = sys.stdout.isatty()

    def progress(label: str, fraction: float) -> None:
        bar = "#" * int(30 * fraction)
        line = f"  {label} [{bar:<30}] {100 * fraction:3.0f}%"
        if tty:
            end = "\n" if fraction >= 1.0 else ""
            print(f"\r{line}", end=end, flush=True)
        elif fraction >= 1.0:
            say(line)

    return progress
