"""Drive and measure the safety monitor: synthetic balance streams and a latency probe.

Two tools for tests, benchmarks and integration (the end-to-end check that a
scripted loss of balance on the simulated plate, through the real balance
loop, calms the world within one tick):

- :func:`synthetic_stream` makes a list of :class:`BalanceState` for a named
  scenario (quiet stance, lean out of the base of support, fall, step off,
  lost inputs ...) with the tick at which the scenario's condition starts.
- :class:`MonitorProbe` wraps a :class:`SafetyMonitor` (or anything with
  ``step(state) -> Verdict``), is itself callable like the monitor, records
  every ``(state, verdict)`` pair, and measures the latency from the first
  state that crossed a threshold to the first calm verdict, in ticks.

Typical end-to-end use with the balance loop::

    probe = MonitorProbe(SafetyMonitor(envelope, status=MonitorStatus(headset=...)))
    loop = BalanceLoop(..., monitor=probe)         # the loop calls probe(state)
    ... run the simulated plate's scripted fall ...
    report = probe.latency(edge_margin_m=envelope.monitor.edge_margin_m)
    assert report.calm_tick is not None and report.ticks_after_dwell == 0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vrbalance.balance.state import BalanceState
from vrbalance.director.monitor import _EPS_S as _DWELL_EPS_S
from vrbalance.director.monitor import Response, SafetyMonitor, Verdict

__all__ = ["SCENARIOS", "LatencyReport", "MonitorProbe", "Scenario", "synthetic_stream"]

#: Named scenarios of :func:`synthetic_stream`.
SCENARIOS: tuple[str, ...] = (
    "quiet",
    "near_edge",
    "lean_out",
    "head_fall",
    "head_drop_slow_fall",
    "step_off",
    "load_collapse",
    "cop_jump",
    "cop_off_bos",
    "plate_stale",
    "head_stale",
    "head_lost",
)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A synthetic stream and where its condition starts.

    Attributes
    ----------
    name : str
    states : tuple of BalanceState
    onset_tick : int or None
        First tick at which the scenario's condition holds (``None`` for quiet).
    """

    name: str
    states: tuple[BalanceState, ...]
    onset_tick: int | None


def synthetic_stream(
    name: str,
    *,
    rate_hz: float = 250.0,
    duration_s: float = 2.0,
    onset_s: float = 1.0,
    stance: str = "feet_apart",
    standing_margin_m: float = 0.08,
    head_height_m: float = 1.60,
    body_weight_n: float = 700.0,
) -> Scenario:
    """A stream of balance states for one named scenario.

    Before ``onset_s`` every stream is quiet stance: CoP and XCoM 8 cm inside
    the base of support with a 5 mm, 0.3 Hz sway, full load, a fresh head pose
    1.60 m high swaying by 2 mm, fresh plate frames. From the onset tick the
    named condition holds (e.g. ``"lean_out"``: the XCoM margin falls at
    0.2 m/s through zero; ``"head_fall"``: the head falls with 9.81 m/s^2).

    Parameters
    ----------
    name : str
        One of :data:`SCENARIOS`.
    rate_hz : float
        Tick rate of the stream (the balance loop's rate).
    """
    if name not in SCENARIOS:
        raise ValueError(f"scenario: expected one of {', '.join(SCENARIOS)}, got {name!r}")
    dt = 1.0 / rate_hz
    n = round(duration_s * rate_hz)
    onset = round(onset_s * rate_hz)
    states: list[BalanceState] = []
    for tick in range(n):
        t = tick * dt
        after = tick >= onset and name != "quiet"
        since = (tick - onset) * dt if after else 0.0
        sway = 0.005 * math.sin(2.0 * math.pi * 0.3 * t)
        margin = standing_margin_m - abs(sway)
        cop = (sway, 0.02 + 0.5 * sway)
        force: float | None = body_weight_n
        loaded = True
        plate_age: float | None = 0.002
        head: tuple[float, float, float] | None = (sway * 1.5, 0.02, head_height_m + 0.4 * sway)
        head_age: float | None = 0.005
        margin_cop = margin
        if after:
            if name == "near_edge":
                margin = 0.02
                margin_cop = 0.02
            elif name == "lean_out":
                margin = standing_margin_m - 0.2 * (since + dt)
                margin_cop = margin + 0.02
                cop = (standing_margin_m - margin_cop, cop[1])
            elif name == "head_fall":
                z = head_height_m - 0.5 * 9.81 * since**2
                head = (head[0], head[1], max(z, 0.3))
            elif name == "head_drop_slow_fall":
                head = (head[0], head[1], head_height_m - 0.4 * (since + dt))
            elif name == "step_off":
                force, loaded, margin_cop, margin = 5.0, False, None, None
                cop = None  # type: ignore[assignment]
            elif name == "load_collapse":
                force = 0.4 * body_weight_n
            elif name == "cop_jump":
                cop = (cop[0] + 0.08, cop[1])
            elif name == "cop_off_bos":
                margin_cop = -0.03
            elif name == "plate_stale":
                plate_age = 0.002 + since + 0.06
            elif name == "head_stale":
                head_age = 0.005 + since + 0.11
            elif name == "head_lost":
                head, head_age = None, None
        states.append(
            BalanceState(
                tick=tick,
                t_s=t,
                stance=stance,
                cop_m=cop,
                vertical_force_n=force,
                plate_loaded=loaded,
                com_m=(0.8 * sway, 0.02),
                com_velocity_mps=(0.0, 0.0),
                xcom_m=(0.8 * sway, 0.02),
                margin_xcom_m=margin,
                margin_cop_m=margin_cop,
                head_position_m=head,
                head_age_s=head_age,
                plate_age_s=plate_age,
            )
        )
    return Scenario(name, tuple(states), None if name == "quiet" else onset)


@dataclass(frozen=True, slots=True)
class LatencyReport:
    """From the first threshold crossing to the first calm verdict, in ticks and seconds.

    Attributes
    ----------
    crossing_tick : int or None
        First tick whose state crossed the threshold.
    calm_tick : int or None
        First tick whose verdict asked for calm (or more).
    dwell_ticks : int or None
        Ticks the dwell required at the stream's tick spacing
        (``ceil(dwell_s / dt)``, 0 for no dwell).
    latency_ticks : int or None
        ``calm_tick - crossing_tick``.
    ticks_after_dwell : int or None
        ``latency_ticks - dwell_ticks``: 0 means the calm came in the very
        tick the dwell expired (the monitor's contract).
    latency_s : float or None
        Time from the crossing state to the calm verdict, in s.
    """

    crossing_tick: int | None
    calm_tick: int | None
    dwell_ticks: int | None
    latency_ticks: int | None
    ticks_after_dwell: int | None
    latency_s: float | None


class MonitorProbe:
    """A drop-in for the monitor that records what it saw and decided.

    Parameters
    ----------
    monitor : SafetyMonitor or callable
        Anything with ``step(state) -> Verdict`` (or a callable doing that).
    """

    def __init__(self, monitor: SafetyMonitor | Callable[[BalanceState], Verdict]) -> None:
        self.monitor = monitor
        self._step = monitor.step if isinstance(monitor, SafetyMonitor) else monitor
        self.states: list[BalanceState] = []
        self.verdicts: list[Verdict] = []

    def step(self, state: BalanceState) -> Verdict:
        """Forward to the monitor and record the pair."""
        verdict = self._step(state)
        self.states.append(state)
        self.verdicts.append(verdict)
        return verdict

    __call__ = step

    def run(self, states: Sequence[BalanceState]) -> list[Verdict]:
        """Feed a whole stream; return its verdicts."""
        return [self.step(s) for s in states]

    @property
    def events(self) -> list:
        """Every event the monitor raised, in order."""
        return [e for v in self.verdicts for e in v.events]

    def first_tick(self, response: Response = Response.CALM) -> int | None:
        """The first tick whose verdict reached ``response``."""
        for v in self.verdicts:
            if v.response >= response:
                return v.tick
        return None

    def latency(
        self,
        *,
        edge_margin_m: float | None = None,
        crossed: Callable[[BalanceState], bool] | None = None,
        dwell_s: float = 0.0,
    ) -> LatencyReport:
        """Latency from the first crossing state to the first calm verdict.

        Give either ``edge_margin_m`` (crossing = XCoM margin, else CoP
        margin, below it; pass ``dwell_s`` = the envelope's ``margin_dwell_s``)
        or a ``crossed(state)`` predicate for other triggers.
        """
        if crossed is None:
            if edge_margin_m is None:
                raise ValueError("latency: give edge_margin_m or crossed")
            limit = edge_margin_m

            def crossed(state: BalanceState) -> bool:
                m = state.margin_xcom_m if state.margin_xcom_m is not None else state.margin_cop_m
                return m is not None and m < limit

        crossing = next((i for i, s in enumerate(self.states) if crossed(s)), None)
        calm = next((i for i, v in enumerate(self.verdicts) if v.calm), None)
        if crossing is None or calm is None:
            return LatencyReport(
                None if crossing is None else self.states[crossing].tick,
                None if calm is None else self.verdicts[calm].tick,
                None,
                None,
                None,
                None,
            )
        # The dwell expires at the first state at least dwell_s after the crossing
        # (the monitor's own rule, with its tolerance), read from the states' times
        # so that a real-time loop's skipped deadlines cannot shift it by a tick.
        t_cross = self.states[crossing].t_s
        expiry = next(
            (s.tick for s in self.states[crossing:] if s.t_s - t_cross + _DWELL_EPS_S >= dwell_s),
            None,
        )
        if expiry is None:  # not reached within the record: past its last tick
            expiry = self.states[-1].tick + 1
        dwell_ticks = expiry - self.states[crossing].tick
        latency_ticks = self.verdicts[calm].tick - self.states[crossing].tick
        return LatencyReport(
            crossing_tick=self.states[crossing].tick,
            calm_tick=self.verdicts[calm].tick,
            dwell_ticks=dwell_ticks,
            latency_ticks=latency_ticks,
            ticks_after_dwell=latency_ticks - dwell_ticks,
            latency_s=self.verdicts[calm].t_s - self.states[crossing].t_s,
        )
