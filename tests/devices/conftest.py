"""Shared fixtures for the device tests: the two shipped plates and a pty pair."""

from __future__ import annotations

import contextlib
import os
import tty
from collections.abc import Iterator

import pytest

from vrbalance.config.plates import PlateSpec, load_plate


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
