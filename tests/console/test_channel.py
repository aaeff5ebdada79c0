"""The console channel end to end: a real ``vrbalance run`` process, a real Unix socket."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vrbalance.cli import main
from vrbalance.console.channel import ChannelClient, SessionChannel, check_private_folder
from vrbalance.errors import ConfigError
from vrbalance.sessions.recorder import read_rows


class Inbox:
    """Messages a :class:`ChannelClient` received, with a polling wait (deadline, no sleeps)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def __call__(self, msg: dict[str, Any]) -> None:
        self.messages.append(msg)

    def wait(self, pred: Callable[[dict[str, Any]], bool], timeout_s: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for m in list(self.messages):
                if pred(m):
                    return m
            time.sleep(0.01)
        kinds = [(m["type"], m.get("kind")) for m in self.messages[-20:]]
        raise AssertionError(f"no matching message within {timeout_s} s; last: {kinds}")


def is_event(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["type"] == "event" and m["kind"] == kind


def test_channel_folder_must_be_private(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    os.chmod(open_dir, 0o755)
    with pytest.raises(ConfigError, match=r"open: expected a folder of yours with mode 0700"):
        check_private_folder(open_dir)
    with pytest.raises(ConfigError, match="does not exist"):
        SessionChannel(tmp_path / "nope" / "s.sock", {}).start()


def test_bad_lines_are_refused_and_the_socket_is_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "ch"
    folder.mkdir(mode=0o700)
    with SessionChannel(folder / "s.sock", {"session_id": "S"}) as channel:
        assert stat.S_IMODE((folder / "s.sock").stat().st_mode) == 0o600
        inbox = Inbox()
        client = ChannelClient(folder / "s.sock", inbox)
        assert client.connect()
        assert inbox.wait(lambda m: m["type"] == "hello")["session_id"] == "S"
        client._sock.sendall(b'not json\n{"cmd": "self_destruct"}\n')  # type: ignore[union-attr]
        assert client.send("start")
        assert "expected" in inbox.wait(lambda m: m["type"] == "refused")["reason"]
        inbox.wait(lambda m: m.get("cmd") == "self_destruct" and m["reason"] == "unknown command")
        inbox.wait(lambda m: m.get("cmd") == "start" and "no trial" in m["reason"])
        assert channel.commands_forwarded == 0
        client.close()
    assert not (folder / "s.sock").exists()


@pytest.mark.slow
def test_a_session_is_driven_through_the_channel_and_every_command_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("VRBALANCE_DATA", str(data))
    monkeypatch.delenv("VRBALANCE_DB", raising=False)
    assert main(["patient", "add", "P3"]) == 0
    folder = tmp_path / "ch"
    folder.mkdir(mode=0o700)
    sock = folder / "s.sock"
    argv = [
        "run", "--patient", "P3", "--protocol", "park_walk", "--simulate", "--no-render",
        "--seconds-scale", "0.05", "--start-level", "park=2", "--console-channel", str(sock),
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "vrbalance", *argv],
        env={**os.environ, "VRBALANCE_DATA": str(data)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    inbox = Inbox()
    client = ChannelClient(sock, inbox)
    try:
        deadline = time.monotonic() + 30.0
        while not client.connect():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the session never opened its channel"
            time.sleep(0.05)
        hello = inbox.wait(lambda m: m["type"] == "hello")
        assert hello["patient_id"] == "P3" and hello["trials"][0]["name"] == "Baseline"
        assert "name" not in hello  # no display name crosses
        gate = inbox.wait(lambda m: m["type"] == "gate" and m["waiting"])
        assert gate["trial"] == 0 and gate["instructions"].startswith("Stand still")
        client.send("start")
        tick = inbox.wait(lambda m: m["type"] == "tick" and m["cop_m"] is not None)
        assert tick["bos_m"] and len(tick["bos_m"]) >= 4 and tick["xcom_m"] is not None
        client.send("pause")
        inbox.wait(lambda m: m["type"] == "tick" and m["paused"])
        client.send("resume")
        client.send("level_up")  # the baseline's level is the protocol's: refused, recorded
        refused = inbox.wait(is_event("command_refused"))
        assert "fixes this trial's level" in refused["message"]
        client.send("emergency_stop")
        inbox.wait(is_event("emergency_stop"))
        end0 = inbox.wait(is_event("trial_end"))
        assert end0["values"]["end_reason"] == "operator_abort"
        inbox.wait(lambda m: m["type"] == "gate" and m["waiting"] and m["trial"] == 1, 60.0)
        client.send("start")  # held: an emergency stop needs a reset first
        assert "reset" in inbox.wait(lambda m: m["type"] == "refused")["reason"]
        client.send("reset")
        client.send("start")
        inbox.wait(lambda m: m["type"] == "tick" and m["trial"] == 1 and m["streaming"])
        client.send("level_up")
        change = inbox.wait(lambda m: is_event("level_change")(m) and m["trial"] == 1)
        assert (change["values"]["from_level"], change["values"]["to_level"]) == (2, 3)
        inbox.wait(lambda m: m["type"] == "tick" and m["trial"] == 1 and m["level"] == 3)
        # The console goes away mid-trial: the session carries on; a new one sees it.
        client.close()
        inbox = Inbox()
        client = ChannelClient(sock, inbox)
        assert client.connect()
        assert inbox.wait(lambda m: m["type"] == "hello")["session_id"] == hello["session_id"]
        inbox.wait(lambda m: m["type"] == "tick" and m["trial"] == 1 and m["level"] == 3)
        client.send("pin_level")
        inbox.wait(is_event("pin"))
        client.send("lock_scene")
        inbox.wait(is_event("lock"))
        client.send("stop")
        end = inbox.wait(lambda m: m["type"] == "end", 60.0)
        assert end == {"type": "end", "end_reason": "operator_abort", "filed": True}
        out = proc.communicate(timeout=30)[0]
        assert proc.returncode == 1, out  # stopped early: the command line says so
        assert "the session ended before its trials were done" in out
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    recording = Path(hello["folder"])
    events = read_rows(recording / "events.csv")
    operator = [(e["trial"], e["kind"]) for e in events if e["source"] == "operator"]
    for expected in [
        ("0", "pause"), ("0", "resume"), ("0", "level_up"), ("0", "emergency_stop"),
        ("1", "reset"), ("1", "level_up"), ("1", "pin_level"), ("1", "lock_scene"), ("1", "stop"),
    ]:  # fmt: skip
        assert expected in operator
    trials = read_rows(recording / "trials.csv")
    assert [t["end_reason"] for t in trials] == ["operator_abort", "operator_abort"]
    assert not sock.exists()


@pytest.mark.slow
def test_a_session_process_that_dies_is_explained_and_its_recording_filed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vrbalance.console.stations import SessionRequest, Stations
    from vrbalance.sessions.store import Store

    data = tmp_path / "data"
    monkeypatch.setenv("VRBALANCE_DATA", str(data))
    monkeypatch.delenv("VRBALANCE_DB", raising=False)
    assert main(["patient", "add", "P5"]) == 0
    stations = Stations(runtime_dir=tmp_path / "rt")
    station = stations.start(SessionRequest("P5", "baseline", output="none", seconds_scale=1.0))
    try:
        deadline = time.monotonic() + 60.0
        while not station.snapshot()["gate"].get("waiting"):
            assert time.monotonic() < deadline, station.snapshot()
            time.sleep(0.02)
        assert station.send("start")
        state_csv = Path(station.snapshot()["hello"]["folder"]) / "state.csv"
        while not state_csv.exists() or state_csv.stat().st_size < 2000:  # rows on disk
            assert time.monotonic() < deadline, station.snapshot()
            time.sleep(0.02)
        assert station.proc is not None
        station.proc.kill()  # the session process dies mid-trial
        while station.snapshot()["status"] != "died":
            assert time.monotonic() < deadline, station.snapshot()
            time.sleep(0.02)
    finally:
        if station.proc is not None and station.proc.poll() is None:
            station.proc.kill()
        stations.close()
    why = station.snapshot()["why"]
    assert why.startswith("The session process was killed (SIGKILL).")
    assert "The recording was filed as incomplete (end: incomplete)." in why
    with Store(data / "vrbalance.sqlite3") as store:
        (session,) = store.sessions("P5")
    assert session["status"] == "incomplete"
    assert read_rows(Path(session["folder"]) / "state.csv")  # what was recorded is kept
