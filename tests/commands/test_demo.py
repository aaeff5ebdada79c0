"""``vrbalance demo``: the scene tour as a session (the runner's path), screenshots, recording."""

from __future__ import annotations

from pathlib import Path

import pytest

from vrbalance.cli import main


def test_offscreen_needs_out(capsys) -> None:
    assert main(["demo", "--offscreen"]) == 2
    assert "--offscreen needs --out DIR" in capsys.readouterr().err


def test_bad_size_is_named(capsys, tmp_path: Path) -> None:
    assert main(["demo", "--offscreen", "--out", str(tmp_path), "--size", "big"]) == 2
    assert "--size: expected WIDTHxHEIGHT like 1280x720, got 'big'" in capsys.readouterr().err


@pytest.mark.render
def test_window_without_display_suggests_offscreen(monkeypatch, capsys) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "no display" in err and "--offscreen" in err


@pytest.mark.render
@pytest.mark.slow
def test_offscreen_demo_tours_the_scenes_as_a_session(tmp_path: Path, capsys) -> None:
    """The tour through the session runner: start gate, director, operator keys, recording."""
    from vrbalance.sessions.recorder import read_rows, read_sidecar

    out = tmp_path / "demo"
    argv = ["demo", "--offscreen", "--seconds", "4", "--out", str(out), "--size", "320x180"]
    assert main([*argv, "--shot-every", "1"]) == 0
    shots = sorted(out.glob("demo_*.png"))
    assert len(shots) >= 3 and all(p.stat().st_size > 1000 for p in shots)
    # The tour: park, then stairs, then crowd, each shown (the last one taken at the end).
    scenes = [p.name.split("_")[2] for p in shots]
    assert scenes[0] == "park" and scenes[-1] == "crowd" and "stairs" in scenes
    assert shots[-1].name.endswith("_final.png")
    recording = out / "recording"
    meta = read_sidecar(recording)
    assert meta["demo"] is True and meta["patient_id"] == "demo" and meta["status"] == "complete"
    trials = read_rows(recording / "trials.csv")
    assert [t["scene"] for t in trials] == ["park", "stairs", "crowd"]
    assert {t["end_reason"] for t in trials} == {"completed"}
    states = read_rows(recording / "state.csv")
    assert len(states) > 3 * 250 * 4 / 3 * 0.9  # every tick of the 4 s of trials
    assert any(r["cop_x_m"] for r in states)  # the simulated plate, read by the driver
    events = read_rows(recording / "events.csv")
    kinds = [e["kind"] for e in events]
    # Each trial passed the session's start gate, the plate's load check included ...
    streaming = [e for e in events if e["kind"] == "inputs_streaming"]
    assert len(streaming) == 3 and all("plate_load_n" in e["values_json"] for e in streaming)
    # ... and the tour's level keys went through the director, recorded as the operator's.
    assert kinds.count("level_up") == 9
    levels = {int(r["level"]) for r in states}
    assert max(levels) > 1
    assert "recording in" in capsys.readouterr().out


@pytest.mark.render
def test_the_demo_tour_stays_inside_the_envelope(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--offscreen", "--out", str(tmp_path), "--level", "11"]) == 2
    assert "--level 11: park has levels 1 to 10" in capsys.readouterr().err
    assert main(["demo", "--offscreen", "--out", str(tmp_path), "--scene", "moon"]) == 2
    assert "--scene: expected one of park, stairs, crowd, got 'moon'" in capsys.readouterr().err


def test_the_demo_plan_shares_the_seconds_and_repeats_the_tour_when_longer() -> None:
    from vrbalance.sessions.demo import TOUR_TRIAL_S, demo_plan

    plan = demo_plan(scene="stairs", level=3, seconds=6.0)
    assert [t.scene for t in plan.protocol.trials] == ["stairs", "crowd", "park"]
    assert [t.duration_s for t in plan.protocol.trials] == pytest.approx([2.0] * 3)
    assert plan.start_levels == {"stairs": 3}
    assert plan.seconds_scale == pytest.approx(6.0 / (3 * TOUR_TRIAL_S))
    # Longer than the tour: more rounds, never a trial longer than planned.
    plan = demo_plan(scene="park", level=1, seconds=400.0)
    assert len(plan.protocol.trials) == 9 and plan.seconds_scale <= 1.0
    assert plan.protocol.trials[3].name == "Park 2"
    # A window without --seconds: the tour repeats within the envelope's session time.
    plan = demo_plan(scene="park", level=1, seconds=None)
    assert plan.seconds_scale == 1.0 and len(plan.protocol.trials) % 3 == 0
    # Head only: no trial stands on the plate.
    plan = demo_plan(scene="park", level=1, seconds=3.0, with_plate=False)
    assert not any(t.plate for t in plan.protocol.trials)


# -- --xr, --desktop ------------------------------------------------------------------------

_XR_TESTS = str(Path(__file__).resolve().parents[1] / "xr")


def _fake_xr(script: dict[int, str] | None = None, monkeypatch=None):
    """The fake OpenXR runtime (tests/xr/fake_runtime.py) with runtime-side actions.

    ``script`` maps frame numbers to runtime actions. With ``monkeypatch`` the
    frames are counted from the session's first ``inputs_streaming`` event (the
    first trial has started), so the actions land after the start gate however
    slowly a loaded machine renders; without it, from the session's first frame.
    """
    import sys
    import threading

    if _XR_TESTS not in sys.path:
        sys.path.insert(0, _XR_TESTS)
    from fake_runtime import FakeXr

    from vrbalance.xr.gl import make_gl_texture

    started = threading.Event()
    if monkeypatch is None:
        started.set()
    else:
        from vrbalance.sessions.recorder import SessionRecorder

        record_event = SessionRecorder.event

        def event(self, trial, ev) -> None:
            if ev.kind == "inputs_streaming":
                started.set()
            record_event(self, trial, ev)

        monkeypatch.setattr(SessionRecorder, "event", event)

    class ScriptedFake(FakeXr):
        def __init__(self) -> None:
            super().__init__(view_size=(32, 32), image_factory=make_gl_texture)
            self.script = dict(script or {})
            self.frame_no = 0

        def wait_frame(self, session, frame_wait_info=None):
            if started.is_set():
                self.frame_no += 1
                action = self.script.pop(self.frame_no, None)
                if action is not None:
                    getattr(self, action)()
            return super().wait_frame(session, frame_wait_info)

    return ScriptedFake()


def _use_fake(monkeypatch, fake) -> None:
    from vrbalance.sessions import assembly
    from vrbalance.xr.gl import HeadlessBinding

    options = {"api": fake, "graphics": HeadlessBinding(), "mirror": "none"}
    monkeypatch.setattr(
        assembly,
        "xr_world_options",
        lambda xr: {"xr_options": options, "output": "offscreen"} if xr else {},
    )


def test_xr_with_offscreen_is_refused_with_the_reason(capsys) -> None:
    assert main(["demo", "--xr", "--offscreen", "--out", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0  # one line
    assert "--xr cannot render --offscreen" in err and "GLX" in err


def test_desktop_and_offscreen_are_exclusive(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--desktop", "--offscreen"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.render
def test_xr_without_runtime_is_one_line_suggesting_desktop(monkeypatch, capsys) -> None:
    fake = _fake_xr()
    fake.runtime_available = False
    _use_fake(monkeypatch, fake)
    assert main(["demo", "--xr", "--size", "64x36", "--seconds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "no OpenXR runtime" in err and "XR_RUNTIME_JSON" in err and "--desktop" in err


@pytest.mark.render
def test_xr_output_needs_a_display_and_says_desktop(monkeypatch, capsys) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["demo", "--xr"]) == 2
    err = capsys.readouterr().err
    assert "GLX window" in err and "--desktop" in err


@pytest.mark.render
@pytest.mark.slow
def test_xr_demo_on_the_fake_runtime_focus_loss_and_session_loss(
    monkeypatch, tmp_path: Path, capsys
) -> None:
    """Head from the headset; unfocus pauses the trial; a loss ends the demo as device lost."""
    from vrbalance.sessions.recorder import read_rows, read_sidecar

    fake = _fake_xr({10: "lose_focus", 40: "regain_focus", 70: "lose_session"}, monkeypatch)
    _use_fake(monkeypatch, fake)
    # 60 s of trials: the scripted loss (frame 70) comes long before the tour's end.
    rc = main(["demo", "--xr", "--seconds", "60", "--size", "64x36", "--out", str(tmp_path)])
    assert rc == 1  # ended by a lost device, which the user must hear of
    assert fake.script == {} and fake.violations == []
    out = capsys.readouterr().out
    assert "ended device_lost" in out
    assert "headset: states IDLE -> READY -> SYNCHRONIZED -> VISIBLE -> FOCUSED" in out
    assert "LOSS_PENDING" in out
    recording = tmp_path / "recording"
    assert read_sidecar(recording)["end_reason"] == "device_lost"
    kinds = [e["kind"] for e in read_rows(recording / "events.csv")]
    first = kinds.index("inputs_streaming")
    # Focus lost after the start: the headset pauses the trial, focus regained resumes it.
    paused = kinds.index("paused", first)
    assert paused < kinds.index("resumed", paused)
    # The loss: the runtime's loss_pending, then the monitor's headset_lost, then the end.
    assert kinds.index("loss_pending") < kinds.index("headset_lost") < kinds.index("trial_end")
    (trial,) = read_rows(recording / "trials.csv")
    assert trial["end_reason"] == "device_lost"
    heads = read_rows(recording / "head.csv")  # the loop's head was the headset's
    assert heads and all(abs(float(h["z_m"]) - 1.65) < 1e-6 for h in heads[:50])


@pytest.mark.render
@pytest.mark.slow
def test_sigterm_closes_the_offscreen_demo_and_its_pty_folder(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from vrbalance.sessions.recorder import read_sidecar

    tmp, out = tmp_path / "tmp", tmp_path / "out"
    tmp.mkdir()
    argv = ["demo", "--offscreen", "--seconds", "300", "--out", str(out), "--size", "64x36"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vrbalance", *argv, "--shot-every", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    state = out / "recording" / "state.csv"
    try:
        deadline = time.monotonic() + 60.0
        while not (state.exists() and state.stat().st_size > 2000):
            assert proc.poll() is None and time.monotonic() < deadline, "demo never recorded"
            time.sleep(0.1)
        assert list(tmp.glob("vrbalance-plate-*"))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The session runner ends the trial and the session as the operator's (as Ctrl-C).
    assert proc.returncode == 0, err
    assert "SIGTERM received: closing as for Ctrl-C" in err
    meta = read_sidecar(out / "recording")
    assert meta["status"] == "complete" and meta["end_reason"] == "operator_abort"
    assert list(tmp.iterdir()) == []
