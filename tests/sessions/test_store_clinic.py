"""One clinic record on a real PostgreSQL server: stations at once, a server lost mid-session,
sessions read on another station, passwords, TLS and the stations' least-privilege role.

The server is the temporary cluster of ``tests/conftest.py`` (initdb + pg_ctl,
loopback port, TLS on a self-signed certificate).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from vrbalance.balance.geometry import Body
from vrbalance.clock import MonotonicClock
from vrbalance.sessions.dbconn import StoreError, connect, redact
from vrbalance.sessions.filing import file_or_queue, file_pending, pending_sessions
from vrbalance.sessions.pgcluster import TempCluster
from vrbalance.sessions.protocol import Protocol, Trial
from vrbalance.sessions.recorder import read_rows, read_sidecar
from vrbalance.sessions.runner import SessionRunner, SimulatedDevices
from vrbalance.sessions.store import Patient, Store, resolve_session_folder


def _station(url: str, station: int, n: int, template: Path, root: Path, go: Path) -> None:
    """One station (a forked process): file ``n`` sessions, changing the envelope now and then."""
    import shutil

    from vrbalance.sessions.store import import_session

    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:  # all four start together
        time.sleep(0.005)
    with Store(url) as store:
        for i in range(n):
            if i % 5 == 0:  # a therapist changes the envelope
                store.set_envelope("P0", {"max_level": 1 + (i % 7), "by": f"station {station}"})
            p = store.patient("P0")  # the envelope this session runs with
            folder = root / f"s{station}-{i}"
            shutil.copytree(template, folder)  # a small real recording, renamed
            meta = json.loads((folder / "session.json").read_text())
            meta.update(
                session_id=f"S{station}-{i:02d}",
                started_utc=f"2026-03-01T10:{station:02d}:{i:02d}.000000Z",
                envelope=p.envelope,
                patient={"id": "P0", "envelope_version": p.envelope_version},
            )
            (folder / "session.json").write_text(json.dumps(meta))
            import_session(store, folder)


def test_four_stations_file_fifty_sessions_each_at_once(pg_url: str, tmp_path: Path) -> None:
    """Four processes (forked: the test's imports are already done) file 50 sessions each."""
    import multiprocessing

    from vrbalance.sessions.synthetic import write_synthetic_session

    with Store(pg_url) as store:
        store.add_patient(Patient("P0", envelope={"max_level": 3}))
    template = write_synthetic_session(
        tmp_path / "template", session_id="T", patient_id="P0", duration_s=0.1, rate_hz=50.0
    )
    go = tmp_path / "go"
    fork = multiprocessing.get_context("fork")
    procs = [
        fork.Process(target=_station, args=(pg_url, k, 50, template, tmp_path / f"st{k}", go))
        for k in range(4)
    ]
    for proc in procs:
        proc.start()
    go.touch()
    for proc in procs:
        proc.join(timeout=300)
        assert proc.exitcode == 0, f"station {proc.name} failed (exit {proc.exitcode})"
    with Store(pg_url) as store:
        sessions = store.sessions("P0")
        assert len(sessions) == 200
        assert {s["id"] for s in sessions} == {f"S{k}-{i:02d}" for k in range(4) for i in range(50)}
        history = store.envelope_history("P0")
        # Every change kept, none lost: the first plus 10 per station, numbered without gaps.
        assert [h["version"] for h in history] == list(range(1, 42))
        assert sorted(h["envelope"].get("by", "") for h in history).count("station 0") == 10
        by_version = {h["version"]: h["envelope"] for h in history}
        for s in sessions:
            assert s["status"] == "complete"
            # The envelope recorded with a session is the version it ran with.
            assert json.loads(s["envelope_json"]) == by_version[s["envelope_version"]]
        counts = store.conn.query(
            "SELECT s.id, (SELECT COUNT(*) FROM trials t WHERE t.session_id = s.id) AS trials, "
            "(SELECT COUNT(*) FROM events e WHERE e.session_id = s.id) AS events, "
            "(SELECT COUNT(*) FROM recording_files f WHERE f.session_id = s.id) AS files "
            "FROM sessions s"
        )
        assert {(c["trials"], c["events"], c["files"]) for c in counts} == {(1, 2, 6)}
        one = tmp_path / "check"
        store.extract_recording("S3-49", one)
        original = tmp_path / "st3" / "s3-49"
        assert all((one / p.name).read_bytes() == p.read_bytes() for p in original.iterdir())


def _short_session(folder: Path, patient: Patient, before_trial: object) -> None:
    trials = tuple(
        Trial(
            name=f"Quiet {k}",
            kind="exercise",
            scene="park",
            stance="feet_apart",
            duration_s=0.5,
            level=1,
        )
        for k in range(2)
    )
    clock = MonotonicClock()
    runner = SessionRunner(
        Protocol(name="quiet", title="Quiet", description="", trials=trials),
        patient,
        folder=folder,
        session_id=f"{patient.id}-{folder.name}",
        devices=SimulatedDevices(
            "wii-balance-board", Body(height_m=1.7, mass_kg=70.0), clock, seed=3
        ),
        clock=clock,
        metadata={"simulated": True},
        seconds_scale=0.01,
        before_trial=before_trial,  # type: ignore[arg-type]
    )
    runner.run()


def test_server_lost_mid_session_files_later_and_other_stations_read_it(
    pg_cluster: TempCluster, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    station_a = {"VRBALANCE_DATA": str(tmp_path / "a")}
    with Store(pg_url) as store:
        patient = store.add_patient(Patient("P5", height_m=1.7, mass_kg=70.0))
    folder = tmp_path / "a" / "sessions" / "P5" / "s1"
    stopped: list[int] = []

    def lose_server(index: int, trial: Trial) -> None:
        if index == 1:  # between the first and the second trial
            pg_cluster.stop()
            stopped.append(index)

    try:
        _short_session(folder, patient, lose_server)
        assert stopped == [1]
        assert read_sidecar(folder)["status"] == "complete"  # recording never depended on it
        result = file_or_queue(pg_url, folder, environ=station_a, timeout_s=2.0)
        assert not result.filed and "server unavailable" in result.message
        assert "pw-" not in result.message
        assert [f for _, f in pending_sessions(station_a)] == [folder.resolve()]
    finally:
        pg_cluster.start()
    with Store(pg_url) as store:
        filed = file_pending(store, station_a)
        assert [r.filed for r in filed] == [True]
        assert pending_sessions(station_a) == []
        sid = read_sidecar(folder)["session_id"]
        assert [t["name"] for t in store.trials(sid)] == ["Quiet 0", "Quiet 1"]
        assert len(store.events(sid)) == len(read_rows(folder / "events.csv"))
        originals = {p.name: p.read_bytes() for p in folder.iterdir()}
    # Station B never saw the folder: report, replay and progress come from the server.
    folder.rename(tmp_path / "a" / "moved-away")
    monkeypatch.setenv("VRBALANCE_DATA", str(tmp_path / "b"))
    fetched = resolve_session_folder(sid, pg_url)
    assert fetched == tmp_path / "b" / "cache" / sid
    assert {p.name: p.read_bytes() for p in fetched.iterdir()} == originals
    from vrbalance.report.html import session_report
    from vrbalance.report.progress import progress_report
    from vrbalance.sessions.replay import replay_session

    assert replay_session(fetched).identical
    assert "Quiet 1" in session_report(fetched, tmp_path / "r.html").read_text()
    with Store(pg_url) as store:
        assert (
            "1 session(s)"
            in progress_report(store, "P5", tmp_path / "p.html", make_reports=False).read_text()
        )


def test_password_is_never_printed(
    pg_cluster: TempCluster,
    pg_url: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from vrbalance.cli import main

    secret = pg_cluster.password
    wrong = pg_url.replace(secret, "Wr0ng-s3cret-Pw")
    caplog.set_level("DEBUG")
    with pytest.raises(StoreError) as err:
        Store(wrong)
    assert "Wr0ng-s3cret-Pw" not in str(err.value) and "***" in str(err.value)
    assert "password authentication failed" in str(err.value)
    assert main(["patient", "--db", wrong, "list"]) == 2
    assert main(["db", "info", "--db", pg_url]) == 0
    assert main(["patient", "--db", pg_url, "add", "P1"]) == 0
    out = capsys.readouterr()
    everything = out.out + out.err + caplog.text
    assert "Wr0ng-s3cret-Pw" not in everything and secret not in everything
    assert "tls       yes" in out.out  # libpq's default sslmode=prefer takes the server's TLS
    assert redact(pg_url) in out.out


def test_tls_when_the_server_asks_and_verified_certificates(
    pg_cluster: TempCluster, tmp_path: Path
) -> None:
    import psycopg

    if not pg_cluster.tls:
        pytest.skip("no openssl to make the test server's certificate")
    with psycopg.connect(pg_cluster.url, autocommit=True) as con:
        con.execute("DROP ROLE IF EXISTS vrb_tls_only")
        con.execute(f"CREATE ROLE vrb_tls_only LOGIN PASSWORD '{pg_cluster.password}'")
    hba = pg_cluster.data / "pg_hba.conf"
    hba.write_text("hostnossl all vrb_tls_only 127.0.0.1/32 reject\n" + hba.read_text())
    pg_cluster.reload()
    url = pg_cluster.url_for("postgres", user="vrb_tls_only")
    deadline = time.monotonic() + 30
    while True:  # the reload is asynchronous: poll until the server refuses clear text
        try:
            connect(url + "?sslmode=disable").close()
        except StoreError as exc:
            assert "no encryption" in str(exc) and pg_cluster.password not in str(exc)
            break
        assert time.monotonic() < deadline, "server never started to refuse clear text"
        time.sleep(0.05)
    con = connect(url)  # default sslmode=prefer: TLS because the server asks
    assert con.tls
    con.close()
    root = tmp_path / "root.crt"
    root.write_bytes((pg_cluster.data / "server.crt").read_bytes())
    verified = url.replace("127.0.0.1", "localhost") + f"?sslmode=verify-full&sslrootcert={root}"
    con = connect(verified)
    assert con.tls
    con.close()
    bogus = tmp_path / "other.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=x",
         "-keyout", str(tmp_path / "k"), "-out", str(bogus)],
        capture_output=True, check=True,
    )  # fmt: skip
    with pytest.raises(StoreError, match="certificate verify failed"):
        connect(verified.replace(str(root), str(bogus)))


def test_station_role_files_sessions_and_nothing_more(
    pg_cluster: TempCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The role SQL of docs/clinic-server.md, then `vrbalance db migrate` and `db grant`."""
    import psycopg

    from vrbalance.cli import main
    from vrbalance.sessions.store import import_session
    from vrbalance.sessions.synthetic import write_synthetic_session

    pw = pg_cluster.password
    with psycopg.connect(pg_cluster.url, autocommit=True) as con:
        con.execute("DROP DATABASE IF EXISTS clinic")
        for role in ("vrb_owner", "vrb_station"):
            con.execute(f"DROP ROLE IF EXISTS {role}")
        for statement in clinic_setup_sql(pw):
            con.execute(statement)
    owner = pg_cluster.url_for("clinic", user="vrb_owner")
    station = pg_cluster.url_for("clinic", user="vrb_station")
    with psycopg.connect(pg_cluster.url_for("clinic"), autocommit=True) as con:
        for statement in clinic_schema_sql():
            con.execute(statement)
    with pytest.raises(StoreError, match=r"permission denied .*schema changes need the owner"):
        Store(station)  # an empty database: only the owner may create the schema
    assert main(["db", "migrate", "--db", owner]) == 0
    assert main(["db", "grant", "vrb_station", "--db", owner]) == 0
    assert pw not in capsys.readouterr().out
    folder = write_synthetic_session(
        tmp_path / "s", session_id="S1", patient_id="P1", duration_s=0.2, rate_hz=50.0
    )
    with Store(station) as store:
        store.add_patient(Patient("P1"))
        store.set_envelope("P1", {"max_level": 2})
        import_session(store, folder)
        import_session(store, folder)  # re-filing replaces its rows: allowed
        assert store.session("S1")["status"] == "complete"
        for forbidden in ("DELETE FROM patients", "DELETE FROM sessions", "DROP TABLE events"):
            with pytest.raises(StoreError, match="permission denied"):
                store.conn.query(forbidden)


def clinic_setup_sql(password: str) -> list[str]:
    """The superuser part of docs/clinic-server.md (roles renamed for the test)."""
    return [
        s.replace("vrbalance_owner", "vrb_owner")
        .replace("vrbalance_station", "vrb_station")
        .replace("DATABASE vrbalance", "DATABASE clinic")
        .replace("change-me-owner", password)
        .replace("change-me-station", password)
        for s in _doc_sql("superuser")
    ]


def clinic_schema_sql() -> list[str]:
    return [
        s.replace("vrbalance_owner", "vrb_owner")
        .replace("vrbalance_station", "vrb_station")
        .replace("DATABASE vrbalance", "DATABASE clinic")
        for s in _doc_sql("in-database")
    ]


def _doc_sql(block: str) -> list[str]:
    """Statements of the ```sql block marked ``-- block: NAME`` in docs/clinic-server.md."""
    text = (Path(__file__).parents[2] / "docs" / "clinic-server.md").read_text()
    start = text.index(f"-- block: {block}")
    body = text[start : text.index("```", start)]
    lines = [ln for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    return [s.strip() for s in " ".join(lines).split(";") if s.strip()]
