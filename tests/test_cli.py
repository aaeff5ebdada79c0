"""The command line: every subcommand is listed and has its own --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vrbalance.cli import build_parser, main


def _subcommands() -> list[str]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return sorted(action.choices)


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in _subcommands():
        assert name in out


@pytest.mark.parametrize("name", _subcommands())
def test_each_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert f"usage: vrbalance {name}" in capsys.readouterr().out


def test_python_dash_m_runs_the_same_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vrbalance", "info"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("vrbalance ")
    assert "scenes/" in result.stdout


def test_help_does_not_import_heavy_dependencies() -> None:
    code = (
        "import sys; from vrbalance.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('panda3d', 'xr', 'serial') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
