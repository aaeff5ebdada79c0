"""Benchmark the moving crowd: model step and per-frame Python time of the scene.

Usage::

    python benchmarks/bench_crowd.py [--quick]

Prints markdown tables:

1. ``CrowdModel.step`` at 50, 100 and 200 pedestrians (hardest level's other
   parameters), one 90 Hz headset frame per step (1/90 s, one sub-step), and at
   1/30 s (two sub-steps): median and p99.
2. The crowd scene offscreen at 1280 x 720, level 1 and the highest level
   (200 pedestrians): the scene's Python time per frame (model step + copying
   the pedestrians into the instancing arrays, ``scene.last_update_s``) and the
   whole frame (Python + Panda3D cull/draw through Mesa llvmpipe here).
3. For comparison, the design *not* chosen, same square and model at the
   highest level: one node per pedestrian plus six limb nodes, moved with
   ``setPosHpr`` / ``setP`` from Python every frame (Python and frame time).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time

import numpy as np

from vrbalance.world.crowd import MAX_PEDESTRIANS, CrowdLevel, CrowdModel


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


def bench_scene(n_frames: int) -> list[tuple[int, int, float, float, float, float]]:
    from vrbalance.config.scenes import load_scene
    from vrbalance.world.app import WorldApp

    top = load_scene("crowd").n_levels
    rows = []
    with WorldApp(output="offscreen", size_px=(1280, 720), scene="crowd", overlay=False) as app:
        for level in (1, top):
            app.set_scene("crowd", level)
            app.step_frames(30)
            python_s, frame_s = [], []
            for _ in range(n_frames):
                t0 = time.perf_counter()
                app.step_frames(1, dt_s=1 / 90)
                frame_s.append(time.perf_counter() - t0)
                python_s.append(app.scene.last_update_s)
            rows.append((level, app.scene.drawn_count, *_stats_ms(python_s), *_stats_ms(frame_s)))
    return rows


def _limb_parts() -> dict[int, object]:
    """The instanced person mesh split by part id (body, thighs, arms, shins)."""
    from vrbalance.world import geometry as geo
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
            mesh.positions[used],
            mesh.normals[used],
            mesh.colors[used],
            mesh.uvs[used],
            remap[tris],
        )
    return parts


def bench_per_node_alternative(n_frames: int) -> tuple[float, float, float, float]:
    """The design not chosen: a node per pedestrian and per limb, moved from Python.

    Same square, same model, 200 pedestrians; the instanced crowd is hidden and
    replaced by 200 x 7 GeomNodes (body, two thighs, two arms, two shins; shins
    hang under the thighs) whose transforms Python sets every frame. Returns
    (Python median, p99, frame median, p99) in ms.
    """
    from panda3d.core import NodePath

    from vrbalance.config.scenes import load_scene
    from vrbalance.world import geometry as geo
    from vrbalance.world.app import WorldApp
    from vrbalance.world.scenes.crowd import HIP_Z_M, KNEE_Z_M, SHOULDER_Z_M

    top = load_scene("crowd").n_levels
    parts = _limb_parts()
    geoms = {k: geo.to_geom_node(m, f"part{k}") for k, m in parts.items()}
    with WorldApp(
        output="offscreen", size_px=(1280, 720), scene="crowd", level=top, overlay=False
    ) as app:
        scene = app.scene
        scene.people.hide()
        holder = scene.world.attachNewNode("per-node-crowd")
        roots, limbs = [], []
        for i in range(scene.model.capacity):
            root = holder.attachNewNode(f"p{i}")
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
            roots.append(root)
            limbs.append(pivots)
        model = scene.model
        python_s, frame_s = [], []
        for k in range(n_frames + 10):
            t0 = time.perf_counter()
            model.step(1 / 90)
            st = model.state()
            h_deg = np.degrees(st.facing_rad) - 90.0
            swing = np.degrees(st.gait_amplitude * np.sin(st.gait_phase_rad))
            flex = np.degrees(st.gait_amplitude * np.cos(st.gait_phase_rad))
            for i in range(model.capacity):
                root = roots[i]
                if not st.active[i]:
                    root.hide()
                    continue
                root.show()
                root.setPosHpr(st.position_m[i, 0], st.position_m[i, 1], 0.0, h_deg[i], 0, 0)
                s = float(swing[i])
                f = float(flex[i])
                lg = limbs[i]
                lg[0].setP(0.44 * s)
                lg[1].setP(-0.44 * s)
                lg[2].setP(-0.35 * s)
                lg[3].setP(0.35 * s)
                lg[4].setP(-0.95 * max(f, 0.0))
                lg[5].setP(-0.95 * max(-f, 0.0))
            t1 = time.perf_counter()
            app.base.graphicsEngine.renderFrame()
            t2 = time.perf_counter()
            if k >= 10:
                python_s.append(t1 - t0)
                frame_s.append(t2 - t0)
    return (*_stats_ms(python_s), *_stats_ms(frame_s))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds (smoke test)")
    args = parser.parse_args(argv)
    n_steps = 100 if args.quick else 2000
    n_frames = 20 if args.quick else 300

    print(f"# Crowd benchmark ({platform.machine()}, Python {sys.version.split()[0]})")
    print()
    print("## CrowdModel.step")
    print()
    print("| pedestrians | frame step | median ms | p99 ms |")
    print("|---:|---|---:|---:|")
    for count, label, med, p99 in bench_model(n_steps):
        print(f"| {count} | {label} | {med:.3f} | {p99:.3f} |")
    print()
    print("## Crowd scene, offscreen 1280x720, dt 1/90 s")
    print()
    print(
        "| level | pedestrians drawn | Python median ms | Python p99 ms | frame median ms "
        "| frame p99 ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    rows = bench_scene(n_frames)
    for level, drawn, pm, pp, fm, fp in rows:
        print(f"| {level} | {drawn} | {pm:.3f} | {pp:.3f} | {fm:.1f} | {fp:.1f} |")
    top = rows[-1][0]
    print()
    pm, pp, fm, fp = bench_per_node_alternative(n_frames)
    print(f"## Not chosen: one node per pedestrian and per limb (level {top}), moved from Python")
    print()
    print("| pedestrians | Python median ms | Python p99 ms | frame median ms | frame p99 ms |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {MAX_PEDESTRIANS} | {pm:.3f} | {pp:.3f} | {fm:.1f} | {fp:.1f} |")
    print()
    print(
        "Python ms = time inside scene.update (model step + instancing arrays); "
        "frame ms = step_frames(1): Python plus Panda3D cull and draw (llvmpipe on CPU here)."
    )
    return 0 if math.isfinite(pm) else 1


if __name__ == "__main__":
    sys.exit(main())
