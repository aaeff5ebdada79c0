"""The monitor probe and synthetic streams used by tests, benchmarks and integration."""

from __future__ import annotations

import pytest

from vrbalance.director.envelope import SafetyEnvelope
from vrbalance.director.monitor import Response, SafetyMonitor
from vrbalance.director.probe import SCENARIOS, MonitorProbe, synthetic_stream


@pytest.mark.parametrize("name", SCENARIOS)
def test_streams_are_quiet_before_their_onset(name: str) -> None:
    sc = synthetic_stream(name, rate_hz=100.0, duration_s=1.5, onset_s=1.0)
    assert len(sc.states) == 150
    assert [s.tick for s in sc.states] == list(range(150))
    assert sc.onset_tick == (None if name == "quiet" else 100)
    probe = MonitorProbe(SafetyMonitor(SafetyEnvelope()))
    probe.run(sc.states[:100])
    assert probe.first_tick(Response.WARN) is None


def test_unknown_scenario_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="scenario: expected one of quiet, near_edge"):
        synthetic_stream("tumble")


def test_probe_wraps_a_plain_callable_and_measures_with_a_predicate() -> None:
    monitor = SafetyMonitor(SafetyEnvelope())
    probe = MonitorProbe(lambda state: monitor.step(state))
    sc = synthetic_stream("step_off")
    probe.run(sc.states)
    report = probe.latency(crossed=lambda s: not s.plate_loaded)
    assert report.crossing_tick == sc.onset_tick == report.calm_tick
    assert report.latency_ticks == 0 and report.latency_s == 0.0
    assert [e.kind for e in probe.events] == ["contact_lost", "stop_trial"]


def test_latency_without_a_calm_reports_none() -> None:
    probe = MonitorProbe(SafetyMonitor(SafetyEnvelope()))
    probe.run(synthetic_stream("quiet").states)
    report = probe.latency(edge_margin_m=0.01)
    assert report.crossing_tick is None and report.calm_tick is None
    with pytest.raises(ValueError, match="give edge_margin_m or crossed"):
        probe.latency()


def test_dwell_expiry_is_read_from_tick_times_when_deadlines_were_skipped() -> None:
    """A real-time loop that skipped deadlines has uneven ticks: the dwell still
    expires at the first tick at least ``margin_dwell_s`` after the crossing."""
    env = SafetyEnvelope()
    th = env.monitor
    sc = synthetic_stream("lean_out", rate_hz=250.0)
    crossing = next(
        s.tick
        for s in sc.states
        if s.margin_xcom_m is not None and s.margin_xcom_m < th.edge_margin_m
    )
    # Drop three ticks inside the dwell, as a loop that skipped deadlines would.
    kept = [s for s in sc.states if not (crossing + 3 <= s.tick < crossing + 6)]
    assert len(kept) == len(sc.states) - 3
    probe = MonitorProbe(SafetyMonitor(env))
    probe.run(kept)
    report = probe.latency(edge_margin_m=th.edge_margin_m, dwell_s=th.margin_dwell_s)
    assert report.latency_s is not None and report.latency_s >= th.margin_dwell_s - 1e-9
    # Ticks are still numbered by deadline, so the dwell is ceil(0.1 s * 250 Hz) ticks,
    # and the calm comes in the very tick it expires.
    assert report.dwell_ticks == 25
    assert report.ticks_after_dwell == 0
