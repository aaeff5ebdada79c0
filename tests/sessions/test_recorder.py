"""Recorder: exact round trip, torn-line tolerance, permissions, and SIGKILL recovery."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vrbalance.balance.state import BalanceState
from vrbalance.events import Event
from vrbalance.samples import HeadPose, PlateFrame
from vrbalance.sessions.recorder import (
    RecordingError,
    SessionRecorder,
    event_from_row,
    head_pose_from_row,
    plate_frame_from_row,
    read_rows,
    read_sidecar,
    state_from_row,
)


def _state(tick: int) -> BalanceState:
    return BalanceState(
        tick=tick,
        t_s=tick / 250.0,
        stance="feet_apart",
        cop_m=(0.1 / 3, -1e-17),
        vertical_force_n=700.123456789,
        plate_loaded=True,
        com_m=(0.001, 0.002),
        com_velocity_mps=(0.01, -0.02),
        xcom_m=(0.003, 0.004),
        margin_xcom_m=0.05,
        margin_cop_m=0.06,
        head_position_m=(0.0, 0.01, 1.6),
        head_age_s=0.004,
        plate_age_s=None,
        sway_angle_ap_rad=0.0123,
    )


def test_every_stream_round_trips_exactly(tmp_path: Path) -> None:
    folder = tmp_path / "p1" / "s1"
    frames = [
        PlateFrame(7, 0.028, 1.0 / 3.0, (1.5, 2.25, 3e-9, 4.0)),
        PlateFrame(8, None, 0.5, (1.0, 2.0, 700.0, 0.1, -0.2, 0.3), kind="six_axis"),
    ]
    pose = HeadPose(None, 0.1, (0.01, 0.02, 1.7), (0.0, 0.0, 0.70710678, 0.70710678), False)
    event = Event(
        0.5,
        "safety",
        "xcom_outside_bos",
        'margin, "quoted"',
        "alarm",
        {"margin_m": -0.01, "side": "left"},
    )
    with SessionRecorder(folder, {"session_id": "s1", "patient_id": "p1"}) as rec:
        rec.plate(3, 0, frames)
        rec.head(3, 0, pose)
        rec.head(4, 0, None)
        rec.state(0, _state(3), level=2, response="calm")
        rec.event(0, event)
        rec.trial_finished(
            {
                "trial": 0,
                "name": "Baseline",
                "kind": "exercise",
                "scene": "park",
                "stance": "feet_apart",
                "eyes": "open",
                "surface": "firm",
                "surround": "fixed",
                "assessment": "none",
                "condition": 0,
                "level": None,
                "planned_s": 30.0,
                "start_t_s": 0.0,
                "end_t_s": 30.0,
                "end_reason": "completed",
            }
        )
    plate = read_rows(folder / "plate.csv")
    assert [plate_frame_from_row(r) for r in plate] == frames
    assert [int(r["tick"]) for r in plate] == [3, 3]
    assert [head_pose_from_row(r) for r in read_rows(folder / "head.csv")] == [pose]
    (state_row,) = read_rows(folder / "state.csv")
    assert state_from_row(state_row) == _state(3)
    assert (state_row["level"], state_row["response"]) == ("2", "calm")
    assert [event_from_row(r) for r in read_rows(folder / "events.csv")] == [event]
    (trial,) = read_rows(folder / "trials.csv")
    assert trial["level"] == "" and trial["end_reason"] == "completed"
    meta = read_sidecar(folder)
    assert meta["status"] == "complete" and meta["rows"]["plate"] == 2
    assert meta["units"]["cop_x_m"] == "m" and meta["units"]["mx_nm"] == "N·m"
    assert meta["streams"]["state"]["columns"][:4] == ["tick", "trial", "t_s", "stance"]


def test_files_are_owner_only_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        folder = tmp_path / "sessions" / "patient" / "s"
        with SessionRecorder(folder, {"session_id": "s", "patient_id": "p"}) as rec:
            rec.state(0, _state(0))
    finally:
        os.umask(old)
    # Every folder the recorder made is private (a listable sessions/ would show
    # patient ids); the pre-existing tmp_path is left alone.
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.parent.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_reader_drops_a_torn_last_line_but_not_a_damaged_middle(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a_s,b_m\n1.0,2.0\n3.0,4")
    assert read_rows(path) == [{"a_s": "1.0", "b_m": "2.0"}]
    path.write_text("a_s,b_m\n1.0,2.0\n3.0\n")
    assert read_rows(path) == [{"a_s": "1.0", "b_m": "2.0"}]
    path.write_text("a_s,b_m\n1.0\n3.0,4.0\n")
    with pytest.raises(RecordingError, match=r"x.csv line 2: expected 2 fields, got 1"):
        read_rows(path)


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "other").write_text("x")
    with pytest.raises(RecordingError, match=r"session folder is not empty"):
        SessionRecorder(tmp_path / "s", {}).start()


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from vrbalance.balance.state import BalanceState
    from vrbalance.sessions.recorder import SessionRecorder
    rec = SessionRecorder(Path(sys.argv[1]), {"session_id": "k", "patient_id": "p"})
    rec.start()
    tick = 0
    next_t = time.monotonic()
    while True:  # a 250 Hz loop that records until it is killed
        t_s = time.monotonic()
        rec.state(0, BalanceState(tick=tick, t_s=t_s, stance="feet_apart",
                                  cop_m=(0.001 * tick, 0.0), plate_loaded=True))
        print(tick, repr(t_s), flush=True)  # what the recorder has been handed
        tick += 1
        next_t += 0.004
        time.sleep(max(0.0, next_t - time.monotonic()))
    """
)


#: A row the child handed its recorder, as it prints it (a line cut short by the
#: kill, or anything else on its stdout, does not match).
_HANDED = re.compile(r"(\d+) (\d+\.\d+(?:e[+-]?\d+)?)")


@pytest.mark.slow
def test_sigkill_loses_at_most_the_last_second(tmp_path: Path) -> None:
    folder = tmp_path / "p" / "killed"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        # Let it record a while (2 s of its rows: real time passes, as many flushes).
        handed: list[str] = []
        for line in child.stdout:
            handed.append(line)
            if (m := _HANDED.fullmatch(line.strip())) is not None and int(m[1]) >= 500:
                break
        child.send_signal(signal.SIGKILL)
        handed += child.stdout.read().splitlines()  # what it printed before it died
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert read_sidecar(folder)["status"] == "recording"  # it never got to close
    rows = read_rows(folder / "state.csv")
    ticks = [int(r["tick"]) for r in rows]
    assert ticks == list(range(len(ticks)))  # nothing torn or missing in the middle
    # Lost: what the recorder had been handed but not written when the process died
    # (measured on the rows' own clock, so a child starved of CPU before the kill,
    # which made no rows to lose, is not counted as loss).
    last_handed_t = max(float(m[2]) for line in handed if (m := _HANDED.fullmatch(line.strip())))
    last_t = float(rows[-1]["t_s"])
    assert last_handed_t - last_t < 1.0, f"lost {last_handed_t - last_t:.3f} s"
    assert len(rows) > 250  # it really recorded for a while
