"""Events are immutable records with read-only values."""

from __future__ import annotations

import json

import pytest

from vrbalance.events import Event


def test_event_values_are_read_only_copies() -> None:
    values = {"margin_m": -0.01}
    event = Event(
        1.5, "safety", "xcom_outside_bos", "XCoM left the base of support", "alarm", values
    )
    values["margin_m"] = 99.0
    assert event.values["margin_m"] == -0.01
    with pytest.raises(TypeError):
        event.values["margin_m"] = 0.0  # type: ignore[index]
    assert json.loads(json.dumps(event.to_dict()))["values"] == {"margin_m": -0.01}


def test_event_rejects_non_finite_time() -> None:
    with pytest.raises(ValueError, match=r"Event.t_s must be finite, got nan"):
        Event(float("nan"), "device", "plate_lost", "plate lost")
