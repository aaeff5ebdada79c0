"""Stations: the session processes the console started, and what they publish.

Each :class:`Station` is one ``vrbalance run ... --console-channel SOCK``
process (the same code path as the command line), its channel client and the
live picture the console keeps of it. The console never runs balance code
itself: a crash in a web handler cannot stop a session, and a session that
dies is shown with why (exit status, the end of its output) and its recording
is filed in the record store as incomplete, so nothing recorded is lost.

The stations' folders live in one stable, private runtime folder per user
(:func:`console_runtime_dir`), not in a temporary folder of one console's
own: a console that crashes or is restarted while its sessions run finds them
again there (:meth:`Stations.adopt_running`) and shows them like the ones it
started, so the therapist gets the live picture and the controls back. A lock
file keeps a second console off the same folder (one console per machine).

The session's output goes to a ``0o600`` file in the station's ``0o700``
folder, not to a pipe: a console that goes away must not leave the session
writing into a closed pipe. The process starts in its own session (process
group), so a Ctrl-C at the console's terminal does not reach the patient's
session either; the window's keys and the monitor keep it safe.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vrbalance.console.channel import ChannelClient
from vrbalance.errors import ConfigError
from vrbalance.sessions.paths import DATA_ENV, DB_ENV, data_root

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
#: A station's folder name: the key :meth:`Stations.start` draws (``token_urlsafe(9)``).
STATION_KEY = re.compile(r"[A-Za-z0-9_-]{12}")
SOCKET_NAME = "session.sock"
LOG_NAME = "session.log"
PID_NAME = "session.pid"
LOCK_NAME = "console.lock"
#: Longest Unix socket path the kernel takes, bytes (``sun_path`` is 108 with its NUL).
MAX_SOCKET_PATH_BYTES = 107


def console_runtime_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the console keeps its stations' sockets: stable per user and data folder.

    ``$VRBALANCE_DATA/console`` when ``$VRBALANCE_DATA`` moves the data folder
    (sessions there file into that folder's record store, so a console on
    another data folder must not adopt them), else
    ``$XDG_RUNTIME_DIR/vrbalance/console`` (a per-user tmpfs that the system
    empties at logout, as sockets should be), else the user data folder's
    ``console``. Stable, unlike a temporary folder, so a restarted console
    finds the sessions still running.
    """
    env = os.environ if environ is None else environ
    if not env.get(DATA_ENV) and env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "vrbalance" / "console"
    return data_root(env) / "console"


def prepare_runtime_dir(folder: Path) -> Path:
    """Create ``folder`` (``0700``) if missing; refuse one others could enter.

    Raises
    ------
    ConfigError
        Naming the folder: it is not a directory, is not the user's, or its
        group or others have any access (whoever can reach a station's socket
        can drive a patient's session, so a loose folder is never tightened
        and used: the sockets in it may already have been reached).
    """
    folder = Path(folder).absolute()
    if not folder.exists() and not folder.is_symlink():
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise ConfigError(f"console runtime folder {folder}: cannot create it: {exc}") from None
        else:
            os.chmod(folder, 0o700)
    try:
        st = folder.lstat()
    except OSError as exc:
        raise ConfigError(f"console runtime folder {folder}: {exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(
            f"console runtime folder {folder}: not a directory (a symbolic link or a file); "
            "expected a folder of yours with mode 0700"
        )
    if st.st_uid != os.getuid():
        raise ConfigError(
            f"console runtime folder {folder}: owned by uid {st.st_uid}, not by you "
            f"(uid {os.getuid()}); expected a folder of yours with mode 0700"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"console runtime folder {folder}: mode {mode:04o} lets group or others in; "
            f"expected 0700 (check what reached it, then chmod 700 {folder})"
        )
    longest = len(os.fsencode(folder / ("k" * 12) / SOCKET_NAME))
    if longest > MAX_SOCKET_PATH_BYTES:
        raise ConfigError(
            f"console runtime folder {folder}: too long for a Unix socket path "
            f"({longest} > {MAX_SOCKET_PATH_BYTES} bytes with a station's socket); "
            "move the data folder ($VRBALANCE_DATA) to a shorter path"
        )
    return folder


def session_process_alive(pid: int, key: str) -> bool:
    """Whether ``pid`` is still the session process of station ``key`` (not its zombie).

    The console that started it may be gone, so there is no exit status to
    wait for; the process is recognised by its command line, which names the
    station's socket, so a recycled process id is never mistaken for it. A
    zombie's command line is empty: it counts as ended.
    """
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: the id alone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False  # not ours, so not our session
        return True
    suffix = os.fsencode(os.path.join("", key, SOCKET_NAME))
    return any(arg.endswith(os.sep.encode() + suffix) for arg in raw.split(b"\0"))


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
    #: What the therapist chose; None for a station adopted from an earlier console.
    request: SessionRequest | None
    folder: Path
    proc: subprocess.Popen[bytes] | None = None
    #: Started by an earlier console (no exit status: its end comes from the channel).
    adopted: bool = False
    #: The session process's id as its ``session.pid`` file says (adopted stations).
    pid_hint: int | None = None
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
        return self.folder / SOCKET_NAME

    @property
    def log_path(self) -> Path:
        return self.folder / LOG_NAME

    @property
    def patient_id(self) -> str:
        """The pseudonymous patient id (the request's, or an adopted session's hello)."""
        if self.request is not None:
            return self.request.patient_id
        hello = self.hello
        return str(hello.get("patient_id", "")) if hello else ""

    @property
    def protocol(self) -> str:
        """The protocol's name (the request's, or an adopted session's hello)."""
        if self.request is not None:
            return self.request.protocol
        hello = self.hello
        return str(hello.get("protocol", "")) if hello else ""

    @property
    def pid(self) -> int | None:
        """The session process's id (None before an adopted session said it)."""
        if self.proc is not None:
            return self.proc.pid
        hello = self.hello
        if hello and isinstance(hello.get("pid"), int):
            return int(hello["pid"])
        return self.pid_hint

    def process_alive(self) -> bool:
        """Whether the session process still runs (for an adopted one: by its command line)."""
        if self.proc is not None:
            return self.proc.poll() is None
        pid = self.pid
        return pid is not None and session_process_alive(pid, self.key)

    def exit_code(self) -> int | None:
        """The process's exit status; None for an adopted one (not our child)."""
        return self.proc.wait() if self.proc is not None else None

    def connect(self) -> bool:
        """Connect (again) to the session's channel; True on success.

        The client is this station's before it connects, so a listener that
        answers the very first message (the ``hello``, a waiting ``gate``)
        from the reader thread is sent, not dropped.
        """
        client = ChannelClient(self.socket_path, self.on_message)
        old, self.client = self.client, client
        if old is not None:
            old.close()
        return client.connect()

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
    """The sessions this console started or adopted (one console per runtime folder).

    Parameters
    ----------
    db : Path, optional
        The record store the sessions file into (``--db``).
    runtime_dir : Path, optional
        Where station folders go (:func:`console_runtime_dir` by default;
        tests give their own). Created ``0700``; refused if others can enter.

    Raises
    ------
    ConfigError
        The folder is not private (:func:`prepare_runtime_dir`), or another
        console holds it: two consoles on one folder would adopt each other's
        stations and clean away each other's starting ones.
    """

    def __init__(self, db: str | Path | None = None, runtime_dir: Path | None = None) -> None:
        self.db = db
        self.runtime_dir = prepare_runtime_dir(
            console_runtime_dir() if runtime_dir is None else Path(runtime_dir)
        )
        self._lock_fd = _lock_folder(self.runtime_dir)
        self._stations: dict[str, Station] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()

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
        # For a console that comes after this one: which process a socket-less folder
        # belongs to (a session still starting is adopted, not cleaned away).
        pid_fd = os.open(folder / PID_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(pid_fd, "w") as f:
            f.write(f"{station.proc.pid}\n")
        self._add(station)
        log.info("station %s: session process %d started", key, station.proc.pid)
        return station

    def adopt_running(self) -> list[Station]:
        """Find the sessions an earlier console started that still run, and watch them.

        Every station folder in the runtime folder is looked at: one whose
        socket answers is adopted (its ``hello`` names the session; the live
        picture, the gate and the controls work as for a station this console
        started), and so is one whose session process is still starting
        (``session.pid`` names a live session process of that folder). The
        rest, dead sockets and leftover folders, are removed.

        Returns
        -------
        list of Station
            The adopted stations, in folder-name order.
        """
        adopted: list[Station] = []
        for folder in sorted(self.runtime_dir.iterdir()):
            if folder.is_symlink() or not folder.is_dir() or not STATION_KEY.fullmatch(folder.name):
                continue
            if self.get(folder.name) is not None:
                continue
            station = Station(
                key=folder.name,
                request=None,
                folder=folder,
                adopted=True,
                pid_hint=_read_pid(folder / PID_NAME),
            )
            if station.socket_path.exists() and station.connect():
                state = "running"
            elif station.process_alive():
                state = "starting"  # its channel is not open yet: the watcher connects
            else:
                if station.client is not None:
                    station.client.close()
                shutil.rmtree(folder, ignore_errors=True)
                log.info("station %s: no session runs there any more; folder removed", folder.name)
                continue
            self._add(station)
            adopted.append(station)
            log.info("station %s: adopted a %s session of an earlier console", station.key, state)
        return adopted

    def _add(self, station: Station) -> None:
        with self._lock:
            self._stations[station.key] = station
        threading.Thread(
            target=self._watch, args=(station,), name=f"station-{station.key}", daemon=True
        ).start()

    def _watch(self, station: Station) -> None:
        """Connect to the session's channel (again after a drop) until the session ends.

        A station this console started ends when its process exits (its exit
        status is known). An adopted one is no child of ours: it ends when its
        channel closes after the ``end`` message, or closes and cannot be
        reached again because its process is gone.
        """
        deadline = time.monotonic() + CONNECT_WAIT_S
        while not self._closed.is_set():
            client = station.client
            connected = client is not None and client.connected
            if station.proc is not None and station.proc.poll() is not None:
                break
            if not connected:
                if station.proc is None:
                    with station.lock:
                        ended = station.end is not None
                    if ended or not station.process_alive():
                        break
                if not station.connect() and time.monotonic() > deadline and station.hello is None:
                    log.warning("station %s: the session has not opened its channel", station.key)
                    deadline = float("inf")
            self._closed.wait(0.1)
        if self._closed.is_set():
            return  # this console is closing: the session carries on, the next console adopts it
        self._finished(station, station.exit_code())
        shutil.rmtree(station.folder, ignore_errors=True)

    def _finished(self, station: Station, rc: int | None) -> None:
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
        """Forget the channels; sessions keep running unless ``stop_sessions``.

        The station folders stay (a console started later adopts the sessions
        still running) and the runtime folder's lock is released.
        """
        self._closed.set()
        for station in self.all():
            if station.client is not None:
                station.client.close()
            if stop_sessions and station.proc is not None and station.proc.poll() is None:
                station.proc.send_signal(signal.SIGINT)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


def _lock_folder(folder: Path) -> int:
    """Hold ``folder``'s console lock for this process's life (released by the kernel at exit).

    The descriptor is not inheritable (PEP 446), so a session process outliving
    a crashed console never keeps the next console out.
    """
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise ConfigError(
            f"console runtime folder {folder}: another vrbalance console "
            f"(process {holder or 'unknown'}) is using it; one console per machine: use that "
            "one, or stop it first"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None


def describe_exit(rc: int | None) -> str:
    """Why a process ended, in words (``None``: an adopted process, status unknown)."""
    if rc is None:
        return (
            "The session process ended without saying how the session ended (an earlier "
            "console started it, so its exit status is unknown)."
        )
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
