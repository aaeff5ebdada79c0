"""Fixtures for world tests: one shared offscreen app, fresh apps, the artefact folder.

Mesa's llvmpipe JIT-compiles a fragment program for every new combination of
render state (lit, textured, fogged ...) per GL context, which costs seconds
on this class of machine. Rendering tests in a module therefore share one app
(``app``), reset to park level 1 with default view before each test; tests
about opening and closing make their own (``make_app``), which closes the
shared one first. Panda3D allows one ShowBase per process at a time.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
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


@pytest.fixture
def xvfb() -> Iterator[str]:
    """A private Xvfb on a display number it picks itself; yields ``DISPLAY``.

    ``-displayfd`` has the server take the first free display and write its
    number once it accepts connections: a fixed number (":87") collided with
    the same test of another suite run on this machine, whose server then
    vanished under this one. Skips where Xvfb is not installed or never starts.
    """
    binary = shutil.which("Xvfb")
    if binary is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [binary, "-displayfd", str(write_fd), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    number = b""
    deadline = time.monotonic() + 30.0  # long enough to tell "never starts" from "busy"
    try:
        while not number.endswith(b"\n"):
            left_s = deadline - time.monotonic()
            if left_s <= 0 or not select.select([read_fd], [], [], left_s)[0]:
                break
            chunk = os.read(read_fd, 16)
            if not chunk:  # the server exited
                break
            number += chunk
    finally:
        os.close(read_fd)
    if not number.strip().isdigit():
        proc.kill()
        proc.wait(timeout=10)
        pytest.skip("Xvfb did not start")
    try:
        yield f":{number.strip().decode()}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
