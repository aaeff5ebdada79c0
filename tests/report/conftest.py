"""A synthetic but complete recording for report tests (no devices, made in milliseconds)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from vrbalance.balance.state import BalanceState
from vrbalance.events import Event
from vrbalance.sessions.recorder import SessionRecorder

RATE_HZ = 100.0
TRIALS = [
    # name, assessment, condition, eyes, surface, surround, end_reason
    ("Baseline", "none", 0, "open", "firm", "fixed", "completed"),
    ("SOT 3", "sot", 3, "open", "firm", "sway_referenced", "completed"),
    ("mCTSIB 2", "mctsib", 2, "closed", "firm", "fixed", "completed"),
    ("LoS", "los", 0, "open", "firm", "fixed", "completed"),
    ("Crowd", "none", 0, "open", "firm", "fixed", "safety_stop"),
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every warning in a report test is an error (a report must not leak matplotlib's)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.filterwarnings("error"))


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    """A session folder with baseline, SOT, mCTSIB, LoS and a safety-stopped trial."""
    folder = tmp_path / "P9" / "session"
    rng = np.random.default_rng(7)
    meta = {
        "session_id": "P9-test",
        "patient_id": "P9",
        "patient": {"id": "P9", "birth_year": 1950},
        "protocol": {
            "name": "mixed",
            "title": "Mixed test protocol",
            # The tasks, as a protocol's trials carry them (trials.csv has none).
            "trials": [
                {"name": t[0], "task": {"LoS": "reach", "Crowd": "walk"}.get(t[0], "quiet")}
                for t in TRIALS
            ],
        },
        "rate_hz": RATE_HZ,
        "clock_origin_s": 100.0,
        "plate": {"id": "wii-balance-board"},
        "foot_template": "adult",
        "started_utc": "2026-03-01T10:00:00.000000Z",
        "body": {"height_m": 1.7, "mass_kg": 70.0},
    }
    t = 100.0
    with SessionRecorder(folder, meta) as rec:
        for i, (name, assessment, cond, eyes, surface, surround, end) in enumerate(TRIALS):
            n = int(4 * RATE_HZ)
            cop = np.cumsum(rng.normal(0, 3e-4, (n, 2)), axis=0)
            com = cop * 0.5
            if assessment == "los":
                for k in range(4):
                    d = k * math.pi / 2
                    rec.event(
                        i,
                        Event(
                            t + k,
                            "session",
                            "los_target",
                            f"target {k + 1}",
                            values={"direction_rad": d, "distance_m": 0.1},
                        ),
                    )
                    seg = slice(int(k * RATE_HZ), int((k + 1) * RATE_HZ))
                    s = np.clip(np.linspace(-0.3, 1.5, seg.stop - seg.start), 0, 1)
                    com[seg] = np.outer(0.07 * s, [math.sin(d), math.cos(d)])
            start = t
            for k in range(n):
                rec.state(
                    i,
                    BalanceState(
                        tick=k,
                        t_s=t,
                        stance="feet_apart",
                        cop_m=(cop[k, 0], cop[k, 1]),
                        plate_loaded=True,
                        com_m=(com[k, 0], com[k, 1]),
                        xcom_m=(com[k, 0] * 1.1, com[k, 1] * 1.1),
                        margin_xcom_m=0.08,
                        sway_angle_ap_rad=com[k, 1] / 0.9,
                    ),
                    level=i + 1,
                    response="calm" if end == "safety_stop" and k > n // 2 else "none",
                )
                t += 1 / RATE_HZ
            if end == "safety_stop":
                rec.event(
                    i,
                    Event(
                        t - 0.5,
                        "safety",
                        "cop_off_bos",
                        "CoP left the base",
                        "alarm",
                        {"margin_m": -0.01},
                    ),
                )
            rec.trial_finished(
                {
                    "trial": i,
                    "name": name,
                    "kind": "assessment" if assessment != "none" else "exercise",
                    "scene": "crowd" if name == "Crowd" else "park",
                    "stance": "feet_apart",
                    "eyes": eyes,
                    "surface": surface,
                    "surround": surround,
                    "assessment": assessment,
                    "condition": cond,
                    "level": i + 1,
                    "planned_s": 4.0,
                    "start_t_s": start,
                    "end_t_s": t - 1 / RATE_HZ,
                    "end_reason": end,
                }
            )
    return folder
