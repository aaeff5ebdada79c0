"""``vrbalance patient``: add, list, show, set-envelope, import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vrbalance.cli import main
from vrbalance.sessions.store import Store


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VRBALANCE_DATA", str(tmp_path / "data"))
    path = tmp_path / "records.sqlite3"
    monkeypatch.setenv("VRBALANCE_DB", str(path))
    return path


def test_add_list_show(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "patient",
                "add",
                "P2",
                "--birth-year",
                "1960",
                "--sex",
                "F",
                "--height-cm",
                "162",
                "--mass-kg",
                "58",
                "--foot-length-cm",
                "24",
            ]
        )
        == 0
    )
    assert main(["patient", "list"]) == 0
    assert main(["patient", "show", "P2"]) == 0
    out = capsys.readouterr().out
    assert f"added patient P2 to {db}" in out
    assert "P2" in out and "0 session(s)" in out
    # For people: cm and kg as entered, not JSON in metres.
    assert "  height        162 cm\n" in out and "  foot length   24 cm\n" in out
    assert "  mass          58 kg\n" in out and "height_m" not in out
    assert main(["patient", "show", "P2", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["height_m"] == 1.62 and record["sessions"] == []
    with Store(db) as store:
        p = store.patient("P2")
    assert (p.height_m, p.mass_kg, p.foot_length_m, p.sex) == (1.62, 58.0, 0.24, "F")


def test_bad_values_are_refused_with_the_flag_named(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["patient", "add", "P3", "--height-cm", "1.7"]) == 2
    assert "--height-cm: expected a value in [50, 260], got 1.7" in capsys.readouterr().err
    assert main(["patient", "add", "P3"]) == 0
    assert main(["patient", "add", "P3"]) == 2
    assert "patient 'P3' already exists" in capsys.readouterr().err
    assert main(["patient", "show", "P4"]) == 2
    assert "no patient 'P4'" in capsys.readouterr().err


def test_set_envelope_validates_against_the_hard_caps(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["patient", "add", "P5"]) == 0
    good = tmp_path / "env.toml"
    good.write_text("[levels]\npark = 3\nother = 1\n")
    assert main(["patient", "set-envelope", "P5", str(good)]) == 0
    with Store(db) as store:
        assert store.patient("P5").envelope["levels"]["park"] == 3
    bad = tmp_path / "bad.toml"
    bad.write_text("[levels]\npark = 3\n[time]\nmax_trial_s = 1e9\n")
    assert main(["patient", "set-envelope", "P5", str(bad)]) == 2
    assert "bad.toml" in capsys.readouterr().err
    # A folder, a stance the library does not know: one line each, no traceback.
    assert main(["patient", "set-envelope", "P5", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"vrbalance patient: error: {tmp_path}: is a folder, expected a .toml file" in err
    assert "Traceback" not in err
    bad.write_text('[stances]\nallowed = ["moonwalk"]\n')
    assert main(["patient", "set-envelope", "P5", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad} [stances] allowed: unknown stance 'moonwalk'" in err


def test_a_patient_id_with_a_trailing_newline_is_refused(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``$`` matches before a final newline: ids are checked as a whole (``\\A...\\Z``)."""
    assert main(["patient", "add", "P001\n"]) == 2
    assert "patient id 'P001\\n': expected 1-64 letters" in capsys.readouterr().err
    with Store(db) as store:
        assert store.patients() == []


def test_import_of_a_non_session_folder_is_a_clear_error(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["patient", "import", str(tmp_path)]) == 2
    assert "not a vrbalance session folder (no session.json)" in capsys.readouterr().err


def test_set_envelope_flags_change_the_current_envelope(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["patient", "add", "P7"]) == 0
    good = tmp_path / "env.toml"
    good.write_text("[levels]\npark = 3\n[visual]\nmax_surround_tilt_deg = 2.0\n")
    assert main(["patient", "set-envelope", "P7", str(good)]) == 0
    assert main(["patient", "set-envelope", "P7", "--allowed-stances", "feet_apart,tandem"]) == 0
    with Store(db) as store:
        envelope = store.patient("P7").envelope
    assert envelope["stances"]["allowed"] == ["feet_apart", "tandem"]
    assert envelope["levels"]["park"] == 3 and envelope["visual"]["max_surround_tilt_deg"] == 2.0
    assert main(["patient", "set-envelope", "P7", "--max-surround-tilt-deg", "12"]) == 2
    assert "--max-surround-tilt-deg: 12.0 exceeds the hard cap" in capsys.readouterr().err
    assert main(["patient", "set-envelope", "P7"]) == 2
    assert "set-envelope: give FILE.toml or flags" in capsys.readouterr().err
