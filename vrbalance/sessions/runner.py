"""Run a protocol: trials in order, balance loop per trial, everything recorded.

For each trial the runner

1. picks the difficulty level (the protocol's, or the director's staircase),
   opens the devices (the simulated patient per trial with ``--simulate``)
   and tells the world which scene, level and visual condition to show;
2. runs the balance loop at ``rate_hz`` on a
   :class:`~vrbalance.realtime.loop.FixedRateLoop`: each tick calls
   :meth:`vrbalance.realtime.pipeline.BalanceLoop.tick` (drain the plate, head
   pose at the tick time, :class:`~vrbalance.balance.estimator.BalanceEstimator`,
   :class:`~vrbalance.director.monitor.SafetyMonitor` verdict in the same tick,
   told the plate status, emergency stop and elapsed times), then queues every
   sample, state and event to the recorder (never blocks), publishes the latest
   (state, verdict) for the world, shows Limits-of-Stability cues, and reads the
   operator's commands;
3. ends the trial with an :class:`EndReason`, writes its ``trials.csv`` row
   and lets the director adapt the next level from the outcome.

The operator's controls (:class:`Command`: pause, resume, skip, repeat, stop,
emergency stop) arrive through :class:`OperatorControls`, a thread-safe
queue that the overlay, the command line and tests all use.

The recording folder is the source of truth: the database rows are written at
the end from it (:func:`vrbalance.sessions.store.import_session`), and if the
database is unavailable the session is kept and can be imported later.
"""

from __future__ import annotations

import enum
import gc
import logging
import math
import queue
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from vrbalance.balance.state import BalanceState
from vrbalance.clock import Clock
from vrbalance.errors import ConfigError, DeviceError, VrBalanceError
from vrbalance.events import Event
from vrbalance.progress import ProgressBar, verdict_text
from vrbalance.samples import HeadPose, PlateFrame
from vrbalance.sessions.assembly import open_serial_plate, open_simulated_plate, use_plate_process
from vrbalance.sessions.plate_check import LOAD_TOLERANCE, LoadCheck, check_load
from vrbalance.sessions.protocol import Protocol as SessionProtocol
from vrbalance.sessions.protocol import Trial
from vrbalance.sessions.recorder import SessionRecorder, software_info
from vrbalance.sessions.sim import trial_script

log = logging.getLogger(__name__)

DEFAULT_RATE_HZ = 250.0
#: How long a trial's inputs may take to start streaming before the trial ends
#: with ``device_lost``, s (a simulated plate's first frame takes ~0.1 s, ~1 s on
#: a loaded machine; a headset reaches FOCUSED within ~1 s).
CONNECT_TIMEOUT_S = 5.0
#: Why a head that delivers poses may still never count as streaming.
UNTRACKED_HEAD_HINT = (
    "the head source reports its position as inferred, not tracked, as a simulated or "
    "3-DoF headset or one that lost tracking does; head movement cannot be measured for balance"
)
#: Inputs count as streaming once fresh (within the monitor's own staleness
#: limits) for this long, s.
STREAMING_HOLD_S = 0.2
PATIENT_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


class EndReason(enum.Enum):
    """Why a trial or a session ended (never a bare "done")."""

    COMPLETED = "completed"
    TIME_LIMIT = "time_limit"
    SAFETY_STOP = "safety_stop"
    OPERATOR_ABORT = "operator_abort"
    DEVICE_LOST = "device_lost"


class Command(enum.Enum):
    """What the operator can ask for during a session."""

    PAUSE = "pause"
    RESUME = "resume"
    SKIP = "skip"
    REPEAT = "repeat"
    STOP = "stop"
    EMERGENCY_STOP = "emergency_stop"
    #: The clinician console's difficulty and monitor controls (``docs/console.md``).
    LEVEL_UP = "level_up"
    LEVEL_DOWN = "level_down"
    PIN_LEVEL = "pin_level"
    LOCK_SCENE = "lock_scene"
    RECENTER = "recenter"
    RESET = "reset"
    #: From the headset (not the operator): the patient lost/regained the scene, or
    #: the runtime lost the session. Recorded by the headset's own events.
    HEADSET_UNFOCUSED = "headset_unfocused"
    HEADSET_FOCUSED = "headset_focused"
    HEADSET_LOST = "headset_lost"


_HEADSET_COMMANDS = frozenset(
    {Command.HEADSET_UNFOCUSED, Command.HEADSET_FOCUSED, Command.HEADSET_LOST}
)


@dataclass(frozen=True, slots=True)
class LiveTick:
    """What one balance-loop tick published for live sinks (the console's channel).

    The loop builds it and hands it over by reference (one call that must not
    block); the sink formats and sends it on its own thread.

    Attributes
    ----------
    trial : int
        Index of the trial in this session.
    name, scene : str
        The trial's name and scene.
    level : int
        Difficulty level shown now.
    duration_s : float
        The trial's planned (scaled) duration, s.
    elapsed_s : float
        Active trial time (pauses excluded), s; 0 while the inputs connect.
    streaming : bool
        False while the start gate waits for the inputs.
    paused, estop : bool
    state : BalanceState or None
        None while connecting.
    verdict : Verdict or None
        The safety monitor's verdict of this tick.
    """

    trial: int
    name: str
    scene: str
    level: int
    duration_s: float
    elapsed_s: float
    streaming: bool
    paused: bool
    estop: bool
    state: BalanceState | None
    verdict: Any


class LiveSink(Protocol):
    """A live sink beside the recorder: both calls return at once (never block the loop)."""

    def tick(self, tick: LiveTick) -> None: ...

    def event(self, trial: int, event: Event) -> None: ...


class _EventTee:
    """The recorder, with every event also handed to a live sink (which must not block)."""

    def __init__(self, recorder: SessionRecorder, sink: LiveSink) -> None:
        self._recorder = recorder
        self._sink = sink

    def __getattr__(self, name: str) -> Any:
        return getattr(self._recorder, name)

    def event(self, trial: int, event: Event) -> None:
        self._recorder.event(trial, event)
        self._sink.event(trial, event)


class OperatorControls:
    """A thread-safe queue of operator commands, read by the balance loop each tick.

    The overlay's buttons, a keyboard handler and tests call :meth:`send`;
    ``at_s`` lets a test schedule a command on the session clock (the loop
    applies it at the first tick at or after that time, trial-relative).
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Command, float | None, int | None]] = (
            queue.SimpleQueue()
        )
        self._scheduled: list[tuple[Command, float, int | None]] = []

    def send(
        self, command: Command, *, at_trial_s: float | None = None, trial: int | None = None
    ) -> None:
        """Queue ``command`` now, or ``at_trial_s`` seconds after trial ``trial`` starts.

        ``at_trial_s`` counts wall time on the session clock from the trial's
        first tick, pauses included (tests and scripted demos use it).
        """
        if not isinstance(command, Command):
            raise TypeError(f"command: expected Command, got {command!r}")
        self._queue.put((command, at_trial_s, trial))

    def due(self, trial: int, trial_elapsed_s: float) -> list[Command]:
        """Commands to apply now (called by the loop once per tick)."""
        while True:
            try:
                cmd, at_s, for_trial = self._queue.get_nowait()
            except queue.Empty:
                break
            if at_s is None:
                self._scheduled.append((cmd, -math.inf, None))
            else:
                self._scheduled.append((cmd, at_s, for_trial))
        if not self._scheduled:
            return []
        now = [
            c
            for c, at, tr in self._scheduled
            if (tr is None or tr == trial) and at <= trial_elapsed_s
        ]
        if now:
            self._scheduled = [
                (c, at, tr)
                for c, at, tr in self._scheduled
                if not ((tr is None or tr == trial) and at <= trial_elapsed_s)
            ]
        return now


# --------------------------------------------------------------------------- seams


class PlateSource(Protocol):
    """What the runner needs of a plate (:class:`~vrbalance.devices.driver.ForcePlate`)."""

    def drain(self) -> list[PlateFrame]: ...

    def drain_events(self) -> list[Event]: ...


class _GateCarryOver:
    """The plate feed of one trial: hands the first judged tick the gate's newest frame.

    The start gate drains the plate without judging it; a 100 Hz plate under a
    250 Hz loop delivers nothing in most ticks, so without this the trial's
    first tick would often see no frame at all and the monitor would calm for
    ``plate_stale`` ("no plate frame") at the very start. The frame handed over
    is recorded with that first tick, so a replay sees exactly the same input.
    """

    def __init__(self, plate: PlateSource) -> None:
        self._plate = plate
        self._held: list[Any] = []
        #: Vertical loads (N) of the frames drained since :meth:`restart_window`,
        #: for the plate's plausibility check (:mod:`vrbalance.sessions.plate_check`).
        self.loads_n: list[float] = []

    def hold_newest(self) -> bool:
        """Drain the plate during the start gate, keeping only its newest frame."""
        from vrbalance.sessions.plate_check import vertical_load_n

        frames = self._plate.drain()
        if frames:
            self._held = frames[-1:]
            self.loads_n.extend(vertical_load_n(f) for f in frames)
        return bool(frames)

    def restart_window(self) -> None:
        """Forget the loads seen so far (the gate's hold window starts again)."""
        self.loads_n.clear()

    def drain(self) -> list[Any]:
        held, self._held = self._held, []
        return held + self._plate.drain()


class HeadSource(Protocol):
    """A head-pose source (:class:`vrbalance.devices.head.HeadPoseSource`)."""

    def pose_at(self, t_s: float) -> HeadPose | None: ...


class Devices(Protocol):
    """Opens the plate and head for one trial and closes them after it."""

    plate_id: str | None

    def open_trial(
        self, index: int, trial: Trial
    ) -> tuple[PlateSource | None, HeadSource | None]: ...

    def close_trial(self) -> None: ...

    def close(self) -> None: ...


class World(Protocol):
    """What the runner needs of the world (offscreen, window or headset)."""

    def begin_trial(self, trial: Trial, level: int) -> None: ...

    def frame(self, state: BalanceState | None, calm: bool, surround_pitch_rad: float) -> None: ...

    def end_trial(self) -> None: ...

    def close(self) -> None: ...


class SimulatedDevices:
    """The simulated patient: a pty plate server + the real driver + its head, per trial.

    Parameters
    ----------
    plate_id : str
        A shipped plate id.
    body : Body
        The patient's dimensions (the simulated person gets the same).
    clock : Clock
    seed : int
        Keyword-only; trial ``i`` uses ``seed + i``.
    extra_script : str
        Added to every trial's script (e.g. ``"fall@2s"``).
    """

    def __init__(
        self,
        plate_id: str,
        body: Any,
        clock: Clock,
        *,
        seed: int,
        extra_script: str = "",
        plate_process: bool | None = None,
    ) -> None:
        from vrbalance.config.plates import load_plate
        from vrbalance.devices.calibration import find_calibration
        from vrbalance.devices.simulator import parse_script

        self.plate_id = plate_id
        self.plate = load_plate(plate_id)
        # The driver's calibration, read and validated now: before any folder exists.
        self.calibration = find_calibration(self.plate.id)
        #: The simulated person's mass, kg: the patient's, else a 70 kg stand-in; the
        #: plate's plausibility check expects this weight.
        self.simulated_mass_kg = float(body.mass_kg or 70.0)
        self._body = body
        self._clock = clock
        self._seed = seed
        # Parsed now (a ConfigError naming the item) so a bad script records nothing.
        parse_script(extra_script)
        self._extra = extra_script
        self._server: Any = None
        self._driver: Any = None
        self._process: Any = None
        self.plate_process = use_plate_process(clock, plate_process)
        if self.plate_process:  # one for the session, started before any other thread
            from vrbalance.devices.plate_process import PlateProcess

            self._process = PlateProcess().start()

    def open_trial(self, index: int, trial: Trial) -> tuple[PlateSource | None, HeadSource]:
        from vrbalance.balance.stance import make_stance
        from vrbalance.config.plates import load_foot_template
        from vrbalance.devices.simulator import PersonParams
        from vrbalance.sessions.sim import SIM_COP_AHEAD_OF_ANKLE_M, sim_noise_torque_nm

        if trial.task == "tandem_walk":  # head only: the simulated walker
            from vrbalance.exercises.sim import walker_for

            eye_m = float(self._body.eye_height_m)
            return None, walker_for(trial, eye_m, self._clock, seed=self._seed + index)
        stance = make_stance(trial.stance, self._body, load_foot_template())
        ankle = stance.ankle_m
        # Narrower stance, eyes closed and foam sway more (as in the BDS data).
        person = PersonParams(
            mass_kg=self.simulated_mass_kg,
            height_m=float(self._body.height_m),
            stance_cop_m=(ankle[0], ankle[1] + SIM_COP_AHEAD_OF_ANKLE_M),
            noise_torque_nm=sim_noise_torque_nm(trial.stance, trial.eyes, trial.surface),
        )
        script = trial_script(trial, person.com_height_m, self._extra)
        # The simulated plate is another device: simulated and read in the plate
        # process, away from this process's GIL (vrbalance.sessions.assembly).
        self._server = open_simulated_plate(
            self.plate,
            person,
            self._body,
            ankle,
            self._clock,
            script=script,
            seed=self._seed + index,
            calibration=self.calibration,
            process=self._process,
            plate_process=self.plate_process,
        )
        self._driver = self._server.plate
        # A head-only trial (plate = false) sees the same simulated person's head;
        # the plate keeps streaming into its bounded buffer, unread.
        return (self._driver if trial.plate else None), self._server.head

    def close_trial(self) -> None:
        self._driver = None
        if self._server is not None:
            self._server.stop()  # driver and simulated device (the plate process stays)
            self._server = None

    def close(self) -> None:
        self.close_trial()
        if self._process is not None:
            self._process.close()
            self._process = None


class SerialDevices:
    """A real plate for the whole session: serial, or an input device such as the Wii
    Balance Board (``--port /dev/input/eventN`` or ``auto``); no headset pose yet."""

    def __init__(
        self, plate_id: str, port: str, clock: Clock, *, plate_process: bool | None = None
    ) -> None:
        from vrbalance.config.plates import load_plate
        from vrbalance.devices.calibration import find_calibration
        from vrbalance.devices.discovery import is_input_port

        self.plate_id = plate_id
        self.plate = load_plate(plate_id)
        # Read and validated before the session folder exists (a bad file records nothing).
        # An input device (the Wii Balance Board) has its own calibration of the kernel's units.
        evdev = self.plate.evdev if is_input_port(port) else None
        self.calibration = find_calibration(evdev.calibration if evdev else self.plate.id)
        self._port = port
        self._clock = clock
        self._driver: Any = None
        self._process: Any = None
        self.plate_process = use_plate_process(clock, plate_process)
        if self.plate_process:  # read away from this process's GIL (docs/integration.md)
            from vrbalance.devices.plate_process import PlateProcess

            self._process = PlateProcess().start()

    def open_trial(self, index: int, trial: Trial) -> tuple[PlateSource | None, HeadSource | None]:
        if self._driver is None:  # a serial port, or an input device (/dev/input/..., auto)
            try:
                self._driver = open_serial_plate(
                    self.plate,
                    self._port,
                    self._clock,
                    calibration=self.calibration,
                    process=self._process,
                )
            except VrBalanceError:
                if self._process is not None:
                    self._process.close()
                    self._process = None
                raise
        if not trial.plate:
            return None, None  # head only (the tandem walk): the plate stays open, unread
        return self._driver, None

    def close_trial(self) -> None:
        return None

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()
            self._driver = None
        if self._process is not None:
            self._process.close()
            self._process = None


class HeadsetDevices:
    """No plate: the headset is the only input (``vrbalance run --xr`` without a plate).

    Every trial's head pose comes from the world's headset
    (:attr:`~vrbalance.sessions.world.SessionWorld.head_source`); the runner
    refuses a trial that needs the plate before anything opens
    (:func:`vrbalance.sessions.assembly.session_devices`).
    """

    plate_id: str | None = None
    plate: Any = None

    def open_trial(self, index: int, trial: Trial) -> tuple[PlateSource | None, HeadSource | None]:
        return None, None

    def close_trial(self) -> None:
        return None

    def close(self) -> None:
        return None


class NullWorld:
    """No rendering (``--no-render``): the balance loop runs alone."""

    def begin_trial(self, trial: Trial, level: int) -> None:
        return None

    def frame(self, state: BalanceState | None, calm: bool, surround_pitch_rad: float) -> None:
        return None

    def end_trial(self) -> None:
        return None

    def close(self) -> None:
        return None


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class TrialResult:
    """How one trial went.

    Attributes
    ----------
    index : int
        Position in the session (repeats get a new index).
    trial : Trial
        What was planned (durations already scaled).
    level : int
        Difficulty level shown.
    end_reason : EndReason
    start_t_s, end_t_s : float
        First and last tick time on the session clock, in s.
    mean_velocity_mps : float or None
        CoP mean velocity (quick look; the report recomputes from the file).
    min_margin_m : float or None
        Smallest XCoM margin, m.
    safety_triggered : bool
        The monitor calmed the world or stopped the trial.
    exercise_success : bool or None
        An exercise trial's own success (docs/exercises.md); ``None`` otherwise.
    exercise_reason : str
        Why.
    """

    index: int
    trial: Trial
    level: int
    end_reason: EndReason
    start_t_s: float
    end_t_s: float
    mean_velocity_mps: float | None
    min_margin_m: float | None
    safety_triggered: bool
    exercise_success: bool | None = None
    exercise_reason: str = ""

    def row(self) -> dict[str, object]:
        """The ``trials.csv`` row."""
        t = self.trial
        return {
            "trial": self.index,
            "name": t.name,
            "kind": t.kind,
            "scene": t.scene,
            "stance": t.stance,
            "eyes": t.eyes,
            "surface": t.surface,
            "surround": t.surround,
            "assessment": t.assessment,
            "condition": t.condition,
            "director": int(t.director),
            "level": self.level,
            "planned_s": t.duration_s,
            "start_t_s": self.start_t_s,
            "end_t_s": self.end_t_s,
            "end_reason": self.end_reason.value,
        }


@dataclass(frozen=True, slots=True)
class SessionResult:
    """What ``run`` produced.

    Attributes
    ----------
    session_id : str
    folder : Path
        The recording (source of truth).
    end_reason : EndReason
    trials : tuple of TrialResult
    db_error : str or None
        Why the database rows could not be written (the recording is kept).
    """

    session_id: str
    folder: Path
    end_reason: EndReason
    trials: tuple[TrialResult, ...]
    db_error: str | None = None


# --------------------------------------------------------------------------- runner


@dataclass
class _TrialRun:
    """Mutable per-trial bookkeeping of the loop (owned by the loop thread)."""

    index: int
    trial: Trial
    level: int
    t0_s: float | None = None
    last_t_s: float = 0.0
    paused: bool = False
    paused_total_s: float = 0.0
    paused_since_s: float | None = None
    estop: bool = False
    end: EndReason | None = None
    repeat: bool = False
    stop_session: bool = False
    safety_triggered: bool = False
    director_lowered: bool = False
    next_cue: int = 0
    cop: list[tuple[float, float]] = field(default_factory=list)
    min_margin_m: float = math.inf
    streaming: bool = False
    connect_t0_s: float | None = None
    fresh_since_s: float | None = None
    last_frame_rx_s: float | None = None
    connecting_ticks: int = 0
    untracked_head: bool = False
    headset_paused: bool = False
    headset_lost: bool = False
    recenter: bool = False
    exercise: Any = None  # vrbalance.exercises.live.ExerciseTracker for exercise trials
    load_check: Any = None


_CONSOLE_COMMANDS = frozenset(
    {
        Command.LEVEL_UP,
        Command.LEVEL_DOWN,
        Command.PIN_LEVEL,
        Command.LOCK_SCENE,
        Command.RECENTER,
        Command.RESET,
    }
)
_DEVICE_CAUSES = {"plate_lost", "head_lost", "headset_lost"}
_TIME_CAUSES = {"trial_time_limit", "session_time_limit"}


class SessionRunner:
    """Runs one protocol for one patient into one recording folder.

    Parameters
    ----------
    protocol : Protocol
        Already loaded (baseline first, durations scaled).
    patient : Patient
        The patient record (body dimensions, envelope).
    folder : Path
        The new session folder.
    session_id : str
    devices : Devices
        Plate and head per trial.
    clock : Clock
        The session clock (the loop's, the devices').
    world : World, optional
        Default :class:`NullWorld`.
    controls : OperatorControls, optional
    rate_hz : float
        Balance-loop rate.
    seed : int
        Keyword-only; the director's seed (and the simulated patient's).
    render_fps : float
        Frames per second the main thread draws while the loop runs.
    metadata : Mapping, optional
        Extra sidecar entries (``simulated``, ``seconds_scale``...).
    echo : callable, optional
        Where progress lines go (default: nowhere).
    progress : ProgressBar, optional
        Redrawn during each trial.
    start_levels : Mapping of str to int, optional
        Level each director scene starts at (where the patient's last session
        left it), clamped to the envelope by the director.
    seconds_scale : float
        The factor the protocol's durations were scaled by (``--seconds-scale``):
        the envelope's rest between trials is scaled the same way, and its
        limits are checked against the unscaled durations.
    before_trial : callable, optional
        ``before_trial(index, trial)`` after the rest and before the trial
        starts (the command line's ``--confirm`` waits for the operator there).
    live : LiveSink, optional
        Gets every tick's :class:`LiveTick` and every recorded event (the
        clinician console's channel, ``docs/console.md``); it must not block.
    connect_timeout_s : float, optional
        How long a trial's start gate waits for streaming inputs and a plate
        that carries the patient's weight; default :data:`CONNECT_TIMEOUT_S`.
    """

    def __init__(
        self,
        protocol: SessionProtocol,
        patient: Any,
        *,
        folder: Path,
        session_id: str,
        devices: Devices,
        clock: Clock,
        world: World | None = None,
        controls: OperatorControls | None = None,
        rate_hz: float = DEFAULT_RATE_HZ,
        seed: int = 0,
        render_fps: float = 15.0,
        metadata: Mapping[str, Any] | None = None,
        echo: Callable[[str], None] | None = None,
        progress: ProgressBar | None = None,
        start_levels: Mapping[str, int] | None = None,
        seconds_scale: float = 1.0,
        before_trial: Callable[[int, Trial], None] | None = None,
        live: LiveSink | None = None,
        connect_timeout_s: float | None = None,
    ) -> None:
        from vrbalance.config.plates import DEFAULT_FOOT_TEMPLATE, load_foot_template

        self.protocol = protocol
        self.patient = patient
        self.folder = Path(folder)
        self.session_id = session_id
        self.devices = devices
        self.clock = clock
        self.world = world if world is not None else NullWorld()
        self.controls = controls if controls is not None else OperatorControls()
        connect = getattr(self.world, "connect", None)
        if callable(connect):
            connect(self.controls)  # the overlay's keys drive the same command queue
        self.rate_hz = float(rate_hz)
        self.seed = int(seed)
        self.render_fps = float(render_fps)
        self.echo = echo or (lambda _line: None)
        self.progress = progress
        self.body = patient_body(patient)
        self.foot_template_id = DEFAULT_FOOT_TEMPLATE
        self.template = load_foot_template(self.foot_template_id)
        self.envelope = patient_envelope(patient)
        self.metadata = dict(metadata or {})
        self.start_levels = dict(start_levels or {})
        self.seconds_scale = float(seconds_scale)
        self.before_trial = before_trial
        self.live = live
        self.connect_timeout_s = connect_timeout_s
        #: The weight the plate must carry before a trial starts, as a mass (kg): the
        #: patient's, or for the simulated patient the simulated person's.
        self.expected_mass_kg: float | None = (
            float(patient.mass_kg)
            if patient.mass_kg is not None
            else getattr(devices, "simulated_mass_kg", None)
        )
        self._monitor: Any = None
        self.director: Any = None
        self._director_scenes: set[str] = set()
        self._latest: tuple[BalanceState | None, bool, float] = (None, False, 0.0)
        self._trial_index = -1
        self._make_director()

    # -- setup ---------------------------------------------------------------

    def _make_director(self) -> None:
        try:
            from vrbalance.config.scenes import available_scenes, load_scene
            from vrbalance.director.director import Director, ladders_from_scenes
        except ImportError as exc:  # the director is optional: levels stay as planned
            log.warning("no director available (%s): levels stay as the protocol says", exc)
            return
        wanted = {t.scene for t in self.protocol.trials if t.director}
        names = [s for s in available_scenes() if s in wanted]
        if not names:
            return
        self.director = Director(ladders_from_scenes([load_scene(n) for n in names]), self.envelope)
        self._director_scenes = set(names)

    def _check_load(self, carry: _GateCarryOver | None) -> LoadCheck | None:
        """The plate's load against the patient's weight (``None`` without a plate)."""
        if carry is None:
            return None
        if self.expected_mass_kg is None:  # run() refuses this before the first trial
            raise ConfigError(missing_mass_message(self.patient.id))
        return check_load(carry.loads_n, self.expected_mass_kg, who=f"patient {self.patient.id}")

    def _sidecar(self, origin_s: float) -> dict[str, Any]:
        b = self.body
        return {
            "session_id": self.session_id,
            "patient_id": self.patient.id,
            "patient": self.patient.to_dict(),
            "protocol": {
                "name": self.protocol.name,
                "title": self.protocol.title,
                "source": self.protocol.source,
                "trials": [asdict(t) for t in self.protocol.trials],
            },
            "rate_hz": self.rate_hz,
            "clock_origin_s": origin_s,
            "seed": self.seed,
            "plate": {"id": self.devices.plate_id},
            "foot_template": self.foot_template_id,
            "body": {
                "height_m": b.height_m,
                "mass_kg": b.mass_kg,
                "foot_length_m": b.foot_length_m,
                "foot_width_m": b.foot_width_m,
                "com_height_m": b.com_height_m,
                "eye_height_m": b.eye_height_m,
                "ankle_height_m": b.ankle_height_m,
            },
            "envelope": self.envelope.to_dict(),
            "software": software_info(),
            **self.metadata,
        }

    # -- the session -----------------------------------------------------------

    def run(self) -> SessionResult:
        """Run every trial; returns when the protocol ends or is stopped.

        Raises
        ------
        RecordingError
            If the recording could not be written (the folder keeps what was).
        """
        from vrbalance.director.monitor import SafetyMonitor

        check_protocol(self.protocol, self.envelope, self.seconds_scale)
        if getattr(self.devices, "plate", None) is not None and self.expected_mass_kg is None:
            raise ConfigError(missing_mass_message(self.patient.id))
        origin_s = self.clock.now_s()
        self.session_t0_s = origin_s
        monitor = SafetyMonitor(self.envelope)
        self._monitor = monitor
        recorder: Any = SessionRecorder(self.folder, self._sidecar(origin_s))
        recorder.start()
        if self.live is not None:
            recorder = _EventTee(recorder, self.live)
        self._trial_index = -1
        set_sink = getattr(self.world, "set_event_sink", None)
        if callable(set_sink):  # the headset's events go into the recording as they happen
            set_sink(lambda event: recorder.event(self._trial_index, event))
        results: list[TrialResult] = []
        session_end = EndReason.COMPLETED
        status = "complete"
        failure: str | None = None
        if self.director is not None:
            levels = {k: v for k, v in self.start_levels.items() if k in self._director_scenes}
            options = {"t_s": origin_s, **({"start_levels": levels} if levels else {})}
            for ev in self.director.reset(seed=self.seed, options=options):
                recorder.event(-1, ev)
        pending = list(self.protocol.trials)
        index = 0
        try:
            previous_end: float | None = None
            while pending:
                trial = pending.pop(0)
                if not self._rest_and_check(index, trial, previous_end, recorder):
                    session_end = EndReason.TIME_LIMIT
                    break
                if self.before_trial is not None:
                    self.before_trial(index, trial)
                result, run = self._run_trial(index, trial, monitor, recorder)
                previous_end = self.clock.now_s()
                results.append(result)
                recorder.trial_finished(result.row())
                self._after_trial(index, result, recorder)
                self.echo(
                    f"[{index + 1}] {trial.name}: {result.end_reason.value}"
                    f" (level {result.level}"
                    + (
                        f", sway {result.mean_velocity_mps * 1000:.1f} mm/s"
                        if result.mean_velocity_mps is not None
                        else ""
                    )
                    + ")"
                )
                index += 1
                if run.repeat:
                    pending.insert(0, trial)
                if run.stop_session:
                    session_end = EndReason.OPERATOR_ABORT
                    break
                if result.end_reason is EndReason.DEVICE_LOST:
                    session_end = EndReason.DEVICE_LOST
                    break
                if (
                    result.end_reason is EndReason.TIME_LIMIT
                    and result.end_t_s - origin_s >= self.envelope.max_session_s
                ):
                    session_end = EndReason.TIME_LIMIT
                    break
        except KeyboardInterrupt as exc:
            # Ctrl-C (or SIGTERM/SIGHUP, delivered the same way by
            # vrbalance.interrupt) between trials: the session ends as the operator's.
            session_end = EndReason.OPERATOR_ABORT
            recorder.event(-1, _interrupt_event(self.clock.now_s(), exc))
        except BaseException as exc:
            # A bug or an unexpected failure: the recording is closed as "failed"
            # with the error, never silently as a normal end; the error propagates.
            status = "failed"
            failure = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.devices.close()
            self.world.close()
            end_t = self.clock.now_s()
            end_reason = session_end.value if failure is None else "error"
            recorder.event(
                -1,
                Event(
                    end_t,
                    "session",
                    "session_end",
                    f"session ended: {end_reason}" + (f" ({failure})" if failure else ""),
                    "info" if failure is None else "alarm",
                    values={"end_reason": end_reason, "error": failure},
                ),
            )
            recorder.close(
                status=status,
                end_reason=end_reason,
                trials=[r.row() for r in results],
            )
        return SessionResult(self.session_id, self.folder, session_end, tuple(results))

    def _rest_and_check(
        self, index: int, trial: Trial, previous_end_s: float | None, recorder: SessionRecorder
    ) -> bool:
        """Rest as the envelope asks, then check the trial against it.

        Returns False when the session's time is used up (the session then ends
        with ``time_limit``).
        """
        from vrbalance.director.envelope import check_trial_plan

        scale = self.seconds_scale
        rest_s: float | None = None
        if previous_end_s is not None:
            need_s = self.envelope.min_rest_s * scale
            wait_s = need_s - (self.clock.now_s() - previous_end_s)
            if wait_s > 0:
                self.echo(f"rest {wait_s:.0f} s before: {trial.name}")
                t_end = self.clock.now_s() + wait_s + 1e-3
                # The world keeps drawing, calm and still, so that a window stays
                # responsive and a headset keeps its frame loop through the rest.
                period_s = 1.0 / max(self.render_fps, 1.0)
                while (now := self.clock.now_s()) < t_end:
                    if self.progress is not None:
                        self.progress.update("rest", 1.0 - (t_end - now) / wait_s, now)
                    self.world.frame(None, True, 0.0)
                    self.clock.sleep_s(min(period_s, t_end - now))
                if self.progress is not None:
                    self.progress.done()
            rest_s = (self.clock.now_s() - previous_end_s) / scale
        elapsed_s = (self.clock.now_s() - self.session_t0_s) / scale
        try:
            check_trial_plan(
                self.envelope,
                stance=trial.stance,
                duration_s=trial.duration_s / scale,
                session_elapsed_s=elapsed_s,
                rest_s=rest_s,
                walk_length_m=trial.walk_length_m,
            )
        except ConfigError as exc:
            t = self.clock.now_s()
            recorder.event(index, Event(t, "session", "trial_refused", str(exc), "warning"))
            self.echo(f"[{index + 1}] {trial.name}: not started: {exc}")
            return False
        return True

    def _level_for(self, trial: Trial) -> int:
        if trial.director and self.director is not None and trial.scene in self._director_scenes:
            # No fallback: a scene the envelope forbids was refused before the session
            # (check_protocol); should the director still refuse, the session stops.
            return int(self.director.next_trial(trial.scene).level)
        return trial.level or 1

    def _run_trial(
        self, index: int, trial: Trial, monitor: Any, recorder: SessionRecorder
    ) -> tuple[TrialResult, _TrialRun]:
        from vrbalance.balance.estimator import BalanceEstimator
        from vrbalance.balance.stance import make_stance
        from vrbalance.exercises.live import exercise_tracker
        from vrbalance.realtime.loop import FixedRateLoop
        from vrbalance.realtime.pipeline import RECOMMENDED_TUNING

        level = self._level_for(trial)
        run = _TrialRun(index=index, trial=trial, level=level)
        run.exercise = exercise_tracker(trial, level)
        stance = make_stance(trial.stance, self.body, self.template)
        try:
            # The level goes with the trial: the simulated person performs it.
            plate, head = self.devices.open_trial(index, replace(trial, level=level))
        except (DeviceError, OSError) as exc:
            t = self.clock.now_s()
            recorder.event(index, Event(t, "device", "device_open_failed", str(exc), "alarm"))
            self.echo(f"[{index + 1}] {trial.name}: device lost: {exc}")
            return TrialResult(
                index, trial, level, EndReason.DEVICE_LOST, t, t, None, None, False
            ), run
        world_head = getattr(self.world, "head_source", None)
        if world_head is not None:
            head = world_head  # the headset tracks the head (the simulated head is unused)
        else:
            wrap = getattr(self.world, "wrap_head", None)
            if callable(wrap):  # the demo's desktop stand-in leans the trial's head
                head = wrap(head)
        self._trial_index = index
        plate_geometry = getattr(getattr(self.devices, "plate", None), "geometry", None)
        estimator = BalanceEstimator(stance, self.body, plate_geometry)
        monitor.request_reset()
        self.world.begin_trial(trial, level)
        loop_ref: list[Any] = []
        step = self._make_step(run, estimator, monitor, recorder, plate, head, loop_ref)
        # Tune the loop thread as docs/realtime.md recommends, rendering or not: on a
        # busy machine an untuned loop skips deadlines even alone (refusals, e.g.
        # SCHED_FIFO without privilege, are logged, not raised).
        rendering = not isinstance(self.world, NullWorld)
        loop = FixedRateLoop(
            step,
            rate_hz=self.rate_hz,
            clock=self.clock,
            name=f"balance-loop:{index}",
            **RECOMMENDED_TUNING,  # type: ignore[arg-type]
        )
        loop_ref.append(loop)
        recorder.event(
            index,
            Event(
                self.clock.now_s(),
                "session",
                "trial_start",
                f"trial {index + 1}: {trial.name} (level {level})",
                values={
                    "trial": index,
                    "name": trial.name,
                    "level": level,
                    "scene": trial.scene,
                    "stance": trial.stance,
                    "head_expected": head is not None,
                },
            ),
        )
        if run.exercise is not None:
            recorder.event(index, run.exercise.plan_event(self.clock.now_s()))
        try:
            if not rendering:
                loop.run()
            else:
                # Objects alive now (scenes, the world, modules) are not garbage:
                # park them out of the collector's reach, so a full collection
                # scans only what this trial allocates (it held the GIL for
                # ~50 ms over the whole heap and starved the loop thread).
                gc.freeze()
                loop.start()
                # A headset paces frames itself (xrWaitFrame): draw as often as it lets us.
                paced = bool(getattr(self.world, "paced", False))
                period = 1e-3 if paced else 1.0 / max(self.render_fps, 1.0)
                shown = level
                while not loop.join(timeout_s=period):
                    state, calm, pitch = self._latest
                    shown = self._follow_console(run, shown)
                    self.world.frame(state, calm, pitch)
                loop.stop()
        except KeyboardInterrupt as exc:
            # Ctrl-C at the console (or SIGTERM/SIGHUP, delivered the same way) is the
            # operator stopping the session: end the trial and the session cleanly so
            # the recording and records are kept.
            loop.request_stop()
            if loop.state.value == "running":
                loop.stop()
            recorder.event(index, _interrupt_event(self.clock.now_s(), exc))
            run.end = run.end or EndReason.OPERATOR_ABORT
            run.stop_session = True
        finally:
            self._trial_index = -1
            self.world.end_trial()
            self.devices.close_trial()
            if self.progress is not None:
                self.progress.done()
        end = run.end or EndReason.OPERATOR_ABORT
        stats = loop.stats()
        recorder.event(
            index,
            Event(
                run.last_t_s,
                "session",
                "trial_end",
                f"trial {index + 1}: {trial.name} ended: {end.value}",
                values={
                    "end_reason": end.value,
                    "ticks": stats.ticks,
                    "connecting_ticks": run.connecting_ticks,
                    "skipped_ticks": stats.skipped,
                    "overruns": stats.overruns,
                    "achieved_rate_hz": stats.achieved_rate_hz,
                    "step_p99_s": stats.step_p99_s,
                    "lateness_p99_s": stats.lateness_p99_s,
                    "lateness_max_s": stats.lateness_max_s,
                    "period_error_p99_s": stats.period_error_p99_s,
                },
            ),
        )
        if stats.skipped:
            log.warning(
                "trial %d: the balance loop skipped %d of %d deadlines (machine busy?)",
                index + 1,  # as the console numbers trials ([1], [2]...)
                stats.skipped,
                stats.ticks + stats.skipped,
            )
        t0 = run.t0_s if run.t0_s is not None else run.last_t_s
        if run.end is EndReason.DEVICE_LOST and run.headset_lost:
            self.echo(f"[{index + 1}] {trial.name}: headset lost; the recording is kept")
        vel = None
        if len(run.cop) >= 16:
            from vrbalance.balance.sway import sway_metrics

            vel = sway_metrics(run.cop, self.rate_hz).mean_velocity_mps
        margin = run.min_margin_m if math.isfinite(run.min_margin_m) else None
        success: bool | None = None
        reason = ""
        if run.exercise is not None:
            _, success, reason = run.exercise.judge()
        return TrialResult(
            index,
            trial,
            level,
            end,
            t0,
            run.last_t_s,
            vel,
            margin,
            run.safety_triggered,
            success,
            reason,
        ), run

    def _follow_console(self, run: _TrialRun, shown: int) -> int:
        """In the render thread: show a level the console changed, recentre if asked."""
        if run.level != shown:
            set_level = getattr(self.world, "set_level", None)
            if callable(set_level):
                set_level(run.level)
        if run.recenter:
            run.recenter = False
            recenter = getattr(self.world, "recenter", None)
            if callable(recenter):
                recenter()
            else:
                log.info("recenter: this output has no view to recentre")
        return run.level

    def _make_step(
        self,
        run: _TrialRun,
        estimator: Any,
        monitor: Any,
        recorder: SessionRecorder,
        plate: PlateSource | None,
        head: HeadSource | None,
        loop_ref: list[Any],
    ) -> Callable[[int, float], None]:
        from vrbalance.director.monitor import (
            HeadsetStatus,
            MonitorStatus,
            PlateStatus,
            plate_status,
        )
        from vrbalance.realtime.pipeline import BalanceLoop
        from vrbalance.sessions.assessments import los_directions_rad, los_target_distance_m

        trial = run.trial
        idx = run.index
        live = self.live
        head_expected = head is not None
        sway_ref = trial.surround == "sway_referenced"
        max_tilt_rad = math.radians(self.envelope.max_surround_tilt_deg)
        directions = los_directions_rad(trial.targets) if trial.assessment == "los" else []

        def stop(reason: EndReason) -> None:
            if run.end is None:
                run.end = reason
            loop_ref[0].request_stop()

        # The product's per-tick composition (drain, head at t, estimator, same-tick
        # verdict, publish): the runner drives it tick by tick and adds what a
        # session needs around it (status, recording, cues, operator, ending).
        status_now = [MonitorStatus(head_expected=head_expected)]
        headset_ready = getattr(self.world, "headset_ready", None)
        limits = monitor.envelope.monitor

        def judge(state: BalanceState) -> Any:
            return monitor.step(state, status_now[0])

        carry = _GateCarryOver(plate) if plate is not None else None
        balance = BalanceLoop(
            estimator,
            clock=self.clock,
            rate_hz=self.rate_hz,
            plate=carry,
            head=head,
            monitor=judge,
            name=f"balance-loop:{idx}",
        )

        def tell_live(
            elapsed_s: float, streaming: bool, state: BalanceState | None, verdict: Any
        ) -> None:
            """Hand the live sink (console, LSL) this tick, connecting or streaming."""
            if live is not None:
                live.tick(
                    LiveTick(
                        idx,
                        trial.name,
                        trial.scene,
                        run.level,
                        trial.duration_s,
                        elapsed_s,
                        streaming,
                        run.paused,
                        run.estop,
                        state,
                        verdict,
                    )
                )

        def connecting(tick: int, t_s: float) -> None:
            """Start gate (main docstring): the trial begins once every input streams.

            Until then the inputs are drained and looked at, but neither the
            estimator nor the monitor runs and nothing is recorded: the trial,
            its recording and the monitor (reset at the trial's start) all begin
            at the first streaming tick, exactly as a replay sees them. The
            world stays calm; a plate that reports itself lost, a lost headset
            and the operator's stop end the trial at once.
            """
            if carry is not None and carry.hold_newest():
                run.last_frame_rx_s = t_s  # frames arrived by this tick
            pose = head.pose_at(t_s) if head is not None else None
            if pose is not None and not pose.tracked:
                run.untracked_head = True
            self._latest = (None, True, 0.0)
            tell_live(0.0, False, None, None)
            plate_state = getattr(getattr(plate, "state", None), "value", "none")
            t_connect = run.connect_t0_s if run.connect_t0_s is not None else t_s
            for cmd in self.controls.due(idx, 0.0):
                self._apply(cmd, run, t_s, recorder, stop)
            if run.estop:
                stop(EndReason.OPERATOR_ABORT)
                return
            if plate_status(plate_state) is PlateStatus.LOST or run.headset_lost:
                what = "headset" if run.headset_lost else "force plate"
                recorder.event(
                    idx,
                    Event(t_s, "device", "inputs_lost", f"{what} lost while connecting", "alarm"),
                )
                stop(EndReason.DEVICE_LOST)
                return
            ready = headset_ready is None or bool(headset_ready())
            plate_ok = plate is None or (
                run.last_frame_rx_s is not None
                and t_s - run.last_frame_rx_s <= limits.plate_stale_s
            )
            # Untracked poses (a runtime's inferred position) are ignored by the
            # estimator, so only a tracked, finite pose counts as delivered.
            head_ok = head is None or (
                pose is not None and pose.tracked and all(map(math.isfinite, pose.position_m))
            )
            inputs_ok = ready and plate_ok and head_ok
            if inputs_ok:
                if run.fresh_since_s is None:
                    run.fresh_since_s = t_s
                    if carry is not None:
                        carry.restart_window()
                if t_s - run.fresh_since_s < STREAMING_HOLD_S:
                    return
                # The plate must carry the patient's weight before the trial starts:
                # a wrong calibration or a patient half off the plate would blind
                # every plate trigger of the monitor (vrbalance.sessions.plate_check).
                load = self._check_load(carry)
                run.load_check = load
                if load is None or load.ok:
                    run.streaming = True
                    values: dict[str, object] = {
                        "wait_s": t_s - t_connect,
                        "last_connecting_tick": tick,
                    }
                    if load is not None:
                        values.update(plate_load_n=load.measured_n, expected_load_n=load.expected_n)
                    recorder.event(
                        idx,
                        Event(
                            t_s,
                            "session",
                            "inputs_streaming",
                            f"inputs streaming after {t_s - t_connect:.2f} s: trial starts",
                            values=values,
                        ),
                    )
                    return
                run.fresh_since_s = None  # implausible load: look again over a new window
            else:
                run.fresh_since_s = None
            timeout_s = self.connect_timeout_s
            if timeout_s is None:
                timeout_s = CONNECT_TIMEOUT_S
            load = run.load_check
            # A plate that streamed a whole window with the wrong load is reported as
            # such, even if a frame happens to be late at the timeout's own tick.
            if t_s - t_connect > timeout_s and load is not None and not load.ok:
                message = f"trial not started: {load.message}"
                log.warning("trial %d not started: %s", idx + 1, load.message)
                recorder.event(
                    idx,
                    Event(
                        t_s,
                        "device",
                        "plate_load_implausible",
                        message,
                        "alarm",
                        values={
                            "plate_load_n": load.measured_n,
                            "expected_load_n": load.expected_n,
                            "tolerance": LOAD_TOLERANCE,
                            "frames": load.n_frames,
                        },
                    ),
                )
                self.echo(f"[{idx + 1}] {trial.name}: {message}")
                stop(EndReason.DEVICE_LOST)
            elif t_s - t_connect > timeout_s:
                missing = [
                    name
                    for name, ok in (
                        ("plate frame", plate_ok),
                        ("tracked head pose", head_ok),
                        ("headset focus", ready),
                    )
                    if not ok
                ]
                message = f"no {', '.join(missing)} within {timeout_s:g} s"
                if not head_ok and run.untracked_head:
                    message += f" ({UNTRACKED_HEAD_HINT})"
                log.warning("trial %d not started: %s", idx + 1, message)
                recorder.event(
                    idx,
                    Event(
                        t_s,
                        "device",
                        "inputs_timeout",
                        message,
                        "alarm",
                        values={"missing": ", ".join(missing)},
                    ),
                )
                stop(EndReason.DEVICE_LOST)

        def step(tick: int, t_s: float) -> None:
            if run.connect_t0_s is None:
                run.connect_t0_s = t_s
            run.last_t_s = t_s
            if plate is not None:
                for ev in plate.drain_events():
                    recorder.event(idx, ev)
            if not run.streaming:
                run.connecting_ticks += 1
                connecting(tick, t_s)
                return
            if run.t0_s is None:
                run.t0_s = t_s
            plate_state = getattr(getattr(plate, "state", None), "value", "none")
            headset = HeadsetStatus.NONE
            if run.headset_lost:
                headset = HeadsetStatus.LOST
            elif headset_ready is not None:
                headset = HeadsetStatus.FOCUSED
            status = MonitorStatus(
                plate=plate_status(plate_state),
                headset=headset,
                head_expected=head_expected,
                emergency_stop=run.estop,
                trial_elapsed_s=t_s - run.t0_s,
                session_elapsed_s=t_s - self.session_t0_s,
                corridor=run.exercise.corridor if run.exercise is not None else None,
            )
            status_now[0] = status
            result = balance.tick(tick, t_s)
            state, verdict, frames, pose = (
                result.state,
                result.verdict,
                result.plate_frames,
                result.head,
            )
            recorder.plate(state.tick, idx, frames)
            recorder.head(state.tick, idx, pose)
            recorder.state(
                idx,
                state,
                level=run.level,
                response=verdict.response.label,
                plate_status=status.plate.value,
                estop=run.estop,
            )
            for ev in verdict.events:
                recorder.event(idx, ev)
            if run.exercise is not None:
                run.exercise.add(state)
            if state.plate_loaded and state.cop_m is not None:
                run.cop.append(state.cop_m)
            if state.margin_xcom_m is not None and state.margin_xcom_m < run.min_margin_m:
                run.min_margin_m = state.margin_xcom_m
            pitch = (state.sway_angle_ap_rad or 0.0) if sway_ref else 0.0
            # The sway-referenced surround tilts with the patient, but never further
            # than the envelope lets the surround tilt (a lean past it is the
            # monitor's business, not a reason to tilt the world more).
            pitch = min(max(pitch, -max_tilt_rad), max_tilt_rad)
            self._latest = (state, verdict.calm or run.paused, pitch)
            # Limits of Stability cues: one target every target_time_s.
            # Active trial time: pauses (finished and current) do not count.
            paused_now = t_s - run.paused_since_s if run.paused_since_s is not None else 0.0
            elapsed = t_s - run.t0_s - run.paused_total_s - paused_now
            tell_live(elapsed, True, state, verdict)
            if (
                directions
                and run.next_cue < len(directions)
                and elapsed >= run.next_cue * trial.target_time_s
            ):
                k = run.next_cue
                d = directions[k]
                recorder.event(
                    idx,
                    Event(
                        t_s,
                        "session",
                        "los_target",
                        f"target {k + 1}: {math.degrees(d):.0f} deg",
                        values={
                            "target": k + 1,
                            "direction_rad": d,
                            "distance_m": los_target_distance_m(d, self.body.pendulum_length_m),
                        },
                    ),
                )
                run.next_cue += 1
            if verdict.calm and not run.safety_triggered:
                run.safety_triggered = True
                if (
                    trial.director
                    and self.director is not None
                    and trial.scene in self._director_scenes
                    and not run.director_lowered
                ):
                    run.director_lowered = True
                    cause = verdict.cause.value if verdict.cause is not None else "safety"
                    decision = self.director.on_safety(trial.scene, t_s=t_s, cause=cause)
                    for ev in decision.events:
                        recorder.event(idx, ev)
            if verdict.stop_trial:
                cause = verdict.cause.value if verdict.cause is not None else ""
                if cause in _DEVICE_CAUSES:
                    stop(EndReason.DEVICE_LOST)
                elif cause in _TIME_CAUSES:
                    stop(EndReason.TIME_LIMIT)
                elif cause == "emergency_stop":
                    stop(EndReason.OPERATOR_ABORT)
                else:
                    stop(EndReason.SAFETY_STOP)
            for cmd in self.controls.due(idx, t_s - run.t0_s):
                self._apply(cmd, run, t_s, recorder, stop)
            if run.paused:
                return
            if elapsed >= trial.duration_s - 0.5 / self.rate_hz:
                stop(EndReason.COMPLETED)
            if self.progress is not None:
                cause = verdict.cause.value if verdict.cause is not None else None
                self.progress.update(
                    f"{idx + 1}: {trial.name}",
                    elapsed / trial.duration_s,
                    t_s,
                    detail=f"{elapsed:4.0f} / {trial.duration_s:.0f} s  "
                    + verdict_text(verdict.response.label, cause),
                )

        return step

    def _apply(
        self,
        cmd: Command,
        run: _TrialRun,
        t_s: float,
        recorder: SessionRecorder,
        stop: Callable[[EndReason], None],
    ) -> None:
        if cmd in _HEADSET_COMMANDS:
            self._apply_headset(cmd, run, t_s)
            return
        if cmd in _CONSOLE_COMMANDS:
            self._apply_console(cmd, run, t_s, recorder)
            return
        message = {
            Command.PAUSE: "operator paused the trial",
            Command.RESUME: "operator resumed the trial",
            Command.SKIP: "operator skipped the trial",
            Command.REPEAT: "operator asked to repeat the trial",
            Command.STOP: "operator stopped the session",
            Command.EMERGENCY_STOP: "operator pressed the emergency stop",
        }[cmd]
        severity = "alarm" if cmd is Command.EMERGENCY_STOP else "info"
        recorder.event(run.index, Event(t_s, "operator", cmd.value, message, severity))  # type: ignore[arg-type]
        if cmd is Command.PAUSE and not run.paused:
            run.paused = True
            run.paused_since_s = t_s
        elif cmd is Command.RESUME and run.paused:
            run.paused = False
            run.paused_total_s += t_s - (run.paused_since_s or t_s)
            run.paused_since_s = None
        elif cmd is Command.SKIP:
            stop(EndReason.OPERATOR_ABORT)
        elif cmd is Command.REPEAT:
            run.repeat = True
            stop(EndReason.OPERATOR_ABORT)
        elif cmd is Command.STOP:
            run.stop_session = True
            stop(EndReason.OPERATOR_ABORT)
        elif cmd is Command.EMERGENCY_STOP:
            run.estop = True  # the monitor stops the trial in this same tick's successor

    def _apply_console(
        self, cmd: Command, run: _TrialRun, t_s: float, recorder: SessionRecorder
    ) -> None:
        """The console's difficulty and monitor commands, recorded like every operator command.

        Level up/down, pin and lock go to the director (which keeps them inside
        the envelope and records its decision with the reason); the new level
        shows from the next rendered frame. A trial whose level the protocol
        fixes (baseline, assessments) refuses them with a recorded warning.
        Reset clears the monitor's latched calm (a cause still present triggers
        again at once); it never cancels an emergency stop's end of the trial.
        Recenter is handed to the world, which recentres the view if it can.
        """
        idx = run.index
        messages = {
            Command.LEVEL_UP: "operator raised the level",
            Command.LEVEL_DOWN: "operator lowered the level",
            Command.PIN_LEVEL: "operator pinned or unpinned the level",
            Command.LOCK_SCENE: "operator locked or unlocked the scene",
            Command.RECENTER: "operator recentred the view",
            Command.RESET: "operator reset the safety monitor",
        }
        recorder.event(idx, Event(t_s, "operator", cmd.value, messages[cmd], "info"))  # type: ignore[arg-type]

        def refuse(why: str) -> None:
            """Record why the command changes nothing (a warning beside the operator's event)."""
            recorder.event(idx, Event(t_s, "operator", "command_refused", why, "warning"))

        if cmd is Command.RESET:
            if self._monitor is not None:
                self._monitor.request_reset()
            return
        if cmd is Command.RECENTER:
            if run.exercise is not None and run.exercise.corridor is not None:
                # The walking corridor is judged in the stage frame, where the line is
                # painted: a recentred view would move the line off the corridor and
                # walk the patient into a left_corridor stop.
                refuse(
                    "recenter refused during a walk: the line on the floor is where the "
                    "walking corridor is judged; recentre with the headset's own control "
                    "before the walk"
                )
                return
            run.recenter = True
            return
        trial, director = run.trial, self.director
        if not (trial.director and director is not None and trial.scene in self._director_scenes):
            refuse(f"{cmd.value} refused: the protocol fixes this trial's level ({run.level})")
            return
        scene = trial.scene
        state = director.scene_state(scene)
        try:
            if cmd is Command.LEVEL_UP:
                decision = director.set_level(scene, run.level + 1, t_s=t_s)
            elif cmd is Command.LEVEL_DOWN:
                decision = director.set_level(scene, max(1, run.level - 1), t_s=t_s)
            elif cmd is Command.PIN_LEVEL:
                decision = (
                    director.unpin(scene, t_s=t_s)
                    if state.pinned
                    else director.pin_level(scene, run.level, t_s=t_s)
                )
            else:
                decision = (
                    director.unlock_scene(scene, t_s=t_s)
                    if state.locked
                    else director.lock_scene(scene, t_s=t_s)
                )
        except ConfigError as exc:
            refuse(f"{cmd.value}: {exc}")
            return
        for ev in decision.events:
            recorder.event(idx, ev)
        run.level = int(director.level(scene))

    @staticmethod
    def _apply_headset(cmd: Command, run: _TrialRun, t_s: float) -> None:
        """The headset's focus and loss (the headset's own events are already recorded).

        Not focused pauses the trial (the world calms, trial time stops) and
        focus regained resumes it, unless the operator paused it too. A loss
        tells the monitor (``headset_lost`` stops the trial: ``device_lost``,
        which ends the session with the recording intact).
        """
        if cmd is Command.HEADSET_UNFOCUSED and not run.paused:
            run.paused = run.headset_paused = True
            run.paused_since_s = t_s
        elif cmd is Command.HEADSET_FOCUSED and run.headset_paused:
            run.paused = run.headset_paused = False
            run.paused_total_s += t_s - (run.paused_since_s or t_s)
            run.paused_since_s = None
        elif cmd is Command.HEADSET_LOST:
            run.headset_lost = True

    def _after_trial(self, index: int, result: TrialResult, recorder: SessionRecorder) -> None:
        if self.director is None:
            return
        from vrbalance.director.director import Baseline, TrialOutcome

        if index == 0 and result.end_reason is EndReason.COMPLETED:
            vel, margin = result.mean_velocity_mps, result.min_margin_m
            if vel and vel > 0 and margin and margin > 0:
                recorder.event(
                    index, self.director.set_baseline(Baseline(vel, margin), t_s=result.end_t_s)
                )
        trial = result.trial
        if trial.director and trial.scene in self._director_scenes:
            decision = self.director.step(
                TrialOutcome(
                    scene=trial.scene,
                    level=result.level,
                    t_s=result.end_t_s,
                    mean_velocity_mps=result.mean_velocity_mps,
                    min_margin_m=result.min_margin_m,
                    safety_triggered=result.safety_triggered,
                    completed=result.end_reason is EndReason.COMPLETED,
                    exercise_success=result.exercise_success,
                    exercise_reason=result.exercise_reason,
                )
            )
            for ev in decision.events:
                recorder.event(index, ev)


# --------------------------------------------------------------------------- helpers


def missing_mass_message(patient_id: str) -> str:
    """Why a plate session cannot start for a patient without a recorded body mass."""
    return (
        f"patient {patient_id} has no body mass on record: before each trial the plate's "
        "load is checked against the patient's weight (a wrong calibration or a patient "
        "half off the plate would hide a fall), and a plate session does not start "
        f"without that check; record it with `vrbalance patient set-body {patient_id} "
        "--mass-kg KG`"
    )


def _interrupt_event(t_s: float, exc: BaseException) -> Event:
    """The recording's note of an interrupt: Ctrl-C, or the signal that asked to stop."""
    from vrbalance.interrupt import interrupt_reason

    how = interrupt_reason(exc)
    message = getattr(exc, "message", None) or (
        "operator interrupted the session (Ctrl-C)"
        if how == "Ctrl-C"
        else f"session interrupted by {how} (the system asked vrbalance to stop)"
    )
    return Event(t_s, "operator", "interrupt", message, "warning", values={"signal": how})


def patient_body(patient: Any) -> Any:
    """The patient's :class:`~vrbalance.balance.geometry.Body` (1.70 m where no height is
    recorded): the runner's margins and the simulated patient's person share it."""
    from vrbalance.balance.geometry import Body

    return Body(
        height_m=float(patient.height_m or 1.70),
        mass_kg=patient.mass_kg,
        foot_length_m=patient.foot_length_m,
    )


def patient_envelope(patient: Any) -> Any:
    """The patient's :class:`~vrbalance.director.envelope.SafetyEnvelope` (default if unset)."""
    from vrbalance.director.envelope import SafetyEnvelope

    env = dict(patient.envelope or {})
    if not env:
        return SafetyEnvelope()
    return SafetyEnvelope.from_dict(env, where=f"patient {patient.id} envelope")


def check_protocol(
    protocol: SessionProtocol,
    envelope: Any,
    seconds_scale: float = 1.0,
    *,
    patient_id: str | None = None,
    patient_command: str = "vrbalance patient",
) -> None:
    """Refuse a protocol the patient's envelope does not allow, before anything starts.

    Every trial is checked against the envelope: its stance must be allowed,
    its (unscaled) duration within ``max_trial_s``, the whole protocol with
    the envelope's rests within ``max_session_s``, and the level it shows
    (a fixed ``level``, or level 1 where the director starts at worst) within
    the envelope for its scene, which covers every scene parameter the
    envelope caps (surround tilt and rate, optic flow, passing distance; see
    :func:`~vrbalance.director.envelope.level_refusal`). A director trial
    needs at least level 1 of its scene allowed. Nothing that fails here can
    reach the patient: the director and the window's keys stay inside the
    same envelope during the session.

    Parameters
    ----------
    protocol : Protocol
        Loaded, durations possibly scaled by ``seconds_scale``.
    envelope : SafetyEnvelope
        The patient's.
    seconds_scale : float
        The factor the durations were scaled by; limits apply to the unscaled ones.
    patient_id : str, optional
        Named in the exact command that allows a refused stance.
    patient_command : str
        How to call ``vrbalance patient`` for this database (with ``--db``).

    Raises
    ------
    ConfigError
        Naming the protocol, the trial, the value and the envelope's limit.
    """
    from vrbalance.director.envelope import check_trial_plan, level_refusal

    def refuse(i: int, trial: Trial, why: str, fix: str) -> ConfigError:
        return ConfigError(f"protocol {protocol.name!r} trial {i + 1} ({trial.name}): {why}; {fix}")

    generic_fix = (
        f"change the patient's envelope (`{patient_command} set-envelope "
        f"{patient_id or 'ID'} ...`) or the protocol"
    )
    stances_used = dict.fromkeys(t.stance for t in protocol.trials)
    missing = [s for s in stances_used if not envelope.stance_allowed(s)]
    stance_fix = generic_fix
    if missing:
        stances = ",".join((*envelope.allowed_stances, *missing))
        stance_fix = (
            "a new patient's envelope allows only the widest stances; if the therapist "
            f"allows {', '.join(missing)}, run: {patient_command} set-envelope "
            f"{patient_id or 'ID'} --allowed-stances {stances}"
        )
    ladders = _scene_ladders({t.scene for t in protocol.trials})
    elapsed_s = 0.0
    for i, trial in enumerate(protocol.trials):
        duration_s = trial.duration_s / seconds_scale
        try:
            check_trial_plan(
                envelope,
                stance=trial.stance,
                duration_s=duration_s,
                session_elapsed_s=elapsed_s,
                walk_length_m=trial.walk_length_m,
            )
        except ConfigError as exc:
            fix = stance_fix if trial.stance in missing else generic_fix
            raise refuse(i, trial, str(exc), fix) from None
        ladder = ladders.get(trial.scene)
        if ladder is not None:
            why = level_refusal(ladder, envelope, trial.scene, trial.level or 1)
            if why is not None:
                raise refuse(i, trial, why, generic_fix)
        elapsed_s += duration_s + envelope.min_rest_s


def _scene_ladders(scenes: set[str]) -> dict[str, list[Mapping[str, float]]]:
    """The level ladders of the scenes that have one (``blank`` has none)."""
    from vrbalance.config.scenes import available_scenes, load_scene

    known = set(available_scenes())
    return {
        name: [level.values for level in load_scene(name).levels]
        for name in sorted(scenes)
        if name in known
    }


def check_patient_id(patient_id: str) -> str:
    """Return ``patient_id`` if it is safe as a folder name, else raise naming it."""
    if not isinstance(patient_id, str) or not PATIENT_ID_RE.match(patient_id):
        raise ConfigError(
            f"patient id {patient_id!r}: expected 1-64 letters, digits, '_', '.' or '-' "
            "starting with a letter or digit (it names the patient's folder)"
        )
    return patient_id


def new_session_folder(sessions_root: Path, patient_id: str, protocol: str) -> tuple[str, Path]:
    """A fresh ``(session_id, folder)`` under ``sessions_root/patient_id``."""
    check_patient_id(patient_id)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{protocol}"
    folder = sessions_root / patient_id / base
    n = 1
    while folder.exists():
        n += 1
        folder = sessions_root / patient_id / f"{base}-{n}"
    return f"{patient_id}-{folder.name}", folder
