"""The console channel end to end: a real ``vrbalance run`` process, a real Unix socket."""

from __future__ import annotations

import os
import stat
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

    def wait(
        self, pred: Callable[[dict[str, Any]], bool], timeout_s: float = 30.0, *, since: int = 0
    ) -> dict:
        """The first message from index ``since`` on that matches ``pred``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for m in list(self.messages)[since:]:
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


def test_a_gate_no_console_can_open_ends_the_session_but_a_connected_one_waits(
    tmp_path: Path,
) -> None:
    """A session whose console never comes back must not wait (and hold the plate) for ever."""
    import threading
    from types import SimpleNamespace

    from vrbalance.console.channel import ConsoleGone

    folder = tmp_path / "ch"
    folder.mkdir(mode=0o700)
    trial = SimpleNamespace(
        name="Baseline", scene="park", stance="feet_apart", duration_s=30.0, instructions="Stand."
    )
    with SessionChannel(folder / "s.sock", {"session_id": "S"}, orphan_gate_s=0.3) as channel:
        inbox = Inbox()
        client = ChannelClient(folder / "s.sock", inbox)
        assert client.connect()
        inbox.wait(lambda m: m["type"] == "hello")
        done = threading.Event()
        errors: list[BaseException] = []

        def gate() -> None:
            try:
                channel.before_trial(0, trial)
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        threading.Thread(target=gate, daemon=True).start()
        inbox.wait(lambda m: m["type"] == "gate" and m["waiting"])
        # With a console connected the gate waits for its start, however long.
        assert not done.wait(1.0)  # > 3x the orphan limit
        assert client.send("start")
        assert done.wait(30.0)
        assert errors == []
        # The console goes away for good: the next gate gives up, as the operator's end.
        client.close()
        deadline = time.monotonic() + 30.0
        while channel.connected_consoles() and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ConsoleGone, match="no console connected for 0 min"):
            channel.before_trial(1, trial)


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
def test_a_station_drives_a_session_records_every_command_and_files_it_when_it_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console's station: a real ``vrbalance run`` process and its Unix socket.

    Commands applied and recorded, the start gate held by an emergency stop,
    the director's level controls, the console's channel dropping mid-trial
    (the session carries on; the station reconnects and sees it), and at last
    the session process killed mid-trial: the station says why and files the
    recording as incomplete.
    """
    from vrbalance.console.stations import SessionRequest, Stations
    from vrbalance.sessions.store import Store

    data = tmp_path / "data"
    monkeypatch.setenv("VRBALANCE_DATA", str(data))
    monkeypatch.delenv("VRBALANCE_DB", raising=False)
    assert main(["patient", "add", "P3"]) == 0
    stations = Stations(runtime_dir=tmp_path / "rt")
    request = SessionRequest(
        "P3", "park_walk", output="none", start_levels=(("park", 2),), seconds_scale=0.1
    )
    assert request.argv(stations.runtime_dir / "s.sock")[3:] == [
        "run", "--patient", "P3", "--protocol", "park_walk", "--simulate", "--no-render",
        "--seconds-scale", "0.1", "--console-channel", str(stations.runtime_dir / "s.sock"),
        "--start-level", "park=2",
    ]  # fmt: skip
    inbox = Inbox()
    station = stations.start(request)
    station.listeners.append(inbox)
    try:
        hello = inbox.wait(lambda m: m["type"] == "hello")
        assert hello["patient_id"] == "P3" and hello["trials"][0]["name"] == "Baseline"
        assert "name" not in hello  # no display name crosses
        gate = inbox.wait(lambda m: m["type"] == "gate" and m["waiting"])
        assert gate["trial"] == 0 and gate["instructions"].startswith("Stand still")
        assert station.send("start")
        tick = inbox.wait(lambda m: m["type"] == "tick" and m["cop_m"] is not None)
        assert tick["bos_m"] and len(tick["bos_m"]) >= 4 and tick["xcom_m"] is not None
        station.send("pause")
        inbox.wait(lambda m: m["type"] == "tick" and m["paused"])
        station.send("resume")
        station.send("level_up")  # the baseline's level is the protocol's: refused, recorded
        refused = inbox.wait(is_event("command_refused"))
        assert "fixes this trial's level" in refused["message"]
        station.send("emergency_stop")
        inbox.wait(is_event("emergency_stop"))
        end0 = inbox.wait(is_event("trial_end"))
        assert end0["values"]["end_reason"] == "operator_abort"
        inbox.wait(lambda m: m["type"] == "gate" and m["waiting"] and m["trial"] == 1, 60.0)
        station.send("start")  # held: an emergency stop needs a reset first
        assert "reset" in inbox.wait(lambda m: m["type"] == "refused")["reason"]
        station.send("reset")
        station.send("start")
        inbox.wait(lambda m: m["type"] == "tick" and m["trial"] == 1 and m["streaming"])
        station.send("pause")  # trial time stops: the rest of the test has all the time
        station.send("level_up")
        change = inbox.wait(lambda m: is_event("level_change")(m) and m["trial"] == 1)
        assert (change["values"]["from_level"], change["values"]["to_level"]) == (2, 3)
        inbox.wait(lambda m: m["type"] == "tick" and m["trial"] == 1 and m["level"] == 3)
        # The console's channel drops mid-trial: the session carries on, the station
        # connects again and gets the hello and the live ticks.
        n = len(inbox.messages)
        assert station.client is not None
        station.client.close()
        inbox.wait(lambda m: m["type"] == "hello", since=n)
        inbox.wait(lambda m: m["type"] == "tick" and m["paused"] and m["level"] == 3, since=n)
        station.send("pin_level")
        inbox.wait(is_event("pin"))
        station.send("lock_scene")
        inbox.wait(is_event("lock"))
        events_csv = Path(hello["folder"]) / "events.csv"
        deadline = time.monotonic() + 30.0
        while "lock_scene" not in events_csv.read_text():  # flushed (every 0.25 s)
            assert time.monotonic() < deadline, "the events never reached the disk"
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
        (session,) = store.sessions("P3")
    assert session["status"] == "incomplete"
    recording = Path(hello["folder"])
    events = read_rows(recording / "events.csv")
    operator = [(e["trial"], e["kind"]) for e in events if e["source"] == "operator"]
    for expected in [
        ("0", "pause"), ("0", "resume"), ("0", "level_up"), ("0", "emergency_stop"),
        ("1", "reset"), ("1", "level_up"), ("1", "pin_level"), ("1", "lock_scene"),
    ]:  # fmt: skip
        assert expected in operator
    trials = read_rows(recording / "trials.csv")
    assert [t["end_reason"] for t in trials] == ["operator_abort"]  # trial 2 never finished


def test_a_server_url_reaches_the_session_in_its_environment_not_its_command_line() -> None:
    """A password in ``--db`` would be readable by every user through ``ps``."""
    from vrbalance.console.stations import SessionRequest

    url = "postgresql://station:s3cret@127.0.0.1:5432/clinic"
    request = SessionRequest("P3", "baseline", output="none")
    assert not any("s3cret" in arg for arg in request.argv(Path("s.sock")))
    assert request.env(url)["VRBALANCE_DB"] == url
    assert request.env(None).get("VRBALANCE_DB") == os.environ.get("VRBALANCE_DB")


def _may_use_sched_fifo() -> bool:
    """Whether this process may make a thread SCHED_FIFO (tried in a throwaway thread)."""
    import threading

    allowed: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            allowed.append(True)
        except PermissionError:
            allowed.append(False)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return allowed[0]


def test_commands_are_read_at_real_time_priority_below_the_loop(tmp_path: Path) -> None:
    """An emergency stop must not queue behind normal threads on a busy clinic PC."""
    import threading

    from vrbalance.console.channel import COMMAND_FIFO_PRIORITY
    from vrbalance.realtime.pipeline import RECOMMENDED_TUNING

    assert 0 < COMMAND_FIFO_PRIORITY < int(RECOMMENDED_TUNING["fifo_priority"])
    expected = os.SCHED_FIFO if _may_use_sched_fifo() else os.SCHED_OTHER
    folder = tmp_path / "ch"
    folder.mkdir(mode=0o700)
    with SessionChannel(folder / "s.sock", {"session_id": "S"}):
        inbox = Inbox()
        client = ChannelClient(folder / "s.sock", inbox)
        assert client.connect()
        inbox.wait(lambda m: m["type"] == "hello")
        # The accept thread greets a console before it starts that console's reader,
        # and the reader tunes itself first thing: poll for both (deadline, no sleeps).
        deadline = time.monotonic() + 30.0
        policy = None
        while time.monotonic() < deadline:
            readers = [t for t in threading.enumerate() if t.name == "console-channel-read"]
            if readers and readers[0].native_id is not None:
                policy = os.sched_getscheduler(readers[0].native_id)
                if policy == expected:
                    break
            time.sleep(0.01)
        assert policy == expected, f"reader policy {policy}, expected {expected}"
        if expected == os.SCHED_FIFO:
            priority = os.sched_getparam(readers[0].native_id).sched_priority  # type: ignore[arg-type]
            assert priority == COMMAND_FIFO_PRIORITY
        client.close()
