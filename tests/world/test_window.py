"""The desktop window output, on a real X server (Xvfb) when one can be started.

Runs in a child process: Panda3D keeps its display pipe and X connection for
the life of a process, so a window test must not share a process with the
offscreen tests (nor outlive its X server).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.render

CHILD = textwrap.dedent(
    """
    import sys
    from vrbalance.world.app import AppState, WorldApp

    with WorldApp(output="window", size_px=(320, 180), scene="stairs", level=4) as app:
        kind = type(app.base.win).__name__
        app.press("+")
        app.step_frames(3)
        shot = app.screenshot(sys.argv[1])
    print(kind, app.level, app.state.value, shot.stat().st_size)
    """
)


def test_window_output_renders_on_a_display(run_on_display, tmp_path: Path) -> None:
    shot = tmp_path / "window.png"
    result = run_on_display("-c", CHILD, str(shot))
    assert result.returncode == 0, result.stderr[-2000:]
    kind, level, state, size = result.stdout.split()[-4:]
    assert (kind, level, state) == ("GraphicsWindow", "5", "closed")
    assert int(size) > 1000


@pytest.mark.slow
def test_demo_runs_in_a_window_with_the_simulated_plate(run_on_display, tmp_path: Path) -> None:
    """README's first command, on a display: window, plate, loop, overlay; ends after --seconds.

    With ``--out`` the window's demo saves screenshots and its recording there too.
    """
    out = tmp_path / "out"
    argv = ["demo", "--seconds", "2", "--size", "320x180", "--out", str(out)]
    result = run_on_display("-m", "vrbalance", *argv)
    assert result.returncode == 0, result.stderr[-2000:]
    frames = int(result.stdout.split("vrbalance demo: ")[-1].split()[0])
    # How many frames 2 s give depends on the machine's load (2 under load 12 with
    # llvmpipe): more than one shows the loop drew and kept drawing.
    assert frames >= 2
    assert list(out.glob("demo_00_park_L*.png")), result.stdout
    assert (out / "recording" / "session.json").is_file()
    assert f"screenshots in {out}" in result.stdout
