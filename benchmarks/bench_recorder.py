"""Recorder benchmark: what recording costs the balance loop, and how fresh the disk is.

Measures, for a recorder fed like a 250 Hz (or faster) balance loop with a
four-cell plate frame, a head pose and a BalanceState every tick:

- the producer's cost per tick (the loop thread only enqueues), median and p99;
- the writer's throughput (rows per second it can format and write);
- disk freshness: how old the newest row on disk is, sampled while recording
  (the crash-loss window: must stay under 1 s, typically the 0.25 s flush).

Run: ``python benchmarks/bench_recorder.py [--quick]``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from vrbalance.balance.state import BalanceState
from vrbalance.samples import HeadPose, PlateFrame
from vrbalance.sessions.recorder import SessionRecorder


def _tick_objects(k: int, t: float) -> tuple[PlateFrame, HeadPose, BalanceState]:
    frame = PlateFrame(k, k * 0.004, t, (170.0 + k % 7, 165.2, 120.1, 118.4))
    pose = HeadPose(None, t, (0.001 * (k % 5), 0.02, 1.6))
    state = BalanceState(
        tick=k,
        t_s=t,
        stance="feet_apart",
        cop_m=(0.001, 0.02),
        vertical_force_n=580.0,
        plate_loaded=True,
        com_m=(0.001, 0.019),
        com_velocity_mps=(0.0, 0.01),
        xcom_m=(0.001, 0.022),
        margin_xcom_m=0.1,
        margin_cop_m=0.1,
        head_position_m=(0.0, 0.02, 1.6),
        head_age_s=0.002,
        plate_age_s=0.003,
        sway_angle_ap_rad=0.01,
    )
    return frame, pose, state


def _last_t_on_disk(path: Path) -> float | None:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 4096))
        lines = fh.read().split(b"\n")
    complete = [ln for ln in lines[:-1] if ln and not ln.startswith(b"tick")]
    if not complete:
        return None
    return float(complete[-1].split(b",")[2])


def run(rate_hz: float, duration_s: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "p" / "s"
        rec = SessionRecorder(folder, {"session_id": "bench", "patient_id": "p"})
        rec.start()
        costs: list[float] = []
        ages: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            state_csv = folder / "state.csv"
            while not stop.wait(0.05):
                last = _last_t_on_disk(state_csv)
                if last is not None:
                    ages.append(time.perf_counter() - last)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        period = 1.0 / rate_hz
        t0 = time.perf_counter()
        k = 0
        while True:
            deadline = t0 + k * period
            now = time.perf_counter()
            if now - t0 >= duration_s:
                break
            if deadline > now:
                time.sleep(deadline - now)
            t = time.perf_counter()
            frame, pose, state = _tick_objects(k, t)
            c0 = time.perf_counter_ns()
            rec.plate(k, 0, [frame])
            rec.head(k, 0, pose)
            rec.state(0, state, level=1, response="none", plate_status="streaming")
            costs.append((time.perf_counter_ns() - c0) / 1000.0)
            k += 1
        stop.set()
        sampler.join()
        c0 = time.perf_counter()
        rec.close()
        close_s = time.perf_counter() - c0
        # Writer throughput: a burst of rows enqueued at once, timed to the final fsync.
        folder2 = Path(tmp) / "p" / "burst"
        rec2 = SessionRecorder(folder2, {"session_id": "burst", "patient_id": "p"})
        rec2.start()
        n_burst = 20000 if duration_s > 3 else 5000
        objs = [_tick_objects(i, float(i)) for i in range(n_burst)]
        b0 = time.perf_counter()
        for i, (frame, pose, state) in enumerate(objs):
            rec2.plate(i, 0, [frame])
            rec2.head(i, 0, pose)
            rec2.state(0, state)
        rec2.close()
        burst_s = time.perf_counter() - b0
    costs.sort()
    return {
        "ticks": float(k),
        "enqueue_median_us": statistics.median(costs),
        "enqueue_p99_us": costs[int(0.99 * (len(costs) - 1))],
        "writer_rows_per_s": 3 * n_burst / burst_s,
        "disk_age_median_s": statistics.median(ages) if ages else float("nan"),
        "disk_age_max_s": max(ages) if ages else float("nan"),
        "close_s": close_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds only")
    args = parser.parse_args()
    duration = 2.0 if args.quick else 10.0
    rows = [(rate, run(rate, duration)) for rate in ((250.0,) if args.quick else (250.0, 1000.0))]
    print(
        "| loop rate (Hz) | ticks | enqueue/tick median (µs) | p99 (µs) | writer rows/s "
        "| newest row on disk: median age (s) | max age (s) | close (s) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rate, r in rows:
        print(
            f"| {rate:.0f} | {r['ticks']:.0f} | {r['enqueue_median_us']:.1f} "
            f"| {r['enqueue_p99_us']:.1f} | {r['writer_rows_per_s']:.0f} "
            f"| {r['disk_age_median_s']:.3f} | {r['disk_age_max_s']:.3f} | {r['close_s']:.3f} |"
        )


if __name__ == "__main__":
    main()
