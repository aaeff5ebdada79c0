"""Safety envelope, safety monitor and scenario director (pure logic: no Panda3D, no I/O).

- :mod:`vrbalance.director.envelope`: :class:`SafetyEnvelope`, :data:`HARD_CAPS`,
  :func:`allowed_levels`.
- :mod:`vrbalance.director.monitor`: :class:`SafetyMonitor` and the pure
  :func:`evaluate` run every balance-loop tick.
- :mod:`vrbalance.director.director`: :class:`Director`, the weighted up-down
  staircase between trials.
- :mod:`vrbalance.director.probe`: helpers to drive and measure the monitor
  (synthetic streams, latency probe) for tests and integration.
"""

from vrbalance.director.director import (
    Baseline,
    Decision,
    Director,
    StaircaseConfig,
    SuccessCriteria,
    TrialOutcome,
    TrialPlan,
    judge,
    ladders_from_scenes,
)
from vrbalance.director.envelope import (
    HARD_CAPS,
    HardCaps,
    MonitorThresholds,
    SafetyEnvelope,
    allowed_levels,
    check_trial_plan,
    default_envelope,
)
from vrbalance.director.monitor import (
    HeadsetStatus,
    MonitorMemory,
    MonitorStatus,
    PlateStatus,
    Response,
    SafetyMonitor,
    Trigger,
    Verdict,
    evaluate,
)

__all__ = [
    "HARD_CAPS",
    "Baseline",
    "Decision",
    "Director",
    "HardCaps",
    "HeadsetStatus",
    "MonitorMemory",
    "MonitorStatus",
    "MonitorThresholds",
    "PlateStatus",
    "Response",
    "SafetyEnvelope",
    "SafetyMonitor",
    "StaircaseConfig",
    "SuccessCriteria",
    "TrialOutcome",
    "TrialPlan",
    "Trigger",
    "Verdict",
    "allowed_levels",
    "check_trial_plan",
    "default_envelope",
    "evaluate",
    "judge",
    "ladders_from_scenes",
]
