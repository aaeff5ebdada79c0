"""Benchmark: timing of the fixed-rate balance loop, idle and beside a busy renderer.

Runs the real balance pipeline (head sway script -> BalanceEstimator ->
SafetyMonitor -> publish) at 250 Hz and 1 kHz and reports, per scenario, the
period error ``|interval between tick starts - period|`` (p50/p99/max), the
lateness of tick starts after their absolute deadlines, overruns and skipped
deadlines. Scenarios, each at both rates:

* ``naive sleep``: ``step(); time.sleep(period)`` (the baseline; it drifts);
* ``fixed, sleep only``: :class:`FixedRateLoop` with ``spin_s=0``;
* ``fixed, hybrid``: :class:`FixedRateLoop` with its default spin window;
* ``hybrid + 1 µs timer slack`` and ``+ SCHED_FIFO``: the same with the
  loop thread tuned (:mod:`vrbalance.realtime.priority`); FIFO is refused,
  and said so, without the privilege;
* under load, with the main thread running either heavy Python/numpy work
  (``busy main``) or a Panda3D offscreen scene (2000 cards, 300 of them moved
  from Python each frame; ``Panda3D render main``):
  the loop in a thread, untuned; in a thread with ``RECOMMENDED_TUNING`` (0.5 ms
  GIL switch interval, 1 µs timer slack, SCHED_FIFO); in a forked child
  process with 1 µs timer slack and SCHED_FIFO.

The last column is the main thread's throughput beside the loop (work items/s
or frames/s), so the cost of the loop to the renderer shows too. Prints
markdown.

Usage::

    python benchmarks/bench_loop.py [--quick] [--seconds S]
"""

from __future__ import annotations

import os

# One BLAS thread: a multi-threaded BLAS spinning on a shared 2-core machine
# measures the BLAS, not the loop (and the renderer does no large BLAS work).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

from vrbalance.balance.estimator import BalanceEstimator  # noqa: E402
from vrbalance.balance.geometry import Body  # noqa: E402
from vrbalance.balance.stance import make_stance  # noqa: E402
from vrbalance.clock import ManualClock, MonotonicClock  # noqa: E402
from vrbalance.config.plates import load_foot_template  # noqa: E402
from vrbalance.devices.head import ScriptedHeadSource, SwayScript  # noqa: E402
from vrbalance.director.monitor import MonitorStatus, PlateStatus, SafetyMonitor  # noqa: E402
from vrbalance.realtime.loop import DEFAULT_SPIN_S, FixedRateLoop, LoopState, LoopStats  # noqa: E402
from vrbalance.realtime.pipeline import RECOMMENDED_TUNING, BalanceLoop  # noqa: E402


@dataclass(frozen=True)
class Row:
    scenario: str
    rate_hz: float
    achieved_hz: float | None
    err_p50_s: float | None
    err_p99_s: float | None
    err_max_s: float | None
    late_p99_s: float | None
    overruns: int | None
    skipped: int | None
    step_p50_s: float | None
    work_per_s: float | None = None


def make_balance_loop(
    rate_hz: float, spin_s: float, clock: object | None = None, **tuning: float
) -> BalanceLoop:
    """The product's pipeline, head-only, with a scripted quiet-stance sway."""
    body = Body(height_m=1.75, mass_kg=70.0)
    stance = make_stance("feet_apart", body, load_foot_template("adult"))
    return BalanceLoop(
        BalanceEstimator(stance, body),
        clock=clock if clock is not None else MonotonicClock(),  # type: ignore[arg-type]
        rate_hz=rate_hz,
        head=ScriptedHeadSource(SwayScript(seed=1, height_m=1.64)),
        monitor=SafetyMonitor(status=MonitorStatus(plate=PlateStatus.NONE)),
        spin_s=spin_s,
        **tuning,  # type: ignore[arg-type]
    )


def row_from_stats(name: str, s: LoopStats, work_per_s: float | None = None) -> Row:
    return Row(
        name,
        s.rate_hz,
        s.achieved_rate_hz,
        s.period_error_p50_s,
        s.period_error_p99_s,
        s.period_error_max_s,
        s.lateness_p99_s,
        s.overruns,
        s.skipped,
        s.step_p50_s,
        work_per_s,
    )


SLACK = {"timer_slack_ns": 1000}
RT = {"timer_slack_ns": 1000, "fifo_priority": 10}


# ------------------------------------------------------------------ scenarios
def naive(rate_hz: float, seconds: float) -> Row:
    """``step(); time.sleep(period)``: what a first attempt looks like."""
    loop = make_balance_loop(rate_hz, 0.0)
    period = 1.0 / rate_hz
    starts: list[float] = []
    steps: list[float] = []
    end = time.perf_counter() + seconds
    k = 0
    while True:
        t = time.perf_counter()
        if t >= end:
            break
        starts.append(t)
        loop.tick(k, t)
        steps.append(time.perf_counter() - t)
        time.sleep(period)
        k += 1
    errors = np.abs(np.diff(starts) - period)
    return Row(
        "naive sleep",
        rate_hz,
        (len(starts) - 1) / (starts[-1] - starts[0]),
        float(np.percentile(errors, 50)),
        float(np.percentile(errors, 99)),
        float(errors.max()),
        None,
        None,
        None,
        float(np.median(steps)),
    )


def fixed(rate_hz: float, seconds: float, spin_s: float, name: str, **tuning: float) -> Row:
    loop = make_balance_loop(rate_hz, spin_s, **tuning)
    loop.run(until_s=time.perf_counter() + seconds)
    return row_from_stats(name, loop.stats())


def busy_work(rng: np.random.Generator) -> None:
    """One item of render-side Python: scene bookkeeping in pure Python, some numpy."""
    acc = 0.0
    for i in range(3000):
        acc += math.sin(i * 0.001) * i
    nodes = {f"node{i}": (i, i * 0.5) for i in range(300)}
    acc += sum(v[1] for v in nodes.values())
    a = rng.standard_normal((120, 120))
    acc += float((a @ a).trace())
    acc += float(np.sort(rng.standard_normal(5000))[2500])


def work_until(done: Callable[[], bool]) -> float:
    """Run busy work until ``done()``; return items per second."""
    rng = np.random.default_rng(0)
    n = 0
    t0 = time.perf_counter()
    while not done():
        busy_work(rng)
        n += 1
    return n / (time.perf_counter() - t0)


def idle_work_rate(seconds: float) -> float:
    end = time.perf_counter() + seconds
    return work_until(lambda: time.perf_counter() >= end)


Load = Callable[[Callable[[], bool]], float]


def _named(name: str, loop: BalanceLoop) -> str:
    tuning = loop._loop.tuning
    if tuning is not None and tuning.notes:
        return f"{name} ({'; '.join(tuning.notes)})"
    return name


def thread_loaded(rate_hz: float, seconds: float, load: Load, name: str, **tuning: float) -> Row:
    """The loop in a thread while ``load`` runs in the main thread."""
    loop = make_balance_loop(rate_hz, DEFAULT_SPIN_S, **tuning)
    loop.start(until_s=time.perf_counter() + seconds)
    work = load(lambda: loop.state is not LoopState.RUNNING)
    loop.join()
    return row_from_stats(_named(name, loop), loop.stats(), work)


class OffscreenWorld:
    """A Panda3D offscreen scene standing in for the world: 2000 cards, 300 moved in Python."""

    def __init__(self) -> None:
        from panda3d.core import CardMaker, loadPrcFileData

        loadPrcFileData(
            "",
            "load-display p3headlessgl\nwindow-type offscreen\nwin-size 1280 720\n"
            "audio-library-name null\nsync-video false\nnotify-level error\n",
        )
        from direct.showbase.ShowBase import ShowBase

        self.base = ShowBase()
        cm = CardMaker("card")
        cm.setFrame(-0.5, 0.5, -0.5, 0.5)
        self.root = self.base.render.attachNewNode("root")
        self.nodes = []
        for i in range(2000):
            node = self.root.attachNewNode(cm.generate())
            node.setPos((i % 50) - 25, 40 + (i // 50), (i % 7) - 3)
            self.nodes.append(node)
        self.base.camera.setPos(0, -10, 0)
        self.frame = 0

    def render_until(self, done: Callable[[], bool]) -> float:
        """Render frames (moving 300 nodes from Python each) until ``done()``; return fps."""
        n = 0
        t0 = time.perf_counter()
        while not done():
            self.frame += 1
            for i, node in enumerate(self.nodes[:300]):
                node.setH((self.frame + i) % 360)
                node.setZ(math.sin(0.05 * self.frame + i) * 2.0)
            self.base.graphicsEngine.renderFrame()
            n += 1
        return n / (time.perf_counter() - t0)


def _child(
    rate_hz: float, seconds: float, tuning: dict[str, float], conn: mp.connection.Connection
) -> None:
    loop = make_balance_loop(rate_hz, DEFAULT_SPIN_S, **tuning)
    loop.run(until_s=time.perf_counter() + seconds)
    conn.send((loop.stats(), _named("", loop)))
    conn.close()


def process_loaded(rate_hz: float, seconds: float, load: Load, name: str, **tuning: float) -> Row:
    """The loop in a forked child process while ``load`` runs in this one."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(rate_hz, seconds, tuning, child), daemon=True)
    proc.start()
    child.close()
    work = load(lambda: parent.poll())
    stats, notes = parent.recv()
    proc.join()
    return row_from_stats(name + notes, stats, work)


def per_tick_overhead(n: int) -> tuple[float, float]:
    """Loop bookkeeping per tick (empty step) and one full pipeline tick, in s (ManualClock)."""
    clock = ManualClock()
    loop = FixedRateLoop(lambda k, t: None, rate_hz=1000, clock=clock)
    t0 = time.perf_counter()
    loop.run(max_ticks=n)
    empty = (time.perf_counter() - t0) / n
    bl = make_balance_loop(1000, DEFAULT_SPIN_S, clock=ManualClock())
    t0 = time.perf_counter()
    bl.run(max_ticks=n)
    full = (time.perf_counter() - t0) / n
    return empty, full


# ----------------------------------------------------------------------- main
def ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="0.5 s per scenario: a smoke test of ~15 s"
    )
    parser.add_argument("--seconds", type=float, default=None, help="seconds per scenario")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (0.5 if args.quick else 30.0)

    load_before = os.getloadavg()
    empty_s, full_s = per_tick_overhead(2000 if args.quick else 20000)
    idle_rate = idle_work_rate(min(seconds, 5.0))
    try:
        world: OffscreenWorld | None = OffscreenWorld()
        end = time.perf_counter() + min(seconds, 5.0)
        idle_fps: float | None = world.render_until(lambda: time.perf_counter() >= end)
    except Exception as exc:  # no GL here: say so, run the rest
        print(f"(Panda3D offscreen unavailable, render scenario skipped: {exc!r})")
        world, idle_fps = None, None
    rows: list[Row] = []
    for rate in (250.0, 1000.0):
        rows.append(naive(rate, seconds))
        rows.append(fixed(rate, seconds, 0.0, "fixed, sleep only"))
        hybrid = f"fixed, hybrid ({DEFAULT_SPIN_S * 1e3:g} ms spin)"
        rows.append(fixed(rate, seconds, DEFAULT_SPIN_S, hybrid))
        rows.append(fixed(rate, seconds, DEFAULT_SPIN_S, "hybrid + 1 µs timer slack", **SLACK))
        rows.append(fixed(rate, seconds, DEFAULT_SPIN_S, "hybrid + slack + SCHED_FIFO", **RT))
        loads: list[tuple[str, Load]] = [("busy main", work_until)]
        if world is not None:
            loads.append(("Panda3D render main", world.render_until))
        for load_name, load in loads:
            rows.append(thread_loaded(rate, seconds, load, f"thread + {load_name}"))
            tuned = f"thread (RECOMMENDED_TUNING) + {load_name}"
            rows.append(thread_loaded(rate, seconds, load, tuned, **RECOMMENDED_TUNING))
            rows.append(
                process_loaded(rate, seconds, load, f"process (slack, FIFO) + {load_name}", **RT)
            )
    load_after = os.getloadavg()

    print("## Fixed-rate loop timing\n")
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {seconds:g} s per scenario; "
        f"load average (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, "
        f"after {'/'.join(f'{x:.2f}' for x in load_after)}.\n"
    )
    print(
        f"Per-tick cost (ManualClock, no waiting): loop bookkeeping {empty_s * 1e6:.2f} µs; "
        f"full pipeline tick (sway head, BalanceEstimator, SafetyMonitor, publish) "
        f"{full_s * 1e6:.1f} µs. With no loop running: busy work {idle_rate:.0f} items/s, "
        f"Panda3D offscreen {'-' if idle_fps is None else f'{idle_fps:.0f}'} fps. The last "
        "column is the same figure beside the loop (items/s or fps).\n"
    )
    print(
        "| scenario | rate Hz | achieved Hz | period error p50 / p99 / max (ms) "
        "| lateness p99 (ms) | overruns | skipped | step p50 (µs) | busy items/s |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        achieved = "-" if r.achieved_hz is None else f"{r.achieved_hz:.2f}"
        step = "-" if r.step_p50_s is None else f"{r.step_p50_s * 1e6:.0f}"
        work = "-" if r.work_per_s is None else f"{r.work_per_s:.0f}"
        overruns = "-" if r.overruns is None else str(r.overruns)
        skipped = "-" if r.skipped is None else str(r.skipped)
        errors = f"{ms(r.err_p50_s)} / {ms(r.err_p99_s)} / {ms(r.err_max_s)}"
        print(
            f"| {r.scenario} | {r.rate_hz:g} | {achieved} | {errors} | {ms(r.late_p99_s)} "
            f"| {overruns} | {skipped} | {step} | {work} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
