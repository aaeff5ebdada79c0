"""Record-store benchmark: SQLite file vs PostgreSQL server, filing and progress.

Measures, on both back ends:

- filing one 30-minute session at 250 Hz (a synthetic recording in the real
  format: a plate frame, a head pose and a balance state every tick, six
  trials), i.e. :func:`vrbalance.sessions.store.import_session`: summary
  measures, rows, events and the gzip upload of every file, one transaction;
  the summary part is timed alone too (the same work on both back ends);
- ``vrbalance progress`` for a patient with 100 sessions: the store's reads
  alone, and the whole page (which adds the same matplotlib charts on both).

The PostgreSQL server is a temporary cluster from Debian's binaries
(:class:`vrbalance.sessions.pgcluster.TempCluster`) on loopback, with
``fsync`` on (durable, like a clinic's) and TLS (libpq's default ``prefer``
takes it), so the figures include encryption but no network latency.

Run: ``python benchmarks/bench_store.py [--quick]``; prints a markdown table
and the load average it ran under.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from vrbalance.report.progress import progress_report
from vrbalance.sessions.pgcluster import TempCluster, find_bin_dir
from vrbalance.sessions.recorder import read_sidecar
from vrbalance.sessions.store import Patient, Store, import_session
from vrbalance.sessions.summary import summarize_folder, trial_rows
from vrbalance.sessions.synthetic import write_synthetic_session


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _copy_session(template: Path, folder: Path, session_id: str, started_utc: str) -> Path:
    shutil.copytree(template, folder)
    meta = json.loads((folder / "session.json").read_text())
    meta.update(session_id=session_id, started_utc=started_utc)
    (folder / "session.json").write_text(json.dumps(meta))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2-minute session, 20 sessions")
    args = parser.parse_args(argv)
    minutes = 2.0 if args.quick else 30.0
    n_sessions = 20 if args.quick else 100
    repeats = 1 if args.quick else 3
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("bench_store: no PostgreSQL binaries (apt-get install postgresql)")
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="vrb-bench-store-"))
    cluster = TempCluster(bin_dir, durable=True)
    try:
        cluster.start()
        t0 = time.perf_counter()
        big = write_synthetic_session(
            root / "big",
            session_id="BIG",
            patient_id="P1",
            duration_s=minutes * 60.0,
            rate_hz=250.0,
            trials=6,
        )
        made_s = time.perf_counter() - t0
        raw_mb = sum(p.stat().st_size for p in big.iterdir()) / 1e6
        small = write_synthetic_session(
            root / "small", session_id="T", patient_id="P2", duration_s=6.0, rate_hz=50.0, trials=3
        )
        meta = read_sidecar(big)
        summary_s = _median_s(lambda: summarize_folder(big, trial_rows(big, meta)), repeats)
        rows: list[tuple[str, float, float, float, float, bool]] = []
        targets = {"SQLite": root / "db.sqlite3", "PostgreSQL": cluster.url}
        for name, target in targets.items():
            with Store(target) as store:
                store.add_patient(Patient("P1"))
                store.add_patient(Patient("P2"))
                file_s = _median_s(lambda store=store: import_session(store, big), repeats)
                stored_mb = sum(f["stored_bytes"] for f in store.recording_files("BIG")) / 1e6
                for i in range(n_sessions):
                    folder = _copy_session(
                        small,
                        root / f"{name}-{i}",
                        f"P2-{i:03d}",
                        f"2026-{1 + i // 28:02d}-{1 + i % 28:02d}T10:00:00.000000Z",
                    )
                    import_session(store, folder)

                def reads(store: Store = store) -> None:
                    for s in store.sessions("P2"):
                        store.measures(s["id"])
                        store.trials(s["id"])

                reads_s = _median_s(reads, repeats * 3)
                page_s = _median_s(
                    lambda store=store: progress_report(
                        store, "P2", root / "progress.html", include_all=True, make_reports=False
                    ),
                    repeats,
                )
                rows.append((name, file_s, stored_mb, reads_s, page_s, store.tls))
    finally:
        cluster.stop(remove=True)
        shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()
    print(
        f"Filing a {minutes:g}-minute 250 Hz session ({raw_mb:.0f} MB of CSV, written in "
        f"{made_s:.0f} s) and `progress` over {n_sessions} sessions; medians of {repeats} "
        f"(reads: {repeats * 3}); summary measures alone {summary_s:.2f} s on both.\n"
    )
    print("| store | filing (upload included) | stored (gzip) | progress: store reads "
          "| progress: whole page | TLS |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, file_s, stored_mb, reads_s, page_s, tls in rows:
        print(
            f"| {name} | {file_s:.2f} s | {stored_mb:.1f} MB | {reads_s * 1e3:.0f} ms "
            f"| {page_s:.2f} s | {'yes' if tls else 'no'} |"
        )
    print(
        f"\nload average (1/5/15 min) before {load_before[0]:.1f}/{load_before[1]:.1f}/"
        f"{load_before[2]:.1f}, after {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
