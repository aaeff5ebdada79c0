"""Fixtures for the end-to-end safety tests; the rig itself is ``safety_rig.py``.

``safety_rig`` is made importable by name (the tests run with
``--import-mode=importlib``, where test folders are not on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from safety_rig import Rig  # noqa: E402


@pytest.fixture(autouse=True)
def _private_data_folder(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep a developer's own measured calibrations out of the tests."""
    monkeypatch.setenv("VRBALANCE_DATA", str(tmp_path_factory.mktemp("data")))


@pytest.fixture
def rig_factory() -> Iterator[Callable[..., Rig]]:
    """Open rigs (``factory(script, **kwargs)``); all closed at teardown, newest first."""
    stack = contextlib.ExitStack()

    def factory(script: str, **kwargs: Any) -> Rig:
        return stack.enter_context(Rig(script, **kwargs))

    with stack:
        yield factory
