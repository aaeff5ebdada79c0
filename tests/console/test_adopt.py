"""A restarted console finds the sessions an earlier console started and still run.

The runtime folder is stable and private, one console holds it at a time, and a
console that crashed (killed, not closed) leaves its sessions to the next one:
real ``vrbalance run`` processes, real Unix sockets, a real crashed process.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from vrbalance.cli import main
from vrbalance.console.channel import ChannelClient, SessionChannel
from vrbalance.console.stations import (
    Station,
    Stations,
    console_runtime_dir,
    prepare_runtime_dir,
    session_process_alive,
)
from vrbalance.errors import ConfigError
from vrbalance.sessions.recorder import read_rows
from vrbalance.sessions.store import Store

from .conftest import CrashingConsole
from .test_channel import Inbox

WAIT_S = 60.0


def _until(what: str, pred: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    """Poll ``pred`` until it is truthy (a deadline, never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"waited {timeout_s} s for {what}")


def test_the_runtime_folder_is_stable_private_and_held_by_one_console(tmp_path: Path) -> None:
    # Stable: the data folder's when $VRBALANCE_DATA moves it, else the per-user runtime dir.
    assert console_runtime_dir({"VRBALANCE_DATA": "/d", "XDG_RUNTIME_DIR": "/run/user/7"}) == (
        Path("/d/console")
    )
    assert console_runtime_dir({"XDG_RUNTIME_DIR": "/run/user/7"}) == Path(
        "/run/user/7/vrbalance/console"
    )
    made = prepare_runtime_dir(tmp_path / "r" / "c")  # parents made too
    assert stat.S_IMODE(made.stat().st_mode) == 0o700

    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, 0o750)
    with pytest.raises(ConfigError, match=rf"{loose}: mode 0750 lets group or others in"):
        Stations(runtime_dir=loose)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o750  # refused, never tightened and used
    not_mine = tmp_path / "theirs"
    if os.getuid() == 0:
        not_mine.mkdir(mode=0o700)
        os.chown(not_mine, 65534, 65534)
    else:
        not_mine = Path("/")  # root's
    with pytest.raises(ConfigError, match=rf"folder {not_mine}: owned by uid \d+, not by you"):
        prepare_runtime_dir(not_mine)
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        prepare_runtime_dir(tmp_path / "file")
    with pytest.raises(ConfigError, match="too long for a Unix socket path"):
        prepare_runtime_dir(tmp_path / ("x" * 100))

    # One console per folder: a second one is refused, naming the holder, until it closes.
    first = Stations(runtime_dir=made)
    with pytest.raises(ConfigError, match=rf"another vrbalance console \(process {os.getpid()}\)"):
        Stations(runtime_dir=made)
    first.close()
    Stations(runtime_dir=made).close()


def test_a_station_can_answer_the_first_message_it_receives(tmp_path: Path) -> None:
    """The client is the station's before it connects: a reply from the first callback counts."""
    folder = tmp_path / "rt" / "firstReply01"
    folder.mkdir(parents=True, mode=0o700)
    trial = SimpleNamespace(
        name="Baseline", scene="park", stance="feet_apart", duration_s=30.0, instructions="Stand."
    )
    with SessionChannel(folder / "session.sock", {"session_id": "S"}) as channel:
        started = threading.Event()
        gate = threading.Thread(
            target=lambda: (channel.before_trial(0, trial), started.set()), daemon=True
        )
        gate.start()
        probe = Inbox()  # wait until the gate waits, so it comes with the hello
        probe_client = ChannelClient(folder / "session.sock", probe)
        assert probe_client.connect()
        probe.wait(lambda m: m["type"] == "gate" and m["waiting"])
        probe_client.close()

        station = Station(key="firstReply01", request=None, folder=folder, adopted=True)
        replies: list[bool] = []
        replied = threading.Event()

        def reply(msg: dict[str, Any]) -> None:
            if msg["type"] == "hello" and not replies:
                replies.append(station.send("start"))
                replied.set()

        station.listeners.append(reply)
        assert station.connect()
        assert started.wait(30.0), "the gate never got the start sent from the hello's callback"
        # The gate can open before the callback has stored what send() returned.
        assert replied.wait(30.0)
        assert replies == [True]
        station.client.close()  # type: ignore[union-attr]


@pytest.mark.slow
def test_a_restarted_console_adopts_a_running_session_and_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A console crashes (SIGKILL) with a session at its start gate; the next one adopts it.

    The adopted station gets the hello and the gate, starts the trial, sees its
    live ticks and stops it with an emergency stop that the session records;
    the session then ends, is filed, and its station folder is cleaned. A dead
    socket and a leftover folder of sessions long gone are removed.
    """
    data = tmp_path / "data"
    monkeypatch.setenv("VRBALANCE_DATA", str(data))
    monkeypatch.delenv("VRBALANCE_DB", raising=False)
    assert main(["patient", "add", "P7"]) == 0
    rt = tmp_path / "rt"
    crashed = CrashingConsole(rt)
    session_pid = None
    stations = None
    try:
        key, session_pid = crashed.start_session_and_crash("P7", "baseline")
        assert session_process_alive(session_pid, key)

        dead = rt / "deadSocket01"  # a session that died with no console to see it
        dead.mkdir(mode=0o700)
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(dead / "session.sock"))  # closed unremoved: connection refused
        (rt / "emptyFolder1").mkdir(mode=0o700)

        # The lock died with the crashed console (the session never inherited it).
        stations = Stations(runtime_dir=rt)
        (station,) = stations.adopt_running()
        assert (station.key, station.adopted, station.proc) == (key, True, None)
        assert not dead.exists() and not (rt / "emptyFolder1").exists()
        assert [s.key for s in stations.all()] == [key]

        hello = _until("the hello", lambda: station.snapshot()["hello"])
        assert (hello["patient_id"], hello["protocol"]) == ("P7", "baseline")
        assert hello["pid"] == session_pid and "name" not in hello  # no display name crosses
        assert (station.patient_id, station.protocol) == ("P7", "baseline")
        gate = _until("the gate", lambda: (g := station.snapshot()["gate"]).get("waiting") and g)
        assert gate["trial"] == 0 and gate["name"] == "Baseline"
        ticks: list[dict[str, Any]] = []
        station.listeners.append(lambda m: ticks.append(m) if m["type"] == "tick" else None)
        assert station.send("start")
        _until(
            "live ticks with a CoP",
            lambda: len({t["t_s"] for t in ticks if t["streaming"] and t["cop_m"]}) >= 5,
        )
        assert station.snapshot()["status"] == "running" and station.snapshot()["connected"]

        assert station.send("emergency_stop")
        _until("the session's end", lambda: station.snapshot()["status"] in ("ended", "died"))
        snap = station.snapshot()
        assert snap["status"] == "ended", snap["why"]
        assert snap["end"]["filed"]  # the session ran to its end: its one trial was stopped
        kinds = [(e["source"], e["kind"]) for e in snap["events"]]
        assert ("operator", "emergency_stop") in kinds
        _until("the session process to end", lambda: not session_process_alive(session_pid, key))
        _until("the station folder to go", lambda: not station.folder.exists())
    finally:
        crashed.cleanup()
        if stations is not None:
            stations.close()
    events = read_rows(Path(hello["folder"]) / "events.csv")
    assert [e["kind"] for e in events if e["source"] == "operator"] == ["emergency_stop"]
    (trial,) = read_rows(Path(hello["folder"]) / "trials.csv")
    assert trial["end_reason"] == "operator_abort"
    with Store(data / "vrbalance.sqlite3") as store:
        (session,) = store.sessions("P7")
    assert session["status"] == "complete"


def test_a_starting_session_is_adopted_and_its_death_is_told_without_an_exit_status(
    tmp_path: Path,
) -> None:
    """A folder whose socket is not open yet but whose ``session.pid`` names a live
    session process of that folder is adopted (the session is starting); when its
    channel closes without an ``end`` and the process is gone, the station says so."""
    rt = tmp_path / "rt"
    folder = rt / "stillStart01"
    folder.mkdir(parents=True, mode=0o700)
    os.chmod(rt, 0o700)
    sock = folder / "session.sock"
    # A stand-in process whose command line names the station's socket, as a session's does.
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "--console-channel", str(sock)],
        stdin=subprocess.PIPE,
    )
    other = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    stale = rt / "recycledPid1"  # its pid file names a live process of something else
    stale.mkdir(mode=0o700)
    (stale / "session.pid").write_text(f"{other.pid}\n")
    stations = Stations(runtime_dir=rt)
    try:
        (folder / "session.pid").write_text(f"{proc.pid}\n")
        (station,) = stations.adopt_running()
        assert station.key == "stillStart01" and station.snapshot()["status"] == "starting"
        assert not stale.exists()  # a recycled process id is not taken for a session
        with SessionChannel(sock, {"session_id": "S2", "patient_id": "P9", "protocol": "x"}):
            _until("the hello once the channel opens", lambda: station.snapshot()["hello"])
            assert station.patient_id == "P9"
            proc.kill()  # the session dies ...
            proc.wait()
        # ... and its channel closes without an end message.
        _until("the death", lambda: station.snapshot()["status"] == "died")
        why = station.snapshot()["why"]
        assert why.startswith("The session process ended without saying how the session ended")
        assert "exit status is unknown" in why and "No recording was started." in why
        _until("the station folder to go", lambda: not folder.exists())
    finally:
        for p in (proc, other):
            if p.poll() is None:
                p.kill()
                p.wait()
        stations.close()
