"""The guided calibration procedure behind ``vrbalance calibrate plate``.

Step 1 tares the empty plate; steps 2..6 record a known mass at the centre and
at each corner (:func:`~vrbalance.devices.calibration.calibration_positions`).
Interactively, each step waits for the operator (``prompt``), then for the
load to be steady, then records with a progress bar. Non-interactively, each
step waits until a steady load of roughly ``m g`` rests nearest the expected
place (judged with the plate's current calibration, which only needs to be
within about 30 % of the truth), so a script or a robot can move the mass.
The fit itself is :func:`~vrbalance.devices.calibration.fit_calibration`.

The frames come from a :class:`~vrbalance.devices.driver.ForcePlate` opened
with the plate's current calibration; the raw counts are recovered exactly by
inverting that calibration (an affine map in float64).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from vrbalance.balance.cop import compute_cop
from vrbalance.clock import Clock, MonotonicClock
from vrbalance.devices.calibration import (
    GRAVITY_M_S2,
    Calibration,
    FrameConverter,
    LoadRecord,
    calibration_positions,
)
from vrbalance.errors import DeviceError

log = logging.getLogger(__name__)

STEADY_WINDOW_S = 0.3
"""Length of the window judged for steadiness while waiting for a placement."""
STEADY_COP_STD_M = 0.005
"""A load whose CoP wanders more than this (std) is still being placed."""


class GuidedCalibration:
    """Run the tare and known-mass steps on an open plate.

    Parameters
    ----------
    device : ForcePlate
        Open and streaming, with ``base`` as its calibration.
    plate : PlateSpec
    base : Calibration
        The plate's current calibration (used to recover counts and to judge
        placements).
    mass_kg : float
        The known mass.
    interactive : bool
        Wait for the operator at each step (``prompt``) or detect placements.
    tare_s, record_s : float
        Recording time of the tare and of each placement, s.
    step_timeout_s : float
        Longest wait for a steady (and, non-interactively, right) load, s.
    prompt : callable, optional
        Asks the operator to press Enter (default :func:`input`).
    say : callable, optional
        Shows one line to the operator. The library only logs it (INFO) by
        default; ``vrbalance calibrate`` passes :func:`print`.
    progress : callable, optional
        ``progress(label, fraction)`` while recording; default none
        (``vrbalance calibrate`` draws a text bar on a terminal).
    clock : Clock, optional
        Paces the waits (default monotonic).
    """

    def __init__(
        self,
        device: Any,
        plate: Any,
        base: Calibration,
        *,
        mass_kg: float,
        interactive: bool,
        tare_s: float = 3.0,
        record_s: float = 2.0,
        step_timeout_s: float = 60.0,
        prompt: Callable[[str], str] | None = None,
        say: Callable[[str], None] | None = None,
        progress: Callable[[str, float], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.device = device
        self.plate = plate
        self.mass_kg = mass_kg
        self.weight_n = mass_kg * GRAVITY_M_S2
        self.interactive = interactive
        self.tare_s = tare_s
        self.record_s = record_s
        self.step_timeout_s = step_timeout_s
        self.converter = FrameConverter(plate, base)
        self.positions = calibration_positions(plate)
        # Looked up at call time, so a caller (or a test) can replace builtins.input.
        self._prompt = prompt or (lambda text: input(text))
        self._say = say or log.info
        self._progress = progress or _no_progress
        self._clock = clock or MonotonicClock()

    # -- measurement helpers -----------------------------------------------------
    def _collect(self, seconds: float, label: str | None = None) -> np.ndarray:
        """Wire counts of every frame in the next ``seconds``."""
        clock = self._clock
        self.device.drain()
        frames: list[Any] = []
        start = clock.now_s()
        while (elapsed := clock.now_s() - start) < seconds:
            frames += self.device.drain()
            if label is not None:
                self._progress(label, min(1.0, elapsed / seconds))
            clock.sleep_s(0.02)
        frames += self.device.drain()
        if label is not None:
            self._progress(label, 1.0)
        if len(frames) < 3:
            raise DeviceError(
                f"{label or 'waiting'}: only {len(frames)} frames from {self.device.port} in "
                f"{seconds:g} s (plate {self.device.state.value})"
            )
        return self.converter.core_to_counts(np.array([f.channels for f in frames]))

    def load_of(self, counts: np.ndarray, tare: np.ndarray) -> tuple[float, float, float]:
        """Vertical load (N) and CoP x, y (m) of ``counts`` above ``tare``, current scale."""
        core = self.converter.counts_to_core
        mean = core(counts).mean(axis=0) - core(tare).mean(axis=0)
        cop = compute_cop(mean[None], self.plate.geometry, min_load_n=0.2 * self.weight_n)
        x, y = (float(v) for v in cop.cop_m[0])
        return float(cop.vertical_force_n[0]), x, y

    def _steady(self, counts: np.ndarray) -> bool:
        """Load varies < max(2 N, 2 % m g) and, if loaded, the CoP < 5 mm (std)."""
        cop = compute_cop(
            self.converter.counts_to_core(counts),
            self.plate.geometry,
            min_load_n=0.2 * self.weight_n,
        )
        if float(np.std(cop.vertical_force_n)) > max(2.0, 0.02 * self.weight_n):
            return False
        if not cop.loaded.any():
            return True
        return bool(cop.loaded.all()) and float(np.max(np.std(cop.cop_m, axis=0))) <= (
            STEADY_COP_STD_M
        )

    def _wait(self, step: str, accept: Callable[[np.ndarray], tuple[bool, str]]) -> None:
        """Wait until a steady window satisfies ``accept``; raise after the timeout."""
        deadline = self._clock.now_s() + self.step_timeout_s
        seen = "nothing steady"
        while self._clock.now_s() < deadline:
            counts = self._collect(STEADY_WINDOW_S)
            if not self._steady(counts):
                continue
            ok, seen = accept(counts)
            if ok:
                return
        raise DeviceError(
            f"{step}: timed out after {self.step_timeout_s:g} s on {self.device.port} "
            f"(last steady reading: {seen})"
        )

    def _near(
        self, target: tuple[float, float], previous: tuple[float, float] | None, tare: np.ndarray
    ) -> Callable[[np.ndarray], tuple[bool, str]]:
        """Accept a load of 0.5-1.5 m g whose CoP is nearest ``target`` of all positions."""

        def accept(counts: np.ndarray) -> tuple[bool, str]:
            fz, x, y = self.load_of(counts, tare)
            seen = f"{fz:.1f} N at ({100 * x:+.1f}, {100 * y:+.1f}) cm"
            if not 0.5 * self.weight_n < fz < 1.5 * self.weight_n or math.isnan(x):
                return False, seen
            nearest = min(self.positions, key=lambda p: math.dist(p[1], (x, y)))[1]
            return nearest == target and nearest != previous, seen

        return accept

    # -- the procedure ----------------------------------------------------------------
    def run(self) -> tuple[np.ndarray, list[LoadRecord]]:
        """Do every step; return the tare counts and one record per placement.

        Raises
        ------
        DeviceError
            A step timed out or the plate stopped sending.
        """
        say = self._say
        n_steps = 1 + len(self.positions)
        say(
            f"Calibrating {self.plate.id} on {self.device.port} with {self.mass_kg:g} kg "
            f"({self.weight_n:.1f} N), {n_steps} steps."
        )
        say(f"Step 1/{n_steps}: tare. Clear the plate: nothing and nobody on it.")
        if self.interactive:
            self._prompt("  press Enter when the plate is empty ")
        self._wait("tare", lambda counts: (True, "steady"))
        tare = self._collect(self.tare_s, "taring")
        zero = self.converter.core_to_counts(np.zeros((1, len(self.converter.order))))
        empty_n = abs(self.load_of(tare, zero)[0])
        if empty_n > 0.25 * self.weight_n:
            say(
                f"  warning: the 'empty' plate reads {empty_n:.0f} N on its current "
                "calibration: if something was on it, start again"
            )
        loads = []
        previous: tuple[float, float] | None = None
        for k, (name, (x, y)) in enumerate(self.positions, start=2):
            where = f"{name} (x {100 * x:+.1f} cm, y {100 * y:+.1f} cm from the centre)"
            say(f"Step {k}/{n_steps}: put the {self.mass_kg:g} kg mass at the {where}.")
            if self.interactive:
                self._prompt("  press Enter when it rests there and nothing touches the plate ")
                self._wait(name, lambda counts: (True, "steady"))
            else:
                self._wait(name, self._near((x, y), previous, tare))
            counts = self._collect(self.record_s, f"recording {name}")
            fz, cx, cy = self.load_of(counts, tare)
            say(f"  read {fz:.1f} N at x {100 * cx:+.1f} cm, y {100 * cy:+.1f} cm (current scale)")
            loads.append(LoadRecord((x, y), self.mass_kg, counts))
            previous = (x, y)
        return tare, loads


def _no_progress(label: str, fraction: float) -> None:
    """Default progress hook: the library draws nothing (no terminal is assumed)."""
