"""Head poses for the balance loop: time conversion, frame conversion, threads, teardown."""

from __future__ import annotations

import math
import threading

import pytest
from fake_runtime import FakeXr, head_motion

from vrbalance.clock import ManualClock, MonotonicClock
from vrbalance.xr.frames import StageAlignment, xr_pose_to_core
from vrbalance.xr.gl import HeadlessBinding
from vrbalance.xr.head_source import XrHeadPoseSource
from vrbalance.xr.session import XrSession


def running_session(fake: FakeXr) -> XrSession:
    session = XrSession(HeadlessBinding(), api=fake, clock=ManualClock()).open()
    for _ in range(4):
        plan = session.begin_frame()
        if plan is not None:
            session.end_frame(plan, lambda i, t: None)
    assert session.focused
    return session


def test_unbound_source_gives_none() -> None:
    source = XrHeadPoseSource(ManualClock())
    assert source.pose_at(1.0) is None
    assert source.mode == "unbound"


def test_monotonic_clock_uses_timespec_conversion_at_the_loop_time() -> None:
    fake = FakeXr(monotonic_offset_ns=7_000_000_123)
    clock = MonotonicClock()
    with running_session(fake) as session:
        source = XrHeadPoseSource(clock)
        source.bind(session)
        assert source.mode == "timespec"
        t_s = clock.now_s()
        pose = source.pose_at(t_s)
        assert pose is not None
        expected_ns = round(t_s * 1e9) + 7_000_000_123
        assert pose.device_time_s == pytest.approx(expected_ns * 1e-9, abs=2e-9)
        # The pose is the runtime's head at that time, in the core frame.
        pos_xr, quat_xr = head_motion(expected_ns)
        pos, quat = xr_pose_to_core(pos_xr, quat_xr)
        assert pose.position_m == pytest.approx(pos, abs=1e-6)
        assert pose.orientation_xyzw == pytest.approx(quat, abs=1e-6)
        assert pose.position_m[2] == pytest.approx(1.65)  # eye height is core z
        assert pose.tracked
        assert pose.received_time_s is not None and pose.received_time_s >= t_s
        # Two poses 4 ms apart (250 Hz) are located at times 4 ms apart, not per frame.
        later = source.pose_at(t_s + 0.004)
        assert later is not None
        assert later.device_time_s - pose.device_time_s == pytest.approx(0.004, abs=2e-9)


def test_conversion_is_remeasured_not_called_per_pose(monkeypatch) -> None:
    fake = FakeXr()
    calls = []
    original = fake.convert_timespec_time_to_time_khr

    def counting(instance, ts):
        calls.append(ts)
        return original(instance, ts)

    fake.convert_timespec_time_to_time_khr = counting  # type: ignore[method-assign]
    with running_session(fake) as session:
        source = XrHeadPoseSource(MonotonicClock())
        source.bind(session)
        for i in range(250):
            assert source.pose_at(100.0 + i * 0.004) is not None
        assert len(calls) == 1  # one second of 250 Hz poses: measured once
        source.pose_at(101.5)
        assert len(calls) == 2


def test_other_clocks_fall_back_to_the_predicted_display_time() -> None:
    fake = FakeXr()
    with running_session(fake) as session:
        source = XrHeadPoseSource(ManualClock(3.0))
        source.bind(session)
        assert source.mode == "display_time"
        pose = source.pose_at(3.0)
        assert pose is not None
        assert pose.device_time_s == pytest.approx(session.last_display_time_ns * 1e-9)


def test_runtime_without_timespec_extension_falls_back() -> None:
    fake = FakeXr(extensions=("XR_KHR_opengl_enable",))
    with running_session(fake) as session:
        source = XrHeadPoseSource(MonotonicClock())
        source.bind(session)
        assert source.mode == "display_time"
        assert source.pose_at(MonotonicClock().now_s()) is not None


def test_alignment_puts_the_plate_at_the_origin() -> None:
    fake = FakeXr(motion=lambda t: ((0.5, 1.7, -1.0), (0.0, 0.0, 0.0, 1.0)))
    with running_session(fake) as session:
        # Plate 0.5 m right and 1 m forward of the stage centre, patient facing stage forward.
        source = XrHeadPoseSource(ManualClock(), alignment=StageAlignment((0.5, 1.0, 0.0)))
        source.bind(session)
        pose = source.pose_at(0.0)
        assert pose is not None
        assert pose.position_m == pytest.approx((0.0, 0.0, 1.7))


def test_lost_session_gives_none_then_poses_again_after_resume() -> None:
    fake = FakeXr()
    with running_session(fake) as session:
        source = XrHeadPoseSource(ManualClock())
        source.bind(session)
        assert source.pose_at(0.0) is not None
        fake.lose_session()
        assert source.pose_at(0.0) is None  # SessionLossPending from xrLocateSpace
        session.begin_frame()
        assert session.lost
        assert source.pose_at(0.0) is None
        fake.restore()
        session.recreate()
        for _ in range(4):
            plan = session.begin_frame()
            if plan is not None:
                session.end_frame(plan, None)
        assert source.pose_at(0.0) is not None


def test_loop_threads_locate_while_the_render_thread_runs_and_closes() -> None:
    fake = FakeXr()
    session = running_session(fake)
    source = XrHeadPoseSource(MonotonicClock())
    source.bind(session)
    errors: list[BaseException] = []
    counts = [0, 0, 0]
    nones = [0, 0, 0]
    stop = threading.Event()

    def loop(k: int) -> None:
        clock = MonotonicClock()
        try:
            while not stop.is_set():
                pose = source.pose_at(clock.now_s())
                if pose is None:
                    nones[k] += 1
                else:
                    counts[k] += 1
                    assert all(math.isfinite(c) for c in pose.position_m)
        except BaseException as exc:  # any failure in the thread fails the test
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    # The render thread keeps running frames meanwhile: at least 200, and on until
    # every loop thread has located a pose (a busy machine may start one late;
    # bounded so a broken source fails the assertion below rather than hanging).
    frames = 0
    give_up_s = MonotonicClock().now_s() + 30.0
    while frames < 200 or (min(counts) == 0 and MonotonicClock().now_s() < give_up_s):
        plan = session.begin_frame()
        if plan is not None:
            session.end_frame(plan, lambda i, t: None)
        frames += 1
    session.close()  # destroys the spaces while the loops are locating
    assert source.pose_at(MonotonicClock().now_s()) is None
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert not errors, errors
    assert all(c > 0 for c in counts)
    assert fake.violations == []  # no locate on a destroyed space
