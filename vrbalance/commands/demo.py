"""``vrbalance demo``: the park in a window, a simulated plate, the balance loop and the overlay.

The demo is the whole product in miniature, wired by one function,
:func:`build_pipeline`:

* a simulated person on a simulated force plate, streaming real bytes through
  a pseudo-terminal (``SimulatedPlateServer``) into the real driver
  (``ForcePlate``), both in the plate process that hands the frames over in
  shared memory (:func:`vrbalance.sessions.assembly.open_simulated_plate`, as
  ``vrbalance run --simulate``) - or, with ``--no-plate``, head only;
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
and the recording to ``DIR``.

``--xr`` renders to the OpenXR headset (:class:`~vrbalance.xr.output.XrOutput`)
and takes the balance loop's head from it
(:class:`~vrbalance.xr.head_source.XrHeadPoseSource`); the desktop window
mirrors the left eye under the overlay. ``--desktop`` (the default) is the
plain desktop window.

Start-up: the balance loop and the safety monitor run from the first tick,
but until every input has delivered (a plate frame, a head pose, and with
``--xr`` a focused headset session) the inputs are *connecting*: the world
is held calm (no perturbation) and the monitor is told there is no plate or
head to expect yet, because a missing frame before the first one is not a
lost device. The moment every input streams, the monitor gets its strict
status and a fresh reset, and the scene starts moving. If an input has not
delivered within :data:`CONNECT_TIMEOUT_S`, the monitor gets the strict status
anyway, so it calms on the missing input (``plate_stale``/``head_lost``) and
the operator sees why. No threshold is changed.

Device status: every tick, before the monitor judges, the plate driver's live
state (``ForcePlate.state``) is mapped into the monitor's status with
:func:`~vrbalance.director.monitor.plate_status`, the mapping the session
runner uses, so an unplugged plate is ``plate_lost`` (stop trial) in that very
tick and a stalled one ``plate_stalled``, not only ``plate_stale`` once its
frames have aged. While connecting only a *lost* plate is passed on (a plate
that has not delivered yet is the start gate's business).

The loop thread gets :data:`~vrbalance.realtime.pipeline.RECOMMENDED_TUNING`
(it shares the process with the renderer); what the system refuses
(``SCHED_FIFO`` without privilege) is logged, not raised.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vrbalance.clock import Clock, MonotonicClock
from vrbalance.errors import ConfigError
from vrbalance.sessions.lsl_scope import add_lsl_arguments

log = logging.getLogger(__name__)

#: Balance loop rate, Hz (the project's default).
LOOP_RATE_HZ = 250.0
#: How long the inputs may take to deliver their first sample before the
#: monitor judges them strictly (s). The simulated plate's first frame comes
#: within ~0.1 s on an idle machine and ~1 s on a loaded one; a headset
#: session reaches FOCUSED within ~1 s.
CONNECT_TIMEOUT_S = 5.0
#: The inputs count as streaming once they have been fresh (within the
#: monitor's own staleness limits) for this long, s: a plate whose first frame
#: is followed by a start-up gap is still connecting.
STREAMING_HOLD_S = 0.2
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
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--offscreen", action="store_true", help="render without a display (needs --out)"
    )
    output.add_argument(
        "--desktop",
        action="store_true",
        help="render to a desktop window (the default; the head is the desktop stand-in)",
    )
    parser.add_argument(
        "--xr",
        action="store_true",
        help="render to the OpenXR headset; the head pose comes from it",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="run time, s (offscreen default 20; a window runs until closed unless given)",
    )
    parser.add_argument("--out", type=Path, help="folder for screenshots and the recording")
    parser.add_argument(
        "--shot-every", type=float, default=5.0, help="screenshot interval with --out, s"
    )
    parser.add_argument("--size", default="1280x720", help="window/buffer size WxH")
    parser.add_argument("--no-plate", action="store_true", help="head only (no simulated plate)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated person")
    parser.add_argument(
        "--exercise",
        choices=["tandem_walk"],
        help="show an exercise: tandem_walk = the simulated person walks the heel-to-toe "
        "line and back, head only, the safety monitor guarding the walking corridor "
        "(docs/exercises.md)",
    )
    parser.add_argument(
        "--walk-length", type=float, default=4.0, metavar="M", help="the line, 3-6 m (default 4)"
    )
    add_lsl_arguments(parser)
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
        The balance loop (``None`` once closed).
    monitor : SafetyMonitor
        Judges every tick with :meth:`tick_status` (see :meth:`judge`).
    server : SimulatedPlate or None
        The simulated plate, its driver and device (in the plate process on
        the monotonic clock; ``None`` with ``--no-plate``).
    plate : object or None
        What the loop drains (``server.plate``).
    stance : Stance
        For the overlay's base-of-support outline.
    status : MonitorStatus
        The status set from the main thread (connecting, strict, headset
        focus): the only writer is the main thread, the loop thread reads it
        whole each tick and adds the plate's live state.
    strict_status : MonitorStatus
        What :attr:`status` becomes once the inputs stream (or time out).
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
    desktop_pose: bool = True
    head_ready: Any = None
    status: Any = None
    strict_status: Any = None
    inputs: str = "connecting"
    head_poses: list[int] = field(default_factory=lambda: [0, 0, 0])
    _connect_t0_s: float | None = None
    _fresh_since_s: float | None = None
    _last_ticks: tuple[int, float] | None = None
    _rate_hz: float | None = None

    def start(self) -> None:
        """Start the balance loop with the inputs *connecting* (see module docstring)."""
        self._connect_t0_s = self.clock.now_s()
        # Everything alive now lives as long as the demo: out of the collector's
        # full sweeps, which hold the GIL for tens of ms (docs/integration.md).
        gc.freeze()
        if self.loop is not None:
            self.loop.start()

    def event(self, event: Any) -> None:
        """Record an event (operator, headset, start-up) if a recorder runs."""
        if self.recorder is not None:
            self.recorder.event(0, event)

    def update_status(self, **changes: Any) -> None:
        """Change fields of :attr:`status` (main thread only); the next tick uses it."""
        self.status = dataclasses.replace(self.status, **changes)

    def tick_status(self) -> Any:
        """The monitor's status for this tick: :attr:`status` plus the plate's live state.

        Called on the loop thread by :meth:`judge`, before the monitor's
        step, so a change of the driver's state is judged in the tick that
        first sees it. The plate's state is mapped by
        :func:`~vrbalance.director.monitor.plate_status` (as in the session
        runner). While :attr:`status` expects no plate (connecting, see the
        module docstring) only a lost plate is passed on.
        """
        from vrbalance.director.monitor import PlateStatus, plate_status

        status = self.status
        plate = self.plate
        if plate is None:
            return status
        live = plate_status(plate.state.value)
        if live is status.plate or (
            status.plate is PlateStatus.NONE and live is not PlateStatus.LOST
        ):
            return status
        return dataclasses.replace(status, plate=live)

    def judge(self, state: Any) -> Any:
        """The loop's monitor step: this tick's status, then the monitor, same tick."""
        return self.monitor.step(state, self.tick_status())

    def poll_inputs(self, world: Any = None) -> str:
        """Main thread, every frame: open the start gate once every input streams.

        Returns ``"connecting"``, ``"streaming"`` or ``"timeout"``. On the
        change to streaming: the monitor gets its strict status and a reset,
        and ``world.resume()`` lets the scene move. On a timeout: the strict
        status only (the monitor then calms on the missing input).
        """
        if self.inputs != "connecting":
            return self.inputs
        from vrbalance.events import Event

        now = self.clock.now_s()
        t0 = self._connect_t0_s if self._connect_t0_s is not None else now
        missing = self.missing_inputs()
        if missing:
            self._fresh_since_s = None
        elif self._fresh_since_s is None:
            self._fresh_since_s = now
        if not missing and now - self._fresh_since_s >= STREAMING_HOLD_S:
            self.inputs = "streaming"
            self.status = self.strict_status
            self.monitor.request_reset()
            if world is not None:
                world.resume()
            log.info("demo: inputs streaming after %.2f s", now - t0)
            self.event(
                Event(
                    now,
                    "session",
                    "inputs_streaming",
                    f"inputs streaming after {now - t0:.2f} s: scene starts",
                    values={"wait_s": now - t0},
                )
            )
        elif now - t0 > CONNECT_TIMEOUT_S:
            self.inputs = "timeout"
            self.status = self.strict_status
            why = ", ".join(missing)
            last = self.loop.latest.get() if self.loop is not None else None
            if "tracked head pose" in missing and last is not None and last.head is not None:
                from vrbalance.sessions.runner import UNTRACKED_HEAD_HINT

                why += f" ({UNTRACKED_HEAD_HINT})"
            log.error("demo: no %s after %.0f s", why, CONNECT_TIMEOUT_S)
            self.event(
                Event(
                    now,
                    "session",
                    "inputs_timeout",
                    f"no {why} within {CONNECT_TIMEOUT_S:g} s: safety judges the inputs now",
                    "alarm",
                    values={"missing": why},
                )
            )
        return self.inputs

    def missing_inputs(self) -> list[str]:
        """Not delivered yet: ``"plate frame"``, ``"tracked head pose"``, ``"headset focus"``."""
        missing: list[str] = []
        if self.head_ready is not None and not self.head_ready():
            missing.append("headset focus")
        if self.loop is None:
            return missing
        latest = self.loop.latest.get()
        state = latest.state if latest is not None else None
        limits = self.monitor.envelope.monitor
        plate_stale_s = limits.plate_stale_s
        head_stale_s = limits.head_stale_s
        if self.plate is not None and (
            state is None or state.plate_age_s is None or state.plate_age_s > plate_stale_s
        ):
            missing.append("plate frame")
        # What the monitor judges is the estimator's head: untracked poses (a runtime's
        # inferred position) are ignored there, so they do not count as delivered.
        if self.head is not None and (
            state is None
            or state.head_position_m is None
            or (state.head_age_s is not None and state.head_age_s > head_stale_s)
        ):
            missing.append("tracked head pose")
        return missing

    def status_lines(self) -> dict[str, str]:
        """Overlay status: plate state and loop health, as text."""
        lines: dict[str, str] = {}
        if self.plate is not None:
            state = getattr(self.plate, "state", None)
            lines["plate"] = f"simulated, {getattr(state, 'value', state)}"
        else:
            lines["plate"] = "none (head only)"
        if self.inputs != "streaming":
            missing = self.missing_inputs()
            lines["inputs"] = (
                f"{self.inputs} (waiting for {', '.join(missing)})"
                if missing
                # All present: the gate holds them for STREAMING_HOLD_S before starting.
                else "connecting (all inputs present, starting)"
                if self.inputs == "connecting"
                else f"{self.inputs} (all inputs present now)"
            )
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
        self.plate = None
        server, self.server = self.server, None
        if server is not None:
            server.stop()  # the driver, the simulated device and its process


def build_pipeline(
    *,
    clock: Clock,
    with_plate: bool = True,
    seed: int = 0,
    script: str = DEMO_PERSON_SCRIPT,
    record_to: Path | None = None,
    head: Any = None,
    head_ready: Any = None,
    extra_sinks: tuple[Any, ...] = (),
) -> DemoPipeline:
    """Build plate, head, estimator, safety monitor and balance loop (not started).

    The imports are here, not at the top, so that ``vrbalance --help`` stays fast.

    Parameters
    ----------
    head : HeadPoseSource, optional
        The loop's head source (the headset's
        :class:`~vrbalance.xr.head_source.XrHeadPoseSource`); default: the
        simulated person's head plus the desktop stand-in (``DesktopHead``).
    head_ready : callable, optional
        ``head_ready() -> bool``: an extra start-up condition (the headset
        session is focused).
    extra_sinks : tuple of callable
        More balance-loop sinks (the LSL outlets' :meth:`tick_sink`); each must
        only enqueue.
    """
    from vrbalance.balance.estimator import BalanceEstimator
    from vrbalance.balance.geometry import Body
    from vrbalance.balance.stance import make_stance
    from vrbalance.config.plates import load_foot_template
    from vrbalance.devices.head import ScriptedHeadSource, SwayScript
    from vrbalance.director.monitor import (
        HeadsetStatus,
        MonitorStatus,
        PlateStatus,
        SafetyMonitor,
    )
    from vrbalance.realtime.pipeline import RECOMMENDED_TUNING, BalanceLoop
    from vrbalance.world.desktop_pose import DesktopHead

    pipe = DemoPipeline(clock=clock, head_ready=head_ready)
    pipe.head = DesktopHead(None, clock) if head is None else head
    pipe.desktop_pose = head is None
    body = Body(height_m=1.70, mass_kg=70.0)
    pipe.stance = make_stance("feet_apart", body, load_foot_template())
    try:
        plate_geometry = None
        if with_plate:
            from vrbalance.config.plates import load_plate
            from vrbalance.devices.pty_server import DEFAULT_PLATE
            from vrbalance.devices.simulator import PersonParams
            from vrbalance.sessions.assembly import open_simulated_plate
            from vrbalance.sessions.sim import SIM_COP_AHEAD_OF_ANKLE_M

            ankle = pipe.stance.ankle_m
            person = PersonParams(
                mass_kg=70.0,
                height_m=1.70,
                stance_cop_m=(ankle[0], ankle[1] + SIM_COP_AHEAD_OF_ANKLE_M),
            )
            # As in a session: simulated and read in the plate process (the
            # renderer shares this process), see vrbalance.sessions.assembly.
            pipe.server = open_simulated_plate(
                load_plate(DEFAULT_PLATE), person, body, ankle, clock, script=script, seed=seed
            )
            pipe.plate = pipe.server.plate
            plate_geometry = pipe.server.plate_spec.geometry
            pipe.base_head = pipe.server.head
        else:
            pipe.base_head = ScriptedHeadSource(SwayScript(seed=seed, height_m=body.eye_height_m))
        if head is None:
            pipe.head.base_source = pipe.base_head
        pipe.strict_status = MonitorStatus(
            plate=PlateStatus.STREAMING if pipe.plate is not None else PlateStatus.NONE,
            headset=HeadsetStatus.FOCUSED if head_ready is not None else HeadsetStatus.NONE,
        )
        # Connecting: no plate frame or head pose is expected before the first one
        # (poll_inputs() switches to the strict status when they stream).
        pipe.status = MonitorStatus(plate=PlateStatus.NONE, head_expected=False)
        pipe.monitor = SafetyMonitor(status=pipe.status)
        sinks: list[Any] = [_head_counter(pipe.head_poses)]
        if record_to is not None:
            from vrbalance.sessions.recorder import SessionRecorder

            pipe.recorder = SessionRecorder(
                record_to, {"session_id": record_to.name, "source": "vrbalance demo", "seed": seed}
            )
            pipe.recorder.start()
            sinks.append(_recording_sink(pipe.recorder))
        sinks.extend(extra_sinks)
        estimator = BalanceEstimator(pipe.stance, body, plate_geometry)
        # The loop shares the process with the renderer: docs/realtime.md's tuning.
        pipe.loop = BalanceLoop(
            estimator,
            clock=clock,
            rate_hz=LOOP_RATE_HZ,
            plate=pipe.plate,
            head=pipe.head,
            monitor=pipe.judge,
            sinks=sinks,
            **RECOMMENDED_TUNING,  # type: ignore[arg-type]
        )
    except BaseException:
        pipe.close()  # the plate server thread, the port, the recorder
        raise
    return pipe


def _head_counter(counts: list[int]) -> Any:
    """A loop sink counting ticks with a head pose, without one, and with a tracked one."""

    def sink(result: Any) -> None:
        head = result.head
        counts[0 if head is not None else 1] += 1
        if head is not None and head.tracked:
            counts[2] += 1

    return sink


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
    from vrbalance.director.envelope import SafetyEnvelope, level_cap
    from vrbalance.world.app import WorldApp

    size = parse_size(args.size)
    xr = bool(getattr(args, "xr", False))
    if xr and args.offscreen:
        raise ConfigError(
            "--xr cannot render --offscreen: an OpenXR runtime shares the OpenGL context of a "
            "desktop window (GLX on Linux), which an offscreen buffer does not have; run --xr "
            "on a display (or under Xvfb), or drop --xr"
        )
    if xr and getattr(args, "desktop", False):
        raise ConfigError("--xr and --desktop: choose one (the headset or the desktop window)")
    if args.offscreen and args.out is None:
        raise ConfigError("--offscreen needs --out DIR for its screenshots")
    seconds = args.seconds if args.seconds is not None else (20.0 if args.offscreen else None)
    if seconds is not None and (not math.isfinite(seconds) or seconds <= 0):
        raise ConfigError(f"--seconds: expected a positive number, got {seconds!r}")
    clock = MonotonicClock()
    out: Path | None = args.out
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    # --out records in every mode: a window's demo too (screenshots and recording).
    recorded = args.offscreen or xr or out is not None
    record_to = _free_folder(out / "recording") if out is not None and recorded else None
    head = None
    if xr:
        from vrbalance.xr.head_source import XrHeadPoseSource

        head = XrHeadPoseSource(clock)
    walk = _walk_demo(args, clock) if getattr(args, "exercise", None) and not xr else None
    if walk is not None:
        head = walk[0]
    app = WorldApp(
        output=xr_world_output() if xr else ("offscreen" if args.offscreen else "window"),
        size_px=size,
        scene="tandem_walk" if walk is not None else args.scene,
        level=args.level,
        clock=clock,
        head_source=head,
        title="vrbalance demo",
        # Free level keys, but never beyond the envelope the demo's monitor uses.
        level_cap=level_cap(SafetyEnvelope()),
    )
    # The window first: without a display nothing else is started.
    with app:
        if xr:
            return _run_xr(app, args, clock, head, seconds, record_to)
        lsl = _lsl_outlets(args, clock)
        pipe = build_pipeline(
            clock=clock,
            with_plate=not args.no_plate and walk is None,
            seed=args.seed,
            record_to=record_to,
            head=head,
            extra_sinks=(lsl.tick_sink(level=lambda: app.level),) if lsl is not None else (),
        )
        if walk is not None:  # walking: the monitor guards the corridor, not a margin
            pipe.strict_status = dataclasses.replace(pipe.strict_status, corridor=walk[1])
            app.scene.set_walk_length(walk[1].length_m)
        try:
            connect_world(app, pipe)
            if lsl is not None:
                app.add_listener(lambda event: lsl.event(0, event))  # operator keys: markers
                lsl.start()
            pipe.start()
            if args.offscreen:
                # An exercise plays no operator tour: the walker walks its line.
                tour = () if walk is not None else OFFSCREEN_KEYS
                _run_offscreen(app, pipe, seconds, out, args.shot_every, tour)  # type: ignore[arg-type]
            else:
                if seconds is not None:
                    app.add_task(_stop_after(app, seconds), "demo-timer")
                shots: list[Path] = []
                if out is not None:
                    app.add_task(_shots_task(app, out, args.shot_every, shots), "demo-shots")
                app.run()
                print(
                    f"vrbalance demo: {app.frame_count} frames"
                    + (f", {len(shots)} screenshots in {out}" if out is not None else "")
                    + (f", recording in {record_to}" if record_to is not None else "")
                )
        finally:
            pipe.close()
            if lsl is not None:
                lsl.close()
    return 0


def _walk_demo(args: argparse.Namespace, clock: Clock) -> tuple[Any, Any]:
    """The simulated walker and its corridor for ``--exercise tandem_walk``."""
    from vrbalance.balance.geometry import Body
    from vrbalance.director.monitor import Corridor
    from vrbalance.exercises.plan import check_walk_length
    from vrbalance.exercises.sim import SimulatedWalker

    length = check_walk_length(args.walk_length, "--walk-length")
    walker = SimulatedWalker(
        length,
        Body(height_m=1.70).eye_height_m,
        clock,
        side_steps_at_m=(1.5 * length,),
        seed=args.seed,
    )
    return walker, Corridor(length)


def _lsl_outlets(args: argparse.Namespace, clock: Clock) -> Any:
    """``--lsl``: the outlets (not started yet), or None."""
    network = getattr(args, "lsl_network", False)
    if not (getattr(args, "lsl", False) or network):
        return None
    from vrbalance.sessions.lsl import LslOutlets

    return LslOutlets(clock=clock, rate_hz=LOOP_RATE_HZ, network=network)


def xr_world_output() -> str:
    """The world output for ``--xr`` (a seam: tests with the fake runtime render offscreen)."""
    return "xr"


def xr_output_options() -> dict[str, Any]:
    """Extra :class:`~vrbalance.xr.output.XrOutput` arguments (a seam for the fake runtime)."""
    return {}


def _run_xr(
    app: Any,
    args: argparse.Namespace,
    clock: Clock,
    head: Any,
    seconds: float | None,
    record_to: Path | None,
) -> int:
    """The demo on the headset: ``XrOutput`` around the world, the loop's head from it."""
    from vrbalance.director.monitor import HeadsetStatus
    from vrbalance.xr.output import XrOutput

    holder: list[DemoPipeline] = []

    def on_event(event: Any) -> None:
        if not holder:
            return  # kept in xr_out.events; recorded once the pipeline exists
        pipe = holder[0]
        pipe.event(event)
        if event.kind == "loss_pending":
            pipe.update_status(headset=HeadsetStatus.LOST)
            app.status["headset"] = "LOST: press R to reconnect, close the window to end"

    def on_focus(focused: bool) -> None:
        # Before the inputs stream the start gate waits for focus; afterwards the
        # monitor judges it (unfocused calms; the operator resumes with R).
        lost = xr_out.session is not None and xr_out.session.lost
        if holder and holder[0].inputs != "connecting":
            if lost:
                return  # LOST (set on the loss event) stays until the operator reconnects
            holder[0].update_status(
                headset=HeadsetStatus.FOCUSED if focused else HeadsetStatus.UNFOCUSED
            )
        app.status["headset"] = "focused" if focused else "not focused: scene calmed"

    xr_out = XrOutput(
        app,
        head_source=head,
        clock=clock,
        on_event=on_event,
        on_focus=on_focus,
        **xr_output_options(),
    )
    with xr_out:
        session = xr_out.session
        lsl = _lsl_outlets(args, clock)
        pipe = build_pipeline(
            clock=clock,
            with_plate=not args.no_plate,
            seed=args.seed,
            record_to=record_to,
            head=head,
            head_ready=lambda: session is not None and session.focused and not session.lost,
            extra_sinks=(lsl.tick_sink(level=lambda: app.level),) if lsl is not None else (),
        )
        holder.append(pipe)
        for event in list(xr_out.events):  # what the session said while opening
            pipe.event(event)
        try:
            connect_world(app, pipe, xr_out=xr_out)
            if lsl is not None:
                app.add_listener(lambda event: lsl.event(0, event))  # operator keys: markers
                lsl.start()
            t_start = clock.now_s()
            pipe.start()
            if seconds is not None:
                app.add_task(_exit_xr_after(app, xr_out, seconds), "demo-timer")
            app.run()  # returns when the runtime ends the session
            elapsed = max(clock.now_s() - t_start, 1e-9)
            loop_ticks = pipe.head_poses[0] + pipe.head_poses[1]
            stats = xr_out.stats()
        finally:
            pipe.close()
            if lsl is not None:
                lsl.close()
    print(
        f"vrbalance demo --xr: runtime {session.runtime_name if session else '-'}, "
        f"{session.space_type if session else '-'} space, {elapsed:.1f} s\n"
        f"  session states: {' -> '.join(stats.states_seen)}\n"
        f"  frames begun / submitted / with layer: {stats.frames_begun} / "
        f"{stats.frames_submitted} / {stats.frames_rendered} "
        f"({stats.frames_submitted / elapsed:.1f} Hz)\n"
        f"  balance loop: {loop_ticks / elapsed:.0f} ticks/s, head poses "
        f"{pipe.head_poses[0] / elapsed:.0f}/s, tracked {pipe.head_poses[2] / elapsed:.0f}/s "
        f"({pipe.head_poses[1]} ticks without one), "
        f"inputs {pipe.inputs}\n"
        f"  XR Python per frame: {1e3 * stats.python_s_per_frame:.2f} ms"
        + (f"\n  recording in {record_to}" if record_to is not None else "")
    )
    return 0


def _exit_xr_after(app: Any, xr_out: Any, seconds: float) -> Any:
    """After ``seconds``: ask the runtime to end the session; stop outright 3 s later."""
    from direct.task import Task

    start = time.perf_counter()
    asked = [False]

    def task(_task: Any) -> int:
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and not asked[0]:
            asked[0] = True
            session = xr_out.session
            if session is None or session.lost:
                app.base.taskMgr.stop()
                return Task.done
            xr_out.request_exit()  # STOPPING -> xrEndSession -> EXITING ends app.run()
        elif elapsed >= seconds + 3.0:
            log.warning("demo: the runtime did not end the session within 3 s; stopping")
            app.base.taskMgr.stop()
            return Task.done
        return Task.cont

    return task


def connect_world(app: Any, pipe: DemoPipeline, *, xr_out: Any = None) -> None:
    """Wire an open :class:`WorldApp` to a pipeline: head, snapshots, outline, operator keys.

    The world is held calm while the inputs are connecting; :meth:`DemoPipeline.poll_inputs`
    (called every frame) lets it move once they stream. With ``xr_out``, R
    (acknowledge) after a headset loss reconnects the headset.
    """
    from vrbalance.world.desktop_pose import DesktopPose

    if pipe.head is not None:
        app.set_head_source(pipe.head)
        if pipe.desktop_pose:
            DesktopPose(app, pipe.head)
    if pipe.loop is not None:
        app.state_source = pipe.loop.latest
    if pipe.stance is not None:
        app.bos_polygon_m = pipe.stance.base_of_support.vertices
    if pipe.monitor is not None:
        app.add_listener(_operator_to_safety(pipe.monitor, pipe.recorder))
    if xr_out is not None:
        app.add_listener(_reconnect_headset(app, xr_out))
    if pipe.inputs == "connecting":
        app.calm()
    app.add_task(_status_task(app, pipe), "demo-status")


def _reconnect_headset(app: Any, xr_out: Any) -> Any:
    """R (acknowledge) while the headset is lost: recreate the session (main thread)."""
    from vrbalance.errors import VrBalanceError

    def listener(event: Any) -> None:
        session = xr_out.session
        if event.kind != "acknowledge" or session is None or not session.lost:
            return
        try:
            xr_out.resume()
        except VrBalanceError as exc:
            log.error("demo: headset still unavailable: %s", exc)
            app.status["headset"] = f"still lost ({exc}); R to retry"
        else:
            app.status["headset"] = "reconnected: waiting for focus"

    return listener


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


def _shots_task(app: Any, out: Path, every_s: float, shots: list[Path]) -> Any:
    """A task saving a screenshot into ``out`` every ``every_s`` of wall time (window + --out).

    It saves the frame last drawn (:meth:`WorldApp.image`): ``app.screenshot``
    draws frames itself, which a task running inside the main loop must not do.
    """
    from direct.task import Task
    from PIL import Image

    next_s = [time.perf_counter()]
    calls = [0]

    def task(_task: Any) -> int:
        calls[0] += 1
        now = time.perf_counter()
        if calls[0] >= 2 and now >= next_s[0]:  # from the second frame: one is drawn
            path = out / f"demo_{len(shots):02d}_{app.scene_def.name}_L{app.level}.png"
            Image.fromarray(app.image()).save(path, format="PNG")
            shots.append(path)
            next_s[0] = now + every_s
        return Task.cont

    return task


def _status_task(app: Any, pipe: DemoPipeline) -> Any:
    from direct.task import Task

    def task(_task: Any) -> int:
        pipe.poll_inputs(app)
        app.status.update(pipe.status_lines())
        if pipe.inputs == "streaming":
            app.status.pop("inputs", None)
        return Task.cont

    return task


def _run_offscreen(
    app: Any,
    pipe: DemoPipeline,
    seconds: float,
    out: Path,
    shot_every_s: float,
    script: Any = OFFSCREEN_KEYS,
) -> None:
    """Render for ``seconds`` of wall time, playing the operator script, saving screenshots."""
    start = time.perf_counter()
    last = start
    next_shot = 0.0
    keys = list(script)
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
