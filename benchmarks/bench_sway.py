"""Benchmark the balance core: ``sway_metrics`` on long trials, ``BalanceEstimator.update``.

Usage::

    python benchmarks/bench_sway.py           # 30 min of 1 kHz CoP (1.8 M samples)
    python benchmarks/bench_sway.py --quick   # a few seconds, smoke test

Prints a markdown table of medians. Target (issue 3): ``sway_metrics`` on
1.8 M samples under 0.5 s; the estimator must leave a 1 kHz loop most of its
1 ms period (aim: well under 50 µs per call).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time

import numpy as np
import scipy

from vrbalance.balance import BalanceEstimator, Body, PlateGeometry, make_stance, sway_metrics
from vrbalance.config.plates import load_foot_template, load_plate
from vrbalance.samples import HeadPose, PlateFrame


def synthetic_cop(n: int, rate_hz: float, seed: int = 0) -> np.ndarray:
    """Random-walk-ish CoP: an Ornstein-Uhlenbeck sway plus sensor noise, metres."""
    rng = np.random.default_rng(seed)
    dt = 1.0 / rate_hz
    # OU process x' = -x/tau + noise, integrated exactly, via an IIR filter.
    tau = 2.0
    a = math.exp(-dt / tau)
    from scipy.signal import lfilter

    drive = rng.normal(0.0, 0.004 * math.sqrt(1 - a * a), size=(n, 2))
    sway = lfilter([1.0], [1.0, -a], drive, axis=0)
    return sway + rng.normal(0.0, 1e-4, size=(n, 2))


def time_it(fn, repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of each run (CPU time shows CPU contention)."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def bench_estimator(calls: int, scenario: str) -> tuple[float, float]:
    """Median and p99 microseconds per ``update`` call, inputs prebuilt."""
    body = Body(height_m=1.75, mass_kg=70.0)
    stance = make_stance("feet_apart", body, load_foot_template())
    plate: PlateGeometry | None
    if scenario.startswith("cells4"):
        plate = load_plate("wii-balance-board").geometry
    elif scenario.startswith("six_axis"):
        plate = load_plate("generic-six-axis").geometry
    else:
        plate = None
    est = BalanceEstimator(stance, body, plate)
    rng = np.random.default_rng(1)
    frames: list[list[PlateFrame]] = []
    heads: list[HeadPose | None] = []
    for i in range(calls):
        t = i / 1000.0
        if plate is None:
            frames.append([])
        elif plate.kind == "cells4":
            ch = tuple(float(v) for v in 170.0 + rng.normal(0, 5, 4))
            frames.append([PlateFrame(i, None, t, ch, "cells4")])
        else:
            ch = (1.0, -2.0, 686.0 + float(rng.normal(0, 3)), 10.0, -5.0, 0.1)
            frames.append([PlateFrame(i, None, t, ch, "six_axis")])
        if "head" in scenario and i % 11 == 0:  # a 90 Hz headset under a 1 kHz loop
            y = 0.02 * math.sin(2 * math.pi * 0.3 * t)
            heads.append(HeadPose(None, t, (0.0, y, 1.6)))
        else:
            heads.append(heads[-1] if heads else None)
    per_call = []
    clock = time.perf_counter_ns
    update = est.update
    for i in range(calls):
        t0 = clock()
        update(i / 1000.0, frames[i], heads[i])
        per_call.append(clock() - t0)
    per_call.sort()
    return per_call[len(per_call) // 2] / 1e3, per_call[int(0.99 * len(per_call))] / 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    args = parser.parse_args(argv)
    rate = 1000.0
    minutes = 3.0 if args.quick else 30.0
    repeats = 3 if args.quick else 7
    calls = 5_000 if args.quick else 100_000
    n = int(minutes * 60 * rate)
    cop = synthetic_cop(n, rate)
    sway_metrics(cop[:10_000], rate)  # warm-up (imports, FFT plans)

    print(f"## Balance core benchmark ({'quick' if args.quick else 'full'})\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU(s), {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}\n"
    )
    print("| case | size | runs | median wall | min wall | median CPU | load avg |")
    print("|---|---|---|---|---|---|---|")
    for label, lp in (("sway_metrics, raw", None), ("sway_metrics, 10 Hz low-pass", 10.0)):
        wall, cpu = time_it(lambda lp=lp: sway_metrics(cop, rate, lowpass_hz=lp), repeats)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"| {label} | {n:,} samples ({minutes:g} min at 1 kHz) | {repeats} | "
            f"{statistics.median(wall):.3f} s | {min(wall):.3f} s | "
            f"{statistics.median(cpu):.3f} s | {load:.1f} |"
        )
    print()
    print("| BalanceEstimator.update | calls | median per call | p99 per call |")
    print("|---|---|---|---|")
    for scenario in ("cells4 + head", "six_axis + head", "cells4 only", "head only"):
        med, p99 = bench_estimator(calls, scenario)
        print(f"| {scenario} | {calls:,} | {med:.1f} µs | {p99:.1f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
