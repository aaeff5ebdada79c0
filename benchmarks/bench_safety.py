"""How long the safety monitor takes per balance-loop tick, and the director per trial.

Run ``python benchmarks/bench_safety.py [--quick]``. Prints a markdown table of
the median and 99th-percentile time per call in microseconds, and the
threshold-to-calm latency in ticks for the dwell-free and default-dwell cases.
The monitor runs inside the loop's tick (250 Hz = 4 ms budget, 1 kHz = 1 ms),
so its p99 is what matters.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

from vrbalance.balance.state import BalanceState
from vrbalance.director.director import Baseline, Director, TrialOutcome
from vrbalance.director.envelope import MonitorThresholds, SafetyEnvelope
from vrbalance.director.monitor import MonitorMemory, MonitorStatus, SafetyMonitor, evaluate
from vrbalance.director.probe import MonitorProbe, synthetic_stream


def _times_us(fn, items, repeat: int) -> list[float]:
    out: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(repeat):
        for item in items:
            t0 = clock()
            fn(item)
            out.append((clock() - t0) / 1e3)
    return out


def _row(name: str, times: list[float]) -> str:
    times = sorted(times)
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    return (
        f"| {name} | {len(times)} | {statistics.median(times):.1f} | {p99:.1f} | {times[-1]:.1f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds (smoke test)")
    args = parser.parse_args()
    repeat = 1 if args.quick else 10
    env = SafetyEnvelope()

    quiet = list(synthetic_stream("quiet", duration_s=2.0 if args.quick else 8.0).states)
    fall = list(synthetic_stream("head_fall").states)
    lean = list(synthetic_stream("lean_out").states)

    rows = []
    monitor = SafetyMonitor(env)
    # Keep time increasing across repeats so filters and dwell timers behave as live.
    span = quiet[-1].t_s + 0.004

    def stepped(states: list[BalanceState], k: int) -> list[BalanceState]:
        return [
            dataclasses.replace(s, t_s=s.t_s + k * span, tick=s.tick + k * len(states))
            for s in states
        ]

    quiet_all = [s for k in range(repeat) for s in stepped(quiet, k)]
    rows.append(
        _row("SafetyMonitor.step, quiet stance (no trigger)", _times_us(monitor.step, quiet_all, 1))
    )

    def fresh_run(states: list[BalanceState]) -> list[float]:
        out: list[float] = []
        for _ in range(repeat):
            m = SafetyMonitor(env)
            out += _times_us(m.step, states, 1)
        return out

    rows.append(_row("SafetyMonitor.step, fall (triggers, events)", fresh_run(fall)))
    rows.append(_row("SafetyMonitor.step, lean out of the BoS", fresh_run(lean)))

    memory = MonitorMemory()
    status = MonitorStatus()

    def pure(state: BalanceState) -> None:
        nonlocal memory
        memory, _ = evaluate(memory, state, status, env)

    rows.append(_row("evaluate (pure core), quiet stance", _times_us(pure, quiet_all, 1)))

    ladder = [{"optic_flow_mps": 0.1 * i} for i in range(15)]
    director = Director({"park": ladder}, env)
    director.reset(seed=0, options={"baseline": Baseline(0.006, 0.08)})
    outcomes = [
        TrialOutcome("park", 1, float(i), 0.006 * (1.5 if i % 4 else 3.5), 0.06)
        for i in range(200 if args.quick else 2000)
    ]
    rows.append(_row("Director.step (between trials)", _times_us(director.step, outcomes, 1)))

    print("| what | calls | median us | p99 us | max us |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(r)

    print()
    print("| latency: threshold crossing -> calm verdict | rate | ticks | of which dwell |")
    print("|---|---:|---:|---:|")
    for dwell_s in (0.0, env.monitor.margin_dwell_s):
        envd = SafetyEnvelope(monitor=MonitorThresholds(margin_dwell_s=dwell_s))
        for rate in (250.0, 1000.0):
            states = [
                dataclasses.replace(s, margin_cop_m=0.05)
                for s in synthetic_stream("lean_out", rate_hz=rate).states
            ]
            probe = MonitorProbe(SafetyMonitor(envd))
            probe.run(states)
            rep = probe.latency(edge_margin_m=envd.monitor.edge_margin_m, dwell_s=dwell_s)
            print(
                f"| XCoM margin < edge, dwell {dwell_s:g} s | {rate:g} Hz | "
                f"{rep.latency_ticks} | {rep.dwell_ticks} |"
            )
    for name in ("step_off", "cop_jump", "head_lost"):
        sc = synthetic_stream(name)
        probe = MonitorProbe(SafetyMonitor(env))
        probe.run(sc.states)
        calm = probe.first_tick()
        print(
            f"| {name} (no dwell) | 250 Hz | {None if calm is None else calm - sc.onset_tick} | 0 |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
