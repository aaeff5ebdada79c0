"""``vrbalance demo``: the park in a window, a simulated plate, the balance loop and the overlay.

The demo is the whole product in miniature, wired by one function,
:func:`build_pipeline`:

* a simulated person on a simulated force plate, streaming real bytes through
  a pseudo-terminal (``SimulatedPlateServer``) into the real driver
  (``ForcePlate``) - or, with ``--no-plate``, head only;
* a head: the simulated person's head plus the desktop stand-in's lean and
  gaze (:class:`~vrbalance.world.desktop_pose.DesktopPose`: W/A/S/D lean,
  right mouse button looks around), one ``DesktopHead`` source that both the
  balance loop (every tick) and the camera (every frame) read;
* the balance loop (``BalanceLoop`` with ``BalanceEstimator``) in its own
  thread at 250 Hz, with the safety monitor judging every tick;
* the world (:class:`~vrbalance.world.app.WorldApp`) in the main thread,
  reading the newest tick without blocking; the operator overlay shows CoP,
  XCoM, base of support, loop health and the safety verdict.

``--offscreen --seconds 20 --out DIR`` does the same without a display: it
plays a short operator script (level up, stairs, crowd), writes screenshots
and, where the session recorder exists, the recording to ``DIR``.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vrbalance.clock import Clock, MonotonicClock
from vrbalance.errors import ConfigError

log = logging.getLogger(__name__)

#: Balance loop rate, Hz (the project's default).
LOOP_RATE_HZ = 250.0
#: What the simulated person does in the demo: weight shifts that move the CoP
#: visibly on the overlay (lean targets in m, times in s from the start).
DEMO_PERSON_SCRIPT = (
    "lean@3s:x=0.04:y=0.0:ramp=1:hold=2,"
    "lean@9s:x=0.0:y=0.05:ramp=1:hold=2,"
    "lean@15s:x=-0.04:y=0.0:ramp=1:hold=2"
)
#: Offscreen operator script: fractions of the run at which keys are "pressed".
OFFSCREEN_KEYS: tuple[tuple[float, str], ...] = (
    (0.15, "+"),
    (0.2, "+"),
    (0.25, "+"),
    (0.3, "+"),
    (0.4, "2"),
    (0.5, "+"),
    (0.55, "+"),
    (0.7, "3"),
    (0.8, "+"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the park in a window with a simulated plate, the balance loop and the overlay",
        description=(
            "Open the park scene with a simulated force plate, the balance loop, the "
            "safety monitor and the operator overlay. Keys: Space pause, Esc emergency "
            "stop, R clear a stop, +/- (PageUp/PageDown) level, 1/2/3 park/stairs/crowd, "
            "W/A/S/D lean, "
            "right mouse button look around."
        ),
    )
    parser.add_argument("--scene", default="park", help="first scene (park, stairs, crowd)")
    parser.add_argument("--level", type=int, default=1, help="first level, from 1")
    parser.add_argument(
        "--offscreen", action="store_true", help="render without a display (needs --out)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="run time, s (offscreen default 20; a window runs until closed unless given)",
    )
    parser.add_argument("--out", type=Path, help="folder for screenshots and the recording")
    parser.add_argument(
        "--shot-every", type=float, default=5.0, help="offscreen screenshot interval, s"
    )
    parser.add_argument("--size", default="1280x720", help="window/buffer size WxH")
    parser.add_argument("--no-plate", action="store_true", help="head only (no simulated plate)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated person")
    parser.set_defaults(func=run)


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)``; ConfigError naming the flag otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size: expected WIDTHxHEIGHT like 1280x720, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise ConfigError(f"--size: expected sizes in [16, 8192], got {text!r}")
    return w, h


class _PoseAdapter:
    """``pose()`` -> ``pose_at(t_s)`` (the simulated head has the former)."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def pose_at(self, t_s: float) -> Any:
        return self._source.pose()


@dataclass
class DemoPipeline:
    """Everything the demo runs besides the world, built by :func:`build_pipeline`.

    Attributes
    ----------
    clock : Clock
        Session clock (balance loop, samples, events).
    head : DesktopHead or None
        What the balance loop and the camera read: base head + desktop lean/gaze.
    base_head : object or None
        ``pose_at`` source the desktop offsets are added to.
    loop : BalanceLoop or None
        The balance loop (``None`` if the realtime package is missing).
    monitor : SafetyMonitor or None
    server, plate : objects or None
        Simulated plate server and the real driver reading it.
    stance : Stance or None
        For the overlay's base-of-support outline.
    notes : list of str
        What is missing, for the log and the overlay.
    """

    clock: Clock
    head: Any = None
    base_head: Any = None
    loop: Any = None
    monitor: Any = None
    server: Any = None
    plate: Any = None
    stance: Any = None
    recorder: Any = None
    notes: list[str] = field(default_factory=list)
    _last_ticks: tuple[int, float] | None = None
    _rate_hz: float | None = None

    def start(self) -> None:
        if self.loop is not None:
            self.loop.start()

    def status_lines(self) -> dict[str, str]:
        """Overlay status: plate state and loop health, as text."""
        lines: dict[str, str] = {}
        if self.plate is not None:
            state = getattr(self.plate, "state", None)
            lines["plate"] = f"simulated, {getattr(state, 'value', state)}"
        else:
            lines["plate"] = "none (head only)"
        if self.loop is not None:
            try:
                health = self.loop.health()
            except (AttributeError, RuntimeError) as exc:
                lines["loop"] = f"unavailable ({exc})"
            else:
                now = self.clock.now_s()
                ticks = int(health.ticks)
                if self._last_ticks is not None and now > self._last_ticks[1]:
                    rate = (ticks - self._last_ticks[0]) / (now - self._last_ticks[1])
                    if now - self._last_ticks[1] >= 0.5:
                        self._rate_hz = rate
                        self._last_ticks = (ticks, now)
                else:
                    self._last_ticks = (ticks, now)
                rate_text = f"{self._rate_hz:.0f} Hz" if self._rate_hz is not None else "starting"
                lines["loop"] = f"{rate_text}, overruns {health.overruns}, skipped {health.skipped}"
        return lines

    def close(self) -> None:
        """Stop in reverse order: loop, recorder, driver, server (each once)."""
        loop, self.loop = self.loop, None
        if loop is not None:
            loop.stop()
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.close()
        plate, self.plate = self.plate, None
        if plate is not None:
            plate.close()
        server, self.server = self.server, None
        if server is not None:
            server.stop()


def build_pipeline(
    *,
    clock: Clock,
    with_plate: bool = True,
    seed: int = 0,
    script: str = DEMO_PERSON_SCRIPT,
    record_to: Path | None = None,
) -> DemoPipeline:
    """Build plate, head, estimator, safety monitor and balance loop (not started).

    Each part that is missing from this installation is left out with a note,
    so the demo degrades (head only, no safety) rather than failing.
    """
    pipe = DemoPipeline(clock=clock)
    try:
        from vrbalance.devices.head import ScriptedHeadSource, SwayScript
    except ImportError as exc:
        pipe.notes.append(f"no scripted head ({exc}): head stands still")
        ScriptedHeadSource = SwayScript = None
    from vrbalance.world.desktop_pose import DesktopHead

    pipe.head = DesktopHead(None, clock)
    try:
        from vrbalance.balance.geometry import Body
        from vrbalance.balance.stance import make_stance
        from vrbalance.config.plates import load_foot_template

        body = Body(height_m=1.70, mass_kg=70.0)
        pipe.stance = make_stance("feet_apart", body, load_foot_template())
    except ImportError as exc:
        pipe.notes.append(f"no balance core ({exc})")
        return pipe
    plate_geometry = None
    if with_plate:
        try:
            from vrbalance.devices.driver import ForcePlate
            from vrbalance.devices.pty_server import SimulatedPlateServer
            from vrbalance.devices.simulator import PersonParams
            from vrbalance.sessions.sim import SIM_COP_AHEAD_OF_ANKLE_M, SimulatedHead

            ankle = pipe.stance.ankle_m
            person = PersonParams(
                mass_kg=70.0,
                height_m=1.70,
                stance_cop_m=(ankle[0], ankle[1] + SIM_COP_AHEAD_OF_ANKLE_M),
            )
            pipe.server = SimulatedPlateServer(
                script=script, seed=seed, clock=clock, person=person
            ).start()
            pipe.plate = ForcePlate(
                pipe.server.port_path, pipe.server.plate, pipe.server.calibration, clock=clock
            ).open()
            plate_geometry = pipe.server.plate.geometry
            sim_head = SimulatedHead(pipe.server.signal, body, clock, ankle)
            pipe.base_head = sim_head if hasattr(sim_head, "pose_at") else _PoseAdapter(sim_head)
        except ImportError as exc:
            pipe.notes.append(f"no simulated plate ({exc}): head only")
            pipe.close()
            pipe.server = pipe.plate = None
    if pipe.base_head is None and ScriptedHeadSource is not None:
        pipe.base_head = ScriptedHeadSource(SwayScript(seed=seed, height_m=body.eye_height_m))
    pipe.head.base_source = pipe.base_head
    try:
        from vrbalance.balance.estimator import BalanceEstimator
        from vrbalance.realtime.pipeline import BalanceLoop
    except ImportError as exc:
        pipe.notes.append(f"no balance loop ({exc})")
        return pipe
    monitor = None
    try:
        from vrbalance.director.monitor import MonitorStatus, PlateStatus, SafetyMonitor

        status = (
            MonitorStatus() if pipe.plate is not None else MonitorStatus(plate=PlateStatus.NONE)
        )
        monitor = SafetyMonitor(status=status)
        pipe.monitor = monitor
    except ImportError as exc:
        pipe.notes.append(f"no safety monitor ({exc})")
    sinks = []
    if record_to is not None:
        try:
            from vrbalance.sessions.recorder import SessionRecorder

            pipe.recorder = SessionRecorder(
                record_to, {"session_id": record_to.name, "source": "vrbalance demo", "seed": seed}
            )
            pipe.recorder.start()
            sinks.append(_recording_sink(pipe.recorder))
        except ImportError as exc:
            pipe.notes.append(f"no recorder ({exc})")
    estimator = BalanceEstimator(pipe.stance, body, plate_geometry)
    pipe.loop = BalanceLoop(
        estimator,
        clock=clock,
        rate_hz=LOOP_RATE_HZ,
        plate=pipe.plate,
        head=pipe.head,
        monitor=monitor,
        sinks=sinks,
    )
    return pipe


def _recording_sink(recorder: Any) -> Any:
    """A loop sink that queues every sample, state and safety event (enqueue only: cheap)."""

    def sink(result: Any) -> None:
        recorder.plate(result.tick, 0, result.plate_frames)
        recorder.head(result.tick, 0, result.head)
        verdict = result.verdict
        response = getattr(getattr(verdict, "response", None), "label", "")
        recorder.state(0, result.state, response=response)
        for event in getattr(verdict, "events", ()):
            recorder.event(0, event)

    return sink


def run(args: argparse.Namespace) -> int:
    from vrbalance.world.app import WorldApp

    size = parse_size(args.size)
    if args.offscreen and args.out is None:
        raise ConfigError("--offscreen needs --out DIR for its screenshots")
    seconds = args.seconds if args.seconds is not None else (20.0 if args.offscreen else None)
    if seconds is not None and (not math.isfinite(seconds) or seconds <= 0):
        raise ConfigError(f"--seconds: expected a positive number, got {seconds!r}")
    clock = MonotonicClock()
    out: Path | None = args.out
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    record_to = _free_folder(out / "recording") if out is not None and args.offscreen else None
    app = WorldApp(
        output="offscreen" if args.offscreen else "window",
        size_px=size,
        scene=args.scene,
        level=args.level,
        clock=clock,
        title="vrbalance demo",
    )
    # The window first: without a display nothing else is started.
    with app:
        pipe = build_pipeline(
            clock=clock, with_plate=not args.no_plate, seed=args.seed, record_to=record_to
        )
        try:
            connect_world(app, pipe)
            pipe.start()
            if args.offscreen:
                _run_offscreen(app, pipe, seconds, out, args.shot_every)  # type: ignore[arg-type]
            else:
                if seconds is not None:
                    app.add_task(_stop_after(app, seconds), "demo-timer")
                app.run()
                print(f"vrbalance demo: {app.frame_count} frames")
        finally:
            pipe.close()
    return 0


def connect_world(app: Any, pipe: DemoPipeline) -> None:
    """Wire an open :class:`WorldApp` to a pipeline: head, snapshots, outline, operator keys."""
    from vrbalance.world.desktop_pose import DesktopPose

    if pipe.head is not None:
        app.set_head_source(pipe.head)
        DesktopPose(app, pipe.head)
    if pipe.loop is not None:
        app.state_source = pipe.loop.latest
    if pipe.stance is not None:
        app.bos_polygon_m = pipe.stance.base_of_support.vertices
    if pipe.monitor is not None:
        app.add_listener(_operator_to_safety(pipe.monitor, pipe.recorder))
    for note in pipe.notes:
        log.warning("demo: %s", note)
    if pipe.notes:
        app.status["note"] = "; ".join(pipe.notes)
    app.add_task(_status_task(app, pipe), "demo-status")


def _free_folder(path: Path) -> Path:
    """``path`` if unused, else ``path-2``, ``path-3`` ... (a recording never overwrites)."""
    candidate, n = path, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def _operator_to_safety(monitor: Any, recorder: Any) -> Any:
    """Operator events: Esc goes to the safety monitor at once; all are recorded.

    Resuming after a pause (Space, Space) or clearing a stop (R) is the
    operator's acknowledgement: it also resets the monitor's latched response,
    so the scene can move again (a cause still present triggers again).
    """

    def listener(event: Any) -> None:
        if event.kind == "emergency_stop":
            monitor.request_emergency_stop()
        elif event.kind in ("resume", "acknowledge"):
            monitor.request_reset()
        if recorder is not None:
            recorder.event(0, event)

    return listener


def _stop_after(app: Any, seconds: float) -> Any:
    """A task that ends ``app.run()`` after ``seconds`` of wall time."""
    from direct.task import Task

    start = time.perf_counter()

    def task(_task: Any) -> int:
        if time.perf_counter() - start >= seconds:
            app.base.taskMgr.stop()
            return Task.done
        return Task.cont

    return task


def _status_task(app: Any, pipe: DemoPipeline) -> Any:
    from direct.task import Task

    def task(_task: Any) -> int:
        app.status.update(pipe.status_lines())
        return Task.cont

    return task


def _run_offscreen(
    app: Any, pipe: DemoPipeline, seconds: float, out: Path, shot_every_s: float
) -> None:
    """Render for ``seconds`` of wall time, playing the operator script, saving screenshots."""
    start = time.perf_counter()
    last = start
    next_shot = 0.0
    keys = list(OFFSCREEN_KEYS)
    shots = 0
    while True:
        now = time.perf_counter()
        elapsed = now - start
        if elapsed >= seconds:
            break
        while keys and elapsed >= keys[0][0] * seconds:
            app.press(keys.pop(0)[1])
        app.step_frames(1, dt_s=min(now - last, 0.1))
        last = now
        if elapsed >= next_shot:
            path = out / f"demo_{shots:02d}_{app.scene_def.name}_L{app.level}.png"
            app.screenshot(path)
            log.info("wrote %s", path)
            shots += 1
            next_shot += shot_every_s
    app.screenshot(out / f"demo_{shots:02d}_{app.scene_def.name}_L{app.level}_final.png")
    print(
        f"vrbalance demo: {app.frame_count} frames in {seconds:.0f} s, "
        f"{shots + 1} screenshots in {out}"
        + (f", recording in {out / 'recording'}" if pipe.recorder is not None else "")
    )
