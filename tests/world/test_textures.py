"""The shipped textures are exactly what tools/make_models.py generates (no stray assets)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vrbalance.resources import data_dir

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "make_models.py"


@pytest.mark.skipif(not SCRIPT.is_file(), reason="source checkout only (tools/ is not installed)")
def test_committed_textures_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_every_texture_is_accounted_for() -> None:
    textures = {p.name for p in (data_dir("models") / "textures").glob("*.png")}
    attribution = (data_dir("models") / "ATTRIBUTION.md").read_text()
    assert textures == {"grass.png", "gravel.png", "stone.png", "paving.png"}
    for name in textures:
        assert f"`{name}`" in attribution
