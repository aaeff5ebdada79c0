"""The local channel between a session process and the clinician console.

A session started with ``vrbalance run --console-channel PATH`` listens on a
Unix domain socket at ``PATH``; the console connects to it. Only the user who
owns the session can connect: the socket's folder must be ``0o700`` (checked,
never created looser) and the socket itself is ``0o600``. ``docs/console.md``
documents the messages; in short, both directions carry one JSON object per
line (UTF-8, ``\\n``-terminated, at most :data:`MAX_LINE_BYTES`):

session -> console
    ``hello`` (once per connection: session id, patient id, protocol, trials,
    folder), ``tick`` (the newest :class:`~vrbalance.sessions.runner.LiveTick`,
    at :data:`PUBLISH_HZ`), ``event`` (every recorded event, in order),
    ``gate`` (waiting for the operator's start before a trial, or not),
    ``refused`` (a command the channel would not forward, with the reason),
    ``end`` (the session's end reason and whether it was filed).
console -> session
    ``{"cmd": NAME}`` with a :class:`~vrbalance.sessions.runner.Command` value
    (``pause``, ``emergency_stop``, ``level_up`` ...), or ``start`` (the gate).

Why this shape. The session is its own process so that nothing the console
does can delay the balance loop or silence the safety monitor (DESIGN.md,
"Processes"). Inside the session the channel is a *sink*: the loop hands it
the snapshot it already built (one attribute store) and events through a
:class:`queue.SimpleQueue` (never blocks); a publisher thread formats and
sends them. Commands go through the same
:class:`~vrbalance.sessions.runner.OperatorControls` queue as the window's
keys, so the runner records them exactly like those. If the console goes
away, the session carries on under the window's keys and the monitor; a
console may connect again at any time and gets the ``hello`` and the state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import socket
import stat
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vrbalance.errors import ConfigError
from vrbalance.events import Event
from vrbalance.sessions.runner import Command, LiveTick, OperatorControls

log = logging.getLogger(__name__)

#: Live ticks sent per second, Hz (the console's plot needs >= 20 Hz; the loop
#: runs at 250 Hz, and only the newest tick of each period is sent).
PUBLISH_HZ = 30.0
#: Longest message line either side accepts, bytes (a tick is ~1.5 KiB).
MAX_LINE_BYTES = 64 * 1024
#: How long one send to a console may block the publisher before that console
#: is dropped, s (never the loop: the publisher is its own thread).
SEND_TIMEOUT_S = 2.0
PROTOCOL_VERSION = 1
#: How long a trial's start gate waits with no console connected before the
#: session ends as the operator's, s. Only a console can start a gated trial:
#: a session whose console never comes back (closed for good, machine
#: restarted) would otherwise hold the plate and stay "recording" for ever.
#: A console that comes back within this time finds the session waiting.
ORPHAN_GATE_S = 15 * 60.0
#: ``SCHED_FIFO`` priority of the thread that reads a console's commands: above
#: every normal thread (the recorder, the publisher, other programs), so an
#: emergency stop is read as soon as it arrives even on a busy machine; below
#: the balance loop (10) and the plate (20), so no console can starve them.
COMMAND_FIFO_PRIORITY = 5
#: What a console may send (the gate's ``start`` plus operator commands).
CONSOLE_COMMANDS: frozenset[str] = frozenset(
    {"start"}
    | {
        c.value
        for c in Command
        if c not in (Command.HEADSET_FOCUSED, Command.HEADSET_UNFOCUSED, Command.HEADSET_LOST)
    }
)


def check_private_folder(folder: Path) -> Path:
    """Return ``folder`` if it is a directory only its owner can enter, else raise.

    Raises
    ------
    ConfigError
        Naming the folder and its mode: a socket in a folder others can enter
        would let them drive a patient's session.
    """
    try:
        st = folder.stat()
    except FileNotFoundError:
        raise ConfigError(f"console channel folder {folder}: does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"console channel folder {folder}: not a directory")
    if st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
        raise ConfigError(
            f"console channel folder {folder}: expected a folder of yours with mode 0700, "
            f"got mode {stat.S_IMODE(st.st_mode):04o}"
        )
    return folder


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _pair(value: Any) -> list[float] | None:
    if value is None:
        return None
    x, y = float(value[0]), float(value[1])
    return [x, y] if math.isfinite(x) and math.isfinite(y) else None


def tick_message(tick: LiveTick, bos: list[list[float]] | None) -> dict[str, Any]:
    """The ``tick`` message of one :class:`LiveTick` (SI units, session clock)."""
    state, verdict = tick.state, tick.verdict
    msg: dict[str, Any] = {
        "type": "tick",
        "trial": tick.trial,
        "name": tick.name,
        "scene": tick.scene,
        "level": tick.level,
        "duration_s": tick.duration_s,
        "elapsed_s": tick.elapsed_s,
        "streaming": tick.streaming,
        "paused": tick.paused,
        "estop": tick.estop,
        "t_s": None,
        "cop_m": None,
        "com_m": None,
        "xcom_m": None,
        "margin_xcom_m": None,
        "response": "none",
        "cause": None,
        "bos_m": bos,
    }
    if state is not None:
        msg.update(
            t_s=state.t_s,
            stance=state.stance,
            cop_m=_pair(state.cop_m),
            com_m=_pair(state.com_m),
            xcom_m=_pair(state.xcom_m),
            margin_xcom_m=_num(state.margin_xcom_m),
        )
    if verdict is not None:
        msg["response"] = verdict.response.label
        msg["cause"] = verdict.cause.value if verdict.cause is not None else None
    return msg


def event_message(trial: int, event: Event) -> dict[str, Any]:
    """The ``event`` message of one recorded event."""
    return {
        "type": "event",
        "trial": trial,
        "t_s": event.t_s,
        "source": event.source,
        "kind": event.kind,
        "message": event.message,
        "severity": event.severity,
        "values": {k: v for k, v in dict(event.values or {}).items() if _plain(v)},
    }


def _plain(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as a line (NaN is never sent: JSON has no NaN)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


class _Client:
    """One connected console: its socket and a lock so lines never interleave."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.alive = True

    def send(self, data: bytes) -> bool:
        with self.lock:
            if not self.alive:
                return False
            try:
                self.sock.sendall(data)
            except OSError as exc:
                log.info("console channel: a console went away (%s)", exc)
                self.alive = False
                with contextlib.suppress(OSError):
                    self.sock.close()
                return False
        return True


class ConsoleGone(KeyboardInterrupt):
    """No console was connected to start the next trial for ``ORPHAN_GATE_S``.

    A :class:`KeyboardInterrupt`, so the runner ends the session the way it ends
    one on Ctrl-C: ``operator_abort``, the recording closed and filed.
    """

    signal_name = "no console"

    def __init__(self, waited_s: float) -> None:
        self.message = (
            f"no console connected for {waited_s / 60:.0f} min while the next trial waited"
            " for its start: the session ends (only a console can start it)"
        )
        super().__init__(self.message)


class SessionChannel:
    """The session side of the console channel: a live sink plus a command reader.

    Parameters
    ----------
    path : Path
        Where to listen; its folder must be ``0o700`` and yours.
    hello : Mapping
        What every console gets first (session id, patient id, protocol, ...).
    controls : OperatorControls, optional
        The session's command queue (a new one by default); give the same
        object to the :class:`~vrbalance.sessions.runner.SessionRunner`.
    publish_hz : float
        Ticks sent per second.
    bos_for : callable, optional
        ``bos_for(stance_name) -> [[x, y], ...]``: the base-of-support outline
        (m, core frame) sent with each tick; cached per stance.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        hello: Mapping[str, Any],
        *,
        controls: OperatorControls | None = None,
        publish_hz: float = PUBLISH_HZ,
        bos_for: Callable[[str], list[list[float]]] | None = None,
        orphan_gate_s: float = ORPHAN_GATE_S,
    ) -> None:
        self.path = Path(path)
        self.orphan_gate_s = float(orphan_gate_s)
        self.hello = {"type": "hello", "version": PROTOCOL_VERSION, **dict(hello)}
        self.controls = controls if controls is not None else OperatorControls()
        self.publish_hz = float(publish_hz)
        self.bos_for = bos_for
        self._bos: dict[str, list[list[float]]] = {}
        self._latest: LiveTick | None = None
        self._events: queue.SimpleQueue[tuple[int, Event]] = queue.SimpleQueue()
        self._clients: list[_Client] = []
        self._clients_lock = threading.Lock()
        self._closing = threading.Event()
        self._start = threading.Event()
        self._gate: dict[str, Any] = {"type": "gate", "waiting": False}
        self._stopped = False  # an emergency stop holds the gate until a reset
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self.commands_forwarded = 0

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> SessionChannel:
        """Listen and start the accept and publisher threads.

        Raises
        ------
        ConfigError
            If the folder is not private or the path is taken.
        """
        check_private_folder(self.path.parent)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            server.bind(str(self.path))
        except OSError as exc:
            server.close()
            raise ConfigError(f"console channel {self.path}: cannot listen: {exc}") from None
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        server.listen(4)
        server.settimeout(0.2)
        self._server = server
        for target, name in ((self._accept, "accept"), (self._publish, "publish")):
            t = threading.Thread(target=target, name=f"console-channel-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        log.info("console channel listening on %s", self.path)
        return self

    def __enter__(self) -> SessionChannel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def finish(self, message: Mapping[str, Any]) -> None:
        """Send the ``end`` message (after the session is filed) to every console."""
        self._flush_events()
        self._broadcast(encode({"type": "end", **dict(message)}))

    def close(self) -> None:
        """Stop the threads and remove the socket (idempotent)."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._start.set()
        for t in self._threads:
            t.join(timeout=2.0)
        if self._server is not None:
            self._server.close()
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for c in clients:
            c.alive = False
            with contextlib.suppress(OSError):
                # shutdown first: a close alone waits for the reader's recv to time out
                # before the console sees the end of the stream.
                c.sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # -- the sink (called by the balance loop: never block) -----------------------------

    def tick(self, tick: LiveTick) -> None:
        """Keep the newest tick (one reference store; the publisher sends it)."""
        self._latest = tick

    def event(self, trial: int, event: Event) -> None:
        """Queue one recorded event for the consoles (never blocks)."""
        self._events.put((trial, event))

    # -- the start gate (the runner's before_trial, in the main thread) -----------------

    def before_trial(self, index: int, trial: Any) -> None:
        """Wait until a console sends ``start`` (and no emergency stop is pending).

        The therapist reads the trial's instructions aloud from the console
        and presses start; the runner's ``trial_start`` event records it.
        """
        self._gate = {
            "type": "gate",
            "waiting": True,
            "trial": index,
            "name": trial.name,
            "scene": trial.scene,
            "stance": trial.stance,
            "duration_s": trial.duration_s,
            "instructions": trial.instructions,
        }
        self._start.clear()
        self._broadcast(encode(self._gate))
        log.info("trial %d waits for the console's start", index)
        alone_since: float | None = None
        while not self._start.wait(timeout=min(0.5, self.orphan_gate_s)):
            if self.connected_consoles():
                alone_since = None
                continue
            now_s = time.monotonic()
            if alone_since is None:
                alone_since = now_s
            elif now_s - alone_since >= self.orphan_gate_s:
                self._gate = {"type": "gate", "waiting": False}
                raise ConsoleGone(now_s - alone_since)
        self._gate = {"type": "gate", "waiting": False}
        self._broadcast(encode(self._gate))

    def connected_consoles(self) -> int:
        """How many consoles are connected now."""
        with self._clients_lock:
            return sum(1 for c in self._clients if c.alive)

    # -- threads ----------------------------------------------------------------------

    def _accept(self) -> None:
        server = self._server
        while not self._closing.is_set() and server is not None:
            try:
                sock, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                if not self._closing.is_set():
                    log.exception("console channel: accept failed")
                return
            sock.settimeout(SEND_TIMEOUT_S)
            client = _Client(sock)
            client.send(encode(self.hello) + encode(self._gate))
            with self._clients_lock:
                self._clients.append(client)
            threading.Thread(
                target=self._read, args=(client,), name="console-channel-read", daemon=True
            ).start()

    def _read(self, client: _Client) -> None:
        from vrbalance.realtime.priority import tune_current_thread

        # Refused without privilege (logged, not raised): then it reads at normal priority.
        tune_current_thread(fifo_priority=COMMAND_FIFO_PRIORITY)
        buf = b""
        while client.alive and not self._closing.is_set():
            try:
                chunk = client.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self._handle(client, line)
            if len(buf) > MAX_LINE_BYTES:
                client.send(encode({"type": "refused", "reason": "line too long"}))
                buf = b""
        client.alive = False
        log.info("console channel: a console disconnected; the session carries on")

    def _handle(self, client: _Client, line: bytes) -> None:
        try:
            msg = json.loads(line)
            name = msg["cmd"]
        except (ValueError, TypeError, KeyError):
            client.send(encode({"type": "refused", "reason": 'expected {"cmd": NAME}'}))
            return
        if name not in CONSOLE_COMMANDS:
            client.send(
                encode({"type": "refused", "cmd": str(name)[:40], "reason": "unknown command"})
            )
            return
        if name == "start":
            if not self._gate.get("waiting"):
                reason = "no trial is waiting to start"
            elif self._stopped:
                reason = "emergency stop: reset before starting the next trial"
            else:
                self._start.set()
                return
            client.send(encode({"type": "refused", "cmd": "start", "reason": reason}))
            return
        command = Command(name)
        if command is Command.EMERGENCY_STOP:
            self._stopped = True
        elif command is Command.RESET:
            self._stopped = False
        self.controls.send(command)
        self.commands_forwarded += 1

    def _flush_events(self) -> bytes:
        out = b""
        while True:
            try:
                trial, ev = self._events.get_nowait()
            except queue.Empty:
                return out
            try:
                out += encode(event_message(trial, ev))
            except ValueError:
                log.warning("console channel: event %s not sendable", ev.kind)

    def _publish(self) -> None:
        period = 1.0 / self.publish_hz
        sent: LiveTick | None = None
        while not self._closing.wait(timeout=period):
            data = self._flush_events()
            tick = self._latest
            if tick is not None and tick is not sent:
                sent = tick
                if tick.estop:
                    self._stopped = True  # the window's Esc holds the gate too
                try:
                    data += encode(tick_message(tick, self._bos_of(tick)))
                except ValueError:
                    log.warning("console channel: tick %d not sendable", tick.trial)
            if data:
                self._broadcast(data)

    def _bos_of(self, tick: LiveTick) -> list[list[float]] | None:
        stance = getattr(tick.state, "stance", None)
        if stance is None or self.bos_for is None:
            return None
        if stance not in self._bos:
            self._bos[stance] = self.bos_for(stance)
        return self._bos[stance]

    def _broadcast(self, data: bytes) -> None:
        with self._clients_lock:
            self._clients = [c for c in self._clients if c.alive]
            clients = list(self._clients)
        for c in clients:
            c.send(data)


class ChannelClient:
    """The console side: connects to a session's channel and reads its messages.

    Parameters
    ----------
    path : Path
        The session's socket.
    on_message : callable
        Called in the reader thread with each decoded message.
    """

    def __init__(self, path: str | os.PathLike[str], on_message: Callable[[dict], None]) -> None:
        self.path = Path(path)
        self.on_message = on_message
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.connected = False

    def connect(self) -> bool:
        """Try once to connect; True on success (the reader thread then runs)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            return False
        self._sock = sock
        self.connected = True
        self._thread = threading.Thread(target=self._read, name="console-client", daemon=True)
        self._thread.start()
        return True

    def send(self, cmd: str) -> bool:
        """Send one command; False if not connected (the caller shows it)."""
        with self._lock:
            if self._sock is None or not self.connected:
                return False
            try:
                self._sock.sendall(encode({"cmd": cmd}))
            except OSError:
                self.connected = False
                return False
        return True

    def close(self) -> None:
        self.connected = False
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _read(self) -> None:
        sock = self._sock
        buf = b""
        while sock is not None:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    msg = json.loads(line)
                except ValueError:
                    log.warning("console channel: undecodable line from %s", self.path)
                    continue
                try:
                    self.on_message(msg)
                except Exception:  # a console bug must not kill the reader
                    log.exception("console channel: message handler failed")
        self.connected = False


class RunChannel(SessionChannel):
    """The channel as ``vrbalance run --console-channel`` uses it (:func:`open_session_channel`)."""

    def runner_options(self, announce: Callable[[int, Any], None]) -> dict[str, Any]:
        """The :class:`SessionRunner` keywords: shared controls, live sink, start gate."""

        def gate(index: int, trial: Any) -> None:
            announce(index, trial)
            self.before_trial(index, trial)

        return {"controls": self.controls, "live": self, "before_trial": gate}

    def bind(self, runner: Any) -> None:
        """Outline each stance's base of support from the runner's body and foot template."""
        from vrbalance.balance.stance import make_stance

        def bos_for(stance: str) -> list[list[float]]:
            polygon = make_stance(stance, runner.body, runner.template).base_of_support
            return [[float(x), float(y)] for x, y in polygon.vertices]

        self.bos_for = bos_for


def open_session_channel(
    path: str | os.PathLike[str], session_id: str, folder: Path, patient: Any, protocol: Any
) -> RunChannel:
    """Start listening for consoles; the ``hello`` names the session, never the patient's name.

    Only the pseudonymous patient id crosses, with the protocol and the folder:
    the console reads everything else from its own record store.
    """
    trials = [
        {
            "name": t.name,
            "scene": t.scene,
            "stance": t.stance,
            "duration_s": t.duration_s,
            "instructions": t.instructions,
        }
        for t in protocol.trials
    ]
    hello = {
        "session_id": session_id,
        "patient_id": patient.id,
        "protocol": protocol.name,
        "title": protocol.title,
        "folder": str(folder),
        "pid": os.getpid(),
        "trials": trials,
    }
    return RunChannel(path, hello).start()  # type: ignore[return-value]
