"""Stations: the session processes the console started, and what they publish.

Each :class:`Station` is one ``vrbalance run ... --console-channel SOCK``
process (the same code path as the command line), its channel client and the
live picture the console keeps of it. The console never runs balance code
itself: a crash in a web handler cannot stop a session, and a session that
dies is shown with why (exit status, the end of its output) and its recording
is filed in the record store as incomplete, so nothing recorded is lost.

The session's output goes to a ``0o600`` file in the station's ``0o700``
folder, not to a pipe: a console that goes away must not leave the session
writing into a closed pipe. The process starts in its own session (process
group), so a Ctrl-C at the console's terminal does not reach the patient's
session either; the window's keys and the monitor keep it safe.
"""

from __future__ import annotations

import collections
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vrbalance.console.channel import ChannelClient
from vrbalance.errors import ConfigError
from vrbalance.sessions.paths import DB_ENV

log = logging.getLogger(__name__)

#: Live ticks kept for the plot's trail (5 s at the channel's 30 Hz).
TRAIL_TICKS = 150
#: Events kept for the live page.
EVENTS_KEPT = 400
#: How long a starting session may take to open its channel before the
#: console stops waiting (it keeps watching the process), s.
CONNECT_WAIT_S = 120.0
#: The start page's device for a session without a plate (headset only).
NO_PLATE = "none"


def headset_only_output_message(output: str) -> str:
    """Why devices "none" needs the headset output (the start page shows it)."""
    return (
        f"Plate: none (headset only) needs the headset output, got {output!r}: without a plate "
        "the headset's tracked head is the session's only input; choose Output: headset, "
        "or a plate (the simulated patient or a serial port)"
    )


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """What the therapist chose on the start page (validated before it becomes argv).

    Attributes
    ----------
    patient_id : str
    protocol : str
        Shipped protocol name.
    device : str
        ``"simulated"``, a serial port path from the ports found, or
        ``"none"``: no plate, a headset-only session (head-only protocols,
        no baseline; see :func:`~vrbalance.sessions.assembly.check_headset_only`).
    output : str
        ``"window"``, ``"headset"``, ``"offscreen"`` or ``"none"``; with
        device ``"none"`` only ``"headset"``, the session's only input.
    start_levels : tuple of (str, int)
        Starting level per director scene (the director keeps it inside the envelope).
    seconds_scale : float
        Multiplies every trial duration (``--seconds-scale``), in (0, 1].
    """

    patient_id: str
    protocol: str
    device: str = "simulated"
    output: str = "offscreen"
    start_levels: tuple[tuple[str, int], ...] = ()
    seconds_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.device == NO_PLATE and self.output != "headset":
            raise ConfigError(headset_only_output_message(self.output))

    def argv(self, socket_path: Path) -> list[str]:
        """The ``vrbalance run`` command line of this request.

        The database is not on it: a server URL may carry a password, and a
        command line is readable by every user of the machine (``ps``). It goes
        in the child's environment instead (:meth:`env`).
        """
        out = {
            "window": ["--desktop"],
            "headset": ["--xr"],
            "offscreen": ["--offscreen"],
            "none": ["--no-render"],
        }[self.output]
        if self.device == NO_PLATE:  # headset only: `run --xr` without a plate, no baseline
            dev = []
        elif self.device == "simulated":
            dev = ["--simulate"]
        else:
            dev = ["--port", self.device]
        argv = [
            sys.executable, "-m", "vrbalance", "run",
            "--patient", self.patient_id, "--protocol", self.protocol, *dev, *out,
            "--seconds-scale", repr(self.seconds_scale), "--console-channel", str(socket_path),
        ]  # fmt: skip
        for scene, level in self.start_levels:
            argv += ["--start-level", f"{scene}={level}"]
        return argv

    @staticmethod
    def env(db: str | Path | None) -> dict[str, str]:
        """The session process's environment: ours, with ``$VRBALANCE_DB`` set to ``db``."""
        env = dict(os.environ)
        if db is not None:
            env[DB_ENV] = str(db)
        return env


@dataclass
class Station:
    """One session process and the console's live picture of it (guarded by ``lock``)."""

    key: str
    request: SessionRequest
    folder: Path
    proc: subprocess.Popen[bytes] | None = None
    status: str = "starting"  # starting, running, ended, died
    hello: dict[str, Any] | None = None
    gate: dict[str, Any] = field(default_factory=lambda: {"waiting": False})
    tick: dict[str, Any] | None = None
    trail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TRAIL_TICKS))
    events: collections.deque = field(default_factory=lambda: collections.deque(maxlen=EVENTS_KEPT))
    events_seen: int = 0
    ticks_seen: int = 0
    refusals: collections.deque = field(default_factory=lambda: collections.deque(maxlen=20))
    end: dict[str, Any] | None = None
    why: str = ""
    session_id: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    client: ChannelClient | None = None
    #: Also called with every channel message, in the reader thread (tests, tools).
    listeners: list = field(default_factory=list)
    started_s: float = field(default_factory=time.monotonic)

    @property
    def socket_path(self) -> Path:
        return self.folder / "session.sock"

    @property
    def log_path(self) -> Path:
        return self.folder / "session.log"

    def on_message(self, msg: dict[str, Any]) -> None:
        """A channel message (reader thread): update the live picture."""
        kind = msg.get("type")
        with self.lock:
            if kind == "tick":
                self.tick = msg
                self.ticks_seen += 1
                if msg.get("streaming") and msg.get("cop_m") is not None:
                    self.trail.append((msg["trial"], msg["cop_m"], msg.get("xcom_m")))
                if self.status == "starting":
                    self.status = "running"
            elif kind == "event":
                self.events.append(msg)
                self.events_seen += 1
            elif kind == "gate":
                self.gate = msg
                if self.status == "starting":
                    self.status = "running"
            elif kind == "hello":
                self.hello = msg
                self.session_id = str(msg.get("session_id", ""))
            elif kind == "refused":
                self.refusals.append(msg)
            elif kind == "end":
                self.end = msg
        for listener in list(self.listeners):
            listener(msg)

    def send(self, cmd: str) -> bool:
        """Send one command to the session; False if the channel is down."""
        client = self.client
        return client is not None and client.send(cmd)

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the live picture for one page refresh."""
        with self.lock:
            return {
                "status": self.status,
                "hello": self.hello,
                "gate": dict(self.gate),
                "tick": self.tick,
                "trail": list(self.trail),
                "events": list(self.events),
                "events_seen": self.events_seen,
                "ticks_seen": self.ticks_seen,
                "refusals": list(self.refusals),
                "end": self.end,
                "why": self.why,
                "connected": bool(self.client is not None and self.client.connected),
            }


class Stations:
    """The sessions this console started (one console per machine).

    Parameters
    ----------
    db : Path, optional
        The record store the sessions file into (``--db``).
    runtime_dir : Path, optional
        Where station folders go (a private temporary folder by default).
    """

    def __init__(self, db: str | Path | None = None, runtime_dir: Path | None = None) -> None:
        self.db = db
        if runtime_dir is None:
            self.runtime_dir = Path(tempfile.mkdtemp(prefix="vrbalance-console-"))
        else:
            self.runtime_dir = Path(runtime_dir)
            self.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.runtime_dir, 0o700)
        self._stations: dict[str, Station] = {}
        self._lock = threading.Lock()

    def all(self) -> list[Station]:
        with self._lock:
            return list(self._stations.values())

    def get(self, key: str) -> Station | None:
        with self._lock:
            return self._stations.get(key)

    def start(self, request: SessionRequest) -> Station:
        """Start a session process for ``request`` and watch it."""
        key = secrets.token_urlsafe(9)
        folder = self.runtime_dir / key
        folder.mkdir(mode=0o700)
        station = Station(key=key, request=request, folder=folder)
        fd = os.open(station.log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            station.proc = subprocess.Popen(
                request.argv(station.socket_path),
                env=request.env(self.db),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with self._lock:
            self._stations[key] = station
        threading.Thread(
            target=self._watch, args=(station,), name=f"station-{key}", daemon=True
        ).start()
        log.info("station %s: session process %d started", key, station.proc.pid)
        return station

    def _watch(self, station: Station) -> None:
        """Connect to the session's channel (again after a drop) until the process ends."""
        proc = station.proc
        if proc is None:
            return
        deadline = time.monotonic() + CONNECT_WAIT_S
        while proc.poll() is None:
            client = station.client
            if client is None or not client.connected:
                if client is not None:
                    client.close()
                new = ChannelClient(station.socket_path, station.on_message)
                if new.connect():
                    station.client = new
                elif time.monotonic() > deadline and station.hello is None:
                    log.warning("station %s: the session has not opened its channel", station.key)
                    deadline = float("inf")
            time.sleep(0.1)
        self._finished(station, proc.wait())

    def _finished(self, station: Station, rc: int) -> None:
        # Let the reader take the last lines (the "end" message) before deciding.
        client = station.client
        t_end = time.monotonic() + 2.0
        while client is not None and client.connected and time.monotonic() < t_end:
            time.sleep(0.02)
        with station.lock:
            ended = station.end is not None
        if ended:  # the session said how it ended and whether it was filed
            with station.lock:
                station.status = "ended"
            return
        why = describe_exit(rc) + tail_text(station.log_path)
        filed = self._file_incomplete(station)
        with station.lock:
            station.status = "died"
            station.why = why + filed
        log.warning("station %s: session process ended: %s", station.key, describe_exit(rc))

    def _file_incomplete(self, station: Station) -> str:
        """File a recording the dead session could not (it imports as incomplete)."""
        hello = station.hello
        if hello is None or not hello.get("folder"):
            return "\nNo recording was started."
        folder = Path(hello["folder"])
        if not folder.exists():
            return "\nNo recording was started."
        from vrbalance.sessions.paths import db_target
        from vrbalance.sessions.store import Store, StoreError, import_session

        try:
            with Store(db_target(self.db)) as store:
                row = import_session(store, folder)
        except (StoreError, OSError, ValueError, KeyError) as exc:
            return f"\nThe recording is kept in its folder but could not be filed: {exc}"
        return f"\nThe recording was filed as {row['status']} (end: {row['end_reason']})."

    def close(self, *, stop_sessions: bool = False) -> None:
        """Forget the channels; sessions keep running unless ``stop_sessions``."""
        for station in self.all():
            if station.client is not None:
                station.client.close()
            if stop_sessions and station.proc is not None and station.proc.poll() is None:
                station.proc.send_signal(signal.SIGINT)


def describe_exit(rc: int) -> str:
    """Why a process ended, in words."""
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"The session process was killed ({name})."
    if rc == 0:
        return "The session process ended without saying how the session ended."
    return f"The session process failed (exit status {rc})."


def tail_text(path: Path, lines: int = 8) -> str:
    """The last lines of a session's output, for the console to show."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    last: Sequence[str] = [ln for ln in text.splitlines() if ln.strip()][-lines:]
    return ("\nIts last output:\n" + "\n".join(last)) if last else ""
