"""Head-pose sources: scripted sway, leans and falls, replay interpolation, latest holder."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from vrbalance.devices.head import (
    Fall,
    HeadPoseSource,
    LatestHeadSource,
    Lean,
    ReplayHeadSource,
    ScriptedHeadSource,
    SwayScript,
)
from vrbalance.samples import HeadPose


def _positions(script: SwayScript, t: np.ndarray) -> np.ndarray:
    return np.array([script.position_at(float(ti)) for ti in t])


def test_all_sources_satisfy_the_protocol() -> None:
    sources = [
        ScriptedHeadSource(SwayScript(seed=1)),
        ReplayHeadSource([0.0], [[0.0, 0.0, 1.6]]),
        LatestHeadSource(),
    ]
    for source in sources:
        assert isinstance(source, HeadPoseSource)


def test_sway_is_reproducible_with_the_same_seed_and_differs_with_another() -> None:
    t = np.arange(0.0, 20.0, 0.05)
    a = _positions(SwayScript(seed=7), t)
    b = _positions(SwayScript(seed=7), t[::-1])[::-1]  # query order must not matter
    c = _positions(SwayScript(seed=8), t)
    np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(a - c)) > 1e-3


def test_sway_has_the_requested_rms_and_height() -> None:
    script = SwayScript(seed=3, height_m=1.7, rms_ap_m=0.008, rms_ml_m=0.005)
    t = np.arange(0.0, 600.0, 0.05)
    p = _positions(script, t)
    assert np.sqrt(np.mean(p[:, 1] ** 2)) == pytest.approx(0.008, rel=0.25)
    assert np.sqrt(np.mean(p[:, 0] ** 2)) == pytest.approx(0.005, rel=0.25)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.7, rtol=1e-12)
    assert np.all(np.abs(p[:, :2]) < 0.06)


def test_sway_pose_orientation_tilts_with_the_body() -> None:
    pose = SwayScript(seed=1, rms_ap_m=0.0, rms_ml_m=0.0, events=[Lean(0.0, (0.0, 0.2), 1.0)])(5.0)
    x, y, z, w = pose.orientation_xyzw
    assert math.isclose(x * x + y * y + z * z + w * w, 1.0)
    # forward lean = rotation about -x (the head pitches down toward +y)
    assert x < 0 and y == pytest.approx(0.0) and z == 0.0
    tilt = 2 * math.acos(w)
    assert tilt == pytest.approx(math.asin(0.2 / 1.6), rel=1e-9)
    assert pose.received_time_s == 5.0 and pose.tracked


def test_lean_ramps_holds_and_returns() -> None:
    lean = Lean(start_s=2.0, offset_m=(0.0, 0.1), ramp_s=1.0, end_s=5.0)
    script = SwayScript(seed=0, rms_ap_m=0.0, rms_ml_m=0.0, events=[lean])
    assert script.position_at(1.0)[1] == 0.0
    assert script.position_at(2.5)[1] == pytest.approx(0.05)
    assert script.position_at(4.0)[1] == pytest.approx(0.1)
    assert script.position_at(5.5)[1] == pytest.approx(0.05)
    assert script.position_at(7.0)[1] == pytest.approx(0.0)


def test_lean_rejects_end_before_ramp_done() -> None:
    with pytest.raises(ValueError, match=r"Lean.end_s must be >= start_s \+ ramp_s = 3.0, got 2.5"):
        Lean(start_s=2.0, offset_m=(0.0, 0.1), ramp_s=1.0, end_s=2.5)


def test_fall_accelerates_like_an_inverted_pendulum_and_is_arrested() -> None:
    fall = Fall(start_s=1.0, azimuth_rad=math.pi / 2, max_tilt_rad=0.35)  # to the right
    script = SwayScript(seed=0, rms_ap_m=0.0, rms_ml_m=0.0, events=[fall])
    assert script.position_at(1.0) == pytest.approx((0.0, 0.0, 1.6))
    x = [script.position_at(1.0 + dt)[0] for dt in (0.2, 0.4, 0.6)]
    assert 0 < x[0] < x[1] < x[2]
    assert x[2] - x[1] > x[1] - x[0]  # accelerating
    w = math.sqrt(9.81 / 1.6)
    theta = 0.1 / w * math.sinh(w * 0.4)
    assert x[1] == pytest.approx(1.6 * math.sin(theta), rel=1e-9)
    far = script.position_at(10.0)
    assert far == pytest.approx((1.6 * math.sin(0.35), 0.0, 1.6 * math.cos(0.35)), abs=1e-12)


def test_fall_starts_from_the_swayed_posture_without_a_jump() -> None:
    script = SwayScript(seed=5, events=[Fall(start_s=3.0)])
    before = script.position_at(3.0)
    after = script.position_at(3.0 + 1e-6)
    assert np.allclose(before, after, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, "seed must be an int >= 0, got -1"),
        ({"seed": True}, "seed must be an int >= 0, got True"),
        ({"seed": 0, "height_m": 3.0}, r"height_m must be within \[0.3, 2.5\] m, got 3.0"),
        ({"seed": 0, "rms_ap_m": -0.1}, r"rms_ap_m must be within \[0, 0.1\] m, got -0.1"),
        ({"seed": 0, "n_components": 0}, "n_components must be an int >= 1, got 0"),
    ],
)
def test_sway_script_validates(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SwayScript(**kwargs)  # type: ignore[arg-type]


def test_scripted_source_calls_its_function() -> None:
    calls: list[float] = []

    def fn(t_s: float) -> HeadPose | None:
        calls.append(t_s)
        return None if t_s < 1 else HeadPose(None, t_s, (0.0, 0.0, 1.5))

    source = ScriptedHeadSource(fn)
    assert source.pose_at(0.5) is None
    pose = source.pose_at(2.0)
    assert pose is not None and pose.position_m == (0.0, 0.0, 1.5)
    assert calls == [0.5, 2.0]
    with pytest.raises(TypeError, match="fn: expected a callable"):
        ScriptedHeadSource(42)  # type: ignore[arg-type]


def _quat_about_z(angle_rad: float) -> list[float]:
    return [0.0, 0.0, math.sin(angle_rad / 2), math.cos(angle_rad / 2)]


def test_replay_interpolates_position_and_slerps_orientation() -> None:
    times = [1.0, 2.0, 4.0]
    positions = [[0.0, 0.0, 1.6], [0.1, 0.0, 1.6], [0.1, 0.2, 1.5]]
    orientations = [_quat_about_z(0.0), _quat_about_z(1.0), _quat_about_z(1.0)]
    replay = ReplayHeadSource(times, positions, orientations, offset_s=10.0)
    assert replay.pose_at(10.999) is None
    assert replay.pose_at(14.001) is None
    first = replay.pose_at(11.0)
    assert first is not None and first.position_m == (0.0, 0.0, 1.6)
    mid = replay.pose_at(11.25)
    assert mid is not None
    assert mid.position_m == pytest.approx((0.025, 0.0, 1.6))
    assert mid.orientation_xyzw == pytest.approx(_quat_about_z(0.25))  # slerp: constant rate
    assert mid.device_time_s == pytest.approx(1.25) and mid.received_time_s == 11.25
    later = replay.pose_at(13.0)
    assert later is not None and later.position_m == pytest.approx((0.1, 0.1, 1.55))
    last = replay.pose_at(14.0)
    assert last is not None and last.position_m == (0.1, 0.2, 1.5)
    assert (replay.start_s, replay.end_s) == (11.0, 14.0)


def test_replay_slerp_takes_the_short_way_for_sign_flipped_quaternions() -> None:
    q1 = [-c for c in _quat_about_z(0.5)]  # same rotation as +q, opposite sign
    replay = ReplayHeadSource([0.0, 1.0], [[0, 0, 1.6]] * 2, [_quat_about_z(0.0), q1])
    pose = replay.pose_at(0.5)
    assert pose is not None
    q = np.array(pose.orientation_xyzw)
    expected = np.array(_quat_about_z(0.25))
    assert min(np.abs(q - expected).max(), np.abs(q + expected).max()) < 1e-12


@pytest.mark.parametrize(
    ("times", "positions", "match"),
    [
        ([0.0, 1.0], [[0, 0, 1]], r"positions_m: expected shape \(2, 3\), got \(1, 3\)"),
        ([0.0, 0.0], [[0, 0, 1]] * 2, r"strictly increasing: times_s\[1\] = 0.0 after"),
        ([0.0, float("nan")], [[0, 0, 1]] * 2, "times_s: non-finite value at index 1"),
        ([], np.zeros((0, 3)), r"times_s: expected shape \(n,\) with n >= 1"),
    ],
)
def test_replay_validates(times: list[float], positions: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ReplayHeadSource(times, positions)  # type: ignore[arg-type]


def test_latest_source_returns_newest_and_honours_max_age() -> None:
    source = LatestHeadSource(max_age_s=0.1)
    assert source.pose_at(0.0) is None
    source.put(HeadPose(None, 1.0, (0.0, 0.0, 1.6)))
    source.put(HeadPose(None, 2.0, (0.0, 0.01, 1.6)))
    pose = source.pose_at(2.05)
    assert pose is not None and pose.position_m == (0.0, 0.01, 1.6)
    assert source.pose_at(2.2) is None  # stale: tracking lost
    assert source.latest() is pose and source.count == 2
    with pytest.raises(TypeError, match="pose: expected HeadPose, got tuple"):
        source.put((0.0, 0.0, 1.6))  # type: ignore[arg-type]


def test_latest_source_writer_thread_reader_sees_only_whole_poses() -> None:
    source = LatestHeadSource()
    n = 5000

    def write() -> None:
        for i in range(n):
            source.put(HeadPose(None, float(i), (float(i), -float(i), 1.6)))

    writer = threading.Thread(target=write)
    writer.start()
    last = -1.0
    while writer.is_alive() or last < n - 1:
        pose = source.pose_at(0.0)
        if pose is None:
            continue
        x, y, _ = pose.position_m
        assert y == -x and pose.received_time_s == x
        assert x >= last
        last = x
    writer.join(10)
    assert source.count == n
