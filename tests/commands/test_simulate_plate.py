"""``vrbalance simulate-plate``: a real process serving a pty that the driver reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vrbalance.balance.cop import compute_cop
from vrbalance.cli import main
from vrbalance.config.plates import load_plate
from vrbalance.devices.driver import ForcePlate


@pytest.mark.slow
def test_serves_a_pty_that_forceplate_reads_then_stops_on_sigterm(tmp_path: Path) -> None:
    """Streams until stopped; SIGTERM stops it like Ctrl-C, removing its pty folder."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vrbalance", "simulate-plate", "--plate", "generic-six-axis",
         "--seconds", "60", "--script", "lean@0.1s:y=0.05:ramp=0.3:hold=5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        assert Path(port).parent.parent == tmp_path
        plate = load_plate("generic-six-axis")
        with ForcePlate(port, plate) as device:
            frames = []
            while len(frames) < 1500:
                frames += device.drain()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "simulated generic-six-axis (binary, 1000 Hz, 921600 baud nominal)" in err
    assert "SIGTERM: stopping" in err and "stopped after" in err
    assert list(tmp_path.iterdir()) == []  # no pty folder left behind
    cop = compute_cop(np.array([f.channels for f in frames]), plate.geometry)
    assert cop.loaded.all()
    assert np.nanmean(cop.cop_m[-200:, 1]) > 0.05  # leaning forward by 5 cm (+2 cm stance)


def test_bad_script_is_an_error_naming_the_item(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate-plate", "--script", "lean@1s,hop@2s", "--seconds", "0"]) == 2
    err = capsys.readouterr().err
    assert "--script item 'hop@2s': expected KIND@TIMEs" in err


def test_bad_load_script_names_the_places(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate-plate", "--load-script", "empty@0s,middle@1s", "--seconds", "0"]) == 2
    err = capsys.readouterr().err
    assert (
        "--load-script item 'middle@1s': expected PLACE@TIMEs with PLACE one of empty, centre"
        in err
    )


def test_negative_seed_is_an_error_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate-plate", "--seed", "-1", "--seconds", "0"]) == 2
    err = capsys.readouterr().err
    assert "--seed: expected a value in [0, inf], got -1" in err
    assert "Traceback" not in err


def test_seconds_zero_prints_the_path_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate-plate", "--seconds", "0", "--rate-hz", "50"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("/ttySIM0")
