"""The force plate read in its own process, its frames handed over in shared memory.

Why a process: in the session process the plate reader thread shares Python's
GIL with the renderer's Python, the recorder, the balance loop and the garbage
collector. Measured in a rendered session (docs/integration.md, "Where the
time went"): a 1 ms probe thread in the session process waited up to 124 ms
for the GIL, 77 times more than 10 ms in 15 s, while the same probe in another
process saw at most 15 ms; a 52 ms full garbage collection coincided with a
``plate_stale`` calm. Frames stamped late by a starved reader look old to the
safety monitor and calm the world for nothing. Here the reader (and, with
``--simulate``, the simulated plate, which in a clinic is another device
anyway) runs in a child process with its own GIL: each frame is stamped
(``received_time_s``, ``CLOCK_MONOTONIC``, the same clock in both processes)
and written into a :class:`~vrbalance.devices.shared_ring.SharedFrameRing` the
moment it is complete, however busy the session process is.

:class:`PlateProcess` is the parent's handle (a context manager): one child
per session, started from a ``forkserver`` (a clean single-threaded process,
so a renderer's threads are never forked), driven by a small command pipe
(``open`` a simulated or serial plate for a trial, ``close`` it, ``quit``).
The plate it opens is a :class:`SharedPlate` with the driver's interface
(``drain``, ``drain_events``, ``state``), so the runner cannot tell it from
an in-process :class:`~vrbalance.devices.driver.ForcePlate`. State-change
events cross on a second pipe as dicts and become :class:`Event` again.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import signal
import sys
import threading
from dataclasses import asdict
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Self

from vrbalance.devices.driver import PlateState
from vrbalance.devices.shared_ring import SharedFrameRing
from vrbalance.errors import DeviceError, ProtocolError, VrBalanceError
from vrbalance.events import Event
from vrbalance.samples import PlateFrame

log = logging.getLogger(__name__)

_STATES = tuple(PlateState)
#: How long the parent waits for the child to answer a command, s (opening a
#: plate waits up to the driver's first-frame timeout, 2 s, plus start-up).
REPLY_TIMEOUT_S = 30.0
#: Tuning of the plate process's threads (reader, simulated device): 1 µs timer
#: slack and ``SCHED_FIFO`` above the loop's (see :data:`RECOMMENDED_TUNING`).
PLATE_TUNING: dict[str, int] = {"timer_slack_ns": 1000, "fifo_priority": 20}
#: The plate process's GIL switch interval, s.
PLATE_SWITCH_INTERVAL_S = 0.0005
#: Modules the forkserver imports once, so that every plate (and render) process
#: forked from it starts with them loaded (importing numpy, pyserial and the
#: drivers takes seconds on a busy machine).
FORKSERVER_PRELOAD = [
    "vrbalance.devices.plate_process",
    "vrbalance.devices.evdev_plate",
    "vrbalance.devices.pty_server",
    "vrbalance.devices.simulator",
    "vrbalance.config.plates",
    "vrbalance.realtime.priority",
]
_ERRORS: dict[str, type[VrBalanceError]] = {
    "DeviceError": DeviceError,
    "ProtocolError": ProtocolError,
}


# --------------------------------------------------------------------------- child


def ignore_terminal_signals() -> None:
    """Leave Ctrl-C and a hang-up to the session (they reach the whole process group).

    The session ends its trial cleanly on them and then closes this process;
    a child that died first would end the trial as a lost plate instead.
    """
    for name in ("SIGINT", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, signal.SIG_IGN)


def _child_main(
    commands: Connection,
    events: Connection,
    ring_name: str,
    inherited: tuple[Connection, ...] = (),
) -> None:
    """The plate process: serve commands until ``quit`` or the parent goes away."""
    ignore_terminal_signals()
    for conn in inherited:
        conn.close()
    from vrbalance.clock import MonotonicClock
    from vrbalance.config.plates import load_plate
    from vrbalance.devices.evdev_plate import open_plate
    from vrbalance.devices.pty_server import SimulatedPlateServer
    from vrbalance.devices.simulator import PersonParams
    from vrbalance.realtime.priority import tune_current_thread

    ring = SharedFrameRing.attach(ring_name)
    clock = MonotonicClock()
    send_lock = threading.Lock()
    driver: Any = None
    server: Any = None
    tuned: set[int] = set()
    main_ident = threading.get_ident()
    # The reader and the simulated device share this process's GIL: hand it over
    # within 0.5 ms, as the balance loop's process does (RECOMMENDED_TUNING).
    sys.setswitchinterval(PLATE_SWITCH_INTERVAL_S)

    def tune() -> None:
        """Real-time priority for the reader and the simulated device, once per thread.

        Above the balance loop's (10): a frame stamped late is a frame the
        monitor thinks is old. Refused without privilege (logged, not raised).
        """
        ident = threading.get_ident()
        if ident == main_ident:
            return  # the command thread only waits; the reader and the device are timed
        if ident not in tuned:
            tuned.add(ident)
            tune_current_thread(
                timer_slack_ns=PLATE_TUNING["timer_slack_ns"],
                fifo_priority=PLATE_TUNING["fifo_priority"],
            )

    def send_event(event: Event) -> None:
        with send_lock, contextlib.suppress(OSError):
            events.send(event.to_dict())

    def on_event(event: Event) -> None:
        tune()
        ring.set_state(_STATES.index(driver.state) if driver is not None else -1)
        send_event(event)

    def on_frames(frames: list[PlateFrame], _t_s: float) -> None:
        tune()
        ring.write(frames)
        if driver is not None:  # (None while open() waits for the first frame)
            driver.drain()  # the ring is the buffer: keep the driver's own deque empty

    def on_write(_first: int, _n: int, _t_s: float) -> None:
        tune()
        person = server.signal.person if server is not None else None
        if person is not None:
            ring.write_pose(float(person.t_s), float(person.theta[0]), float(person.theta[1]))

    def close_trial() -> None:
        nonlocal driver, server
        if driver is not None:
            driver.close()
            ring.set_state(_STATES.index(driver.state))
            driver = None
        if server is not None:
            server.stop()
            server = None

    try:
        while True:
            try:
                command, options = commands.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            try:
                if command == "quit":
                    close_trial()
                    commands.send(("ok", None))
                    return
                if command == "server":  # scripted device faults (stall, unplug, replug)
                    if server is None:
                        raise DeviceError("plate process: no simulated plate is open")
                    method = options["method"]
                    if method not in ("stall", "unplug", "replug"):
                        raise ValueError(f"simulated plate: unknown action {method!r}")
                    getattr(server, method)(*options.get("args", ()))
                    commands.send(("ok", None))
                    continue
                if command == "close":
                    close_trial()
                    commands.send(("ok", None))
                    continue
                if command == "open":
                    close_trial()
                    plate = options["plate"]
                    if isinstance(plate, str):
                        plate = load_plate(plate)
                    port = options.get("port")
                    if port is None:
                        person = PersonParams(**options["person"])
                        server = SimulatedPlateServer(
                            plate,
                            script=options.get("script", ""),
                            seed=int(options.get("seed", 0)),
                            clock=clock,
                            person=person,
                            on_write=on_write,
                        ).start()
                        port = server.port_path
                    # A serial port or an input device (the Wii Balance Board), as
                    # run and calibrate choose it; the calibration comes from the
                    # session, read and validated there before anything was recorded.
                    hooks = {"on_event": on_event, "on_frames": on_frames}
                    calibration = options.get("calibration")
                    if calibration is not None:
                        hooks["calibration"] = calibration
                    driver = open_plate(plate, port, clock=clock, **hooks)
                    driver.drain()  # frames of the opening are already in the ring
                    # What exists now (modules, the simulation, the driver) lives
                    # until the trial ends: out of the collector's sweeps, so that a
                    # full collection cannot hold this process's GIL for tens of ms.
                    gc.freeze()
                    ring.set_state(_STATES.index(driver.state))
                    commands.send(("ok", str(port)))
                    continue
                commands.send(("error", ("ValueError", f"unknown command {command!r}")))
            except Exception as exc:  # reported to the parent, which raises it
                log.debug("plate process: %s failed", command, exc_info=True)
                close_trial()
                commands.send(("error", (type(exc).__name__, str(exc))))
    finally:
        close_trial()
        ring.close()


# --------------------------------------------------------------------------- parent


class SharedPlate:
    """The session side of a plate read in the plate process (the driver's interface).

    ``drain()`` reads the shared ring, ``drain_events()`` the event pipe,
    ``state`` the state the child last published; none of them waits.
    """

    def __init__(self, owner: PlateProcess, port: str) -> None:
        self._owner = owner
        self.port = port

    @property
    def state(self) -> PlateState:
        index = self._owner.ring.state
        return _STATES[index] if 0 <= index < len(_STATES) else PlateState.CLOSED

    @property
    def dropped(self) -> int:
        """Frames lost because the session fell a whole ring behind."""
        return self._owner.ring.dropped

    def drain(self) -> list[PlateFrame]:
        """Every frame received since the last call, oldest first."""
        return self._owner.ring.drain()

    def drain_events(self) -> list[Event]:
        """State-change events since the last call, oldest first."""
        return self._owner.poll_events()

    def close(self) -> None:
        """Close the plate in the child (idempotent; the process stays for the next)."""
        self._owner.close_plate()


class SharedPerson:
    """The simulated person of the plate process, as :class:`SimulatedHead` reads it.

    ``t_s`` reads the shared pose (one consistent snapshot) and ``theta``
    returns that snapshot's angles, in the order SimulatedHead asks for them.
    """

    def __init__(self, ring: SharedFrameRing, params: Any) -> None:
        self._ring = ring
        self.p = params
        self._theta = (0.0, 0.0)

    @property
    def t_s(self) -> float | None:
        pose = self._ring.read_pose()
        if pose is None:
            return None
        t_s, ml, ap = pose
        self._theta = (ml, ap)
        return t_s

    @property
    def theta(self) -> tuple[float, float]:
        return self._theta


class PlateProcess:
    """A child process that reads one plate at a time into shared memory.

    Parameters
    ----------
    capacity : int
        Frames the shared ring holds (8192: 8 s at 1 kHz).

    Examples
    --------
    >>> with PlateProcess() as proc:                       # doctest: +SKIP
    ...     plate = proc.open_simulated("wii-balance-board", person, script="", seed=0)
    ...     frames = plate.drain()
    """

    def __init__(self, capacity: int = 8192) -> None:
        self._capacity = capacity
        self.ring: SharedFrameRing = None  # type: ignore[assignment]
        self._process: Any = None
        self._commands: Connection | None = None
        self._events: Connection | None = None
        self._lock = threading.Lock()

    def start(self) -> Self:
        """Create the ring and start the child (idempotent)."""
        if self._process is not None:
            return self
        # A single-threaded process forks (instant: the child has every module
        # already); with threads running (a renderer's, a test runner's) a fork
        # could copy a lock some thread holds, so the child comes from the
        # forkserver instead (a clean process; its first start imports).
        forking = threading.active_count() == 1
        ctx = multiprocessing.get_context("fork" if forking else "forkserver")
        if not forking:
            ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
        self.ring = SharedFrameRing.create(self._capacity)
        parent_cmd, child_cmd = ctx.Pipe(duplex=True)
        events_in, events_out = ctx.Pipe(duplex=False)
        # A forked child closes its copies of this side's ends, so that it sees
        # EOF when the session goes away.
        inherited = (parent_cmd, events_in) if forking else ()
        process = ctx.Process(
            target=_child_main,
            args=(child_cmd, events_out, self.ring.name, inherited),
            name="vrbalance-plate",
            daemon=True,
        )
        try:
            process.start()
        except BaseException:
            self.ring.unlink()
            raise
        child_cmd.close()
        events_out.close()
        self._process, self._commands, self._events = process, parent_cmd, events_in
        return self

    @property
    def pid(self) -> int | None:
        """The child's process id (None before start)."""
        return None if self._process is None else self._process.pid

    def _require_started(self) -> None:
        if self._commands is None or self.ring is None:
            raise DeviceError("plate process: not started (call start())")

    def _call(self, command: str, options: dict[str, Any] | None = None) -> Any:
        self._require_started()
        with self._lock:
            try:
                self._commands.send((command, options or {}))
                if not self._commands.poll(REPLY_TIMEOUT_S):
                    raise DeviceError(
                        f"plate process: no answer to {command!r} within {REPLY_TIMEOUT_S:g} s"
                    )
                status, value = self._commands.recv()
            except (EOFError, OSError) as exc:
                code = self._process.exitcode if self._process is not None else None
                raise DeviceError(f"plate process exited (code {code}): {exc}") from exc
        if status == "ok":
            return value
        name, message = value
        raise _ERRORS.get(name, DeviceError)(message)

    def open_simulated(
        self,
        plate: Any,
        person: Any,
        *,
        script: str = "",
        seed: int = 0,
        calibration: Any = None,
    ) -> tuple[SharedPlate, SharedPerson]:
        """Start a simulated plate server and its driver in the child, for one trial.

        Returns the plate and the simulated person (for the head). Raises
        :class:`DeviceError` (or :class:`ProtocolError`) as the driver's
        ``open`` would.
        """
        self._require_started()
        self._fresh_start()
        port = self._call(
            "open",
            {
                "plate": plate,
                "person": asdict(person),
                "script": script,
                "seed": seed,
                "calibration": calibration,
            },
        )
        return SharedPlate(self, port), SharedPerson(self.ring, person)

    def open_serial(self, plate: Any, port: str, *, calibration: Any = None) -> SharedPlate:
        """Open the plate on ``port`` (serial or input device) in the child; waits for
        its first frame. ``calibration``: the session's (default: the plate's own)."""
        self._require_started()
        self._fresh_start()
        self._call("open", {"plate": plate, "port": port, "calibration": calibration})
        return SharedPlate(self, port)

    def _fresh_start(self) -> None:
        """Forget the previous plate's frames and events (as a new driver would).

        The opening's own events (``plate_connecting``, ``plate_streaming``) are
        sent before the child answers ``open``, so they stay for the trial.
        """
        self.ring.skip_to_end()
        self.poll_events()

    def simulated_fault(self, method: str, *args: float) -> None:
        """``stall(duration_s)``, ``unplug()`` or ``replug()`` the simulated plate in the child."""
        self._call("server", {"method": method, "args": args})

    def close_plate(self) -> None:
        """Close the plate (and simulated server) in the child; the child stays."""
        if self._process is not None and self._process.is_alive():
            with contextlib.suppress(DeviceError):
                self._call("close")

    def poll_events(self) -> list[Event]:
        """Events the child sent since the last call (never waits)."""
        out: list[Event] = []
        conn = self._events
        if conn is None:
            return out
        try:
            while conn.poll(0):
                out.append(Event(**conn.recv()))
        except (EOFError, OSError):
            pass
        return out

    def close(self) -> None:
        """Stop the child and remove the shared memory (idempotent)."""
        process, self._process = self._process, None
        if process is not None:
            if process.is_alive():
                with contextlib.suppress(DeviceError, OSError):
                    self._process = process
                    self._call("quit")
                self._process = None
                process.join(timeout=5.0)
            if process.is_alive():
                process.terminate()
                process.join(timeout=2.0)
        for conn in (self._commands, self._events):
            if conn is not None:
                conn.close()
        self._commands = self._events = None
        if self.ring is not None:
            self.ring.unlink()
            self.ring = None  # type: ignore[assignment]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
