"""``python -m vrbalance.xr``: run a scene on the active OpenXR runtime and report.

A check for a clinic's installation (and for a runtime such as Monado in CI):
opens the world in a desktop window (Panda3D ``pandagl``, the OpenGL context a
runtime can share), starts the headset, runs a 250 Hz loop thread that asks
the head-pose source for the head every tick (as the balance loop does), and
after ``--seconds`` asks the runtime to end the session. Prints a markdown
table: runtime, reference space, swapchain format, session states seen,
frames submitted, head poses received per second.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from vrbalance.clock import MonotonicClock
from vrbalance.errors import VrBalanceError

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Run the check; returns the exit status (0 when frames and poses flowed)."""
    parser = argparse.ArgumentParser(prog="python -m vrbalance.xr", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run (s)")
    parser.add_argument("--scene", default="park", help="scene name (scenes/<name>.toml)")
    parser.add_argument("--rate-hz", type=float, default=250.0, help="head-pose loop rate")
    parser.add_argument("--mirror", choices=("left", "both", "none"), default="left")
    parser.add_argument(
        "--size", type=int, nargs=2, default=(1280, 720), metavar=("W", "H"), help="window size"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except VrBalanceError as exc:
        print(f"vrbalance xr: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from vrbalance.realtime.loop import FixedRateLoop
    from vrbalance.world.app import WorldApp
    from vrbalance.xr.head_source import XrHeadPoseSource
    from vrbalance.xr.output import XrOutput

    clock = MonotonicClock()
    head = XrHeadPoseSource(clock)
    received = [0, 0]  # poses, ticks without a pose
    lock = threading.Lock()

    def tick(_tick: int, t_s: float) -> None:
        pose = head.pose_at(t_s)
        with lock:
            received[0 if pose is not None else 1] += 1

    events: list[str] = []
    with (
        WorldApp(
            output="window",
            size_px=tuple(args.size),
            scene=args.scene,
            head_source=head,
            clock=clock,
        ) as world,
        XrOutput(
            world,
            head_source=head,
            clock=clock,
            mirror=args.mirror,
            on_event=lambda e: events.append(f"{e.kind}: {e.message}"),
        ) as xr_out,
    ):
        loop = FixedRateLoop(tick, rate_hz=args.rate_hz, clock=clock, name="xr-head-check")
        t_start = clock.now_s()

        def stop_after(task: object) -> object:
            from direct.task import Task

            if clock.now_s() - t_start >= args.seconds:
                xr_out.request_exit()
                return Task.done
            return Task.cont

        world.base.taskMgr.add(stop_after, "xr-check-timer")
        loop.start()
        try:
            world.run()  # returns when the runtime reaches EXITING
        finally:
            loop.stop()
        elapsed = clock.now_s() - t_start
        stats = xr_out.stats()
        session = xr_out.session
        loop_stats = loop.stats()
        rows = [
            ("runtime", session.runtime_name if session else "-"),
            ("reference space", session.space_type if session else "-"),
            ("swapchain format / eye size", f"{_fmt(session)}"),
            ("head time conversion", head.mode),
            ("session states seen", " -> ".join(stats.states_seen)),
            ("frames begun / submitted / with layer", f"{stats.frames_begun} / "
             f"{stats.frames_submitted} / {stats.frames_rendered}"),
            ("frame rate (Hz)", f"{stats.frames_submitted / elapsed:.1f}"),
            ("head poses received by the loop (/s)", f"{received[0] / elapsed:.1f}"),
            ("loop ticks without a pose", str(received[1])),
            ("loop ticks / skipped", f"{loop_stats.ticks} / {loop_stats.skipped}"),
            ("XR Python per frame (ms)", f"{1e3 * stats.python_s_per_frame:.2f}"),
            ("run time (s)", f"{elapsed:.1f}"),
        ]  # fmt: skip
    print("| what | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    for line in events:
        log.info("event %s", line)
    return 0 if stats.frames_rendered > 0 and received[0] > 0 else 1


def _fmt(session: object) -> str:
    from vrbalance.xr.session import format_name

    fmt = getattr(session, "swapchain_format", None)
    sizes = getattr(session, "view_sizes", ())
    return f"{format_name(fmt) if fmt else '-'} / {' + '.join(f'{w}x{h}' for w, h in sizes)}"


if __name__ == "__main__":
    sys.exit(main())
