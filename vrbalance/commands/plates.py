"""``vrbalance plates``: the force plates this machine can see, and how to use each.

Serial ports (for the DIY and six-channel plates) and Linux input devices
named as a plate file's ``[evdev] name`` (a paired Wii Balance Board), with
what ``--port`` to give, whether this user may open the device (else: the
``input`` group), the board's battery and the factory calibration the kernel
applies (``docs/wii-balance-board.md``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plates",
        help="list the force plates found: serial ports and paired Wii Balance Boards",
        description=(
            "List serial ports and input devices that are force plates (a Wii Balance Board "
            "paired over Bluetooth), with the --port to give `vrbalance run` and "
            "`vrbalance calibrate plate`, the board's battery and its kernel calibration."
        ),
    )
    parser.add_argument(
        "--all", action="store_true", help="also list input devices that are not plates"
    )
    parser.set_defaults(func=run)


def input_plate_names() -> dict[str, str]:
    """Input-device name -> plate id, from every shipped plate with an ``[evdev]`` table."""
    from vrbalance.config.plates import list_plates, load_plate

    names: dict[str, str] = {}
    for ident in list_plates():
        spec = load_plate(ident).evdev
        if spec is not None:
            names.setdefault(spec.name, ident)
    return names


def describe_input_plates(
    *, battery: bool, sys_root: Path | None = None, dev_root: Path | None = None
) -> list[str]:
    """One line per input device that is a plate (``[]`` if none)."""
    from vrbalance.devices import discovery

    roots: dict[str, Any] = {}
    if sys_root is not None:
        roots["sys_root"] = sys_root
    if dev_root is not None:
        roots["dev_root"] = dev_root
    names = input_plate_names()
    lines = []
    for device in discovery.list_input_devices(**roots):
        plate = names.get(device.name)
        if plate is None:
            continue
        extras = [f"--plate {plate} --port {device.path} (or --port auto)"]
        if not device.readable:
            extras.append("not readable by you: sudo usermod -aG input $USER, then log out and in")
        if battery:
            percent = discovery.battery_percent(device)
            if percent is not None:
                extras.append(f"battery {percent} %")
        calib = discovery.board_calibration(device)
        if calib is not None:
            zero, mid, top = calib
            extras.append(
                "kernel calibration 0/17/34 kg: "
                + ", ".join(f"{z}/{m}/{t}" for z, m, t in zip(zero, mid, top, strict=True))
            )
        lines.append(f"{device.path}  {device.name}: " + "; ".join(extras))
    return lines


def run(args: argparse.Namespace) -> int:
    from vrbalance.devices import discovery

    out = sys.stdout
    ports = discovery.list_serial_ports()
    print("serial ports (DIY four-cell and six-channel plates, --port PATH):", file=out)
    for port in ports:
        print(f"  {port.device}" + (f"  {port.description}" if port.description else ""), file=out)
    if not ports:
        print("  none", file=out)
    print("input devices that are plates (a paired Wii Balance Board):", file=out)
    lines = describe_input_plates(battery=True)
    for line in lines:
        print(f"  {line}", file=out)
    if not lines:
        print("  none: pair the board and switch it on (docs/wii-balance-board.md)", file=out)
    if args.all:
        print("all input devices:", file=out)
        devices = discovery.list_input_devices()
        for device in devices:
            flag = "" if device.readable else " (not readable by you)"
            print(f"  {device.path}  {device.name}{flag}", file=out)
        if not devices:
            print("  none (no /sys/class/input here)", file=out)
    return 0
