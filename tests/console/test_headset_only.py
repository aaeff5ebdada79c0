"""The start page's Plate "none" (a headset-only session): argv and validation.

The console starts ``vrbalance run`` without ``--simulate`` and ``--port`` and
with ``--xr``; the refusals the page shows are ``run``'s own (one function,
:func:`~vrbalance.sessions.assembly.check_headset_only`). A real headset-only
session cannot run here: the console's session is a child process, and CI has
no OpenXR runtime (the fake runtime patches only the test's own process); the
run side of a headset-only session is tested in tests/commands/test_run.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vrbalance.cli import main
from vrbalance.console.stations import NO_PLATE, SessionRequest
from vrbalance.errors import ConfigError
from vrbalance.sessions.assembly import check_headset_only
from vrbalance.sessions.protocol import list_protocols, load_protocol


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VRBALANCE_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("VRBALANCE_DB", raising=False)
    return tmp_path / "data"


def test_no_plate_maps_to_run_with_the_headset_and_neither_simulate_nor_port() -> None:
    request = SessionRequest("P1", "tandem_walk", device=NO_PLATE, output="headset")
    sock = Path("/run/x/s.sock")
    assert request.argv(sock)[3:] == [
        "run", "--patient", "P1", "--protocol", "tandem_walk", "--xr",
        "--seconds-scale", "1.0", "--console-channel", str(sock),
    ]  # fmt: skip
    # The other devices keep their flags.
    assert "--simulate" in SessionRequest("P1", "baseline").argv(sock)
    port = SessionRequest("P1", "baseline", device="/dev/ttyUSB0").argv(sock)
    assert port[port.index("--port") + 1] == "/dev/ttyUSB0"


@pytest.mark.parametrize("output", ["offscreen", "window", "none"])
def test_no_plate_needs_the_headset_output(output: str) -> None:
    with pytest.raises(ConfigError) as refused:
        SessionRequest("P1", "tandem_walk", device=NO_PLATE, output=output)
    assert str(refused.value).startswith(
        f"Plate: none (headset only) needs the headset output, got {output!r}"
    )


def test_only_head_only_protocols_pass_the_no_plate_check() -> None:
    """Shipped protocols without the baseline (left out without a plate)."""
    passed, refused = [], {}
    for name in list_protocols():
        try:
            check_headset_only(load_protocol(name, with_baseline=False))
            passed.append(name)
        except ConfigError as exc:
            refused[name] = str(exc)
    assert "tandem_walk" in passed
    assert "baseline" in refused and "mctsib" in refused and "park_walk" in refused
    for name in passed:  # nothing on the plate
        assert not any(t.plate for t in load_protocol(name, with_baseline=False).trials)
    assert refused["mctsib"].startswith("protocol 'mctsib' trial 1 (")
    # With the baseline prepended every protocol stands on the plate first.
    with pytest.raises(ConfigError, match=r"'tandem_walk' trial 1 \(Baseline"):
        check_headset_only(load_protocol("tandem_walk"))


def test_the_console_s_argv_gets_run_s_own_refusal_the_page_shows(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The start page's refusal text is exactly what ``run`` says for the same argv."""
    assert main(["patient", "add", "PH"]) == 0
    capsys.readouterr()
    with pytest.raises(ConfigError) as page:
        check_headset_only(load_protocol("park_walk", with_baseline=False))
    argv = SessionRequest("PH", "park_walk", device=NO_PLATE, output="headset").argv(
        tmp_path / "s.sock"
    )
    assert main(argv[3:]) == 2
    captured = capsys.readouterr()
    assert str(page.value) in captured.err
    assert "the quiet-stance baseline, a plate measurement, is left out" in captured.out
    assert not (data / "sessions").exists()  # refused before any recording
