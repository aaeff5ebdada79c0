"""The simulated standing person: realistic quiet stance, scripted events, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vrbalance.balance.cop import PlateGeometry, compute_cop
from vrbalance.balance.sway import sway_metrics
from vrbalance.config.plates import PlateSpec
from vrbalance.devices.calibration import GRAVITY_M_S2, FrameConverter, load_calibration
from vrbalance.devices.simulator import (
    PersonParams,
    PlateSignal,
    ScriptEvent,
    StandingPerson,
    parse_script,
    plate_channels,
)
from vrbalance.errors import ConfigError

BDS = Path(__file__).resolve().parents[1] / "data" / "bds"


def _bds_eyes_open_firm() -> list[np.ndarray]:
    """CoP (m) of the excerpt's eyes-open firm trials (BDS00001-3), 100 Hz."""
    out = []
    for i in (1, 2, 3):
        data = np.loadtxt(BDS / f"BDS{i:05d}.txt.gz", skiprows=1)
        out.append(data[:, 7:9] / 100.0)
    return out


def _simulate(seconds: float, rate_hz: float = 100.0, *, seed: int, script=()) -> np.ndarray:
    person = StandingPerson(rate_hz=rate_hz, script=script, seed=seed)
    return np.array([person.step() for _ in range(round(seconds * rate_hz))])


def test_quiet_stance_is_of_the_order_of_bds_eyes_open_firm() -> None:
    real = [sway_metrics(cop, 100.0) for cop in _bds_eyes_open_firm()]
    sim = [sway_metrics(_simulate(60.0, seed=s)[:, 3:5], 100.0) for s in range(3)]
    real_vel = np.median([m.mean_velocity_mps for m in real])
    real_area = np.median([m.prediction_ellipse_area_m2 for m in real])
    sim_vel = np.median([m.mean_velocity_mps for m in sim])
    sim_area = np.median([m.prediction_ellipse_area_m2 for m in sim])
    # "Same order": within a factor of 3 of this subject (and near the 163-subject
    # medians of 0.9 cm/s and 2.1 cm² in BDSinfoCOP_all.tsv).
    assert real_vel / 3 < sim_vel < real_vel * 3, (sim_vel, real_vel)
    assert real_area / 3 < sim_area < real_area * 3, (sim_area, real_area)
    assert 0.004 < sim_vel < 0.02  # m/s
    assert 0.5e-4 < sim_area < 5e-4  # m²


def test_quiet_stance_carries_body_weight() -> None:
    out = _simulate(10.0, seed=1)
    assert out[:, 2].mean() == pytest.approx(70.0 * GRAVITY_M_S2, rel=1e-3)
    assert np.abs(out[:, 0:2]).max() < 10.0  # horizontal forces: a few N


def test_same_seed_same_person_other_seed_other_sway() -> None:
    a, b, c = _simulate(2.0, seed=7), _simulate(2.0, seed=7), _simulate(2.0, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_seed_is_keyword_only_and_validated() -> None:
    with pytest.raises(TypeError):
        StandingPerson(PersonParams(), 100.0)  # type: ignore[misc]
    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        StandingPerson(seed=-1)


def test_lean_moves_the_cop_to_the_target_and_back() -> None:
    out = _simulate(14.0, seed=2, script=parse_script("lean@2s:y=0.06:hold=4"))
    quiet = out[: 2 * 100, 4].mean()
    leaning = out[4 * 100 : 7 * 100, 4].mean()
    back = out[11 * 100 :, 4].mean()
    assert leaning - quiet == pytest.approx(0.06, abs=0.01)
    assert back - quiet == pytest.approx(0.0, abs=0.01)


def test_fall_drives_the_cop_to_the_edge_then_unloads() -> None:
    person = StandingPerson(rate_hz=100.0, script=parse_script("fall@1s"), seed=3)
    out = np.array([person.step() for _ in range(400)])
    assert person.theta[1] > 0.3  # the body toppled forwards (rad)
    depth_half = 0.12
    assert out[int(1.6 * 100), 4] > depth_half  # CoP at the front edge and past it
    assert out[-1, 2] < 0.05 * 70 * GRAVITY_M_S2  # then off the plate


def test_step_off_and_on() -> None:
    out = _simulate(3.0, seed=4, script=parse_script("stepoff@0.5s,stepon@1.5s"))
    weight = 70 * GRAVITY_M_S2
    assert out[int(1.2 * 100), 2] < 0.01 * weight
    assert out[-1, 2] == pytest.approx(weight, rel=0.01)


def test_parse_script_forms_and_errors() -> None:
    events = parse_script("fall@25s, lean@10s:x=-0.02:y=0.05,unplug@500ms")
    assert events == [
        ScriptEvent("unplug", 0.5),
        ScriptEvent("lean", 10.0, (("x", -0.02), ("y", 0.05))),
        ScriptEvent("fall", 25.0),
    ]
    with pytest.raises(ConfigError, match=r"--script item 'jump@3s': expected KIND@TIMEs"):
        parse_script("lean@1s,jump@3s")


@pytest.mark.parametrize("plate_id", ["wii-balance-board", "generic-six-axis"])
def test_counts_read_back_through_the_calibration_give_the_simulated_cop(
    plate_id: str, wii: PlateSpec, six_axis: PlateSpec
) -> None:
    plate = wii if plate_id == "wii-balance-board" else six_axis
    cal = load_calibration(plate_id)
    signal = PlateSignal(plate, cal, rate_hz=100.0, seed=5)
    counts, truth = [], []
    for _ in range(200):
        counts.append(signal.next_counts())
        truth.append(signal.last_forces)
    forces = FrameConverter(plate, cal).counts_to_core(counts)
    cop = compute_cop(forces, plate.geometry)
    truth_arr = np.array(truth)
    np.testing.assert_allclose(cop.cop_m, truth_arr[:, 3:5], atol=2e-4)
    np.testing.assert_allclose(cop.vertical_force_n, truth_arr[:, 2], atol=0.05)


def test_six_axis_channels_follow_the_cop_convention() -> None:
    ch = plate_channels("six_axis", (2.0, -1.0, 700.0, 0.03, -0.05, 0.1), top_offset_m=0.04)
    geometry = PlateGeometry(kind="six_axis", width_m=0.5, depth_m=0.4, top_offset_m=0.04)
    np.testing.assert_allclose(compute_cop(ch, geometry).cop_m[0], [0.03, -0.05], atol=1e-12)


def test_a_person_who_fell_and_stepped_back_on_stands_quietly_again() -> None:
    # Repeated falls in one session (and the e2e benchmark's repeated events) need
    # the simulated person to stand quietly again after stepping back on.
    person = StandingPerson(rate_hz=100.0, script=parse_script("fall@1s,stepon@2s"), seed=0)
    cop_y = []
    for _ in range(500):
        _, _, _, _, y, _ = person.step()
        cop_y.append(y)
    stance_y = person.p.stance_cop_m[1]
    quiet_before = np.asarray(cop_y[:100]) - stance_y
    after = np.asarray(cop_y[300:]) - stance_y  # from 1 s after stepping back on
    assert np.abs(quiet_before).max() < 0.03  # the quiet stance it had before
    assert np.abs(after).max() < 0.03


def test_a_forward_fall_never_moves_the_cop_towards_the_heels() -> None:
    # Losing balance forwards, the ankles saturate with the CoP at the toes
    # (the simulator's own docstring: "saturates the ankle torque towards one edge").
    person = StandingPerson(rate_hz=100.0, script=parse_script("fall@1s"), seed=0)
    cop_y = np.asarray([person.step()[4] for _ in range(160)])
    quiet = cop_y[:100]
    falling = cop_y[100:160]  # the first 0.6 s of the fall
    assert falling.min() > quiet.min() - 0.02


@pytest.mark.parametrize("item", ["lean@1s:y=1.2.3", "lean@1.2.3s", "lean@1s:y=1e999"])
def test_a_script_number_that_is_not_one_is_a_config_error(item: str) -> None:
    from vrbalance.errors import ConfigError

    with pytest.raises(ConfigError, match=r"must be finite numbers"):
        parse_script(item)
