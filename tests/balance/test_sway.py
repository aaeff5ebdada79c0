"""Sway measures: hand-computed signals, invariances, filter, errors."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal, stats

from vrbalance.balance.sway import (
    DEFAULT_LOWPASS_HZ,
    MIN_SAMPLES,
    SwayMetrics,
    sway_metrics,
    welch_psd,
)

RATE = 100.0


def random_walk(n: int = 3000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0.0, 2e-4, size=(n, 2)), axis=0)


def test_circle_hand_computed() -> None:
    # A 1 cm circle at exactly 0.5 Hz over 20 s (whole periods).
    n, r, f0 = 2000, 0.01, 0.5
    t = np.arange(n) / RATE
    xy = np.stack([r * np.cos(2 * np.pi * f0 * t), r * np.sin(2 * np.pi * f0 * t)], axis=1)
    m = sway_metrics(xy + np.array([0.3, -0.2]), RATE)
    assert m.n_samples == n and m.duration_s == pytest.approx(20.0)
    assert m.mean_distance_m == pytest.approx(r, rel=1e-9)
    assert m.rms_m == pytest.approx(r, rel=1e-9)
    assert m.rms_ap_m == pytest.approx(r / math.sqrt(2), rel=1e-9)
    assert m.rms_ml_m == pytest.approx(r / math.sqrt(2), rel=1e-9)
    assert m.range_ml_m == pytest.approx(2 * r, rel=1e-9)
    assert m.range_ap_m == pytest.approx(2 * r, rel=1e-3)
    # Path: n-1 chords of the circle.
    chord = 2 * r * math.sin(math.pi * f0 / RATE)
    assert m.path_length_m == pytest.approx((n - 1) * chord, rel=1e-9)
    assert m.mean_velocity_mps == pytest.approx((n - 1) * chord / 20.0, rel=1e-9)
    # Spectral measures sit at the circle's frequency.
    for f in (m.mean_frequency_hz, m.power_frequency_50_hz):
        assert f == pytest.approx(f0, abs=0.05)
    assert m.power_frequency_95_hz < 1.0
    assert m.mean_frequency_ap_hz == pytest.approx(m.mean_frequency_ml_hz, rel=1e-6)
    assert m.total_power_m2 == pytest.approx(r**2, rel=0.05)
    assert m.lowpass_hz is None


def test_ellipse_areas_hand_computed() -> None:
    # Samples with exactly known covariance: x = ±a, y = ±b in all four
    # combinations, each repeated (mean 0, uncorrelated).
    a, b, k = 0.02, 0.01, 50
    pts = np.array([[a, b], [-a, b], [a, -b], [-a, -b]] * k)
    n = len(pts)
    m = sway_metrics(pts, RATE)
    sx2, sy2 = a * a * n / (n - 1), b * b * n / (n - 1)
    f95 = stats.f.ppf(0.95, 2, n - 2)
    kp = f95 * (n - 1) * 2 * (n + 1) / (n * (n - 2))
    assert m.prediction_ellipse_area_m2 == pytest.approx(math.pi * kp * math.sqrt(sx2 * sy2))
    assert m.confidence_ellipse_area_m2 == pytest.approx(2 * math.pi * f95 * a * b)
    # Large n: both tend to 2π·3·sqrt(det) (F -> 3, prediction factor -> 2F).
    assert m.prediction_ellipse_area_m2 == pytest.approx(m.confidence_ellipse_area_m2, rel=0.02)


def test_prediction_ellipse_holds_about_95_percent_of_gaussian_samples() -> None:
    rng = np.random.default_rng(5)
    cov = np.array([[4e-4, 1.5e-4], [1.5e-4, 1e-4]])
    pts = rng.multivariate_normal([0.0, 0.0], cov, size=20000)
    m = sway_metrics(pts, RATE)
    # Mahalanobis radius of the ellipse with area A: A = π r² sqrt(det).
    r2 = m.prediction_ellipse_area_m2 / (math.pi * math.sqrt(np.linalg.det(np.cov(pts.T))))
    inv = np.linalg.inv(np.cov(pts.T))
    c = pts - pts.mean(0)
    inside = np.einsum("ij,jk,ik->i", c, inv, c) <= r2
    assert inside.mean() == pytest.approx(0.95, abs=0.005)


def test_per_axis_velocities_and_paths() -> None:
    xy = np.zeros((100, 2))
    xy[:, 0] = np.arange(100) * 0.001  # ML drift of 1 mm per sample
    m = sway_metrics(xy, RATE)
    assert m.path_length_ml_m == pytest.approx(0.099)
    assert m.path_length_ap_m == 0.0
    assert m.mean_velocity_ml_mps == pytest.approx(0.099 / 1.0)
    assert m.mean_velocity_ap_mps == 0.0
    assert m.range_ap_m == 0.0 and m.rms_ap_m == 0.0
    assert m.prediction_ellipse_area_m2 == pytest.approx(0.0, abs=1e-18)


def test_standing_perfectly_still_gives_zeros_not_errors() -> None:
    for value in (0.0, 0.07):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            m = sway_metrics(np.full((500, 2), value), RATE)
        assert m.path_length_m == 0.0
        # The mean of 500 equal floats may differ from them in the last bit.
        assert m.mean_distance_m == pytest.approx(0.0, abs=1e-15)
        assert m.prediction_ellipse_area_m2 == pytest.approx(0.0, abs=1e-30)
    # Exactly zero power: the frequencies are undefined, not a division error.
    zero = sway_metrics(np.zeros((500, 2)), RATE)
    assert math.isnan(zero.mean_frequency_hz) and math.isnan(zero.power_frequency_50_hz)


@settings(max_examples=40, deadline=None)
@given(
    dx=st.floats(-2.0, 2.0),
    dy=st.floats(-2.0, 2.0),
    seed=st.integers(0, 1000),
    lowpass=st.sampled_from([None, 5.0]),
)
def test_metrics_are_translation_invariant(
    dx: float, dy: float, seed: int, lowpass: float | None
) -> None:
    xy = random_walk(600, seed)
    a = sway_metrics(xy, RATE, lowpass_hz=lowpass)
    b = sway_metrics(xy + np.array([dx, dy]), RATE, lowpass_hz=lowpass)
    for f in dataclasses.fields(SwayMetrics):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if f.name == "lowpass_hz":
            assert va == vb
            continue
        # Translation only changes rounding (absolute offsets up to 2 m).
        assert vb == pytest.approx(va, rel=1e-6, abs=1e-12), f.name


def test_swapping_axes_swaps_ap_and_ml() -> None:
    xy = random_walk(2000, 3)
    a = sway_metrics(xy, RATE)
    b = sway_metrics(xy[:, ::-1], RATE)
    assert b.rms_ap_m == pytest.approx(a.rms_ml_m)
    assert b.mean_velocity_ap_mps == pytest.approx(a.mean_velocity_ml_mps)
    assert b.mean_frequency_ap_hz == pytest.approx(a.mean_frequency_ml_hz)
    assert b.prediction_ellipse_area_m2 == pytest.approx(a.prediction_ellipse_area_m2)
    assert b.mean_frequency_hz == pytest.approx(a.mean_frequency_hz)


def test_lowpass_removes_high_frequency_noise() -> None:
    n = 6000
    t = np.arange(n) / 1000.0
    slow = 0.005 * np.sin(2 * np.pi * 0.4 * t)
    rng = np.random.default_rng(2)
    xy = np.stack([slow, slow], axis=1) + rng.normal(0, 2e-4, (n, 2))
    raw = sway_metrics(xy, 1000.0)
    filt = sway_metrics(xy, 1000.0, lowpass_hz=DEFAULT_LOWPASS_HZ)
    assert DEFAULT_LOWPASS_HZ == 10.0 and filt.lowpass_hz == 10.0
    # Noise dominates the raw path; the filtered one is close to the true path.
    true_path = math.sqrt(2) * np.abs(np.diff(slow)).sum()
    assert raw.path_length_m > 5 * true_path
    assert filt.path_length_m == pytest.approx(true_path, rel=0.35)
    # Zero lag: the filtered signal stays in phase, so the RMS is unchanged.
    assert filt.rms_m == pytest.approx(math.sqrt(2) * 0.005 / math.sqrt(2), rel=0.02)


@pytest.mark.parametrize(
    ("cop", "rate", "kwargs", "match"),
    [
        (np.zeros((100, 3)), 100.0, {}, r"cop: expected shape \(N, 2\)"),
        (np.zeros((MIN_SAMPLES - 1, 2)), 100.0, {}, "cop: expected at least 16 samples, got 15"),
        (np.zeros((100, 2)), 0.0, {}, "rate_hz: expected a positive sampling rate, got 0.0"),
        (
            np.zeros((100, 2)),
            100.0,
            {"lowpass_hz": 50.0},
            r"lowpass_hz: expected a cut-off in \(0, 50\) Hz",
        ),
        (np.zeros((100, 2)), 100.0, {"lowpass_hz": -1.0}, "below Nyquist"),
    ],
)
def test_rejects(cop: np.ndarray, rate: float, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sway_metrics(cop, rate, **kwargs)


def test_rejects_nan_with_a_count() -> None:
    xy = random_walk(100)
    xy[10:13] = np.nan
    with pytest.raises(ValueError, match="cop: 3 of 100 samples are NaN or inf"):
        sway_metrics(xy, RATE)


def test_short_signal_with_filter_still_works() -> None:
    m = sway_metrics(random_walk(MIN_SAMPLES), RATE, lowpass_hz=10.0)
    assert math.isfinite(m.path_length_m) and m.n_samples == MIN_SAMPLES


@pytest.mark.parametrize("n", [16, 17, 101, 6000, 6001])
def test_welch_matches_scipy(n: int) -> None:
    x = random_walk(n, n).T.copy()
    f_ref, p_ref = signal.welch(
        x, fs=RATE, window="hann", nperseg=n // 2, noverlap=n // 4, nfft=n // 2,
        detrend="constant", axis=1,
    )  # fmt: skip
    f, p = welch_psd(x, RATE, n // 2, n // 4)
    np.testing.assert_array_equal(f, f_ref)
    np.testing.assert_allclose(p, p_ref, rtol=1e-12, atol=1e-15 * p_ref.max())


def test_result_is_frozen() -> None:
    m = sway_metrics(random_walk(100), RATE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.rms_m = 0.0  # type: ignore[misc]
