"""Fixtures for the director tests: clean quiet-stance input from the BDS data set."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, filtfilt

from vrbalance.balance.state import BalanceState

#: The excerpt the repository ships (gzipped, read by ``np.loadtxt`` as is).
BDS_DIR = Path(__file__).resolve().parents[1] / "data" / "bds"

#: Half-widths of a feet-apart base of support centred on the mean CoP, in m:
#: about 30 cm across the two feet (x) and a 25 cm foot length (y).
BOS_HALF_X_M = 0.14
BOS_HALF_Y_M = 0.12
#: Inverted-pendulum length for omega0 = sqrt(g / l) (Hof 2005), in m.
PENDULUM_M = 0.9


def bds_states(path: Path, rate_hz: float = 100.0) -> list[BalanceState]:
    """Balance states from one BDS trial, computed here from the raw forces and moments.

    CoP = (-My/Fz, Mx/Fz) (the data set's own definition), centred on its mean;
    CoM = CoP low-passed at 0.5 Hz (zero phase); XCoM = CoM + v/omega0; margins
    to a centred rectangular feet-apart base of support; a head 1.60 m high
    swaying with the CoM; fresh plate frames and head poses.
    """
    data = np.loadtxt(path, skiprows=1)
    fx, fy, fz, mx, my = (data[:, i] for i in (1, 2, 3, 4, 5))
    del fx, fy
    cop = np.column_stack((-my / fz, mx / fz))
    cop -= cop.mean(axis=0)
    b, a = butter(2, 0.5 / (rate_hz / 2.0))
    com = filtfilt(b, a, cop, axis=0)
    vel = np.gradient(com, 1.0 / rate_hz, axis=0)
    omega0 = math.sqrt(9.81 / PENDULUM_M)
    xcom = com + vel / omega0

    def margin(p: np.ndarray) -> np.ndarray:
        return np.minimum(BOS_HALF_X_M - np.abs(p[:, 0]), BOS_HALF_Y_M - np.abs(p[:, 1]))

    m_cop, m_xcom = margin(cop), margin(xcom)
    states = []
    for i in range(len(fz)):
        states.append(
            BalanceState(
                tick=i,
                t_s=i / rate_hz,
                stance="feet_apart",
                cop_m=(float(cop[i, 0]), float(cop[i, 1])),
                vertical_force_n=float(fz[i]),
                plate_loaded=True,
                com_m=(float(com[i, 0]), float(com[i, 1])),
                com_velocity_mps=(float(vel[i, 0]), float(vel[i, 1])),
                xcom_m=(float(xcom[i, 0]), float(xcom[i, 1])),
                margin_xcom_m=float(m_xcom[i]),
                margin_cop_m=float(m_cop[i]),
                head_position_m=(float(com[i, 0] * 1.9), float(com[i, 1] * 1.9), 1.60),
                head_age_s=0.005,
                plate_age_s=0.0,
            )
        )
    return states


@pytest.fixture(scope="session")
def bds_trials() -> dict[str, list[BalanceState]]:
    """All BDS quiet-stance trials of ``tests/data/bds`` as balance-state streams.

    The repository ships the excerpt, so a missing file fails the tests rather
    than skipping them (a skip here once hid that they never ran in a clone).
    """
    paths = sorted(BDS_DIR.glob("BDS000*.txt.gz"))
    if not paths:
        raise FileNotFoundError(f"no BDS000*.txt.gz in {BDS_DIR}: the excerpt ships with the repo")
    return {p.name.removesuffix(".txt.gz"): bds_states(p) for p in paths}
