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
from typing import Any


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
    plate.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
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
    from vrbalance.devices.driver import ForcePlate
    from vrbalance.errors import ConfigError

    plate = load_plate(args.plate)
    if args.mass_kg is None:
        if args.non_interactive:
            raise ConfigError("--mass-kg: required with --non-interactive")
        args.mass_kg = float(input("Known mass in kg: "))
    mass_kg = check_number(args.mass_kg, "--mass-kg", min_value=0.5, max_value=300.0)
    for name in ("tare_s", "record_s", "step_timeout_s"):
        check_number(getattr(args, name), f"--{name.replace('_', '-')}", min_value=0.05)
    base = find_calibration(plate.id)
    out = args.out or user_calibration_path(plate.id)
    weight_n = mass_kg * GRAVITY_M_S2
    with ForcePlate(
        args.port, plate, base, protocol=args.protocol, baud=args.baud, stall_after_s=0.5
    ) as device:
        steps = _Steps(device, plate, base, args, weight_n)
        tare, loads = steps.run_all(mass_kg)
    calibration = fit_calibration(plate, tare, loads, base=base, max_residual_n=args.max_residual_n)
    print("fit accepted:")
    for i, gain in enumerate(calibration.gains):
        print(
            f"  wire channel {i}: offset {calibration.offsets_counts[i]:12.1f} counts, "
            f"gain {gain:.6g} (nominal {base.gains[i]:.6g})"
        )
    print(
        f"  residuals: rms {calibration.residual_rms_n:.2f} N, "
        f"max {calibration.residual_max_n:.2f} N (load {weight_n:.1f} N)"
    )
    path = write_calibration(calibration, out)
    print(f"wrote {path}")
    return 0


class _Steps:
    """The tare and placement steps, interactive or not."""

    def __init__(
        self, device: Any, plate: Any, base: Any, args: argparse.Namespace, weight_n: float
    ) -> None:
        from vrbalance.devices.calibration import FrameConverter, calibration_positions

        self.device = device
        self.plate = plate
        self.args = args
        self.weight_n = weight_n
        self.converter = FrameConverter(plate, base)
        self.positions = calibration_positions(plate)
        self.interactive = not args.non_interactive
        self.tty = sys.stdout.isatty()

    # -- measurement helpers -----------------------------------------------------
    def _counts(self, frames: list[Any]) -> Any:
        """Wire counts back from calibrated frames (the nominal calibration inverted)."""
        import numpy as np

        return self.converter.core_to_counts(np.array([f.channels for f in frames]))

    def _load(self, counts: Any, tare: Any) -> tuple[float, float, float]:
        """Vertical load (N) and CoP (m) with the starting calibration, tare removed."""
        from vrbalance.balance.cop import compute_cop

        core = self.converter.counts_to_core
        mean = core(counts).mean(axis=0) - core(tare).mean(axis=0)
        cop = compute_cop(mean[None], self.plate.geometry, min_load_n=0.2 * self.weight_n)
        x, y = (float(v) for v in cop.cop_m[0])
        return float(cop.vertical_force_n[0]), x, y

    def _zero(self) -> Any:
        import numpy as np

        return np.zeros((1, len(self.converter.order)))

    def _progress(self, label: str, fraction: float) -> None:
        bar = "#" * int(30 * fraction)
        if self.tty:
            print(f"\r  {label} [{bar:<30}] {100 * fraction:3.0f}%", end="", flush=True)
        elif fraction >= 1.0:
            print(f"  {label} [{bar:<30}] 100%", flush=True)

    def _record(self, label: str, seconds: float) -> Any:
        """Collect ``seconds`` of frames with a progress bar; return their counts."""
        import numpy as np

        from vrbalance.clock import MonotonicClock
        from vrbalance.errors import DeviceError

        clock = MonotonicClock()
        self.device.drain()
        frames: list[Any] = []
        start = clock.now_s()
        while (elapsed := clock.now_s() - start) < seconds:
            frames += self.device.drain()
            self._progress(label, min(1.0, elapsed / seconds))
            clock.sleep_s(0.05)
        frames += self.device.drain()
        self._progress(label, 1.0)
        if self.tty:
            print()
        if len(frames) < 3:
            raise DeviceError(
                f"{label}: only {len(frames)} frames from {self.device.port} in {seconds:g} s "
                f"(plate {self.device.state.value})"
            )
        return np.asarray(self._counts(frames))

    def _steady(self, seconds: float) -> Any:
        """Counts of the next ``seconds`` window if its load is steady, else None.

        Steady: the vertical load varies by less than max(2 N, 2 % of m g) and,
        when loaded, the CoP by less than 5 mm (a mass being slid keeps its
        weight but not its place).
        """
        import numpy as np

        from vrbalance.balance.cop import compute_cop

        counts = self._record_quiet(seconds)
        forces = self.converter.counts_to_core(counts)
        cop = compute_cop(forces, self.plate.geometry, min_load_n=0.2 * self.weight_n)
        if float(np.std(cop.vertical_force_n)) > max(2.0, 0.02 * self.weight_n):
            return None
        if cop.loaded.any() and (
            not cop.loaded.all() or float(np.max(np.std(cop.cop_m, axis=0))) > 0.005
        ):
            return None
        return counts

    def _record_quiet(self, seconds: float) -> Any:
        from vrbalance.clock import MonotonicClock

        clock = MonotonicClock()
        self.device.drain()
        clock.sleep_s(seconds)
        frames = self.device.drain()
        if len(frames) < 3:
            from vrbalance.errors import DeviceError

            raise DeviceError(
                f"only {len(frames)} frames from {self.device.port} in {seconds:g} s "
                f"(plate {self.device.state.value})"
            )
        return self._counts(frames)

    def _wait_for(self, step: str, accept: Any) -> None:
        """Non-interactive: wait until a steady window satisfies ``accept(counts)``."""
        from vrbalance.clock import MonotonicClock
        from vrbalance.errors import DeviceError

        clock = MonotonicClock()
        deadline = clock.now_s() + self.args.step_timeout_s
        seen = "nothing steady"
        while clock.now_s() < deadline:
            counts = self._steady(0.3)
            if counts is None:
                continue
            ok, seen = accept(counts)
            if ok:
                return
        raise DeviceError(
            f"{step}: timed out after {self.args.step_timeout_s:g} s on {self.device.port} "
            f"(last steady reading: {seen})"
        )

    # -- the steps ------------------------------------------------------------------
    def run_all(self, mass_kg: float) -> tuple[Any, list[Any]]:
        import numpy as np

        from vrbalance.devices.calibration import LoadRecord

        n_steps = 1 + len(self.positions)
        print(
            f"Calibrating {self.plate.id} on {self.device.port} with {mass_kg:g} kg "
            f"({self.weight_n:.1f} N), {n_steps} steps."
        )
        print(f"Step 1/{n_steps}: tare. Clear the plate: nothing and nobody on it.")
        if self.interactive:
            input("  press Enter when the plate is empty ")
        self._wait_for("tare", lambda counts: (True, "steady"))
        tare = self._record("taring", self.args.tare_s)
        empty_n = abs(self._load(tare, self.converter.core_to_counts(self._zero()))[0])
        if empty_n > 0.25 * self.weight_n:
            print(
                f"  warning: the 'empty' plate reads {empty_n:.0f} N on its previous calibration: "
                "if something was on it, start again"
            )
        loads = []
        previous: tuple[float, float] | None = None
        for k, (name, (x, y)) in enumerate(self.positions, start=2):
            where = f"{name} (x {100 * x:+.1f} cm, y {100 * y:+.1f} cm from the centre)"
            print(f"Step {k}/{n_steps}: put the {mass_kg:g} kg mass at the {where}.")
            if self.interactive:
                input("  press Enter when it rests there and nothing touches the plate ")
                self._wait_for(name, lambda counts: (True, "steady"))
            else:
                self._wait_for(name, self._accept_at((x, y), previous, tare))
            counts = self._record(f"recording {name}", self.args.record_s)
            fz, cx, cy = self._load(counts, tare)
            print(
                f"  read {fz:.1f} N at x {100 * cx:+.1f} cm, y {100 * cy:+.1f} cm (nominal scale)"
            )
            loads.append(LoadRecord((x, y), mass_kg, np.asarray(counts)))
            previous = (x, y)
        return tare, loads

    def _accept_at(
        self, target: tuple[float, float], previous: tuple[float, float] | None, tare: Any
    ) -> Any:
        """A steady load of roughly m g whose CoP is nearest ``target`` of all positions."""
        import math

        def accept(counts: Any) -> tuple[bool, str]:
            fz, x, y = self._load(counts, tare)
            seen = f"{fz:.1f} N at ({100 * x:+.1f}, {100 * y:+.1f}) cm"
            if not 0.5 * self.weight_n < fz < 1.5 * self.weight_n or math.isnan(x):
                return False, seen
            nearest = min(self.positions, key=lambda p: math.dist(p[1], (x, y)))[1]
            return nearest == target and nearest != previous, seen

        return accept
