"""Shared fixtures for the device tests: the two shipped plates and a pty pair."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import tty
from collections.abc import Callable, Iterator

import pytest

from vrbalance.config.plates import PlateSpec, load_plate

# Helpers beside the tests (evdev_streams) import by name under --import-mode=importlib.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture(scope="session")
def wii() -> PlateSpec:
    return load_plate("wii-balance-board")


@pytest.fixture(scope="session")
def six_axis() -> PlateSpec:
    return load_plate("generic-six-axis")


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    """A raw pseudo-terminal: (master fd the test writes to, slave path the driver opens)."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    path = os.ttyname(slave)
    try:
        yield master, path
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):  # the test may have closed it (unplug)
                os.close(fd)


@pytest.fixture(autouse=True)
def _private_data_folder(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep a developer's own measured calibrations out of the tests."""
    monkeypatch.setenv("VRBALANCE_DATA", str(tmp_path_factory.mktemp("data")))


def _wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.002)


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """``wait_until(condition, timeout_s=5.0)``: poll a condition a device thread sets.

    A deadline long enough to tell a hang from a busy machine, not a fixed
    sleep: the test goes on as soon as the condition holds.
    """
    return _wait_until
