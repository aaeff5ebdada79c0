"""``vrbalance demo``: offscreen run writes screenshots and a recording; no display is explained."""

from __future__ import annotations

import csv
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
def test_offscreen_demo_runs_the_pipeline_and_writes_screenshots(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    rc = main(
        [
            "demo",
            "--offscreen",
            "--seconds",
            "4",
            "--out",
            str(out),
            "--size",
            "320x180",
            "--shot-every",
            "1",
        ]
    )
    assert rc == 0
    shots = sorted(out.glob("demo_*.png"))
    assert len(shots) >= 2
    assert all(p.stat().st_size > 1000 for p in shots)
    # The operator script switched scenes one key apart (park -> stairs -> crowd).
    names = " ".join(p.name for p in shots)
    assert "park" in names and "crowd" in shots[-1].name
    # The balance loop ran with the simulated plate and was recorded.
    recording = out / "recording"
    with (recording / "state.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) > 250  # >= 1 s at 250 Hz
    assert any(r.get("cop_x_m") not in ("", None) for r in rows)
    with (recording / "events.csv").open() as fh:
        kinds = {r["kind"] for r in csv.DictReader(fh)}
    assert {"level_change", "scene_change"} <= kinds
    assert "recording in" in capsys.readouterr().out
