"""The OpenXR layer driven through whole sessions by the specification-strict fake runtime."""

from __future__ import annotations

import dataclasses
import math

import pytest
import xr
from fake_runtime import GL_RGBA8, GL_SRGB8_ALPHA8, FakeXr

from vrbalance.clock import ManualClock
from vrbalance.events import Event
from vrbalance.xr.errors import XrFeatureMissing, XrHeadsetUnavailable, XrRuntimeUnavailable
from vrbalance.xr.gl import HeadlessBinding
from vrbalance.xr.session import EyeView, XrSession, XrSessionState, XrSettings


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.focus: list[bool] = []
        self.copies: list[tuple[int, int]] = []

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events if e.kind != "session_state"]

    def copy(self, index: int, texture: int) -> None:
        self.copies.append((index, texture))


def make(fake: FakeXr, rec: Recorder, **settings: object) -> XrSession:
    return XrSession(
        HeadlessBinding(),
        api=fake,
        settings=XrSettings(**settings),  # type: ignore[arg-type]
        clock=ManualClock(),
        on_event=rec.events.append,
        on_focus=rec.focus.append,
    )


def run_frames(session: XrSession, rec: Recorder, n: int) -> list:
    plans = []
    for _ in range(n):
        plan = session.begin_frame()
        if plan is not None:
            session.end_frame(plan, rec.copy)
            plans.append(plan)
    return plans


def test_whole_session_start_focus_lost_regained_loss_resume_exit() -> None:
    fake, rec = FakeXr(), Recorder()
    with make(fake, rec) as session:
        assert session.space_type == "STAGE"
        assert session.swapchain_format == GL_SRGB8_ALPHA8  # sRGB preferred over RGBA8
        assert session.view_sizes == ((1440, 1600), (1440, 1600))

        # Start: IDLE -> READY (begin) -> SYNCHRONIZED -> VISIBLE -> FOCUSED.
        run_frames(session, rec, 4)
        assert session.state is XrSessionState.FOCUSED
        assert [s.name for s in session.states_seen] == [
            "IDLE",
            "READY",
            "SYNCHRONIZED",
            "VISIBLE",
            "FOCUSED",
        ]
        assert rec.focus == [True]
        assert rec.kinds() == ["resumed"]
        rendered_before = session.frames_rendered
        assert rendered_before >= 1

        # Focus lost (headset off, system menu): still VISIBLE, so frames render; paused.
        fake.lose_focus()
        run_frames(session, rec, 3)
        assert rec.focus == [True, False]
        assert rec.kinds()[-1] == "paused"
        assert session.frames_rendered == rendered_before + 3

        # Runtime hides the app: SYNCHRONIZED, shouldRender false -> frames without layers.
        fake.hide()
        hidden = run_frames(session, rec, 3)
        assert not any(p.renders for p in hidden[1:])
        fake.show()
        fake.regain_focus()
        run_frames(session, rec, 3)
        assert rec.focus == [True, False, True]
        assert session.focused

        # Runtime lost mid-session: pause, alarm, no more frames until resumed.
        fake.lose_session()
        assert session.begin_frame() is None
        assert session.lost and not session.focused
        assert rec.focus[-1] is False
        alarm = [e for e in rec.events if e.kind == "loss_pending"]
        assert len(alarm) == 1 and alarm[0].severity == "alarm"
        assert "recording continues" in alarm[0].message
        assert session.begin_frame() is None

        # The runtime comes back; the operator resumes: a fresh session runs to FOCUSED.
        fake.restore()
        session.recreate()
        run_frames(session, rec, 4)
        assert session.focused and rec.focus[-1] is True
        assert "session_recreated" in rec.kinds()

        # The user quits from the runtime: STOPPING -> end -> IDLE -> EXITING.
        fake.runtime_quit()
        run_frames(session, rec, 2)
        assert session.exiting and not session.running
        assert rec.kinds()[-1] == "exiting"
        assert list(session.frames()) == []

    # Every frame with a layer was one the runtime asked to render, and vice versa.
    assert fake.submissions, "no frames submitted"
    for sub in fake.submissions:
        assert (sub.layer_count == 1) == sub.should_render, sub
    assert fake.violations == []
    # Torn down in reverse order, instance last.
    assert fake.calls[-2:] == ["destroy_session", "destroy_instance"]
    assert fake.spaces == {} and fake.swapchains == {}
    # Each eye was copied once per rendered frame, into that frame's acquired image.
    rendered = sum(1 for s in fake.submissions if s.layer_count)
    assert len(rec.copies) == 2 * rendered
    assert {i for i, _ in rec.copies} == {0, 1}


def test_app_side_close_requests_exit_and_ends_the_session() -> None:
    fake, rec = FakeXr(), Recorder()
    session = make(fake, rec).open()
    run_frames(session, rec, 5)
    assert session.focused
    session.close()
    session.close()  # idempotent
    calls = fake.calls
    assert calls.index("request_exit_session") < calls.index("end_session")
    assert calls.index("end_session") < calls.index("destroy_session")
    assert fake.violations == []
    assert rec.focus == [True, False]


def test_close_before_the_session_ever_ran() -> None:
    fake, rec = FakeXr(), Recorder()
    with make(fake, rec):
        pass
    # Closing drains the queued READY (begin), requests exit, ends at STOPPING, destroys.
    calls = [c for c in fake.calls if c.endswith("_session") or c == "destroy_instance"]
    assert calls == [
        "create_session",
        "begin_session",
        "request_exit_session",
        "end_session",
        "destroy_session",
        "destroy_instance",
    ]
    assert fake.violations == []


def test_layer_carries_the_views_located_for_the_predicted_time() -> None:
    fake, rec = FakeXr(), Recorder()
    with make(fake, rec) as session:
        plans = run_frames(session, rec, 6)
        rendered = [p for p in plans if p.renders]
        assert rendered
        for plan in rendered:
            t = plan.predicted_display_time_ns
            sub = next(s for s in fake.submissions if s.display_time_ns == t)
            assert sub.view_positions == [v.position_xr for v in plan.views]
            assert plan.views[0].fov.angle_left_rad == pytest.approx(-0.9)


def test_the_fake_fails_a_layer_that_submits_poses_of_another_time() -> None:
    fake, rec = FakeXr(), Recorder()
    session = make(fake, rec).open()
    run_frames(session, rec, 4)
    plan = session.begin_frame()
    assert plan is not None and plan.renders
    moved = tuple(
        EyeView(v.index, (v.position_xr[0] + 0.01, *v.position_xr[1:]), v.orientation_xr, v.fov)
        for v in plan.views
    )
    stale = dataclasses.replace(plan, views=moved)
    with pytest.raises(xr.ValidationFailureError, match="located for the predicted display time"):
        session.end_frame(stale, rec.copy)


@pytest.mark.parametrize(
    ("misuse", "error"),
    [
        ("begin_session_in_idle", xr.SessionNotReadyError),
        ("end_session_while_focused", xr.SessionNotStoppingError),
        ("wait_twice", xr.CallOrderInvalidError),
        ("begin_without_wait", xr.CallOrderInvalidError),
        ("end_without_begin", xr.CallOrderInvalidError),
        ("end_with_wrong_time", xr.TimeInvalidError),
        ("frame_before_begin_session", xr.SessionNotRunningError),
        ("release_without_acquire", xr.CallOrderInvalidError),
    ],
)
def test_the_fake_refuses_calls_out_of_order(misuse: str, error: type) -> None:
    fake, rec = FakeXr(), Recorder()
    session = make(fake, rec).open()
    api, s = fake, session.session
    begin_info = xr.SessionBeginInfo(xr.ViewConfigurationType.PRIMARY_STEREO)
    with pytest.raises(error):
        if misuse == "begin_session_in_idle":
            fake.state = xr.SessionState.IDLE
            api.begin_session(s, begin_info)
        elif misuse == "frame_before_begin_session":
            api.wait_frame(s)
        else:
            run_frames(session, rec, 4)  # now FOCUSED and running
            if misuse == "end_session_while_focused":
                api.end_session(s)
            elif misuse == "wait_twice":
                api.wait_frame(s)
                api.wait_frame(s)
            elif misuse == "begin_without_wait":
                api.begin_frame(s)
            elif misuse == "end_without_begin":
                api.end_frame(s, xr.FrameEndInfo(display_time=fake.now_ns))
            elif misuse == "end_with_wrong_time":
                state = api.wait_frame(s)
                api.begin_frame(s)
                api.end_frame(s, xr.FrameEndInfo(display_time=state.predicted_display_time + 1))
            elif misuse == "release_without_acquire":
                api.release_swapchain_image(session._swapchains[0])
    assert fake.violations


def test_discarded_frame_is_not_an_error() -> None:
    fake, rec = FakeXr(), Recorder()
    with make(fake, rec) as session:
        run_frames(session, rec, 4)
        plan = session.begin_frame()
        assert plan is not None
        # The app loses a frame (never ends it): the next begin reports FRAME_DISCARDED.
        plan2 = session.begin_frame()
        assert plan2 is not None
        session.end_frame(plan2, rec.copy)
    assert fake.violations == []


# -- set-up errors --------------------------------------------------------------------------


def test_no_runtime_names_the_variable_the_runtimes_and_desktop(monkeypatch) -> None:
    monkeypatch.setenv("XR_RUNTIME_JSON", "/nowhere/openxr_monado.json")
    with pytest.raises(XrRuntimeUnavailable) as info:
        make(FakeXr(runtime_available=False), Recorder()).open()
    text = str(info.value)
    assert "XR_RUNTIME_JSON is set to '/nowhere/openxr_monado.json' (no such file)" in text
    for word in ("SteamVR", "Monado", "Oculus", "Varjo", "Windows Mixed Reality", "--desktop"):
        assert word in text


def test_no_runtime_without_the_variable(monkeypatch) -> None:
    monkeypatch.delenv("XR_RUNTIME_JSON", raising=False)
    with pytest.raises(XrRuntimeUnavailable, match="XR_RUNTIME_JSON is not set"):
        make(FakeXr(runtime_available=False), Recorder()).open()


def test_no_headset() -> None:
    fake = FakeXr(headset=False)
    with pytest.raises(XrHeadsetUnavailable, match=r"no head-mounted display .*--desktop"):
        make(fake, Recorder()).open()
    assert fake.calls[-1] == "destroy_instance"  # the instance was cleaned up


def test_runtime_without_opengl_extension() -> None:
    with pytest.raises(XrFeatureMissing, match="does not offer XR_KHR_opengl_enable"):
        make(FakeXr(extensions=("XR_KHR_vulkan_enable",)), Recorder()).open()


def test_runtime_without_srgb_format_names_them() -> None:
    fake = FakeXr(formats=(GL_RGBA8,))
    with pytest.raises(
        XrFeatureMissing, match=r"wanted GL_SRGB8_ALPHA8 or GL_SRGB8, offered GL_RGBA8"
    ):
        make(fake, Recorder()).open()
    assert fake.session is None and fake.instance is None  # nothing leaked


def test_stage_missing_falls_back_to_local_and_says_so() -> None:
    fake, rec = FakeXr(stage=False), Recorder()
    with make(fake, rec) as session:
        assert session.space_type == "LOCAL"
        warning = [e for e in rec.events if e.kind == "reference_space_fallback"]
        assert warning and warning[0].severity == "warning"
        assert "LOCAL" in warning[0].message and "STAGE not offered" in warning[0].message
        run_frames(session, rec, 5)
        pose = session.locate_head(fake.now_ns)
        assert pose is not None and math.isclose(pose.position_xr[1], 0.05, abs_tol=1e-9)


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="0 < near_m < far_m"):
        XrSettings(near_m=1.0, far_m=0.5)
