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
