"""The simulated patient's head, as the runner and the demo feed it to the loop."""

from __future__ import annotations


def test_simulated_head_repeats_its_pose_until_the_person_moves() -> None:
    from vrbalance.balance.geometry import Body
    from vrbalance.clock import ManualClock
    from vrbalance.config.plates import load_plate
    from vrbalance.devices.calibration import load_calibration
    from vrbalance.devices.simulator import PlateSignal
    from vrbalance.sessions.sim import SimulatedHead

    plate = load_plate("wii-balance-board")
    signal = PlateSignal(plate, load_calibration(plate.id), rate_hz=100.0, seed=0)
    clock = ManualClock()
    head = SimulatedHead(signal, Body(height_m=1.70, mass_kg=70.0), clock, (0.0, -0.07))
    signal.next_counts()  # the person takes one 10 ms step
    first = head.pose_at(clock.now_s())
    clock.advance(0.004)  # the next loop tick, the person has not moved
    again = head.pose_at(clock.now_s())
    assert again == first  # the same sample: the estimator and monitor skip it
    signal.next_counts()  # the person moves on: a new sample, stamped now
    clock.advance(0.006)
    moved = head.pose_at(clock.now_s())
    assert moved is not None and moved is not first
    assert moved.received_time_s == clock.now_s()


def _sway(noise_nm: tuple[float, float], seconds: float = 60.0) -> object:
    """Sway measures of the simulated person with this motor noise (one fixed seed)."""
    import numpy as np

    from vrbalance.balance.sway import sway_metrics
    from vrbalance.devices.simulator import PersonParams, StandingPerson

    # The same seed for every condition: the noise differs only by its scale.
    person = StandingPerson(PersonParams(noise_torque_nm=noise_nm), rate_hz=100.0, seed=5)
    cop = np.array([person.step()[3:5] for _ in range(round(seconds * 100))])
    return sway_metrics(cop, 100.0)


def test_simulated_sway_falls_in_each_bds_conditions_range() -> None:
    """Eyes closed and foam sway more, each inside the 163 BDS adults' 5-95 % range.

    The reference is the BDS's own published values per trial (60 s quiet
    stance, feet apart, 100 Hz; ``vrbalance/report/data/bds_reference.tsv``),
    as the simulated trial is: 60 s at 100 Hz, feet apart.
    """
    import numpy as np

    from vrbalance.report.reference import reference_values
    from vrbalance.sessions.sim import sim_noise_torque_nm

    velocity = {}
    for eyes, surface in (
        ("open", "firm"),
        ("closed", "firm"),
        ("open", "foam"),
        ("closed", "foam"),
    ):
        m = _sway(sim_noise_torque_nm("feet_apart", eyes, surface))
        velocity[eyes, surface] = m.mean_velocity_mps
        for column, value in (
            ("COPvelo", m.mean_velocity_mps * 100.0),  # cm/s
            ("COParea", m.prediction_ellipse_area_m2 * 1e4),  # cm²
        ):
            ref = reference_values(None, eyes, surface, column)
            p5, p95 = np.percentile(ref[np.isfinite(ref)], [5, 95])
            assert p5 < value < p95, (eyes, surface, column, value, p5, p95)
    assert (
        velocity["open", "firm"]
        < velocity["closed", "firm"]
        < velocity["open", "foam"]
        < velocity["closed", "foam"]
    )


def test_narrower_stance_sways_more_sideways() -> None:
    from vrbalance.sessions.sim import sim_noise_torque_nm

    ml_range = [
        _sway(sim_noise_torque_nm(stance, "open", "firm"), seconds=20.0).range_ml_m
        for stance in ("feet_apart", "feet_together", "tandem", "single_left")
    ]
    assert ml_range == sorted(ml_range) and ml_range[-1] > 2.5 * ml_range[0]
