"""Synthetic session recordings of any length, in the real format (tests and benchmarks).

:func:`write_synthetic_session` writes a complete, closed session folder
through the real :class:`~vrbalance.sessions.recorder.SessionRecorder`: one
plate frame, one head pose and one balance state per tick (a random-walk sway),
trial start/end events and ``trials.csv`` rows. It is not a simulated patient
(see :mod:`vrbalance.sessions.sim` for that): nothing here goes through the
balance estimator, so these recordings do not replay; they exist to measure
and test filing, storage and reports at realistic sizes.

:func:`run_simulated_session` is the other kind: a session of the simulated
person run through the real session runner, as the tests' and benchmarks'
fixtures run one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vrbalance.balance.state import BalanceState
from vrbalance.events import Event
from vrbalance.samples import HeadPose, PlateFrame
from vrbalance.sessions.recorder import SessionRecorder

if TYPE_CHECKING:
    from vrbalance.clock import Clock
    from vrbalance.sessions.protocol import Protocol
    from vrbalance.sessions.runner import SessionResult
    from vrbalance.sessions.store import Patient


def write_synthetic_session(
    folder: Path,
    *,
    session_id: str,
    patient_id: str,
    duration_s: float,
    rate_hz: float = 250.0,
    trials: int = 1,
    started_utc: str = "2026-03-01T10:00:00.000000Z",
    envelope: Mapping[str, Any] | None = None,
    envelope_version: int = 0,
    seed: int = 0,
) -> Path:
    """Write a closed session folder of ``duration_s`` seconds split into ``trials`` trials.

    Parameters
    ----------
    folder : Path
        The session folder to create (must not exist or be empty).
    session_id, patient_id : str
        Identifiers written to the sidecar.
    duration_s : float
        Recorded time in s (all trials together).
    rate_hz : float
        Ticks per second (each tick: a plate frame, a head pose, a state).
    trials : int
        Number of trials (quiet stance in the park, levels 1, 2, ...).
    started_utc : str
        The sidecar's start time (sessions sort by it).
    envelope : Mapping, optional
        The envelope recorded as the one the session ran with.
    envelope_version : int
        Its version (recorded in the sidecar's patient record).
    seed : int
        Seed of the sway random walk.

    Returns
    -------
    Path
        ``folder``.
    """
    rng = np.random.default_rng(seed)
    n_per_trial = max(2, int(duration_s * rate_hz / trials))
    meta = {
        "session_id": session_id,
        "patient_id": patient_id,
        "patient": {"id": patient_id, "envelope_version": envelope_version},
        "protocol": {"name": "synthetic", "title": "Synthetic recording"},
        "rate_hz": rate_hz,
        "clock_origin_s": 0.0,
        "plate": {"id": "wii-balance-board"},
        "started_utc": started_utc,
        "body": {"height_m": 1.7, "mass_kg": 70.0},
        "envelope": dict(envelope or {}),
        "simulated": True,
    }
    dt = 1.0 / rate_hz
    t = 0.0
    seq = 0
    with SessionRecorder(Path(folder), meta) as rec:
        for trial in range(trials):
            cop = np.cumsum(rng.normal(0.0, 2e-4, (n_per_trial, 2)), axis=0)
            start = t
            rec.event(trial, Event(t, "session", "trial_start", f"trial {trial} starts"))
            for k in range(n_per_trial):
                x, y = float(cop[k, 0]), float(cop[k, 1])
                w = 170.0 + 10.0 * y
                rec.plate(
                    k,
                    trial,
                    [PlateFrame(seq, t, t, (w - x * 50, w + x * 50, w - 2, w + 2), "cells4")],
                )
                seq += 1
                rec.head(k, trial, HeadPose(t, t, (x, y, 1.6), (0.0, 0.0, 0.0, 1.0), True))
                rec.state(
                    trial,
                    BalanceState(
                        tick=k,
                        t_s=t,
                        stance="feet_apart",
                        cop_m=(x, y),
                        vertical_force_n=4 * w,
                        plate_loaded=True,
                        com_m=(x * 0.5, y * 0.5),
                        xcom_m=(x * 0.55, y * 0.55),
                        margin_xcom_m=0.08 - abs(y),
                        head_position_m=(x, y, 1.6),
                        sway_angle_ap_rad=y / 0.9,
                    ),
                    level=trial + 1,
                    response="none",
                    plate_status="streaming",
                )
                t += dt
            rec.event(
                trial,
                Event(t - dt, "session", "trial_end", f"trial {trial} ends", values={"ticks": k}),
            )
            rec.trial_finished(
                {
                    "trial": trial,
                    "name": f"Quiet {trial + 1}",
                    "kind": "exercise",
                    "scene": "park",
                    "stance": "feet_apart",
                    "eyes": "open",
                    "surface": "firm",
                    "surround": "fixed",
                    "assessment": "none",
                    "condition": 0,
                    "director": 1,
                    "level": trial + 1,
                    "planned_s": n_per_trial * dt,
                    "start_t_s": start,
                    "end_t_s": t - dt,
                    "end_reason": "completed",
                }
            )
        rec.close(status="complete", end_reason="completed")
    return Path(folder)


def run_simulated_session(
    protocol: Protocol,
    patient: Patient,
    folder: Path,
    *,
    clock: Clock,
    person_seed: int = 3,
    extra_script: str = "",
    plate_process: bool | None = None,
    **runner_options: Any,
) -> SessionResult:
    """Run ``protocol`` for the simulated ``patient`` on a simulated Wii Balance Board.

    The simulated person has the patient's height (1.70 m if unknown) and
    mass; the session's id is ``folder``'s name and its metadata marks it
    simulated. Tests and benchmarks share this so that their sessions are
    built one way.

    Parameters
    ----------
    protocol, patient, folder
        What to run, for whom, and where it is recorded.
    clock
        The session's clock (a manual one keeps the plate in-process).
    person_seed
        The simulated person's seed (``seed`` among ``runner_options`` is the
        runner's, the director's).
    extra_script, plate_process
        Passed to :class:`~vrbalance.sessions.runner.SimulatedDevices`.
    **runner_options
        Further :class:`~vrbalance.sessions.runner.SessionRunner` arguments.

    Returns
    -------
    SessionResult
        What :meth:`~vrbalance.sessions.runner.SessionRunner.run` returns.
    """
    from vrbalance.sessions.runner import SessionRunner, SimulatedDevices, patient_body

    devices = SimulatedDevices(
        "wii-balance-board",
        patient_body(patient),
        clock,
        seed=person_seed,
        extra_script=extra_script,
        plate_process=plate_process,
    )
    return SessionRunner(
        protocol,
        patient,
        folder=folder,
        session_id=folder.name,
        devices=devices,
        clock=clock,
        metadata={"simulated": True},
        **runner_options,
    ).run()
