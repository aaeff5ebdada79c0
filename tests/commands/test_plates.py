"""``vrbalance plates`` and ``vrbalance info``: what this machine has, from real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vrbalance.cli import main
from vrbalance.commands.info import describe_openxr_runtime, openxr_runtime_manifest
from vrbalance.commands.plates import describe_input_plates, input_plate_names
from vrbalance.devices.discovery import BALANCE_BOARD_NAME


def _sysfs_with_a_board(tmp_path: Path) -> tuple[Path, Path]:
    """/sys and /dev as the kernel lays them out for a keyboard and a paired board."""
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    (dev_root / "input").mkdir(parents=True)
    for number, name in ((2, "Power Button"), (14, BALANCE_BOARD_NAME)):
        device = sys_root / "class" / "input" / f"event{number}" / "device"
        device.mkdir(parents=True)
        (device / "name").write_text(name + "\n")
        (dev_root / "input" / f"event{number}").write_bytes(b"")
    hid = sys_root / "class" / "input" / "event14" / "device" / "device"
    supply = hid / "power_supply" / "wiimote_battery_00:1e:35:aa:bb:cc"
    supply.mkdir(parents=True)
    (supply / "capacity").write_text("61\n")
    (hid / "bboard_calib").write_text(
        "0ea7:0fba:0ca4:0d23:1522:1634:1338:13b3:1b9f:1cac:19cf:1a48\n"
    )
    return sys_root, dev_root


def test_the_board_is_listed_with_its_port_battery_and_kernel_calibration(tmp_path: Path) -> None:
    sys_root, dev_root = _sysfs_with_a_board(tmp_path)
    assert input_plate_names() == {BALANCE_BOARD_NAME: "wii-balance-board"}
    (line,) = describe_input_plates(battery=True, sys_root=sys_root, dev_root=dev_root)
    node = dev_root / "input" / "event14"
    assert line.startswith(f"{node}  {BALANCE_BOARD_NAME}: --plate wii-balance-board --port {node}")
    assert "battery 61 %" in line
    # 0 kg / 17 kg / 34 kg raw points of the first sensor (top right), as the kernel read them.
    assert "kernel calibration 0/17/34 kg: 3751/5410/7071, " in line
    (quiet,) = describe_input_plates(battery=False, sys_root=sys_root, dev_root=dev_root)
    assert "battery" not in quiet


def test_plates_command_without_any_board_says_how_to_pair(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plates", "--all"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("serial ports (DIY four-cell and six-channel plates, --port PATH):")
    assert "input devices that are plates (a paired Wii Balance Board):" in out
    if BALANCE_BOARD_NAME not in out:
        assert "none: pair the board and switch it on (docs/wii-balance-board.md)" in out


def test_openxr_runtime_discovery_follows_the_loaders_order(tmp_path: Path) -> None:
    manifest = tmp_path / "home" / "openxr" / "1" / "active_runtime.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"runtime": {"name": "Monado", "library_path": "x.so"}}))
    env = {"XDG_CONFIG_HOME": str(tmp_path / "home"), "XDG_CONFIG_DIRS": str(tmp_path / "none")}
    assert openxr_runtime_manifest(env) == (manifest, "active runtime")
    assert describe_openxr_runtime(env) == f"Monado (active runtime: {manifest})"
    explicit = tmp_path / "other.json"
    explicit.write_text(json.dumps({"runtime": {"library_path": "libother.so"}}))
    assert describe_openxr_runtime({**env, "XR_RUNTIME_JSON": str(explicit)}) == (
        f"libother.so (XR_RUNTIME_JSON: {explicit})"
    )
    bare = {"XDG_CONFIG_HOME": str(tmp_path / "empty"), "XDG_CONFIG_DIRS": str(tmp_path / "e2")}
    if openxr_runtime_manifest(bare) is None:  # unless this machine has one in /etc
        assert describe_openxr_runtime(bare).startswith("no runtime configured")


def test_info_shows_data_folder_database_plates_and_openxr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    manifest = tmp_path / "monado.json"
    manifest.write_text(json.dumps({"runtime": {"name": "Monado"}}))
    monkeypatch.setenv("VRBALANCE_DATA", str(data))
    monkeypatch.delenv("VRBALANCE_DB", raising=False)
    monkeypatch.setenv("XR_RUNTIME_JSON", str(manifest))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"data folder    {data} ($VRBALANCE_DATA)" in out
    assert f"database       {data / 'vrbalance.sqlite3'} (not created yet)" in out
    assert "serial ports   " in out and "input plates   " in out
    assert f"OpenXR         Monado (XR_RUNTIME_JSON: {manifest})" in out
    assert "pylsl" in out and "evdev-binary" in out


def test_calibrate_port_auto_without_a_board_names_what_it_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VRBALANCE_DATA", str(tmp_path / "data"))
    if describe_input_plates(battery=False):
        pytest.skip("a real board is paired here")
    status = main(["calibrate", "plate", "--port", "auto", "--non-interactive", "--mass-kg", "20"])
    err = capsys.readouterr().err
    assert status == 2
    assert "--port auto: no input device named 'Nintendo Wii Remote Balance Board'" in err
    assert "Traceback" not in err
