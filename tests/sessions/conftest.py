"""Helpers to run short simulated sessions straight through the runner (no CLI, no render)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vrbalance.clock import Clock, MonotonicClock
from vrbalance.sessions.protocol import Protocol, Trial
from vrbalance.sessions.runner import (
    LiveSink,
    OperatorControls,
    SessionResult,
)
from vrbalance.sessions.store import Patient
from vrbalance.sessions.synthetic import run_simulated_session

RunSession = Callable[..., SessionResult]


def _quiet(name: str, duration_s: float, **kw: object) -> Trial:
    return Trial(
        name=name,
        kind="exercise",
        scene="park",
        stance="feet_apart",
        duration_s=duration_s,
        **{"level": 1, **kw},  # type: ignore[arg-type]
    )


@pytest.fixture
def quiet() -> Callable[..., Trial]:
    """``quiet(name, duration_s, **fields) -> Trial``: a quiet-stance trial in the park."""
    return _quiet


@pytest.fixture
def run_session(tmp_path: Path) -> RunSession:
    """``run_session(trials, controls=None, script="", patient=None) -> SessionResult``.

    ``clock`` and ``live`` (a :class:`~vrbalance.sessions.runner.LiveSink`) are
    for a test that shares the session's clock with what watches it live.
    """
    counter = iter(range(1000))

    def run(
        trials: list[Trial],
        *,
        controls: OperatorControls | None = None,
        script: str = "",
        patient: Patient | None = None,
        name: str = "test",
        start_levels: dict[str, int] | None = None,
        seconds_scale: float = 0.01,
        clock: Clock | None = None,
        live: LiveSink | None = None,
    ) -> SessionResult:
        patient = patient or Patient("T1", birth_year=1950, height_m=1.70, mass_kg=70.0)
        clock = clock or MonotonicClock()
        protocol = Protocol(name=name, title=name, description="", trials=tuple(trials))
        return run_simulated_session(
            protocol,
            patient,
            tmp_path / "sessions" / patient.id / f"s{next(counter)}",
            clock=clock,
            person_seed=3,
            extra_script=script,
            controls=controls,
            start_levels=start_levels,
            live=live,
            # Trials here are short as if scaled by this; the envelope's 30 s rest
            # between trials and its limits are scaled the same way.
            seconds_scale=seconds_scale,
        )

    return run


RunWithWorld = Callable[..., SessionResult]


@pytest.fixture
def run_with_world(tmp_path: Path) -> RunWithWorld:
    """``run_with_world(world, trials, render_fps=..., **runner_options) -> SessionResult``.

    A simulated session straight through :class:`SessionRunner` with ``world``
    as its world (a test's own world that watches what the runner asks of it),
    recorded in ``tmp_path / "s"``; ``seconds_scale`` defaults to 0.01.
    """
    from vrbalance.balance.geometry import Body
    from vrbalance.sessions.runner import SessionRunner, SimulatedDevices

    def run(
        world: object, trials: list[Trial], *, seed: int = 3, **options: object
    ) -> SessionResult:
        clock = MonotonicClock()
        runner = SessionRunner(
            Protocol(name="t", title="t", description="", trials=tuple(trials)),
            Patient("T1", birth_year=1950, height_m=1.70, mass_kg=70.0),
            folder=tmp_path / "s",
            session_id="s",
            devices=SimulatedDevices("wii-balance-board", Body(1.70, 70.0), clock, seed=seed),
            clock=clock,
            world=world,  # type: ignore[arg-type]
            **{"seconds_scale": 0.01, **options},  # type: ignore[arg-type]
        )
        return runner.run()

    return run
