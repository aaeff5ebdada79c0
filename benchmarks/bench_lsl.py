"""LSL benchmark: loop time the LSL outlets add to each balance-loop tick.

A 250 Hz fixed-rate loop on absolute deadlines runs a tick that does the
balance core's per-tick work (the real :class:`BalanceEstimator` on a
four-cell frame and a head pose), first without LSL, then with
:class:`~vrbalance.sessions.lsl.LslOutlets` fed every tick (``tick`` and, every
50th tick, a marker ``event``) while a *separate process* (as LabRecorder
would be) pulls both streams over loopback. The runs alternate, so machine
load hits both alike. Reported: the sink call's own cost, and the whole tick's
median and p99 with and without the outlets; the difference is what LSL
costs the loop, the pusher thread's share of the GIL included.

LSL is kept on this machine (``ResolveScope = machine``, loopback only).

Run: ``python benchmarks/bench_lsl.py [--quick]``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PULLER = """
import sys, time, pylsl
source = sys.argv[1]
inlets = []
for suffix in ("balance", "markers"):
    (info,) = pylsl.resolve_byprop("source_id", source + "/" + suffix, 1, 20.0)
    inlet = pylsl.StreamInlet(info, recover=False)
    inlet.open_stream(20.0)
    inlets.append(inlet)
print("ready", flush=True)
n = 0
try:
    while True:
        for inlet in inlets:
            chunk, _ = inlet.pull_chunk(timeout=0.05)
            n += len(chunk)
except Exception:
    pass
"""


def _workload() -> tuple[object, object]:
    from vrbalance.balance.estimator import BalanceEstimator
    from vrbalance.balance.geometry import Body
    from vrbalance.balance.stance import make_stance
    from vrbalance.config.plates import load_foot_template, load_plate

    body = Body(height_m=1.70, mass_kg=70.0)
    stance = make_stance("feet_apart", body, load_foot_template())
    return BalanceEstimator(stance, body, load_plate("wii-balance-board").geometry), body


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_loop(seconds: float, rate_hz: float, outlets: object | None) -> tuple[list, list]:
    """Tick durations (s) and sink-call costs (s) of one run."""
    from vrbalance.director.monitor import Response, Verdict
    from vrbalance.events import Event
    from vrbalance.samples import HeadPose, PlateFrame
    from vrbalance.sessions.runner import LiveTick

    estimator, _body = _workload()
    period = 1.0 / rate_hz
    n = int(seconds * rate_hz)
    ticks: list[float] = []
    sink_costs: list[float] = []
    t0 = time.perf_counter() + 0.05
    for k in range(n):
        deadline = t0 + k * period
        while (now := time.perf_counter()) < deadline:
            time.sleep(min(0.0005, deadline - now))
        start = time.perf_counter()
        frame = PlateFrame(k, k * period, start, (170.0 + k % 7, 165.2, 120.1, 118.4))
        pose = HeadPose(None, start, (0.001 * (k % 5), 0.02, 1.6))
        state = estimator.update(start, [frame], pose)  # type: ignore[attr-defined]
        if outlets is not None:
            verdict = Verdict(k, start, Response.NONE, frozenset(), None)
            live = LiveTick(0, "q", "park", 2, 30.0, k * period, True, False, False, state, verdict)
            s0 = time.perf_counter()
            outlets.tick(live)  # type: ignore[attr-defined]
            if k % 50 == 0:
                outlets.event(0, Event(start, "session", "bench", f"tick {k}"))  # type: ignore[attr-defined]
            sink_costs.append(time.perf_counter() - s0)
        ticks.append(time.perf_counter() - start)
    return ticks, sink_costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per run instead of 10 s")
    parser.add_argument("--rate", type=float, default=250.0)
    args = parser.parse_args()
    seconds = 2.0 if args.quick else 10.0
    from vrbalance.sessions.lsl_scope import MACHINE_CONFIG

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "lsl_api.cfg"
        cfg.write_text(MACHINE_CONFIG)
        os.environ["LSLAPICFG"] = str(cfg)
        from vrbalance.clock import MonotonicClock
        from vrbalance.sessions.lsl import LslOutlets

        source = f"vrbalance-bench-{uuid.uuid4().hex}"
        outlets = LslOutlets(clock=MonotonicClock(), rate_hz=args.rate, source_id=source).start()
        puller = subprocess.Popen(
            [sys.executable, "-c", PULLER, source],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        try:
            assert puller.stdout is not None
            if puller.stdout.readline().strip() != "ready":
                raise SystemExit("the inlet process did not connect")
            base: list[float] = []
            with_lsl: list[float] = []
            costs: list[float] = []
            for _ in range(2):  # alternate, so load drifts hit both
                ticks, _ = run_loop(seconds / 2, args.rate, None)
                base += ticks
                ticks, sink = run_loop(seconds / 2, args.rate, outlets)
                with_lsl += ticks
                costs += sink
        finally:
            outlets.close()
            puller.terminate()
            puller.wait(5)
    load = os.getloadavg()[0]
    us = 1e6
    print(
        f"LSL outlets at {args.rate:g} Hz, {len(base)} + {len(with_lsl)} ticks, "
        f"load average {load:.1f} on {os.cpu_count()} CPUs; "
        f"{outlets.samples_pushed} samples, {outlets.markers_pushed} markers pushed"
    )
    print()
    print("| per tick | median | p99 |")
    print("|---|---|---|")
    print(
        f"| sink call (enqueue) | {statistics.median(costs) * us:.1f} µs | "
        f"{_percentile(costs, 0.99) * us:.1f} µs |"
    )
    print(
        f"| tick without LSL | {statistics.median(base) * us:.1f} µs | "
        f"{_percentile(base, 0.99) * us:.1f} µs |"
    )
    print(
        f"| tick with LSL | {statistics.median(with_lsl) * us:.1f} µs | "
        f"{_percentile(with_lsl, 0.99) * us:.1f} µs |"
    )
    added = statistics.median(with_lsl) - statistics.median(base)
    print(
        f"| added by LSL | {added * us:.1f} µs | "
        f"{(_percentile(with_lsl, 0.99) - _percentile(base, 0.99)) * us:.1f} µs |"
    )


if __name__ == "__main__":
    main()
