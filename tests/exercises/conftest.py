"""Run exercise protocols through the real session runner, fast.

Head-only trials (the tandem walk) have no plate thread, so they run on a
:class:`~vrbalance.clock.ManualClock`: a minute of walking takes a couple of
seconds and sees perfect timing. Plate trials stream through the simulated
plate's pseudo-terminal in real time, so they run shortened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from vrbalance.clock import Clock, ManualClock, MonotonicClock
from vrbalance.sessions.protocol import Protocol, load_protocol
from vrbalance.sessions.runner import SessionResult
from vrbalance.sessions.store import Patient
from vrbalance.sessions.synthetic import run_simulated_session

RunProtocol = Callable[..., SessionResult]


@pytest.fixture
def run_protocol(tmp_path: Path) -> RunProtocol:
    """``run_protocol(name(s), trials=1, seconds_scale=1.0, level=None, manual=True)``.

    Several protocol names run their first ``trials`` trials each in one session.
    """
    counter = iter(range(100))

    def run(
        name: str | list[str],
        *,
        trials: int = 1,
        seconds_scale: float = 1.0,
        level: int | None = None,
        manual: bool = True,
        seed: int = 3,
    ) -> SessionResult:
        patient = Patient("T1", birth_year=1950, height_m=1.70, mass_kg=70.0)
        clock: Clock = ManualClock(100.0) if manual else MonotonicClock()
        names = [name] if isinstance(name, str) else name
        parts = [load_protocol(n, with_baseline=False, seconds_scale=seconds_scale) for n in names]
        loaded = parts[0]
        chosen = tuple(t for part in parts for t in part.trials[:trials])
        if level is not None:
            chosen = tuple(replace(t, level=level, director=False) for t in chosen)
        protocol = Protocol(loaded.name, loaded.title, loaded.description, chosen, loaded.source)
        return run_simulated_session(
            protocol,
            patient,
            tmp_path / f"s{next(counter)}",
            clock=clock,
            person_seed=seed,
            seconds_scale=seconds_scale,
            seed=seed,
        )

    return run
