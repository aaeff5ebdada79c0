"""``vrbalance report`` / ``replay`` argument handling (the full path is in test_run.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vrbalance.cli import main


@pytest.fixture(autouse=True)
def _data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRBALANCE_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("VRBALANCE_DB", raising=False)


@pytest.mark.parametrize("command", ["report", "replay"])
def test_unknown_session_names_where_it_looked(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "P1-nothing"]) == 2
    err = capsys.readouterr().err
    assert (
        f"vrbalance {command}: error: P1-nothing: no such session folder, and no session "
        f"with that id in {tmp_path / 'data' / 'vrbalance.sqlite3'}" in err
    )


def test_progress_of_unknown_patient(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["progress", "P0"]) == 2
    assert "no patient 'P0'" in capsys.readouterr().err
