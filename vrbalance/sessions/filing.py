"""Filing a finished session in the record store, now or, if the store is away, later.

A session is recorded to local files first (:mod:`vrbalance.sessions.recorder`)
whatever the database does, so a clinic server that goes down mid-session
loses nothing. At the end :func:`file_or_queue` files it
(:func:`~vrbalance.sessions.store.import_session`: rows, events and the
compressed recording, one transaction); if that fails, a marker
``<data>/pending/<session id>.json`` (``0o600``) remembers the folder, and
:func:`file_pending` files every remembered session the next time the store is
reachable (``vrbalance db sync``, and ``vrbalance run`` before each session).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vrbalance.sessions.dbconn import StoreError, StoreUnavailable
from vrbalance.sessions.paths import pending_root
from vrbalance.sessions.recorder import (
    RecordingError,
    make_private_dir,
    read_sidecar,
    write_json_atomic,
)
from vrbalance.sessions.store import Store, import_session

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FilingResult:
    """What became of one session.

    Attributes
    ----------
    session_id : str
        The session.
    filed : bool
        In the database now (else queued in the pending folder).
    message : str
        One line for the operator (never holds a password).
    """

    session_id: str
    filed: bool
    message: str


def queue_pending(folder: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Remember ``folder`` as recorded but not filed; returns the marker file."""
    folder = Path(folder).resolve()
    session_id = read_sidecar(folder)["session_id"]
    root = make_private_dir(pending_root(environ))
    marker = root / f"{session_id}.json"
    write_json_atomic(marker, {"session_id": session_id, "folder": str(folder)})
    return marker


def pending_sessions(environ: Mapping[str, str] | None = None) -> list[tuple[Path, Path]]:
    """``(marker, folder)`` of every session waiting to be filed, oldest marker first."""
    root = pending_root(environ)
    if not root.is_dir():
        return []
    out = []
    for marker in sorted(root.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name)):
        try:
            folder = Path(json.loads(marker.read_text(encoding="utf-8"))["folder"])
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: unreadable pending marker (%s); left in place", marker, exc)
            continue
        out.append((marker, folder))
    return out


def file_or_queue(
    target: str | os.PathLike[str],
    folder: Path,
    *,
    environ: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
) -> FilingResult:
    """File ``folder`` in the store at ``target``; queue it for later if that fails.

    Never raises for a store problem: the recording is on disk either way, and
    the message says where and how it will be filed.
    """
    folder = Path(folder)
    session_id = read_sidecar(folder)["session_id"]
    try:
        with Store(target, timeout_s=timeout_s) as store:
            import_session(store, folder)
            where = store.where
    except StoreError as exc:
        marker = queue_pending(folder, environ)
        log.warning("session %s not filed (%s); queued in %s", session_id, exc, marker)
        return FilingResult(
            session_id,
            False,
            f"session kept in {folder} but not filed: {exc}\n"
            f"  file it later with: vrbalance patient import {folder}\n"
            f"  (or `vrbalance db sync`; the next `vrbalance run` files it too)",
        )
    marker = pending_root(environ) / f"{session_id}.json"
    marker.unlink(missing_ok=True)
    return FilingResult(session_id, True, f"filed in {where}")


def file_pending(store: Store, environ: Mapping[str, str] | None = None) -> list[FilingResult]:
    """File every queued session into ``store``; each filed one leaves the queue.

    A session that still cannot be filed stays queued, except one whose folder
    is gone (logged: nothing left to file) and one refused for a reason that
    will not pass by waiting (its patient is not in this store): that one is
    reported and kept, so a person can decide.
    """
    results = []
    for marker, folder in pending_sessions(environ):
        session_id = marker.stem
        if not (folder / "session.json").exists():
            log.warning("%s: pending session %s has no folder any more", marker, folder)
            results.append(FilingResult(session_id, False, f"{folder}: folder is gone"))
            continue
        try:
            import_session(store, folder)
        except (StoreError, RecordingError) as exc:
            results.append(FilingResult(session_id, False, f"not filed: {exc}"))
            if isinstance(exc, StoreUnavailable):
                break  # the server went away again: keep the rest for later
            continue
        marker.unlink(missing_ok=True)
        results.append(FilingResult(session_id, True, f"filed {folder} in {store.where}"))
    return results


@dataclass(frozen=True, slots=True)
class CopySummary:
    """What :func:`copy_store` did (counts)."""

    patients_copied: int
    patients_present: int
    sessions_copied: int
    sessions_present: int
    sessions_without_recording: int


def copy_store(src: Store, dst: Store) -> CopySummary:
    """Copy a station's record into another store (its SQLite file into the clinic server).

    Idempotent: a patient already in ``dst`` is kept as it is there (the
    clinic's record wins; the station's envelope history is not merged), a
    session already in ``dst`` with the same status, end and recording is
    skipped, and anything else is (re)filed whole, recording included (as
    stored, or uploaded from its folder when an older record never stored it).
    Running it twice therefore copies nothing the second time.
    """
    patients_copied = patients_present = 0
    for p in src.patients():
        if dst.put_patient(p, src.envelope_history(p.id)):
            patients_copied += 1
        else:
            patients_present += 1
    copied = present = without = 0
    for s in src.sessions():
        sid = s["id"]
        files = src.recording_files(sid)
        folder = Path(s["folder"])
        if not files and not (folder / "session.json").exists():
            without += 1
        try:
            there = dst.session(sid)
        except StoreError:
            there = None
        if there is not None and _same_session(s, files, there, dst.recording_files(sid)):
            present += 1
            continue
        trials = [{**t, "trial": t["idx"]} for t in src.trials(sid)]
        measures = [(m["trial_idx"], m["name"], m["value"], m["unit"]) for m in src.measures(sid)]
        if files:
            dst.add_session(s, trials, measures, events=src.events(sid), recording_from=src)
        elif (folder / "session.json").exists():
            import_session(dst, folder)  # an older record: upload from the folder
        else:
            dst.add_session(s, trials, measures, events=src.events(sid))
        copied += 1
    summary = CopySummary(patients_copied, patients_present, copied, present, without)
    log.info("copied %s into %s: %s", src.where, dst.where, summary)
    return summary


def _same_session(
    a: Mapping[str, object],
    a_files: list[dict[str, object]],
    b: Mapping[str, object],
    b_files: list[dict[str, object]],
) -> bool:
    keys = ("status", "ended_utc", "end_reason")
    if any(a[k] != b[k] for k in keys):
        return False
    if not a_files:
        return True  # nothing more to bring
    return [f["sha256"] for f in a_files] == [f["sha256"] for f in b_files]
