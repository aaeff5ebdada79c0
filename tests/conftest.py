"""Fixtures shared across the test tree: a real PostgreSQL server for the record store,
and the Hypothesis profile every property test runs under (no wall-clock timers).

``pg_cluster`` (session-scoped) starts a temporary PostgreSQL cluster with the
binaries of Debian's ``postgresql`` package (initdb + pg_ctl on a temp folder,
a free loopback port, TLS on a self-signed certificate; as the ``postgres``
user when run as root) and stops and removes it at the end. Tests that need it
are skipped, saying why, only when no PostgreSQL binaries are installed.
``store_target`` runs a test once on an SQLite file and once on a fresh schema
of that server. ``xvfb`` is a private X server on a display number Xvfb chose
itself, for the tests that need a real window.
"""

from __future__ import annotations

import itertools
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from vrbalance.sessions.pgcluster import TempCluster, find_bin_dir

# Hypothesis times each example (a 200 ms deadline) and its data generation (the
# too_slow health check) on the wall clock: on a shared machine a preempted
# example fails for the speed of the machine, not for what the test checks. The
# properties are checked the same; only those timers are off, for every test
# (a test's own @settings inherits this profile).
settings.register_profile("vrbalance", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("vrbalance")

_schemas = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[TempCluster]:
    """A running temporary PostgreSQL server, with a ``vrbalance_test`` database."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "no PostgreSQL binaries (initdb, pg_ctl) found: install Debian's 'postgresql' "
            "package (it is in the README's test command)"
        )
    import psycopg

    cluster = TempCluster(bin_dir)  # initdb; removes nothing of anyone else's
    try:
        cluster.start()
        with psycopg.connect(cluster.url, autocommit=True) as con:
            con.execute("CREATE DATABASE vrbalance_test")
        yield cluster
    finally:
        cluster.stop(remove=True)


def new_pg_schema(cluster: TempCluster) -> str:
    """A fresh, empty schema in ``vrbalance_test``; returns a URL that uses it."""
    import psycopg

    name = f"t{next(_schemas)}"
    with psycopg.connect(cluster.url_for("vrbalance_test"), autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        con.execute(f"CREATE SCHEMA {name}")
    return cluster.url_for("vrbalance_test") + f"?options=-csearch_path%3D{name}"


@pytest.fixture
def pg_url(pg_cluster: TempCluster) -> str:
    """URL of an empty schema on the test server (password included, as stations use it)."""
    return new_pg_schema(pg_cluster)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """A fresh record store: an SQLite file, then a PostgreSQL schema (same tests)."""
    if request.param == "sqlite":
        return tmp_path / "db" / "v.sqlite3"
    return new_pg_schema(request.getfixturevalue("pg_cluster"))


#: How long Xvfb may take to come up on a loaded machine before the test fails.
XVFB_START_S = 60.0


@pytest.fixture
def xvfb() -> Iterator[str]:
    """A private Xvfb on a free display, e.g. ``":3"`` (skip only where Xvfb is absent).

    ``-displayfd`` makes Xvfb pick an unused display number and write it once it
    accepts connections, so two test runs on one machine (or a developer's own X
    server) never share, or wait on, a fixed display number.
    """
    binary = shutil.which("Xvfb")
    if binary is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [binary, "-displayfd", str(write_fd), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as ready:
            # Xvfb writes the number when it is ready; EOF means it died first.
            readable, _, _ = select.select([ready], [], [], XVFB_START_S)
            number = ready.readline().decode().strip() if readable else ""
        if not number.isdigit():
            pytest.fail(f"Xvfb did not start (exit status {proc.poll()}, within {XVFB_START_S} s)")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def run_on_display(xvfb: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_on_display(*args)``: ``python args`` (``-c SCRIPT``, ``-m vrbalance``) on the Xvfb.

    A fresh process: Panda3D opens one kind of graphics pipe per process, and
    an earlier offscreen world in the test process keeps a window from opening.
    """

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            env={**os.environ, "DISPLAY": xvfb},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run
