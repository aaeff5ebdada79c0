"""The wheel ships scenes/, models/ and calibration/ and finds them from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vrbalance import resources

REPO = Path(__file__).resolve().parents[1]


def test_data_dir_finds_checkout_folders() -> None:
    for kind in ("scenes", "models", "calibration"):
        assert resources.data_dir(kind).is_dir()


def test_data_dir_rejects_unknown_kind() -> None:
    with pytest.raises(
        ValueError, match=r"kind must be one of scenes, models, calibration; got 'x'"
    ):
        resources.data_dir("x")  # type: ignore[arg-type]


def test_data_file_names_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match=r"no shipped scenes file 'nope.toml'"):
        resources.data_file("scenes", "nope.toml")


@pytest.mark.slow
def test_wheel_ships_data_and_finds_it_from_elsewhere(tmp_path: Path) -> None:
    """Build the real wheel, unpack it away from the checkout and import it from /."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
    )
    (wheel,) = (tmp_path / "dist").glob("vrbalance-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(site)
    for kind in ("scenes", "models", "calibration"):
        shipped = sorted(
            p.relative_to(REPO / kind).as_posix()
            for p in (REPO / kind).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        )
        for rel in shipped:
            assert f"vrbalance/_data/{kind}/{rel}" in names
    code = (
        "import vrbalance.resources as r, sys;"
        "print(*(r.data_dir(k) for k in ('scenes','models','calibration')), sep='\\n')"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd="/", env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    assert out == [
        str(site / "vrbalance" / "_data" / k) for k in ("scenes", "models", "calibration")
    ]
