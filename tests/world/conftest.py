"""Fixtures for world tests: one shared offscreen app, fresh apps, the artefact folder.

Mesa's llvmpipe JIT-compiles a fragment program for every new combination of
render state (lit, textured, fogged ...) per GL context, which costs seconds
on this class of machine. Rendering tests in a module therefore share one app
(``app``), reset to park level 1 with default view before each test; tests
about opening and closing make their own (``make_app``), which closes the
shared one first. Panda3D allows one ShowBase per process at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vrbalance.clock import ManualClock
from vrbalance.world.app import WorldApp

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "world"
#: Size of the shared app's output: big enough to look at, small enough to be quick.
SHARED_SIZE_PX = (512, 288)


@pytest.fixture
def artifacts() -> Path:
    """Where rendering tests keep their PNGs (gitignored; look at them)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


class _Shared:
    """Holds the shared app; ``make_app`` closes it (Panda3D allows one ShowBase at a time)."""

    def __init__(self) -> None:
        self.app: WorldApp | None = None

    def close(self) -> None:
        if self.app is not None:
            self.app.close()
            self.app = None


@pytest.fixture(scope="module")
def _shared() -> Iterator[_Shared]:
    # Module scope: closed when a test module is done, so another module can open
    # its own WorldApp (Panda3D allows one ShowBase per process at a time).
    holder = _Shared()
    yield holder
    holder.close()


@pytest.fixture
def app(_shared: _Shared) -> Iterator[WorldApp]:
    """The shared offscreen app at park level 1, default head, no listeners, not stopped."""
    if _shared.app is None:
        _shared.app = WorldApp(output="offscreen", size_px=SHARED_SIZE_PX, clock=ManualClock())
        _shared.app.open()
    shared_app = _shared.app
    shared_app.acknowledge_stop()
    shared_app.view_root.clearTransform()  # a test's recentre does not carry over
    shared_app.set_scene("park", 1)
    shared_app.step_frames(1)
    shared_app.set_head_source(None)
    yield shared_app
    shared_app._listeners.clear()
    shared_app.set_head_source(None)


@pytest.fixture
def make_app(_shared: _Shared) -> Iterator[Callable[..., WorldApp]]:
    """Open fresh offscreen apps (tiny by default, ManualClock); all closed at teardown."""
    _shared.close()
    apps: list[WorldApp] = []

    def factory(**kwargs: object) -> WorldApp:
        kwargs.setdefault("output", "offscreen")
        kwargs.setdefault("size_px", (64, 36))
        kwargs.setdefault("clock", ManualClock())
        app = WorldApp(**kwargs)  # type: ignore[arg-type]
        apps.append(app)
        return app.open()

    yield factory
    for app in reversed(apps):
        app.close()
