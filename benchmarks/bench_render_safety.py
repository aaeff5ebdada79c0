"""Are rendered sessions as calm as unrendered ones? Safety calms, skipped deadlines, frame age.

Usage::

    python benchmarks/bench_render_safety.py             # 10 sessions per design, 15 s each
    python benchmarks/bench_render_safety.py --sessions 4 --seconds 10
    python benchmarks/bench_render_safety.py --quick     # 1 session per design, 3 s

Each session is the product's own session runner
(:class:`~vrbalance.sessions.runner.SessionRunner`, what ``vrbalance run
--simulate`` runs) with a **quiet** simulated patient (no scripted event: any
safety calm is a false one) standing through one trial in the heaviest scene,
the crowd at level 10, drawn offscreen in software GL (Mesa llvmpipe), every
session in a fresh interpreter. Designs, side by side in the same run:

* **product, rendered**: the plate (and the simulated plate, another device in
  a clinic) read in the plate process into shared memory
  (:mod:`vrbalance.devices.plate_process`), the world drawn in the render
  process (:mod:`vrbalance.sessions.render_process`), the balance loop and
  monitor in the session process with ``RECOMMENDED_TUNING``;
* **product, --no-render**: the same without a world;
* **one process, rendered** (the design before): plate reader thread and
  Panda3D in the session process beside the loop thread.

From each session's recording (the same files a clinic keeps): the safety
calms (``events.csv``: the monitor's ``calm`` events), the loop's skipped
deadlines and ticks (the ``trial_end`` event), and the **plate-frame age at
each tick** (``state.csv``'s ``plate_age_s``: the tick time minus the newest
frame's ``received_time_s``, what the monitor's 50 ms ``plate_stale`` limit
judges). Targets (issue 11): 0 calms in 10 rendered sessions, skipped <= 0.1 %,
age p99 <= 20 ms. The stale limit stays 50 ms: the benchmark changes no limit.

Prints a markdown table with the load average before and after (the machine
may be shared: say so when quoting).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DESIGNS = {
    "product-rendered": "product (plate process, render process), rendered",
    "product-no-render": "product, --no-render",
    "one-process-rendered": "one process (plate thread, Panda3D beside the loop), rendered",
}
SCENE, LEVEL = "crowd", 10


def one_session(design: str, seconds: float, seed: int, folder: Path) -> dict:
    """Run one session of ``design`` in this interpreter; return its figures."""
    from vrbalance.clock import MonotonicClock
    from vrbalance.sessions.protocol import Protocol, Trial
    from vrbalance.sessions.store import Patient
    from vrbalance.sessions.synthetic import run_simulated_session

    patient = Patient("B1", birth_year=1960, height_m=1.75, mass_kg=70.0)
    clock = MonotonicClock()
    trial = Trial(
        name="crowd-10",
        kind="exercise",
        scene=SCENE,
        level=LEVEL,
        stance="feet_apart",
        duration_s=seconds,
    )
    world = None
    if design == "product-rendered":
        from vrbalance.sessions.world import open_world

        world = open_world(offscreen=True, clock=clock, own_process=True)
    elif design == "one-process-rendered":
        from vrbalance.sessions.world import open_world

        world = open_world(offscreen=True, clock=clock, own_process=False)
    run_simulated_session(
        Protocol(name="bench", title="bench", description="", trials=(trial,)),
        patient,
        folder,
        clock=clock,
        person_seed=seed,
        plate_process=design != "one-process-rendered",
        world=world,
        seed=seed,
    )
    return figures(folder)


def figures(folder: Path) -> dict:
    """Calms, ticks, skipped deadlines and plate ages (s) from a recording."""
    with (folder / "events.csv").open(newline="") as fh:
        events = list(csv.DictReader(fh))
    calms = [e for e in events if e["source"] == "safety" and e["kind"] == "calm"]
    end = next(e for e in events if e["kind"] == "trial_end")
    values = json.loads(end["values_json"])
    with (folder / "state.csv").open(newline="") as fh:
        ages = [float(r["plate_age_s"]) for r in csv.DictReader(fh) if r["plate_age_s"]]
    return {
        "calms": len(calms),
        "causes": sorted({json.loads(e["values_json"]).get("cause", "") for e in calms}),
        "ticks": int(values["ticks"]),
        "skipped": int(values["skipped_ticks"]),
        "ages_s": ages,
    }


def run_child(design: str, seconds: float, seed: int, root: Path) -> dict:
    folder = root / f"{design}-{seed}"
    out = root / f"{design}-{seed}.json"
    cmd = [
        sys.executable,
        __file__,
        "--one",
        design,
        "--seconds",
        str(seconds),
        "--seed",
        str(seed),
        "--folder",
        str(folder),
        "--json",
        str(out),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{design} session {seed} failed:\n{result.stderr[-3000:]}")
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 session per design, 3 s")
    parser.add_argument("--sessions", type=int, default=None, help="sessions per design (10)")
    parser.add_argument("--seconds", type=float, default=None, help="trial length, s (15)")
    parser.add_argument(
        "--designs", default=",".join(DESIGNS), help="comma-separated: " + ", ".join(DESIGNS)
    )
    parser.add_argument("--one", choices=sorted(DESIGNS), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    seconds = args.seconds or (3.0 if args.quick else 15.0)
    if args.one:  # a child: one session, figures to --json
        fig = one_session(args.one, seconds, args.seed, Path(args.folder))
        Path(args.json).write_text(json.dumps(fig))
        return 0
    sessions = args.sessions or (1 if args.quick else 10)
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    unknown = sorted(set(designs) - set(DESIGNS))
    if unknown:
        raise SystemExit(f"--designs: unknown {', '.join(unknown)}; known: {', '.join(DESIGNS)}")
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    results: dict[str, list[dict]] = {d: [] for d in designs}
    with tempfile.TemporaryDirectory(prefix="vrbalance-bench-") as tmp:
        for k in range(sessions):  # interleaved, so every design sees the same load
            for design in designs:
                results[design].append(run_child(design, seconds, k, Path(tmp)))
    load_after = os.getloadavg()
    print(
        f"Quiet simulated patient, {SCENE} level {LEVEL}, offscreen software GL, "
        f"{sessions} session(s) x {seconds:g} s per design, 250 Hz loop, 100 Hz plate; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after "
        f"({time.perf_counter() - t0:.0f} s)\n"
    )
    print(
        "| design | sessions | sessions with a safety calm (causes) | calms | deadlines "
        "skipped | plate-frame age at the tick p50 / p99 / max (ms) |"
    )
    print("|---|---:|---|---:|---:|---|")
    for design in designs:
        rows = results[design]
        ages = np.asarray([a for r in rows for a in r["ages_s"]]) * 1e3
        ticks = sum(r["ticks"] for r in rows)
        skipped = sum(r["skipped"] for r in rows)
        with_calm = sum(1 for r in rows if r["calms"])
        causes = sorted({c for r in rows for c in r["causes"]})
        age = (
            f"{np.percentile(ages, 50):.1f} / {np.percentile(ages, 99):.1f} / {ages.max():.1f}"
            if ages.size
            else "-"
        )
        print(
            f"| {DESIGNS[design]} | {len(rows)} | {with_calm}"
            + (f" ({', '.join(causes)})" if causes else "")
            + f" | {sum(r['calms'] for r in rows)} | {skipped} of {ticks + skipped} "
            f"({100 * skipped / max(ticks + skipped, 1):.2f} %) | {age} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
