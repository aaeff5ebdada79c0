"""``vrbalance run --xr`` against Monado with a scripted, position-tracked head.

Monado's *remote* driver (``P_OVERRIDE_ACTIVE_CONFIG=remote``) listens on a
TCP port for ``struct r_remote_data`` messages (Monado's
``src/xrt/drivers/remote/r_interface.h``) and reports the head pose they carry
as orientation *and position tracked*, unlike its simulated HMD. These tests
play a head through it while ``vrbalance run --protocol baseline --simulate
--xr`` runs as a subprocess (a fresh process: Monado reads its environment
once per process), and check what the session made of it: a swaying head
completes the baseline trial; a 0.3 m drop in 0.4 s stops it.

They run only against a Monado build (``XR_RUNTIME_JSON`` naming its
manifest) with an X display for the GLX window; see docs/xr.md for the
commands. Without one they skip, as in CI.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vrbalance.cli import main
from vrbalance.console.channel import ChannelClient

#: ``sizeof(struct r_remote_data)`` on x86-64 and aarch64 (checked against the
#: header with ``offsetof``): the header, the HMD pose, two 120-byte controllers.
REMOTE_DATA_SIZE = 280
#: ``R_HEADER_VALUE``: the bytes ``"mndrmt2\0"`` read as a native uint64.
REMOTE_HEADER = b"mndrmt2\0"
#: Controller block: pose (7 f), linear and angular velocity (3 + 3 f), hand curl
#: (5 f), trigger, squeeze, squeeze force (3 f), thumbstick (2 f), trackpad force
#: (1 f), trackpad (2 f), then 16 bools (hand tracking active, active, 11
#: buttons, 3 pad).
_CONTROLLER = struct.Struct("<7f3f3f5f3f2f1f2f16B")
#: Standing head height in OpenXR's frame (y up), in m.
HEAD_Y_M = 1.6
#: Pose rate sent to the runtime, in Hz (the balance loop samples it at 250 Hz).
SEND_HZ = 250.0


def _runtime_skip_reason() -> str | None:
    path = os.environ.get("XR_RUNTIME_JSON")
    if not path:
        return "no OpenXR runtime configured: set XR_RUNTIME_JSON to Monado's manifest"
    if not os.path.isfile(path):
        return f"XR_RUNTIME_JSON={path!r} does not exist"
    try:
        with open(path, encoding="utf-8") as fh:
            library = str(json.load(fh)["runtime"]["library_path"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"XR_RUNTIME_JSON={path!r} is not a runtime manifest: {exc}"
    if "monado" not in library.lower():
        return f"the remote driver is Monado's; XR_RUNTIME_JSON names {library!r}"
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        return "no X display (DISPLAY) for a GLX context; run under Xvfb"
    return None


def needs_monado(test: Callable) -> Callable:
    """Mark a test ``xr`` and ``slow``; skip it without a Monado runtime and a display."""
    reason = _runtime_skip_reason()
    marked = pytest.mark.xr(pytest.mark.slow(test))
    return pytest.mark.skipif(reason is not None, reason=reason or "")(marked)


def remote_data(head_position_m: tuple[float, float, float]) -> bytes:
    """One ``struct r_remote_data``: the head at ``head_position_m`` (OpenXR frame), upright.

    Controllers are sent inactive at the runtime's own reset places.
    """
    x, y, z = head_position_m
    hmd = struct.pack("<7f", 0.0, 0.0, 0.0, 1.0, x, y, z)  # quat x y z w, then position
    controllers = b""
    for side_x in (-0.2, 0.2):
        controllers += _CONTROLLER.pack(
            *(0.0, 0.0, 0.0, 1.0, side_x, 1.3, -0.5), *([0.0] * 19), *([0] * 16)
        )
    data = REMOTE_HEADER + hmd + controllers
    return data + bytes(REMOTE_DATA_SIZE - len(data))  # tail padding to 8-byte alignment


def test_remote_data_layout() -> None:
    """The message matches ``r_interface.h``'s offsets (runs everywhere: no runtime needed)."""
    data = remote_data((0.1, 1.6, -0.2))
    assert len(data) == REMOTE_DATA_SIZE
    assert data[:8] == REMOTE_HEADER
    assert struct.unpack_from("<7f", data, 8) == pytest.approx((0, 0, 0, 1, 0.1, 1.6, -0.2))
    assert struct.unpack_from("<7f", data, 36)[4:] == pytest.approx((-0.2, 1.3, -0.5))
    assert struct.unpack_from("<7f", data, 156)[4:] == pytest.approx((0.2, 1.3, -0.5))


class RemoteHead:
    """Plays a head trajectory into Monado's remote driver from a thread.

    Parameters
    ----------
    port : int
        The driver's TCP port (``config_v0.json``).
    position_at : callable ``(t_s) -> (x, y, z)``
        Head position in OpenXR's frame (m) at ``t_s`` seconds after the
        ``start`` event (the position at 0 before it).
    start : threading.Event
        When set, the trajectory's time starts.
    """

    def __init__(
        self,
        port: int,
        position_at: Callable[[float], tuple[float, float, float]],
        start: threading.Event,
    ) -> None:
        self.port = port
        self.position_at = position_at
        self.start = start
        self.connected = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monado-remote", daemon=True)

    def __enter__(self) -> RemoteHead:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10.0)

    def _connect(self) -> socket.socket:
        # The runtime listens once `run` creates its OpenXR instance: poll for it.
        while not self._stop.is_set():
            try:
                return socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
            except OSError:
                self._stop.wait(0.1)
        raise ConnectionAbortedError("stopped before the runtime listened")

    def _run(self) -> None:
        try:
            with self._connect() as sock:
                # On accept the hub writes its reset and latest state: read both.
                got = 0
                while got < 2 * REMOTE_DATA_SIZE:
                    chunk = sock.recv(2 * REMOTE_DATA_SIZE - got)
                    if not chunk:
                        raise ConnectionError("the runtime closed the remote connection")
                    got += len(chunk)
                self.connected.set()
                t_start: float | None = None
                next_s = time.monotonic()
                while not self._stop.is_set():
                    now = time.monotonic()
                    if t_start is None and self.start.is_set():
                        t_start = now
                    pos = self.position_at(now - t_start) if t_start is not None else None
                    sock.sendall(remote_data(pos or self.position_at(0.0)))
                    self.sent += 1
                    next_s += 1.0 / SEND_HZ
                    self._stop.wait(max(0.0, next_s - time.monotonic()))
        except (ConnectionAbortedError, BrokenPipeError, ConnectionResetError):
            pass  # the session ended and the runtime went away: normal
        except BaseException as exc:
            self.error = exc


def _sway(t_s: float) -> tuple[float, float, float]:
    """Quiet stance: 1 cm medio-lateral and 0.8 cm antero-posterior sway, 0.3 Hz."""
    w = 2.0 * math.pi * 0.3 * t_s
    return (0.01 * math.sin(w), HEAD_Y_M, -0.008 * math.sin(0.7 * w))


def _walk_the_line(t_s: float) -> tuple[float, float, float]:
    """Up and down the first 1.5 m of the line at 0.5 m/s (forward is OpenXR's -z)."""
    along = 1.5 - abs((0.5 * t_s) % 3.0 - 1.5)
    return (0.005 * math.sin(4.0 * t_s), HEAD_Y_M, -along)


def _drop_after(delay_s: float, drop_m: float, fall_s: float) -> Callable[[float], tuple]:
    """Sway, then at ``delay_s`` the head falls ``drop_m`` in ``fall_s`` and stays down."""

    def position(t_s: float) -> tuple[float, float, float]:
        x, y, z = _sway(t_s)
        f = min(max((t_s - delay_s) / fall_s, 0.0), 1.0)
        return (x, y - drop_m * f, z)

    return position


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def monado_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Environment for a subprocess: Monado's remote driver on a free port, data in tmp."""
    port = _free_port()
    config = tmp_path / "xdg" / "monado"
    config.mkdir(parents=True)
    (config / "config_v0.json").write_text(json.dumps({"remote": {"version": 0, "port": port}}))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("P_OVERRIDE_ACTIVE_CONFIG", "remote")
    monkeypatch.setenv("XRT_COMPOSITOR_NULL", os.environ.get("XRT_COMPOSITOR_NULL", "1"))
    monkeypatch.setenv("VRBALANCE_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("VRBALANCE_DB", raising=False)
    assert main(["patient", "add", "P1", "--height-cm", "170", "--mass-kg", "70"]) == 0
    return port


@contextlib.contextmanager
def _run_xr_session(
    tmp_path: Path,
    seconds_scale: float,
    protocol: str = "baseline",
    devices: tuple[str, ...] = ("--simulate",),
) -> Iterator[tuple[subprocess.Popen, threading.Event]]:
    """``vrbalance run --xr`` in a subprocess; the event is set when the trial starts.

    The trial's start is its ``inputs_streaming`` event (the start gate
    passed: plate, tracked head and focus), read from the session's console
    channel (docs/console.md), which also presses "start" at the trial gate.
    """
    channel = tmp_path / "channel"
    channel.mkdir(mode=0o700)
    sock = channel / "session.sock"
    cmd = [
        sys.executable,
        "-m",
        "vrbalance",
        "run",
        "--patient",
        "P1",
        "--protocol",
        protocol,
        *devices,
        "--xr",
        "--seconds-scale",
        str(seconds_scale),
        "--console-channel",
        str(sock),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = threading.Event()
    stop = threading.Event()

    def on_message(msg: dict) -> None:
        if msg["type"] == "gate" and msg.get("waiting"):
            client.send("start")
        elif msg["type"] == "event" and msg["kind"] == "inputs_streaming":
            started.set()

    client = ChannelClient(sock, on_message)

    def connect() -> None:
        # The session opens its channel once its folder exists: poll for it.
        while not stop.is_set() and proc.poll() is None and not client.connect():
            stop.wait(0.05)

    connector = threading.Thread(target=connect, name="console", daemon=True)
    connector.start()
    try:
        yield proc, started
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        connector.join(5)
        client.close()


def _session(tmp_path: Path) -> Path:
    (folder,) = (tmp_path / "data" / "sessions" / "P1").iterdir()
    return folder


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@needs_monado
def test_swaying_tracked_head_completes_the_baseline(monado_remote: int, tmp_path: Path) -> None:
    with (
        _run_xr_session(tmp_path, seconds_scale=0.1) as (proc, started),
        RemoteHead(monado_remote, _sway, started) as head,
    ):
        out, _ = proc.communicate(timeout=240)
    assert head.error is None, head.error
    assert head.connected.is_set(), "the runtime never listened: is it Monado with 'remote'?"
    assert started.is_set(), "the trial never started"
    assert proc.returncode == 0, out
    assert "[1] Baseline: completed" in out
    folder = _session(tmp_path)
    events = _rows(folder / "events.csv")
    kinds = [e["kind"] for e in events]
    assert "inputs_streaming" in kinds
    (end,) = [e for e in events if e["kind"] == "trial_end"]
    assert json.loads(end["values_json"])["end_reason"] == "completed"
    assert not [e for e in events if e["severity"] in ("alarm",)], events
    # The recording holds the head Monado reported, tracked, swaying as sent.
    heads = _rows(folder / "head.csv")
    assert len(heads) >= 0.9 * 3.0 * 250
    assert all(h["tracked"] in ("1", "True", "true") for h in heads)
    xs = [float(h["x_m"]) for h in heads]
    zs = [float(h["z_m"]) for h in heads]
    assert 0.012 < max(xs) - min(xs) < 0.03  # the 2 cm peak-to-peak sway
    assert max(zs) - min(zs) < 0.02  # no vertical movement beyond the sway's


@needs_monado
def test_head_dropping_0_3_m_in_0_4_s_stops_the_trial(monado_remote: int, tmp_path: Path) -> None:
    with (
        _run_xr_session(tmp_path, seconds_scale=0.2) as (proc, started),
        RemoteHead(monado_remote, _drop_after(1.0, 0.3, 0.4), started) as head,
    ):
        out, _ = proc.communicate(timeout=240)
    assert head.error is None, head.error
    assert started.is_set(), "the trial never started"
    assert "[1] Baseline: safety_stop" in out, out
    folder = _session(tmp_path)
    events = _rows(folder / "events.csv")
    (end,) = [e for e in events if e["kind"] == "trial_end"]
    assert json.loads(end["values_json"])["end_reason"] == "safety_stop"
    triggers = {e["kind"] for e in events}
    assert triggers & {"head_height_drop", "head_fall_velocity"}, sorted(triggers)
    # It stopped during the fall (0.75 m/s down), long before the trial's 6 s end,
    # with the head Monado reported already on its way down.
    states = _rows(folder / "state.csv")
    assert float(states[-1]["t_s"]) - float(states[0]["t_s"]) < 0.9 * 6.0
    zs = [float(h["z_m"]) for h in _rows(folder / "head.csv")]
    assert 0.02 < max(zs) - min(zs) < 0.3


@needs_monado
def test_a_headset_only_tandem_walk_follows_the_tracked_head(
    monado_remote: int, tmp_path: Path
) -> None:
    """No plate at all (the console's "devices: none"): the headset's head is the only input."""
    with (
        _run_xr_session(tmp_path, 0.1, protocol="tandem_walk", devices=()) as (proc, started),
        RemoteHead(monado_remote, _walk_the_line, started) as head,
    ):
        out, _ = proc.communicate(timeout=240)
    assert head.error is None, head.error
    assert started.is_set(), "the trial never started"
    assert proc.returncode == 0, out
    assert "the quiet-stance baseline, a plate measurement, is left out" in out
    folder = _session(tmp_path)
    meta = json.loads((folder / "session.json").read_text())
    assert meta["plate"] == {"id": None}
    trials = _rows(folder / "trials.csv")
    assert [t["end_reason"] for t in trials] == ["completed"] * 3
    assert _rows(folder / "plate.csv") == []
    # The recording holds the walk Monado reported: along the line (core +y), tracked.
    heads = _rows(folder / "head.csv")
    assert all(h["tracked"] in ("1", "True", "true") for h in heads)
    ys = [float(h["y_m"]) for h in heads]
    assert max(ys) - min(ys) > 1.0


@needs_monado
def test_a_console_station_runs_a_headset_only_walk_and_recenters_its_view(
    monado_remote: int, tmp_path: Path
) -> None:
    """The console's path: the start page's request (Plate none, output headset) becomes a
    station, whose session walks the line on Monado's tracked head; the console's
    Recenter mid-walk is recorded and refused (the line is where the corridor is judged)."""
    from vrbalance.console.stations import NO_PLATE, SessionRequest, Stations

    request = SessionRequest(
        "P1", "tandem_walk", device=NO_PLATE, output="headset", seconds_scale=0.1
    )
    stations = Stations(runtime_dir=tmp_path / "rt")
    started = threading.Event()
    recentred: list[int] = []
    station = stations.start(request)
    station.listeners.append(
        lambda msg: (
            started.set() if msg["type"] == "event" and msg["kind"] == "inputs_streaming" else None
        )
    )
    try:
        with RemoteHead(monado_remote, _walk_the_line, started) as head:
            # The therapist's clicks, from the station's live picture (as the live page).
            deadline = time.monotonic() + 240.0
            last_start: dict[int, float] = {}
            while (snap := station.snapshot())["status"] not in ("ended", "died"):
                assert time.monotonic() < deadline, snap["status"]
                gate, tick = snap["gate"], snap["tick"]
                if gate.get("waiting"):
                    n = int(gate.get("trial", -1))
                    if time.monotonic() - last_start.get(n, -10.0) > 1.0 and station.send("start"):
                        last_start[n] = time.monotonic()
                elif tick and tick.get("streaming") and not recentred and station.send("recenter"):
                    recentred.append(int(tick["trial"]))
                time.sleep(0.05)
    finally:
        if station.proc is not None and station.proc.poll() is None:
            station.proc.kill()
        stations.close()
    assert head.error is None, head.error
    assert snap["status"] == "ended", snap["why"]
    assert snap["end"] is not None and snap["end"]["filed"]
    folder = _session(tmp_path)
    assert json.loads((folder / "session.json").read_text())["plate"] == {"id": None}
    trials = _rows(folder / "trials.csv")
    assert [t["end_reason"] for t in trials] == ["completed"] * 3  # no baseline first
    events = _rows(folder / "events.csv")
    recenters = [e for e in events if (e["source"], e["kind"]) == ("operator", "recenter")]
    assert len(recenters) == 1 and recenters[0]["trial"] == str(recentred[0])
    refused = [e for e in events if e["kind"] == "command_refused"]
    assert len(refused) == 1 and "recenter refused during a walk" in refused[0]["message"]
    assert refused[0]["trial"] == str(recentred[0])
