"""A whole simulated session through the command line: run, database, report, replay agree."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import re
import signal
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vrbalance.cli import main
from vrbalance.report.html import measures_from_html
from vrbalance.sessions.recorder import read_rows, read_sidecar
from vrbalance.sessions.store import Store


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VRBALANCE_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("VRBALANCE_DB", raising=False)
    return tmp_path / "data"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
@pytest.mark.render
def test_simulated_baseline_session_end_to_end(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "patient",
                "add",
                "P7",
                "--birth-year",
                "1948",
                "--height-cm",
                "168",
                "--mass-kg",
                "64",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "run",
                "--patient",
                "P7",
                "--protocol",
                "baseline",
                "--simulate",
                "--offscreen",
                "--seconds-scale",
                "0.1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "[1] Baseline: completed" in out
    assert "  baseline sway: CoP velocity " in out  # the scores, printed at the end
    (folder,) = (data / "sessions" / "P7").iterdir()

    # The recording: every stream, owner-only, complete sidecar.
    meta = read_sidecar(folder)
    assert meta["status"] == "complete" and meta["end_reason"] == "completed"
    assert meta["simulated"] is True and meta["seconds_scale"] == 0.1
    states = read_rows(folder / "state.csv")
    # Every tick the loop ran is recorded; ticks it skipped (a busy machine) are
    # counted in the trial_end event, and the two add up to every deadline from
    # the loop's start to the trial's last tick: the start-up gate's wait
    # (inputs connecting, at least STREAMING_HOLD_S, counted, not recorded) and
    # 3 s at 250 Hz. Exact whatever the load: a tick's time is its deadline
    # (t0 + k / 250 Hz), so deadline indices are counted from the recorded
    # times (a skip is a gap), never from wall time.
    events = read_rows(folder / "events.csv")
    (end,) = [e for e in events if e["kind"] == "trial_end"]
    (gate,) = [e for e in events if e["kind"] == "inputs_streaming"]
    gate_values = json.loads(gate["values_json"])
    assert 0.2 - 1e-6 <= gate_values["wait_s"] < 5.0
    health = json.loads(end["values_json"])
    assert health["ticks"] - health["connecting_ticks"] == len(states)
    t_gate = float(gate["t_s"])
    deadline = [
        gate_values["last_connecting_tick"] + round((float(s["t_s"]) - t_gate) * 250.0)
        for s in states
    ]
    assert deadline[0] > gate_values["last_connecting_tick"]  # the trial starts after the gate
    assert all(b > a for a, b in itertools.pairwise(deadline))
    assert health["ticks"] + health["skipped_ticks"] == deadline[-1] + 1
    # The trial ends at its first tick 3 s (750 deadlines) after its first one:
    # the last recorded tick is at or past that deadline, the one before it short of it.
    assert deadline[-1] - deadline[0] >= 750 > deadline[-2] - deadline[0]
    assert float(states[0]["t_s"]) > float(gate["t_s"])  # nothing recorded before the start
    assert len(read_rows(folder / "plate.csv")) >= 0.9 * 3.0 * 100  # the wii board's 100 Hz
    assert len(read_rows(folder / "head.csv")) == len(states)
    assert _mode(folder) == 0o700 and _mode(folder.parent) == 0o700
    assert all(_mode(p) == 0o600 for p in folder.iterdir())
    db = data / "vrbalance.sqlite3"
    assert _mode(db) == 0o600

    # The database: one session, its trial, the same measures as the folder.
    with Store(db) as store:
        (session,) = store.sessions("P7")
        assert session["folder"] == str(folder.resolve())
        trials = store.trials(session["id"])
        db_measures = {
            (m["trial_idx"], m["name"]): m["value"] for m in store.measures(session["id"])
        }
    assert [t["name"] for t in trials] == ["Baseline"]
    assert trials[0]["end_reason"] == "completed"
    assert db_measures[(0, "duration_s")] == pytest.approx(3.0, abs=0.01)
    assert 0.001 < db_measures[(0, "cop_velocity_mps")] < 0.05  # quiet stance: mm/s, not m/s

    # The report: written, self-contained, with its plots, same numbers as the database.
    report = tmp_path / "r.html"
    assert main(["report", str(folder), "--out", str(report)]) == 0
    text = report.read_text()
    assert text.count("data:image/png;base64,") >= 4
    assert "http://" not in text and "https://" not in text.split("Reference values:")[0]
    assert "Statokinesigram" in text and "Stabilogram" in text and "BDS" in text
    html_measures = {(i, n): v for i, n, v, _ in measures_from_html(text)}
    assert html_measures == db_measures
    assert _mode(report) == 0o600

    # The session id works wherever a folder does; replay is identical.
    assert main(["replay", session["id"]]) == 0
    assert "states identical: True" in capsys.readouterr().out

    # Simulated and shortened: listed but not charted, unless asked.
    assert main(["progress", "P7", "--out", str(tmp_path / "p.html")]) == 0
    assert "1 session(s) left out of the charts" in (tmp_path / "p.html").read_text()
    assert main(["progress", "P7", "--out", str(tmp_path / "p.html"), "--include-all"]) == 0
    assert (tmp_path / "p.html").read_text().count("data:image/png;base64,") >= 4


def test_missing_patient_is_a_clear_error_and_records_nothing(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["patient", "list"]) == 0
    assert (
        main(["run", "--patient", "NOBODY", "--protocol", "baseline", "--simulate", "--no-render"])
        == 2
    )
    err = capsys.readouterr().err
    assert "vrbalance run: error: no patient 'NOBODY' in " in err
    assert "add one with `vrbalance patient add NOBODY`" in err
    assert not (data / "sessions").exists()


def test_unsafe_patient_id_is_refused(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["patient", "add", "../etc"]) == 2
    assert "patient id '../etc': expected 1-64 letters" in capsys.readouterr().err


@pytest.mark.slow
def test_session_survives_a_database_broken_before_filing_and_imports_later(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The database breaks during the session: the recording is kept, filed later."""
    from vrbalance.sessions.runner import SessionRunner

    assert main(["patient", "add", "P1"]) == 0
    db = data / "vrbalance.sqlite3"
    good = db.read_bytes()
    run_session = SessionRunner.run

    def run_then_break_the_database(self: SessionRunner) -> Any:
        result = run_session(self)
        db.write_bytes(b"garbage, not sqlite" * 64)
        return result

    monkeypatch.setattr(SessionRunner, "run", run_then_break_the_database)
    rc = main(
        [
            "run",
            "--patient",
            "P1",
            "--protocol",
            "baseline",
            "--simulate",
            "--no-render",
            "--seconds-scale",
            "0.05",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 1
    assert f"{db}: not a vrbalance database" in captured.err
    assert "file it later with: vrbalance patient import" in captured.err
    (folder,) = (data / "sessions" / "P1").iterdir()
    assert read_sidecar(folder)["status"] == "complete"
    db.write_bytes(good)  # the technician restores the database
    assert main(["patient", "import", str(folder)]) == 0
    con = sqlite3.connect(db)
    assert con.execute("SELECT end_reason FROM sessions").fetchall() == [("completed",)]
    con.close()


def test_an_unreadable_patient_record_refuses_the_session(
    data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fail closed: a locked, broken or damaged record never falls back to the defaults."""
    from vrbalance.commands import run as run_command

    monkeypatch.setattr(run_command, "DB_TIMEOUT_S", 0.2)
    assert main(["patient", "add", "P1", "--mass-kg", "70"]) == 0
    db = data / "vrbalance.sqlite3"
    argv = ["run", "--patient", "P1", "--protocol", "baseline", "--simulate", "--no-render"]
    holder = sqlite3.connect(db)
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the database
    try:
        assert main(argv) == 2
    finally:
        holder.rollback()
        holder.close()
    err = capsys.readouterr().err
    assert "vrbalance run: error: cannot read patient P1's safety envelope and body: " in err
    assert "database is locked by another program" in err
    assert "the session was not started (vrbalance never runs a patient on default limits)" in err
    # A damaged envelope in the record: refused the same way, naming what to do.
    con = sqlite3.connect(db)
    con.execute("UPDATE patients SET envelope_json = '{\"levels\": ' WHERE id = 'P1'")
    con.commit()
    con.close()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "patient 'P1': the stored envelope is not valid JSON" in err
    assert "set it again with `vrbalance patient set-envelope P1 FILE.toml`" in err
    # A missing database: no patient, nothing recorded.
    db.unlink()
    assert main(argv) == 2
    assert "no patient 'P1'" in capsys.readouterr().err
    assert not (data / "sessions").exists()


def test_a_bad_calibration_is_refused_before_a_session_folder_exists(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["patient", "add", "P1"]) == 0
    bad = data / "calibrations" / "wii-balance-board.toml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        'plate_id = "wii-balance-board"\nkind = "cells4"\ndate = "2026-01-01"\n'
        'method = "fit"\noffsets_counts = [0, 0, 0, 0]\ngains = [1e308, 1e-4, 1e-4, 1e-4]\n'
    )
    argv = ["run", "--patient", "P1", "--protocol", "baseline", "--simulate", "--no-render"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"vrbalance run: error: {bad} gains[0]: 1e+308 per count is beyond any" in err
    assert "Traceback" not in err
    assert not (data / "sessions").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sim-script", "lean@1s:y=1.2.3"], "--script item 'lean@1s:y=1.2.3': its time and"),
        (["--seconds-scale", "1e-300"], "--seconds-scale: expected a value in [0.001, 1]"),
    ],
)
def test_bad_flags_are_refused_before_a_session_folder_exists(
    data: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["patient", "add", "P1"]) == 0
    argv = ["run", "--patient", "P1", "--protocol", "baseline", "--simulate", "--no-render"]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (data / "sessions").exists()


def test_db_flag_and_env_select_the_database(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag_db = tmp_path / "flag.sqlite3"
    env_db = tmp_path / "env.sqlite3"
    assert main(["patient", "--db", str(flag_db), "add", "A"]) == 0
    monkeypatch.setenv("VRBALANCE_DB", str(env_db))
    assert main(["patient", "add", "B"]) == 0
    with Store(flag_db) as s1, Store(env_db) as s2:
        assert [p.id for p in s1.patients()] == ["A"]
        assert [p.id for p in s2.patients()] == ["B"]
    assert not (data / "vrbalance.sqlite3").exists()


@contextlib.contextmanager
def _ctrl_c_reaches_children() -> Iterator[None]:
    """Processes started inside get SIGINT's default action, as from a terminal.

    A shell starts a background job (``pytest ... &``, a CI runner's) with
    SIGINT ignored, and an ignored signal stays ignored across exec: Python
    then installs no KeyboardInterrupt handler, and a child ``vrbalance run``
    is deaf to the test's Ctrl-C (rightly so, for a background job). With a
    handler installed here, exec resets SIGINT to its default in the child.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler Python did not install; leave ours
            signal.signal(signal.SIGINT, previous)


def _run_until_recording(
    data: Path,
    patient: str,
    min_state_bytes: int,
    *,
    capture: bool,
) -> tuple[Any, Path]:
    """Start ``vrbalance run --simulate --no-render`` in a subprocess and wait until
    its state.csv holds ``min_state_bytes`` (real time must pass for real rows).

    Returns the process and the state file; the caller ends the process.
    """
    import os
    import subprocess
    import sys
    import time

    assert main(["patient", "add", patient]) == 0
    env = {**os.environ, "VRBALANCE_DATA": str(data)}
    argv = ["run", "--patient", patient, "--protocol", "baseline", "--simulate", "--no-render"]
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    with _ctrl_c_reaches_children():
        proc = subprocess.Popen(
            [sys.executable, "-m", "vrbalance", *argv],
            env=env,
            stdout=out,
            stderr=out,
            text=True,
        )
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        found = [
            p
            for p in (data / "sessions" / patient).glob("*/state.csv")
            if p.stat().st_size > min_state_bytes
        ]
        if found:
            return proc, found[0]
        time.sleep(0.1)
    proc.kill()
    proc.communicate(timeout=10)
    raise AssertionError("the session never started recording")


@pytest.mark.slow
def test_ctrl_c_ends_the_session_cleanly_and_files_it(data: Path) -> None:
    import signal

    proc, state_csv = _run_until_recording(data, "P8", 20000, capture=True)
    try:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err  # stopped before its trials were done
    assert "[1] Baseline: operator_abort" in out
    folder = state_csv.parent
    meta = read_sidecar(folder)
    assert meta["status"] == "complete" and meta["end_reason"] == "operator_abort"
    with Store(data / "vrbalance.sqlite3") as store:
        (session,) = store.sessions("P8")
        assert session["end_reason"] == "operator_abort"
        assert [t["end_reason"] for t in store.trials(session["id"])] == ["operator_abort"]


@pytest.mark.slow
def test_sigterm_and_sighup_close_the_session_like_ctrl_c(data: Path, tmp_path: Path) -> None:
    """A stop from the system (kill, shutdown, a closed terminal) files the session.

    Two real ``run`` processes at once (one per signal), each with its own
    ``TMPDIR`` for the simulated plate's pty folder.
    """
    import os
    import signal
    import subprocess
    import sys
    import time

    procs: dict[str, tuple[Any, Path]] = {}
    try:
        for signame in ("SIGTERM", "SIGHUP"):
            patient, tmp = f"P{signame}", tmp_path / signame
            tmp.mkdir()
            assert main(["patient", "add", patient]) == 0
            argv = ["run", "--patient", patient, "--protocol", "baseline", "--simulate"]
            proc = subprocess.Popen(
                [sys.executable, "-m", "vrbalance", *argv, "--no-render"],
                env={**os.environ, "VRBALANCE_DATA": str(data), "TMPDIR": str(tmp)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            procs[signame] = (proc, tmp)
        deadline = time.monotonic() + 30.0
        waiting = set(procs)
        while waiting:  # each session is recording: its trial has started
            assert time.monotonic() < deadline, f"never started recording: {waiting}"
            for signame in list(waiting):
                states = list((data / "sessions" / f"P{signame}").glob("*/state.csv"))
                if states and states[0].stat().st_size > 2000:
                    assert list(procs[signame][1].glob("vrbalance-plate-*"))  # the pty folder
                    procs[signame][0].send_signal(getattr(signal, signame))
                    waiting.discard(signame)
            time.sleep(0.05)
        outputs = {name: proc.communicate(timeout=30) for name, (proc, _) in procs.items()}
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
    for signame, (proc, tmp) in procs.items():
        out, err = outputs[signame]
        assert proc.returncode == 1, err  # closed cleanly, but before its trials were done
        assert "[1] Baseline: operator_abort" in out
        (folder,) = (data / "sessions" / f"P{signame}").iterdir()
        meta = read_sidecar(folder)
        assert meta["status"] == "complete" and meta["end_reason"] == "operator_abort"
        (note,) = [e for e in read_rows(folder / "events.csv") if e["kind"] == "interrupt"]
        expected = f"session interrupted by {signame} (the system asked vrbalance to stop)"
        assert note["message"] == expected
        with Store(data / "vrbalance.sqlite3") as store:
            (session,) = store.sessions(f"P{signame}")
            assert session["end_reason"] == "operator_abort"
        assert list(tmp.iterdir()) == []  # no pty folder left behind


def test_protocol_outside_the_envelope_is_refused_before_anything_starts(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["patient", "add", "P6"]) == 0
    argv = ["run", "--patient", "P6", "--protocol", "single_leg", "--simulate", "--no-render"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "protocol 'single_leg' trial 2 (Single leg, left): stance 'single_left' is not allowed "
        "by this patient's envelope; allowed: feet_apart, feet_together; a new patient's "
        "envelope allows only the widest stances; if the therapist allows single_left, "
        "single_right, run: vrbalance patient set-envelope P6 --allowed-stances "
        "feet_apart,feet_together,single_left,single_right" in err
    )
    assert not (data / "sessions" / "P6").exists()
    # The command the refusal names does what it says, and keeps the rest of the envelope.
    fix = err.split("run: vrbalance ")[1].split()
    assert main(fix) == 0
    with Store(data / "vrbalance.sqlite3") as store:
        envelope = store.patient("P6").envelope
    assert envelope["stances"]["allowed"] == [
        "feet_apart",
        "feet_together",
        "single_left",
        "single_right",
    ]
    assert envelope["visual"]["max_surround_tilt_deg"] == 3.0
    short = tmp_path / "short.toml"
    short.write_text("[time]\nmax_trial_s = 20.0\n")
    assert main(["patient", "set-envelope", "P6", str(short)]) == 0
    assert main(["run", "--patient", "P6", "--protocol", "baseline", "--simulate"]) == 2
    assert "trial duration 30 s exceeds the envelope's max_trial_s 20 s" in capsys.readouterr().err


def test_a_fixed_level_beyond_the_envelope_is_refused_naming_value_and_limit(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``director = false, level = 10`` for a patient allowed park <= 2 and 3 deg of tilt."""
    assert main(["patient", "add", "P9", "--mass-kg", "70"]) == 0
    envelope = tmp_path / "env.toml"
    envelope.write_text("[levels]\npark = 2\n[visual]\nmax_surround_tilt_deg = 3.0\n")
    assert main(["patient", "set-envelope", "P9", str(envelope)]) == 0
    protocol = tmp_path / "hard.toml"
    protocol.write_text(
        'title = "hard"\n[[trials]]\nname = "Park ten"\nscene = "park"\nlevel = 10\n'
        "director = false\nduration_s = 20.0\n"
    )
    argv = ["run", "--patient", "P9", "--protocol", str(protocol), "--simulate", "--no-render"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "protocol 'hard' trial 2 (Park ten): level 10 of park is beyond this patient's "
        "envelope: level 10 > max_levels.park 2; surround_roll_deg 4 > max_surround_tilt_deg 3"
    ) in err
    assert "(the highest park level it allows is 2)" in err
    # Allowed ten levels, the scene's own parameters still refuse it: park level 10
    # rolls the surround 4 deg, and the envelope caps tilt at 3 deg.
    assert main(["patient", "set-envelope", "P9", "--max-level", "park=10"]) == 0
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "level 10 of park is beyond this patient's envelope: surround_roll_deg 4 > " in err
    assert "(the highest park level it allows is 8)" in err
    # A director trial in a scene the envelope forbids: refused too (no level-1 fallback).
    assert main(["patient", "set-envelope", "P9", "--max-level", "crowd=0"]) == 0
    assert main(["run", "--patient", "P9", "--protocol", "crowd", "--simulate"]) == 2
    err = capsys.readouterr().err
    assert "trial 2 (Crowd #1): level 1 of crowd is beyond this patient's envelope: " in err
    assert "level 1 > max_levels.crowd 0 (it forbids crowd)" in err
    assert not (data / "sessions").exists()


@pytest.mark.slow
def test_a_killed_session_is_imported_reported_and_replayed(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import signal

    proc, state_csv = _run_until_recording(data, "P5", 40000, capture=False)
    try:
        proc.send_signal(signal.SIGKILL)  # a crash: nothing gets to clean up
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    folder = state_csv.parent
    assert read_sidecar(folder)["status"] == "recording"
    assert main(["patient", "import", str(folder)]) == 0
    with Store(data / "vrbalance.sqlite3") as store:
        (session,) = store.sessions("P5")
        (trial,) = store.trials(session["id"])
        measures = {m["name"]: m["value"] for m in store.measures(session["id"])}
    assert session["status"] == "incomplete" and session["end_reason"] == "incomplete"
    assert trial["name"] == "Baseline (incomplete)" and trial["end_reason"] == "incomplete"
    assert measures["cop_velocity_mps"] > 0
    report = tmp_path / "killed.html"
    assert main(["report", str(folder), "--out", str(report)]) == 0
    text = report.read_text()
    assert "recording was cut short" in text and "Baseline (incomplete)" in text
    assert main(["replay", str(folder)]) == 0
    assert "states identical: True" in capsys.readouterr().out


# -- --xr on the fake runtime ----------------------------------------------------------------

_XR_TESTS = str(Path(__file__).resolve().parents[1] / "xr")


def _xr_session(monkeypatch: pytest.MonkeyPatch, script: dict[int, str]) -> Any:
    """Route ``run --xr`` to the fake OpenXR runtime with runtime-side actions.

    ``script`` maps a frame number, counted from the frame on which the trial
    started (the runner's ``inputs_streaming`` event), to a runtime action.
    Counting from the trial's start, not from the session's, keeps the actions
    inside the trial however slowly a loaded machine renders.
    """
    import sys
    import threading

    if _XR_TESTS not in sys.path:
        sys.path.insert(0, _XR_TESTS)
    from fake_runtime import FakeXr

    from vrbalance.sessions import assembly
    from vrbalance.sessions.recorder import SessionRecorder
    from vrbalance.xr.gl import HeadlessBinding, make_gl_texture

    trial_started = threading.Event()
    record_event = SessionRecorder.event

    def event(self: SessionRecorder, trial: int, ev: Any) -> None:
        if ev.kind == "inputs_streaming":
            trial_started.set()
        record_event(self, trial, ev)

    monkeypatch.setattr(SessionRecorder, "event", event)

    class ScriptedFake(FakeXr):
        def __init__(self) -> None:
            super().__init__(view_size=(32, 32), image_factory=make_gl_texture)
            self.frame_no = 0

        def wait_frame(self, session: Any, frame_wait_info: Any = None) -> Any:
            if trial_started.is_set():
                self.frame_no += 1
                action = script.pop(self.frame_no, None)
                if action is not None:
                    getattr(self, action)()
            return super().wait_frame(session, frame_wait_info)

    fake = ScriptedFake()
    options = {"api": fake, "graphics": HeadlessBinding(), "mirror": "none"}
    monkeypatch.setattr(
        assembly,
        "xr_world_options",
        lambda xr: {"xr_options": options, "output": "offscreen"} if xr else {},
    )
    return fake


def _run_xr(data: Path) -> tuple[int, Path]:
    assert main(["patient", "add", "PX", "--height-cm", "170", "--mass-kg", "70"]) == 0
    args = ["--patient", "PX", "--protocol", "baseline", "--simulate", "--seconds-scale", "0.1"]
    rc = main(["run", *args, "--xr"])
    (folder,) = (data / "sessions" / "PX").iterdir()
    return rc, folder


def test_xr_with_offscreen_or_no_render_is_refused(data: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--patient", "P", "--protocol", "baseline", "--xr", "--offscreen"])
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["patient", "add", "PR"]) == 0
    rc = main(["run", "--patient", "PR", "--protocol", "baseline", "--xr", "--no-render"])
    assert rc == 2
    assert "--xr and --no-render" in capsys.readouterr().err


def test_a_session_without_any_input_is_refused_naming_the_three_choices(
    data: Path, capsys
) -> None:
    assert main(["patient", "add", "PN"]) == 0
    capsys.readouterr()
    rc = main(["run", "--patient", "PN", "--protocol", "tandem_walk", "--offscreen"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--port PORT" in err and "--simulate" in err and "--xr for a headset-only" in err
    assert not (data / "sessions").exists()  # refused before any folder


def test_a_headset_only_session_refuses_a_trial_that_stands_on_the_plate(
    data: Path, capsys
) -> None:
    """No plate: the baseline (a plate measurement) is left out; a plate trial is refused."""
    assert main(["patient", "add", "PH"]) == 0
    capsys.readouterr()
    rc = main(["run", "--patient", "PH", "--protocol", "park_walk", "--xr"])
    assert rc == 2
    captured = capsys.readouterr()
    assert "the quiet-stance baseline, a plate measurement, is left out" in captured.out
    assert "protocol 'park_walk' trial 1 (" in captured.err
    assert "this session has none (headset only)" in captured.err
    assert not (data / "sessions").exists()


@pytest.mark.slow
@pytest.mark.render
def test_a_headset_only_tandem_walk_runs_without_a_plate(
    data: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """``run --xr`` with no plate: the head from the headset is the only input, recorded."""
    fake = _xr_session(monkeypatch, {})
    assert main(["patient", "add", "PW", "--height-cm", "170"]) == 0  # no mass: no plate check
    args = ["--patient", "PW", "--protocol", "tandem_walk", "--seconds-scale", "0.05"]
    rc = main(["run", *args, "--xr"])
    assert fake.violations == []
    out = capsys.readouterr().out
    (folder,) = (data / "sessions" / "PW").iterdir()
    meta = read_sidecar(folder)
    assert meta["plate"] == {"id": None} and meta["headset"] is True
    trials = read_rows(folder / "trials.csv")
    # No baseline first: three walks, each judged (a head that stands still never walks).
    assert [t["name"] for t in trials] == [f"Heel-to-toe walk #{i}" for i in (1, 2, 3)]
    assert {t["end_reason"] for t in trials} == {"completed"}
    assert read_rows(folder / "plate.csv") == []
    heads = read_rows(folder / "head.csv")
    # The loop's head is the headset's (the fake's eyes at 1.65 m), tracked, every tick.
    assert len(heads) > 100 and all(abs(float(h["z_m"]) - 1.65) < 1e-6 for h in heads)
    events = read_rows(folder / "events.csv")
    assert "inputs_streaming" in [e["kind"] for e in events]
    assert rc == 0 and "ended: completed" in out, out
    # Filed, reported and replayed like any session (the replay has no plate to load).
    with Store(data / "vrbalance.sqlite3") as store:
        assert [row["end_reason"] for row in store.sessions("PW")] == ["completed"]
    assert main(["report", str(folder), "--out", str(data / "walk.html")]) == 0
    assert "none (headset only)" in (data / "walk.html").read_text()
    assert main(["replay", str(folder)]) == 0
    assert "states identical: True" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.render
def test_xr_focus_loss_pauses_the_trial_and_focus_resumes_it(
    data: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    fake = _xr_session(monkeypatch, {10: "lose_focus", 50: "regain_focus"})
    rc, folder = _run_xr(data)
    assert rc == 0 and fake.violations == []
    out = capsys.readouterr().out
    assert "[1] Baseline: completed" in out
    assert "headset: states IDLE -> READY -> SYNCHRONIZED -> VISIBLE -> FOCUSED -> VISIBLE" in out
    events = read_rows(folder / "events.csv")
    kinds = [e["kind"] for e in events]
    # The headset's events are in the recording, in order, in the trial.
    start = kinds.index("inputs_streaming")
    paused, resumed = kinds.index("paused", start), kinds.index("resumed", start)
    assert start < paused < resumed
    assert events[paused]["source"] == "xr" and events[paused]["trial"] == "0"
    # Paused trial time does not count: the trial ran 3 s of active time, longer on the clock.
    (trial,) = read_rows(folder / "trials.csv")
    pause_s = float(events[resumed]["t_s"]) - float(events[paused]["t_s"])
    assert pause_s > 0.05
    states = read_rows(folder / "state.csv")
    wall_s = float(states[-1]["t_s"]) - float(states[0]["t_s"])
    assert wall_s == pytest.approx(3.0 + pause_s, abs=0.1)
    # Not focused is the trial's pause, not a safety event (this machine's load may
    # still calm on a late plate frame: the monitor's thresholds are unchanged).
    assert trial["end_reason"] == "completed"
    assert "headset_unfocused" not in kinds
    # The loop's head came from the headset (the fake's 1.65 m eyes, not the simulated person).
    heads = read_rows(folder / "head.csv")
    assert heads and all(abs(float(h["z_m"]) - 1.65) < 1e-6 for h in heads[:50])


@pytest.mark.slow
@pytest.mark.render
def test_xr_session_loss_ends_the_session_as_device_lost_and_keeps_the_recording(
    data: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    fake = _xr_session(monkeypatch, {10: "lose_session"})
    rc, folder = _run_xr(data)
    assert rc == 1 and fake.violations == []  # ended before its trials were done
    out = capsys.readouterr().out
    assert "ended: device_lost" in out
    meta = read_sidecar(folder)
    assert meta["status"] == "complete" and meta["end_reason"] == "device_lost"
    assert meta["headset"] is True
    kinds = [e["kind"] for e in read_rows(folder / "events.csv")]
    assert "loss_pending" in kinds and "headset_lost" in kinds
    assert kinds.index("loss_pending") < kinds.index("headset_lost") < kinds.index("trial_end")
    (trial,) = read_rows(folder / "trials.csv")
    assert trial["end_reason"] == "device_lost"
    assert len(read_rows(folder / "state.csv")) > 10  # what was recorded is kept


@pytest.mark.slow
@pytest.mark.render
def test_xr_head_that_is_never_tracked_never_starts_the_trial(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like Monado's simulated HMD: a valid but untracked position is not a measured head."""
    import xr

    fake = _xr_session(monkeypatch, {})
    real_locate = fake.locate_space

    def untracked(space: Any, base_space: Any, time: int) -> Any:
        location = real_locate(space, base_space, time)
        location.location_flags &= ~int(xr.SpaceLocationFlags.POSITION_TRACKED_BIT)
        return location

    monkeypatch.setattr(fake, "locate_space", untracked)
    rc, folder = _run_xr(data)
    assert rc == 1  # never started: not a session, not filed
    with Store(data / "vrbalance.sqlite3") as store:
        assert store.sessions("PX") == []
    events = read_rows(folder / "events.csv")
    (timeout,) = [e for e in events if e["kind"] == "inputs_timeout"]
    assert "no tracked head pose within 5 s" in timeout["message"]
    assert "inferred, not tracked" in timeout["message"]
    assert read_sidecar(folder)["end_reason"] == "device_lost"
    assert read_rows(folder / "state.csv") == []  # the trial never started: nothing judged


def test_run_against_a_missing_plate_fails_and_files_no_session(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A session whose first trial never started is not a session: non-zero, not filed."""
    assert main(["patient", "add", "PM", "--mass-kg", "70"]) == 0  # a plate needs the mass
    port = tmp_path / "no-such-plate"
    argv = ["--patient", "PM", "--protocol", "baseline", "--port", str(port), "--no-render"]
    rc = main(["run", *argv])
    err = capsys.readouterr().err
    assert rc == 1
    assert "did not start: no trial started (device lost); not filed" in err
    with Store(data / "vrbalance.sqlite3") as store:
        assert store.sessions("PM") == []
    (folder,) = (data / "sessions" / "PM").iterdir()  # what happened is kept
    (failure,) = [e for e in read_rows(folder / "events.csv") if e["kind"] == "device_open_failed"]
    assert str(port) in failure["message"]


# -- the plate's load against the patient's weight ---------------------------------------


@pytest.fixture
def quick_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A start gate that gives up after 1.5 s (5 s in a clinic: the patient steps on)."""
    from vrbalance.sessions import runner

    monkeypatch.setattr(runner, "CONNECT_TIMEOUT_S", 1.5)


def _not_started(folder: Path) -> dict[str, Any]:
    """The recording's plate-load refusal (the trial never started: no state rows)."""
    events = read_rows(folder / "events.csv")
    (refusal,) = [e for e in events if e["kind"] == "plate_load_implausible"]
    assert not [e for e in events if e["kind"] == "inputs_streaming"]
    assert read_rows(folder / "state.csv") == []
    return refusal


def test_a_calibration_1000x_too_small_stops_a_port_session_before_its_first_trial(
    data: Path, quick_gate: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """``run --port`` reading a real pty stream through a wrong calibration: not started."""
    from vrbalance.devices.calibration import load_calibration, write_calibration
    from vrbalance.devices.pty_server import SimulatedPlateServer
    from vrbalance.devices.simulator import PersonParams

    assert main(["patient", "add", "P1", "--mass-kg", "70", "--height-cm", "172"]) == 0
    shipped = load_calibration("wii-balance-board")
    wrong = dataclasses.replace(shipped, gains=tuple(g / 1000 for g in shipped.gains))
    write_calibration(wrong, data / "calibrations" / "wii-balance-board.toml")
    argv = ["run", "--patient", "P1", "--protocol", "baseline", "--no-render"]
    # The plate streams a 70 kg person in counts of the shipped (true) calibration.
    with SimulatedPlateServer(seed=1, person=PersonParams(mass_kg=70.0)) as server:
        assert main([*argv, "--port", server.port_path]) == 1
    captured = capsys.readouterr()
    assert re.search(
        r"\[1\] Baseline: trial not started: the plate reads 0\.6\d\d N \(0\.07 kg\) but "
        r"patient P1 weighs 686 N \(70 kg\); more than 15% apart, the plate cannot be "
        r"trusted to see a fall: check the plate's calibration \(`vrbalance calibrate plate`\)",
        captured.out,
    ), captured.out
    assert "no trial started" in captured.err
    (folder,) = (data / "sessions" / "P1").iterdir()
    refusal = _not_started(folder)
    assert refusal["severity"] == "alarm"
    values = json.loads(refusal["values_json"])
    assert values["plate_load_n"] == pytest.approx(0.686, rel=0.05)
    assert values["expected_load_n"] == pytest.approx(686.47, rel=1e-3)


def test_a_patient_half_off_the_plate_does_not_start_a_trial(
    data: Path, quick_gate: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["patient", "add", "P2", "--mass-kg", "80"]) == 0
    argv = ["run", "--patient", "P2", "--protocol", "baseline", "--simulate", "--no-render"]
    assert main([*argv, "--sim-script", "stepoff@0s:load=0.5"]) == 1
    out = capsys.readouterr().out
    assert "[1] Baseline: trial not started: the plate reads 39" in out
    assert "but patient P2 weighs 785 N (80 kg)" in out
    assert "stands with both feet fully on the plate" in out
    (folder,) = (data / "sessions" / "P2").iterdir()
    assert 0.45 < json.loads(_not_started(folder)["values_json"])["plate_load_n"] / 784.5 < 0.55


def test_a_port_session_needs_the_patients_body_mass(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["patient", "add", "P3"]) == 0
    argv = ["run", "--patient", "P3", "--protocol", "baseline", "--no-render"]
    assert main([*argv, "--port", "/dev/null-plate"]) == 2
    err = capsys.readouterr().err
    assert "patient P3 has no body mass on record" in err
    assert "record it with `vrbalance patient set-body P3 --mass-kg KG`" in err
    assert not (data / "sessions").exists()
    assert main(["patient", "set-body", "P3", "--mass-kg", "61.5"]) == 0
    with Store(data / "vrbalance.sqlite3") as store:
        assert store.patient("P3").mass_kg == 61.5
