"""Benchmark the moving crowd: model step and per-frame Python time of the scene.

Usage::

    python benchmarks/bench_crowd.py [--quick]

Prints markdown tables:

1. ``CrowdModel.step`` at 50, 100 and 200 pedestrians (hardest level's other
   parameters), one 90 Hz headset frame per step (1/90 s, one sub-step), and at
   1/30 s (two sub-steps): median and p99.
2. The crowd scene offscreen at 1280 x 720, level 1 and the highest level
   (200 pedestrians): the scene's Python time per frame (model step + copying
   the pedestrians into the instancing arrays) and the whole frame (Python +
   Panda3D cull/draw, finished on the GPU - Mesa llvmpipe here). At the
   highest level the chosen design (instancing) is interleaved with the one
   *not* chosen (a node per pedestrian and per limb, moved from Python) and
   with the empty square, in blocks of 10 frames, so that the load of a
   shared machine hits all three alike.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from typing import Any

import numpy as np

from vrbalance.world import geometry as geo
from vrbalance.world.crowd import CrowdLevel, CrowdModel


def _stats_ms(samples_s: list[float]) -> tuple[float, float]:
    a = np.asarray(samples_s) * 1e3
    return float(np.median(a)), float(np.percentile(a, 99))


def bench_model(n_steps: int) -> list[tuple[int, str, float, float]]:
    rows = []
    for count in (50, 100, 200):
        level = CrowdLevel(
            pedestrian_count=count,
            walking_speed_mps=1.7,
            passing_distance_m=0.8,
            crossing_directions=8,
            stop_turn_rate_hz=0.25,
            head_on=True,
        )
        for dt_s, label in ((1 / 90, "1/90 s (1 sub-step)"), (1 / 30, "1/30 s (2 sub-steps)")):
            model = CrowdModel(level, seed=1)
            for _ in range(50):  # warm-up: the crowd mixes, caches fill
                model.step(dt_s)
            samples = []
            for _ in range(n_steps):
                t0 = time.perf_counter()
                model.step(dt_s)
                samples.append(time.perf_counter() - t0)
            rows.append((count, label, *_stats_ms(samples)))
    return rows


def _limb_parts() -> dict[int, geo.Mesh]:
    """The instanced person mesh split by part id (body, thighs, arms, shins)."""
    from vrbalance.world.scenes.crowd import person_mesh

    mesh = person_mesh()
    part_of_vertex = np.rint(mesh.uvs[:, 0]).astype(int)
    parts = {}
    for part in np.unique(part_of_vertex):
        keep = part_of_vertex[mesh.triangles[:, 0]] == part
        tris = mesh.triangles[keep]
        used = np.unique(tris)
        remap = np.zeros(mesh.n_vertices, dtype=np.uint32)
        remap[used] = np.arange(used.size, dtype=np.uint32)
        parts[int(part)] = geo.Mesh(
            mesh.positions[used], mesh.normals[used], mesh.colors[used], mesh.uvs[used], remap[tris]
        )
    return parts


class _PerNodeCrowd:
    """The design not chosen: a node per pedestrian and per limb, moved from Python.

    200 x 7 GeomNodes (body, two thighs, two arms, two shins hanging under the
    thighs) under one holder, posed every frame from the model's state with
    ``setPosHpr`` / ``setP`` - the same gait as the shader's.
    """

    def __init__(self, parent: Any, capacity: int) -> None:
        from panda3d.core import NodePath

        from vrbalance.world.scenes.crowd import HIP_Z_M, KNEE_Z_M, SHOULDER_Z_M

        geoms = {k: geo.to_geom_node(m, f"part{k}") for k, m in _limb_parts().items()}
        self.holder = parent.attachNewNode("per-node-crowd")
        self.roots: list[Any] = []
        self.limbs: list[list[Any]] = []
        for i in range(capacity):
            root = self.holder.attachNewNode(f"p{i}")
            NodePath(geoms[0].makeCopy()).reparentTo(root)
            pivots = []
            for part, z in ((1, HIP_Z_M), (2, HIP_Z_M), (3, SHOULDER_Z_M), (4, SHOULDER_Z_M)):
                pivot = root.attachNewNode(f"pivot{part}")
                pivot.setZ(z)
                limb = NodePath(geoms[part].makeCopy())
                limb.reparentTo(pivot)
                limb.setZ(-z)
                pivots.append(pivot)
            for part, thigh in ((5, pivots[0]), (6, pivots[1])):
                knee = thigh.attachNewNode(f"knee{part}")
                knee.setZ(KNEE_Z_M - HIP_Z_M)
                shin = NodePath(geoms[part].makeCopy())
                shin.reparentTo(knee)
                shin.setZ(-KNEE_Z_M)
                pivots.append(knee)
            self.roots.append(root)
            self.limbs.append(pivots)

    def update(self, model: CrowdModel, dt_s: float) -> None:
        model.step(dt_s)
        st = model.state()
        h_deg = np.degrees(st.facing_rad) - 90.0
        swing = np.degrees(st.gait_amplitude * np.sin(st.gait_phase_rad))
        flex = np.degrees(st.gait_amplitude * np.cos(st.gait_phase_rad))
        for i, root in enumerate(self.roots):
            if not st.active[i]:
                root.hide()
                continue
            root.show()
            root.setPosHpr(st.position_m[i, 0], st.position_m[i, 1], 0.0, h_deg[i], 0.0, 0.0)
            s = float(swing[i])
            f = float(flex[i])
            lg = self.limbs[i]
            lg[0].setP(0.44 * s)
            lg[1].setP(-0.44 * s)
            lg[2].setP(-0.35 * s)
            lg[3].setP(0.35 * s)
            lg[4].setP(-0.95 * max(f, 0.0))
            lg[5].setP(-0.95 * max(-f, 0.0))


def bench_scene(n_frames: int) -> list[tuple[str, int, float, float, float, float]]:
    """Python and frame time per design, interleaved in blocks so machine load hits all alike.

    Each frame: Python update (scene.update, or the per-node loop) then
    ``renderFrame()`` (with ``gl-finish``, so the frame time includes the
    rasteriser). Rows: (design, pedestrians, Python median, p99, frame median, p99).
    """
    from vrbalance.config.scenes import load_scene
    from vrbalance.world.app import WorldApp

    top = load_scene("crowd").n_levels
    dt_s = 1 / 90
    rows = []
    with WorldApp(output="offscreen", size_px=(1280, 720), scene="crowd", overlay=False) as app:
        engine = app.base.graphicsEngine
        for level in (1, top):
            app.set_scene("crowd", level)
            app.step_frames(30)
            scene = app.scene
            per_node = _PerNodeCrowd(scene.world, scene.model.capacity) if level == top else None
            designs = ["instanced", "no people"] + (["per-node"] if per_node else [])
            samples: dict[str, tuple[list[float], list[float]]] = {d: ([], []) for d in designs}
            t_s = 0.0
            for block in range(max(1, n_frames // 10)):
                for design in designs:
                    if design == "instanced":
                        scene.people.show()
                    else:
                        scene.people.hide()
                    if per_node is not None:
                        if design == "per-node":
                            per_node.holder.show()
                        else:
                            per_node.holder.hide()
                    for k in range(11):
                        t0 = time.perf_counter()
                        if design == "instanced":
                            t_s += dt_s
                            scene.update(t_s, dt_s, (0.0, 0.0))
                        elif design == "per-node":
                            per_node.update(scene.model, dt_s)  # type: ignore[union-attr]
                        t1 = time.perf_counter()
                        engine.renderFrame()
                        t2 = time.perf_counter()
                        if k > 0 or block > 0:  # first frame after a switch: warm-up
                            samples[design][0].append(t1 - t0)
                            samples[design][1].append(t2 - t0)
            for design in designs:
                python_s, frame_s = samples[design]
                drawn = 0 if design == "no people" else scene.model.active_count
                label = f"level {level}, {design}"
                rows.append((label, drawn, *_stats_ms(python_s), *_stats_ms(frame_s)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds (smoke test)")
    args = parser.parse_args(argv)
    n_steps = 100 if args.quick else 2000
    n_frames = 20 if args.quick else 200

    print(f"# Crowd benchmark ({platform.machine()}, Python {sys.version.split()[0]})")
    print()
    print("## CrowdModel.step")
    print()
    print("| pedestrians | frame step | median ms | p99 ms |")
    print("|---:|---|---:|---:|")
    for count, label, med, p99 in bench_model(n_steps):
        print(f"| {count} | {label} | {med:.3f} | {p99:.3f} |")
    print()
    print("## Crowd scene, offscreen 1280x720, dt 1/90 s, designs interleaved")
    print()
    print(
        "| scene, drawing | pedestrians | Python median ms | Python p99 ms | frame median ms "
        "| frame p99 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    rows = bench_scene(n_frames)
    for label, drawn, pm, pp, fm, fp in rows:
        print(f"| {label} | {drawn} | {pm:.3f} | {pp:.3f} | {fm:.1f} | {fp:.1f} |")
    print()
    print(
        "Python = scene.update (model step + instancing arrays), or for per-node the model "
        "step + setPosHpr/setP of 1400 nodes; frame = Python + renderFrame() with gl-finish "
        "(Mesa llvmpipe, i.e. the CPU, on the development machine). 'no people' = the square "
        "alone (the renderer's floor)."
    )
    return 0 if all(math.isfinite(r[2]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
