"""Fixtures for the balance-core tests: a patient, the adult foot, the stances."""

from __future__ import annotations

import pytest

from vrbalance.balance.geometry import Body, FootTemplate
from vrbalance.balance.stance import STANCE_NAMES, Stance, make_stance
from vrbalance.config.plates import load_foot_template


@pytest.fixture(scope="session")
def foot() -> FootTemplate:
    return load_foot_template("adult")


@pytest.fixture(scope="session")
def body() -> Body:
    return Body(height_m=1.75, mass_kg=70.0)


@pytest.fixture(scope="session")
def stances(body: Body, foot: FootTemplate) -> dict[str, Stance]:
    return {name: make_stance(name, body, foot) for name in STANCE_NAMES}
