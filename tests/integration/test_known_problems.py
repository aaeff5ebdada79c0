"""Problems the end-to-end work found in other packages, pinned as strict xfails.

Each test states the behaviour the product needs; it fails today for the
reason given, and turns into an XPASS (a failure, being strict) once fixed, so
the marker is removed with the fix. See docs/integration.md, "Known problems".
"""

from __future__ import annotations

import numpy as np
import pytest

from vrbalance.devices.simulator import StandingPerson, parse_script


@pytest.mark.xfail(
    strict=True,
    reason=(
        "devices/simulator.py StandingPerson._handle('stepon') resets theta/omega but "
        "not the delayed-feedback history (_hist still holds the 0.6 rad fall for "
        "delay_s) nor the muscle filters (_muscle1/_muscle2 hold the fall's push), so "
        "the person steps back on swinging +-0.4 rad with the CoP up to 0.6 m away"
    ),
)
def test_a_person_who_fell_and_stepped_back_on_stands_quietly_again() -> None:
    # Repeated falls in one session (and the e2e benchmark's repeated events) need
    # the simulated person to stand quietly again after stepping back on.
    person = StandingPerson(rate_hz=100.0, script=parse_script("fall@1s,stepon@2s"), seed=0)
    cop_y = []
    for _ in range(500):
        _, _, _, _, y, _ = person.step()
        cop_y.append(y)
    stance_y = person.p.stance_cop_m[1]
    quiet_before = np.asarray(cop_y[:100]) - stance_y
    after = np.asarray(cop_y[300:]) - stance_y  # from 1 s after stepping back on
    assert np.abs(quiet_before).max() < 0.03  # the quiet stance it had before
    assert np.abs(after).max() < 0.03


@pytest.mark.xfail(
    strict=True,
    reason=(
        "devices/simulator.py StandingPerson._step_dynamics: during a fall the command "
        "is +FALL_PUSH_RATIO*m*g*h towards the fall, and cop = -torque/Fz puts the CoP "
        "behind the ankles (about 14 cm back for a forward fall) for ~0.3 s before the "
        "edge blend pulls it to the toes; in a plate-only session the forward fall is "
        "then caught by the XCoM crossing the back edge of the base of support"
    ),
)
def test_a_forward_fall_never_moves_the_cop_towards_the_heels() -> None:
    # Losing balance forwards, the ankles saturate with the CoP at the toes
    # (the simulator's own docstring: "saturates the ankle torque towards one edge").
    person = StandingPerson(rate_hz=100.0, script=parse_script("fall@1s"), seed=0)
    cop_y = np.asarray([person.step()[4] for _ in range(160)])
    quiet = cop_y[:100]
    falling = cop_y[100:160]  # the first 0.6 s of the fall
    assert falling.min() > quiet.min() - 0.02


@pytest.mark.xfail(
    strict=True,
    reason=(
        "sessions/sim.py SimulatedHead.pose_at stamps received_time_s with the clock's "
        "now, so between two samples of the simulated person (100 Hz) the 250 Hz loop "
        "gets the same position as a new sample; the monitor's filtered head velocity "
        "then averages in zero-motion samples and head_fall_velocity flickers on and "
        "off during the demo's fall"
    ),
)
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
