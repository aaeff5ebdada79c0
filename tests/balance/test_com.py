"""CoM from the head, XCoM, sway angle, equilibrium score, the causal filter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vrbalance.balance.com import (
    HeadComEstimator,
    SmoothedDerivative,
    equilibrium_score,
    extrapolated_com,
    omega0_rad_s,
    pendulum_com,
    sway_angle_ap_rad,
)
from vrbalance.balance.geometry import Body


def test_pendulum_scaling_hand_computed() -> None:
    # Head 0.10 m ahead of the ankle; CoM at half the head's lever: 0.05 m.
    np.testing.assert_allclose(pendulum_com([0.1, 0.3], [0.0, 0.2], 0.5), [0.05, 0.25])
    many = pendulum_com(np.array([[0.0, 0.0], [0.2, -0.2]]), [0.0, 0.0], 0.25)
    np.testing.assert_allclose(many, [[0.0, 0.0], [0.05, -0.05]])


def test_body_ratio_is_com_over_head_height_above_ankle() -> None:
    b = Body(height_m=1.70)
    ratio = (0.55 * 1.7 - 0.039 * 1.7) / (0.936 * 1.7 - 0.039 * 1.7)
    assert b.com_per_head == pytest.approx(ratio)
    est = HeadComEstimator(b, (0.0, -0.05))
    com, vel, xcom = est.update(0.0, (0.02, 0.05, 1.6))
    assert com == pytest.approx((0.02 * ratio, -0.05 + 0.10 * ratio))
    assert vel == (0.0, 0.0)  # first sample: no velocity yet
    assert xcom == pytest.approx(com)


def test_xcom_hand_computed() -> None:
    # l = 1 m -> omega0 = sqrt(9.80665); v = 0.5 m/s -> v/omega0.
    w = omega0_rad_s(1.0)
    assert w == pytest.approx(math.sqrt(9.80665))
    assert omega0_rad_s(0.9, g_mps2=9.0) == pytest.approx(math.sqrt(10.0))
    np.testing.assert_allclose(
        extrapolated_com([0.01, 0.02], [0.5, -0.25], w), [0.01 + 0.5 / w, 0.02 - 0.25 / w]
    )
    with pytest.raises(ValueError, match="pendulum_length_m: expected a positive length, got 0"):
        omega0_rad_s(0.0)
    with pytest.raises(ValueError, match="omega0: expected a positive frequency"):
        extrapolated_com([0, 0], [0, 0], 0.0)


def test_sway_angle() -> None:
    np.testing.assert_allclose(
        sway_angle_ap_rad([0.0, 0.5, -0.5, 2.0], 0.0, 1.0),
        [0.0, math.asin(0.5), -math.asin(0.5), math.pi / 2],
    )
    np.testing.assert_allclose(sway_angle_ap_rad(0.15, 0.05, 0.2), math.asin(0.5))


@pytest.mark.parametrize(
    ("span_deg", "score"),
    [(0.0, 100.0), (2.5, 80.0), (6.25, 50.0), (12.5, 0.0), (20.0, 0.0)],
)
def test_equilibrium_score_hand_computed(span_deg: float, score: float) -> None:
    theta = np.radians([-1.0, -1.0 + span_deg / 2, -1.0 + span_deg])
    assert equilibrium_score(theta) == pytest.approx(score, abs=1e-9)


def test_equilibrium_score_ignores_nan_and_rejects_all_nan() -> None:
    theta = np.radians([0.0, math.nan, 5.0])
    assert equilibrium_score(theta) == pytest.approx(60.0)
    assert equilibrium_score(theta, limit_deg=10.0) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="no finite angle"):
        equilibrium_score([math.nan])


def test_filter_tracks_a_ramp_velocity() -> None:
    f = SmoothedDerivative(5.0)
    t = np.arange(0, 2.0, 0.004)
    for ti in t:
        x, _, vx, vy = f.update(float(ti), 0.1 * ti, -0.3 * ti)
    assert (vx, vy) == pytest.approx((0.1, -0.3), rel=1e-6)
    # Lag of a 2nd-order Butterworth on a ramp: sqrt(2)/wc seconds.
    lag = math.sqrt(2) / (2 * math.pi * 5.0)
    assert x == pytest.approx(0.1 * (t[-1] - lag), rel=2e-3)


def test_filter_passes_slow_sway_and_damps_jitter() -> None:
    rate = 90.0  # a headset's pose rate
    t = np.arange(0, 20, 1 / rate)
    rng = np.random.default_rng(1)
    slow = 0.01 * np.sin(2 * np.pi * 0.3 * t)
    noisy = slow + rng.normal(0, 0.0005, t.size)
    f = SmoothedDerivative(5.0)
    v = np.array([f.update(float(ti), float(xi), 0.0)[2] for ti, xi in zip(t, noisy, strict=True)])
    true_v = 0.01 * 2 * np.pi * 0.3 * np.cos(2 * np.pi * 0.3 * t)
    steady = t > 2
    # Amplitude kept within a few %, noise much lower than a raw difference's.
    amp = np.sqrt(np.mean(v[steady] ** 2)) / np.sqrt(np.mean(true_v[steady] ** 2))
    assert 0.9 < amp < 1.15
    raw = np.diff(noisy) * rate
    assert np.std(v[steady] - true_v[steady]) < 0.2 * np.std(
        raw[steady[1:]] - true_v[1:][steady[1:]]
    )


def test_filter_is_stable_for_any_step_and_handles_irregular_times() -> None:
    f = SmoothedDerivative(20.0, max_gap_s=10.0)
    f.update(0.0, 0.0, 0.0)
    for i in range(1, 50):
        x, _, vx, _ = f.update(i * 0.3, 1.0, 0.0)  # dt far above 1/cutoff
        assert math.isfinite(x) and abs(x) < 2.0 and abs(vx) < 10.0
    assert x == pytest.approx(1.0, abs=1e-6) and vx == pytest.approx(0.0, abs=1e-5)


def test_filter_ignores_repeats_and_restarts_after_gaps() -> None:
    f = SmoothedDerivative(5.0, max_gap_s=0.5)
    assert not f.started
    f.update(0.0, 0.0, 0.0)
    a = f.update(0.01, 0.01, 0.0)
    assert f.update(0.01, 5.0, 5.0) == a  # same time: no change
    assert f.update(0.005, 5.0, 5.0) == a  # older sample: no change
    assert f.update(2.0, 0.3, 0.4) == (0.3, 0.4, 0.0, 0.0)  # gap: restart
    assert f.update(-5.0, 0.1, 0.1) == (0.1, 0.1, 0.0, 0.0)  # clock jump back: restart
    f.reset()
    assert not f.started
    with pytest.raises(ValueError, match="cutoff_hz: expected a positive frequency"):
        SmoothedDerivative(0.0)
    with pytest.raises(ValueError, match="max_gap_s: expected a positive time"):
        SmoothedDerivative(5.0, max_gap_s=0.0)


def test_filter_ignores_non_finite_samples() -> None:
    f = SmoothedDerivative(5.0)
    assert all(math.isnan(v) for v in f.update(0.0, math.nan, 0.0))
    assert not f.started
    f.update(0.0, 0.0, 0.0)
    good = f.update(0.01, 0.001, 0.0)
    assert f.update(0.02, math.inf, 0.0) == good
    assert f.update(math.nan, 0.0, 0.0) == good
    after = f.update(0.02, 0.002, 0.0)
    assert all(math.isfinite(v) for v in after) and after[2] > 0.0


def test_head_estimator_xcom_leads_a_forward_sway() -> None:
    body = Body(height_m=1.75)
    est = HeadComEstimator(body, (0.0, 0.0))
    for i in range(200):
        t = i / 90.0
        com, vel, xcom = est.update(t, (0.0, 0.05 * t, 1.6))
    assert vel[1] == pytest.approx(0.05 * body.com_per_head, rel=1e-3)
    assert xcom[1] == pytest.approx(com[1] + vel[1] / body.omega0_rad_s)
    assert xcom[1] > com[1]
    est.reset()
    assert est.update(10.0, (0.0, 0.0, 1.6))[1] == (0.0, 0.0)
