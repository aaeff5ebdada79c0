"""Frame time and Python-side time per frame of every scene, lowest and highest level.

Renders each scene (park, stairs, crowd when installed) at level 1 and at its
highest level, offscreen at 1280 x 720 with the operator overlay, and reports:

* frame time: wall time of one whole frame (``taskMgr.step``: Python tasks,
  culling, drawing; offscreen buffers run with ``gl-finish`` so the GPU work
  is inside the measurement), median and 99th percentile;
* Python-side time of the world's frame task, and within it the scene update
  (animation, crowd model) and the overlay, measured with ``perf_counter``
  inside the task (:class:`vrbalance.world.app.FrameTiming`).

The issue's target is Python-side <= 2 ms per frame with 200 pedestrians, so
that a headset's 11.1 ms (90 Hz) is left to the GPU.

    python benchmarks/bench_world.py            # 1280x720, 60 frames per case
    python benchmarks/bench_world.py --quick    # smoke test: 640x360, 15 frames
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from vrbalance.clock import ManualClock
from vrbalance.config.scenes import available_scenes, load_scene
from vrbalance.world.app import WorldApp


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def bench_case(scene: str, level: int, size: tuple[int, int], warmup: int, frames: int) -> dict:
    with WorldApp(
        output="offscreen", size_px=size, scene=scene, level=level, clock=ManualClock()
    ) as app:
        renderer = app.base.win.getGsg().getDriverRenderer()
        app.step_frames(warmup)
        frame_s, python_s, scene_s, overlay_s = [], [], [], []
        for _ in range(frames):
            t0 = time.perf_counter()
            app.step_frames(1)
            frame_s.append(time.perf_counter() - t0)
            timing = app.last_timing
            python_s.append(timing.total_s)
            scene_s.append(timing.scene_s)
            overlay_s.append(timing.overlay_s)
        extra = ""
        crowd = getattr(app.scene, "model", None) or getattr(app.scene, "crowd", None)
        count = getattr(crowd, "active_count", None)
        if count is not None:
            extra = f"{count} pedestrians"
    return {
        "scene": scene,
        "level": level,
        "frame_med": statistics.median(frame_s) * 1e3,
        "frame_p99": _pct(frame_s, 99) * 1e3,
        "py_med": statistics.median(python_s) * 1e3,
        "py_p99": _pct(python_s, 99) * 1e3,
        "scene_med": statistics.median(scene_s) * 1e3,
        "overlay_med": statistics.median(overlay_s) * 1e3,
        "renderer": renderer,
        "extra": extra,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few frames, smaller buffer")
    parser.add_argument("--frames", type=int, default=None, help="measured frames per case")
    args = parser.parse_args(argv)
    size = (640, 360) if args.quick else (1280, 720)
    warmup = 5 if args.quick else 20
    frames = args.frames or (15 if args.quick else 60)
    scenes = [s for s in ("park", "stairs", "crowd") if s in available_scenes()]
    rows = []
    for scene in scenes:
        top = load_scene(scene).n_levels
        for level in (1, top):
            rows.append(bench_case(scene, level, size, warmup, frames))
    print(
        f"World rendering, {size[0]}x{size[1]} offscreen with overlay, {frames} frames per "
        f"case after {warmup} warm-up; {rows[0]['renderer']}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| scene | level | frame median (ms) | frame p99 (ms) | Python/frame median (ms) "
        "| Python p99 (ms) | scene update median (ms) | overlay median (ms) | notes |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['scene']} | {r['level']} | {r['frame_med']:.1f} | {r['frame_p99']:.1f} "
            f"| {r['py_med']:.2f} | {r['py_p99']:.2f} | {r['scene_med']:.2f} "
            f"| {r['overlay_med']:.3f} | {r['extra']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
