"""``vrbalance screenshot``: one PNG of a scene at a level; bad input is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from vrbalance.cli import main

pytestmark = pytest.mark.render


def test_writes_the_requested_scene_level_and_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "stairs.png"
    assert (
        main(
            [
                "screenshot",
                "--scene",
                "stairs",
                "--level",
                "10",
                "--out",
                str(out),
                "--size",
                "320x180",
            ]
        )
        == 0
    )
    img = imread(out)
    assert img.shape[:2] == (180, 320)
    assert img[..., :3].std() > 0.05  # a picture, not a flat colour
    assert "Stairs, level 10/10, 320x180" in capsys.readouterr().out


def test_levels_count_from_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["screenshot", "--scene", "park", "--level", "0", "--out", str(tmp_path / "a.png")])
        == 2
    )
    assert "level must be in [1, 10], got 0" in capsys.readouterr().err


def test_unknown_scene_and_bad_file_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["screenshot", "--scene", "moon", "--out", str(tmp_path / "a.png")]) == 2
    assert "unknown scene 'moon'; available scenes:" in capsys.readouterr().err
    assert main(["screenshot", "--scene", "park", "--out", str(tmp_path / "a.jpg")]) == 2
    assert "--out: expected a .png file" in capsys.readouterr().err


def test_calm_view_differs_from_the_swaying_one(tmp_path: Path) -> None:
    moving, calm = tmp_path / "moving.png", tmp_path / "calm.png"
    args = ["screenshot", "--scene", "park", "--level", "10", "--size", "160x90", "--out"]
    assert main([*args, str(moving)]) == 0
    assert main([*args, str(calm), "--calm"]) == 0
    a, b = imread(moving)[..., :3], imread(calm)[..., :3]
    assert np.abs(a - b).mean() > 0.005  # sway and distractors vs a still, level scene


@pytest.mark.slow
def test_a_rendering_command_prints_no_panda3d_noise(tmp_path: Path) -> None:
    """A therapist's console shows what vrbalance says, not Panda3D's start-up chatter.

    A fresh process: Panda3D prints the pipe types, EGL's default-display probe
    (``EGL_NOT_INITIALIZED``) and the ``gl-finish`` hint once, when it opens its
    pipe. Without ``-v`` nothing but the command's own line may appear.
    """
    import os
    import subprocess
    import sys

    out = tmp_path / "park.png"
    env = {k: v for k, v in os.environ.items() if k != "EGL_LOG_LEVEL"}
    argv = ["screenshot", "--scene", "park", "--out", str(out), "--size", "160x90"]
    proc = subprocess.run(
        [sys.executable, "-m", "vrbalance", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and proc.stdout.startswith("wrote ")
    assert proc.stderr == ""


def test_verbose_keeps_panda3d_diagnostics() -> None:
    """With ``-v`` (INFO logging) Panda3D's settings are left as they are."""
    import logging

    from vrbalance.world.app import quiet_prc_lines

    logger = logging.getLogger("vrbalance")
    old = logger.level
    try:
        logger.setLevel(logging.INFO)
        assert quiet_prc_lines() == []
        logger.setLevel(logging.WARNING)
        assert "notify-level-egldisplay error" in quiet_prc_lines()
    finally:
        logger.setLevel(old)
