"""Against a real OpenXR runtime, when one is configured (``XR_RUNTIME_JSON``).

Runs only when ``XR_RUNTIME_JSON`` names an existing runtime manifest and an
X display is available for Panda3D's GLX context (on Linux), e.g. Monado
with its null compositor and simulated HMD under Xvfb::

    XR_RUNTIME_JSON=.../openxr_monado-dev.json XRT_COMPOSITOR_NULL=1 DISPLAY=:99 \\
        python -m pytest tests/xr -m xr
"""

from __future__ import annotations

import os
import sys
import threading

import pytest

from vrbalance.clock import MonotonicClock
from vrbalance.xr.head_source import XrHeadPoseSource
from vrbalance.xr.output import XrOutput

FRAMES = 300


def _skip_reason() -> str | None:
    path = os.environ.get("XR_RUNTIME_JSON")
    if not path:
        return "no OpenXR runtime configured: set XR_RUNTIME_JSON to a runtime manifest"
    if not os.path.isfile(path):
        return f"XR_RUNTIME_JSON={path!r} does not exist"
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        return "no X display (DISPLAY) for a GLX context; run under Xvfb"
    return None


pytestmark = [
    pytest.mark.xr,
    pytest.mark.slow,
    pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or ""),
]


class GlxWorld:
    """A ShowBase with a desktop window through ``pandagl`` (a GLX context runtimes share)."""

    def __init__(self) -> None:
        from direct.showbase.ShowBase import ShowBase
        from panda3d.core import loadPrcFileData

        self._page = loadPrcFileData(
            "xr-real",
            "load-display pandagl\naudio-library-name null\nsync-video 0\nwin-size 160 90\n"
            "notify-level-device fatal",
        )
        self.base = ShowBase(windowType="onscreen")
        self.render = self.base.render
        cube = self.base.loader.loadModel("models/box")
        cube.reparent_to(self.render)
        cube.set_pos(0, 2, 1.5)

    def close(self) -> None:
        from panda3d.core import unloadPrcFile

        self.base.destroy()
        unloadPrcFile(self._page)


def test_real_runtime_runs_a_few_hundred_frames_and_tracks_the_head() -> None:
    clock = MonotonicClock()
    head = XrHeadPoseSource(clock)
    world = GlxWorld()
    poses: list[object] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            pose = head.pose_at(clock.now_s())
            if pose is not None:
                poses.append(pose)
            stop.wait(0.004)

    thread = threading.Thread(target=loop)
    try:
        with XrOutput(world, head_source=head, clock=clock) as out:
            thread.start()
            for _ in range(FRAMES):
                world.base.taskMgr.step()
            stats = out.stats()
            out.request_exit()
            for _ in range(100):
                world.base.taskMgr.step()
                if out.session.exiting:
                    break
            session = out.session
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
        world.close()
    print(f"\nreal runtime {session.runtime_name}: {stats}")
    assert session.swapchain_format is not None
    assert "FOCUSED" in stats.states_seen or "VISIBLE" in stats.states_seen
    assert stats.frames_submitted >= FRAMES - 5
    assert stats.frames_rendered > FRAMES // 2
    assert poses, "the loop thread got no head pose"
    assert session.exiting  # the runtime walked the session to EXITING after our request
    assert [s.name for s in session.states_seen][-1] == "EXITING"
