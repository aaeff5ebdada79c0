"""Crash-safe session recording: every sample and event, as it happens, in open formats.

A session folder holds one CSV file per stream plus a JSON sidecar:

``plate.csv``   every plate frame, tagged with the loop tick that drained it
``head.csv``    every head pose handed to the estimator
``state.csv``   every :class:`~vrbalance.balance.state.BalanceState`, with the
                difficulty level and the safety response of that tick
``events.csv``  every :class:`~vrbalance.events.Event` (safety, director,
                operator, device, session)
``trials.csv``  one row per finished trial (what was planned, how it ended)
``session.json`` metadata: patient, protocol, units, columns, software
                 version, plate, body; rewritten atomically at the start and
                 the end (``"status": "recording"`` until then)

Column names carry their unit (``cop_x_m``, ``vertical_force_n``); an empty
field is "unknown" (``None``); floats are written with :func:`repr`, which
round-trips exactly, so a replay sees bit-identical inputs. ``docs/sessions.md``
describes every column.

Durability. The balance loop never touches a file: it puts plain objects on an
unbounded queue (:meth:`SessionRecorder.plate` and friends never block), and a
writer thread formats them, writes them, flushes the files to the operating
system at least every ``flush_interval_s`` (0.25 s) and ``os.fsync``\\ s them at
least every ``fsync_interval_s`` (0.5 s). A killed process therefore loses at
most the rows queued in the last flush interval, and a pulled plug at most the
last second. A crash can leave a torn last line; :func:`read_rows` drops it.

Privacy. Recordings are patient data: folders are created ``0o700`` and files
``0o600`` explicitly (not left to the process umask).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import platform
import queue
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vrbalance import __version__
from vrbalance.balance.state import BalanceState
from vrbalance.errors import VrBalanceError
from vrbalance.events import Event
from vrbalance.samples import HeadPose, PlateFrame

log = logging.getLogger(__name__)

FORMAT_NAME = "vrbalance-session"
FORMAT_VERSION = 1
SIDECAR = "session.json"
WRITE_BUFFER_BYTES = 1 << 20
DIR_MODE = 0o700
FILE_MODE = 0o600

PLATE_COLUMNS: tuple[str, ...] = (
    "tick",
    "trial",
    "seq",
    "device_time_s",
    "received_time_s",
    "kind",
    "cell0_n",
    "cell1_n",
    "cell2_n",
    "cell3_n",
    "fx_n",
    "fy_n",
    "fz_n",
    "mx_nm",
    "my_nm",
    "mz_nm",
)
HEAD_COLUMNS: tuple[str, ...] = (
    "tick",
    "trial",
    "device_time_s",
    "received_time_s",
    "x_m",
    "y_m",
    "z_m",
    "qx",
    "qy",
    "qz",
    "qw",
    "tracked",
)
STATE_COLUMNS: tuple[str, ...] = (
    "tick",
    "trial",
    "t_s",
    "stance",
    "cop_x_m",
    "cop_y_m",
    "vertical_force_n",
    "plate_loaded",
    "com_x_m",
    "com_y_m",
    "com_vx_mps",
    "com_vy_mps",
    "xcom_x_m",
    "xcom_y_m",
    "margin_xcom_m",
    "margin_cop_m",
    "head_x_m",
    "head_y_m",
    "head_z_m",
    "head_age_s",
    "plate_age_s",
    "sway_angle_ap_rad",
    "com_source",
    "level",
    "response",
    "plate_status",
    "estop",
)
EVENT_COLUMNS: tuple[str, ...] = (
    "t_s",
    "trial",
    "source",
    "kind",
    "severity",
    "message",
    "values_json",
)
TRIAL_COLUMNS: tuple[str, ...] = (
    "trial",
    "name",
    "kind",
    "scene",
    "stance",
    "eyes",
    "surface",
    "surround",
    "assessment",
    "condition",
    "director",
    "level",
    "planned_s",
    "start_t_s",
    "end_t_s",
    "end_reason",
)
STREAMS: dict[str, tuple[str, ...]] = {
    "plate": PLATE_COLUMNS,
    "head": HEAD_COLUMNS,
    "state": STATE_COLUMNS,
    "events": EVENT_COLUMNS,
    "trials": TRIAL_COLUMNS,
}

#: Units of every column that has one (the rest are counts, labels or flags).
UNITS: dict[str, str] = {
    name: unit
    for cols in STREAMS.values()
    for name in cols
    for suffix, unit in (
        ("_s", "s"),
        ("_m", "m"),
        ("_n", "N"),
        ("_nm", "N·m"),
        ("_mps", "m/s"),
        ("_rad", "rad"),
    )
    if name.endswith(suffix)
}


class RecordingError(VrBalanceError):
    """A recording could not be written or read (names the folder or file)."""


# --------------------------------------------------------------------------- formatting


def _num(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    return repr(value) if math.isfinite(value) else ""


def _pair(value: Sequence[float] | None) -> tuple[str, str]:
    if value is None:
        return ("", "")
    return (_num(value[0]), _num(value[1]))


def plate_row(tick: int, trial: int, frame: PlateFrame) -> list[str]:
    """Format one plate frame as a ``plate.csv`` row."""
    cells = ["", "", "", ""]
    six = ["", "", "", "", "", ""]
    if frame.kind == "six_axis":
        six = [_num(c) for c in frame.channels[:6]]
    else:
        cells = [_num(c) for c in frame.channels[:4]]
    return [
        str(tick),
        str(trial),
        str(frame.seq),
        _num(frame.device_time_s),
        _num(frame.received_time_s),
        frame.kind,
        *cells,
        *six,
    ]


def head_row(tick: int, trial: int, pose: HeadPose) -> list[str]:
    """Format one head pose as a ``head.csv`` row."""
    return [
        str(tick),
        str(trial),
        _num(pose.device_time_s),
        _num(pose.received_time_s),
        *(_num(v) for v in pose.position_m),
        *(_num(v) for v in pose.orientation_xyzw),
        "1" if pose.tracked else "0",
    ]


def state_row(
    trial: int,
    state: BalanceState,
    level: int | None,
    response: str,
    plate_status: str = "",
    estop: bool = False,
) -> list[str]:
    """Format one balance state plus the tick's context as a ``state.csv`` row.

    The context is what the safety monitor was told besides the state (plate
    status, emergency stop) and what the world showed (difficulty level), so
    a replay can hand the monitor exactly the same inputs.
    """
    head = state.head_position_m
    return [
        str(state.tick),
        str(trial),
        _num(state.t_s),
        state.stance,
        *_pair(state.cop_m),
        _num(state.vertical_force_n),
        "1" if state.plate_loaded else "0",
        *_pair(state.com_m),
        *_pair(state.com_velocity_mps),
        *_pair(state.xcom_m),
        _num(state.margin_xcom_m),
        _num(state.margin_cop_m),
        *(("", "", "") if head is None else (_num(head[0]), _num(head[1]), _num(head[2]))),
        _num(state.head_age_s),
        _num(state.plate_age_s),
        _num(state.sway_angle_ap_rad),
        getattr(state, "com_source", None) or "",
        _num(level),
        response,
        plate_status,
        "1" if estop else "0",
    ]


def _jsonable(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def event_row(trial: int, event: Event) -> list[str]:
    """Format one event as an ``events.csv`` row (``values`` as compact JSON)."""
    return [
        _num(event.t_s),
        str(trial),
        event.source,
        event.kind,
        event.severity,
        event.message,
        json.dumps(_jsonable(dict(event.values)), separators=(",", ":"), sort_keys=True),
    ]


def event_from_row(row: Mapping[str, str]) -> Event:
    """Rebuild an :class:`Event` from an ``events.csv`` row (see :func:`read_rows`)."""
    return Event(
        t_s=float(row["t_s"]),
        source=row["source"],  # type: ignore[arg-type]
        kind=row["kind"],
        message=row["message"],
        severity=row["severity"],  # type: ignore[arg-type]
        values=json.loads(row["values_json"] or "{}"),
    )


# --------------------------------------------------------------------------- files


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it ``0o700`` whatever the umask.

    Every folder this creates is private, not only the last one: ``mkdir(parents=
    True)`` would give the parents the umask's mode, and a world-listable
    ``sessions/`` folder shows every patient's id. Folders that already existed,
    ``path`` included, are left as they were: they may be the user's own, or
    ``/tmp`` (``report --out /tmp/r.html`` or a recording in ``/tmp/x`` as root
    once made ``/tmp`` 0700 for the whole machine).
    """
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):  # top-down
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(folder, DIR_MODE)
    return path


def open_private(path: Path, *, exclusive: bool = True) -> io.TextIOWrapper:
    """Open ``path`` for writing text with mode ``0o600`` (never wider than that)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    # A buffer far larger than one flush interval's rows (~40 KiB at 250 Hz):
    # nothing reaches the file between the writer's timed flushes, so after a
    # crash every stream ends at (nearly) the same tick.
    return open(fd, "w", encoding="utf-8", newline="", buffering=WRITE_BUFFER_BYTES)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON to ``path`` atomically (temp file, fsync, rename, fsync folder)."""
    tmp = path.with_name(path.name + ".tmp")
    with open_private(tmp, exclusive=False) as fh:
        json.dump(_jsonable(data), fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def utc_now_iso() -> str:
    """Current UTC time as ISO 8601 with a ``Z`` (wall time for the record, not the loop)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def software_info() -> dict[str, str]:
    """Versions that produced a recording (for the sidecar)."""
    return {
        "vrbalance": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


# --------------------------------------------------------------------------- recorder

_STOP = object()


class SessionRecorder:
    """Writes a session folder from a writer thread; the caller never blocks.

    Parameters
    ----------
    folder : Path
        The session folder to create (must not exist or be empty).
    metadata : Mapping
        Session metadata for the sidecar (patient, protocol, plate, body...).
    flush_interval_s : float
        Longest time a written row stays in Python's buffer (default 0.25 s).
    fsync_interval_s : float
        Longest time between ``os.fsync`` of every stream (default 0.5 s).

    Notes
    -----
    Use as a context manager, or call :meth:`start` and :meth:`close`. The
    recording methods (:meth:`plate`, :meth:`head`, :meth:`state`,
    :meth:`event`, :meth:`trial_finished`) only enqueue; a write failure
    (disk full, folder removed) is kept in :attr:`error`, logged, and raised
    by :meth:`close`.
    """

    def __init__(
        self,
        folder: Path,
        metadata: Mapping[str, Any],
        *,
        flush_interval_s: float = 0.25,
        fsync_interval_s: float = 0.5,
    ) -> None:
        if flush_interval_s <= 0.0 or fsync_interval_s <= 0.0:
            raise ValueError(
                "flush_interval_s and fsync_interval_s must be > 0, got "
                f"{flush_interval_s!r} and {fsync_interval_s!r}"
            )
        self.folder = Path(folder)
        self.metadata: dict[str, Any] = dict(metadata)
        self.flush_interval_s = float(flush_interval_s)
        self.fsync_interval_s = float(fsync_interval_s)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._files: dict[str, io.TextIOWrapper] = {}
        self._writers: dict[str, Any] = {}
        self._closed = False
        self.error: BaseException | None = None
        self.rows_written: dict[str, int] = dict.fromkeys(STREAMS, 0)

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> SessionRecorder:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(status="complete" if exc[0] is None else "failed")

    def start(self) -> None:
        """Create the folder, the stream files with their headers and the sidecar."""
        if self._thread is not None:
            raise RecordingError(f"{self.folder}: recording already started")
        make_private_dir(self.folder.parent)
        make_private_dir(self.folder)
        if any(self.folder.iterdir()):
            raise RecordingError(f"{self.folder}: session folder is not empty")
        for name, columns in STREAMS.items():
            fh = open_private(self.folder / f"{name}.csv")
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(columns)
            self._files[name] = fh
            self._writers[name] = writer
        self.metadata.setdefault("format", FORMAT_NAME)
        self.metadata.setdefault("format_version", FORMAT_VERSION)
        self.metadata.setdefault("started_utc", utc_now_iso())
        self.metadata.setdefault("software", software_info())
        self.metadata["status"] = "recording"
        self.metadata["streams"] = {
            name: {"file": f"{name}.csv", "columns": list(cols)} for name, cols in STREAMS.items()
        }
        self.metadata["units"] = UNITS
        self._flush_all(fsync=True)
        write_json_atomic(self.folder / SIDECAR, self.metadata)
        self._thread = threading.Thread(
            target=self._run, name=f"recorder:{self.folder.name}", daemon=True
        )
        self._thread.start()
        log.info("recording to %s", self.folder)

    def close(self, *, status: str = "complete", **final: Any) -> None:
        """Stop the writer after it wrote everything queued, fsync, finish the sidecar.

        Parameters
        ----------
        status : str
            ``"complete"`` or ``"failed"``, stored in the sidecar.
        **final
            Extra sidecar entries (``end_reason``, ``trials`` summaries...).

        Raises
        ------
        RecordingError
            If the writer thread failed at any time during the recording.
        """
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
        try:
            self._flush_all(fsync=True)
        except OSError as exc:
            self.error = self.error or exc
        for fh in self._files.values():
            try:
                fh.close()
            except OSError as exc:
                self.error = self.error or exc
        self.metadata.update(final)
        self.metadata["status"] = status if self.error is None else "failed"
        self.metadata["ended_utc"] = utc_now_iso()
        self.metadata["rows"] = dict(self.rows_written)
        try:
            write_json_atomic(self.folder / SIDECAR, self.metadata)
        except OSError as exc:
            self.error = self.error or exc
        if self.error is not None:
            raise RecordingError(f"{self.folder}: recording failed: {self.error}") from self.error

    # -- producer side (never blocks) --------------------------------------

    def plate(self, tick: int, trial: int, frames: Iterable[PlateFrame]) -> None:
        """Queue the plate frames drained at loop tick ``tick``."""
        for frame in frames:
            self._queue.put(("plate", tick, trial, frame))

    def head(self, tick: int, trial: int, pose: HeadPose | None) -> None:
        """Queue the head pose used at loop tick ``tick`` (``None`` is skipped)."""
        if pose is not None:
            self._queue.put(("head", tick, trial, pose))

    def state(
        self,
        trial: int,
        state: BalanceState,
        *,
        level: int | None = None,
        response: str = "",
        plate_status: str = "",
        estop: bool = False,
    ) -> None:
        """Queue one balance state with its tick's level, safety response and status."""
        self._queue.put(("state", trial, state, level, response, plate_status, estop))

    def event(self, trial: int, event: Event) -> None:
        """Queue one event."""
        self._queue.put(("events", trial, event))

    def trial_finished(self, row: Mapping[str, object]) -> None:
        """Queue one ``trials.csv`` row (keys are :data:`TRIAL_COLUMNS`)."""
        self._queue.put(("trials", dict(row)))

    # -- writer thread -----------------------------------------------------

    def _format(self, item: tuple[Any, ...]) -> tuple[str, list[str]]:
        stream = item[0]
        if stream == "plate":
            return stream, plate_row(item[1], item[2], item[3])
        if stream == "head":
            return stream, head_row(item[1], item[2], item[3])
        if stream == "state":
            return stream, state_row(item[1], item[2], item[3], item[4], item[5], item[6])
        if stream == "events":
            return stream, event_row(item[1], item[2])
        row = item[1]
        return stream, [
            _num(v) if isinstance(v, float | int) or v is None else str(v)
            for v in (row.get(c) for c in TRIAL_COLUMNS)
        ]

    def _flush_all(self, *, fsync: bool) -> None:
        for fh in self._files.values():
            if fh.closed:
                continue
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())

    def _run(self) -> None:
        last_flush = last_fsync = time.monotonic()
        stop = False
        while not stop:
            timeout = max(0.0, last_flush + self.flush_interval_s - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            # Drain whatever else is queued in one go: fewer wake-ups per row.
            while item is not None:
                if item is _STOP:
                    stop = True
                    break
                if self.error is None:
                    try:
                        stream, row = self._format(item)
                        self._writers[stream].writerow(row)
                        self.rows_written[stream] += 1
                    except (OSError, ValueError, TypeError, IndexError) as exc:
                        self.error = exc
                        log.error("%s: recording write failed: %s", self.folder, exc)
                if time.monotonic() - last_flush >= self.flush_interval_s:
                    break  # a producer faster than us must not postpone the flush
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            now = time.monotonic()
            if self.error is None and now - last_flush >= self.flush_interval_s:
                try:
                    do_sync = now - last_fsync >= self.fsync_interval_s
                    self._flush_all(fsync=do_sync)
                    if do_sync:
                        last_fsync = now
                except OSError as exc:
                    self.error = exc
                    log.error("%s: recording flush failed: %s", self.folder, exc)
                last_flush = now


# --------------------------------------------------------------------------- reading


def read_rows(path: Path) -> list[dict[str, str]]:
    """Read one stream CSV as dicts, tolerating a torn last line.

    A process killed mid-write can leave a last line without its newline, or
    with fewer fields than the header; that line is dropped. A short line
    anywhere else means the file is damaged, and is an error.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    RecordingError
        If the header is missing or a row in the middle is malformed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such recording file") from None
    if not text:
        raise RecordingError(f"{path}: empty recording file (no header)")
    complete = text.endswith("\n")
    lines = text.split("\n")
    if complete:
        lines = lines[:-1]
    elif len(lines) > 1:
        log.info("%s: dropping torn last line %r", path, lines[-1][:60])
        lines = lines[:-1]
    rows = list(csv.reader(lines))
    header = rows[0]
    out: list[dict[str, str]] = []
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            if i == len(rows):
                log.info("%s: dropping short last line %d", path, i)
                break
            raise RecordingError(f"{path} line {i}: expected {len(header)} fields, got {len(row)}")
        out.append(dict(zip(header, row, strict=True)))
    return out


def column(rows: Sequence[Mapping[str, str]], name: str) -> np.ndarray:
    """One numeric column as float64 (``nan`` where empty)."""
    return np.array([float(r[name]) if r[name] != "" else np.nan for r in rows], dtype=float)


def read_sidecar(folder: Path) -> dict[str, Any]:
    """Read ``session.json`` of a session folder.

    Raises
    ------
    FileNotFoundError
        If the folder has no sidecar (not a session folder).
    RecordingError
        If the sidecar is not valid JSON or not a vrbalance session.
    """
    path = Path(folder) / SIDECAR
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not a vrbalance session folder (no {SIDECAR})") from None
    except json.JSONDecodeError as exc:
        raise RecordingError(f"{path}: damaged sidecar: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise RecordingError(f"{path}: not a vrbalance session sidecar")
    return data


def state_from_row(row: Mapping[str, str]) -> BalanceState:
    """Rebuild a :class:`BalanceState` from a ``state.csv`` row."""

    def f(name: str) -> float | None:
        return float(row[name]) if row[name] != "" else None

    def pair(a: str, b: str) -> tuple[float, float] | None:
        x, y = f(a), f(b)
        return None if x is None or y is None else (x, y)

    head = None
    if row["head_x_m"] != "":
        head = (float(row["head_x_m"]), float(row["head_y_m"]), float(row["head_z_m"]))
    kwargs = {
        "tick": int(row["tick"]),
        "t_s": float(row["t_s"]),
        "stance": row["stance"],
        "cop_m": pair("cop_x_m", "cop_y_m"),
        "vertical_force_n": f("vertical_force_n"),
        "plate_loaded": row["plate_loaded"] == "1",
        "com_m": pair("com_x_m", "com_y_m"),
        "com_velocity_mps": pair("com_vx_mps", "com_vy_mps"),
        "xcom_m": pair("xcom_x_m", "xcom_y_m"),
        "margin_xcom_m": f("margin_xcom_m"),
        "margin_cop_m": f("margin_cop_m"),
        "head_position_m": head,
        "head_age_s": f("head_age_s"),
        "plate_age_s": f("plate_age_s"),
        "sway_angle_ap_rad": f("sway_angle_ap_rad"),
        "com_source": row.get("com_source") or None,
    }
    known = {f.name for f in dataclass_fields(BalanceState)}
    return BalanceState(**{k: v for k, v in kwargs.items() if k in known})


def plate_frame_from_row(row: Mapping[str, str]) -> PlateFrame:
    """Rebuild a :class:`PlateFrame` from a ``plate.csv`` row (exact floats)."""
    kind = row["kind"]
    names = (
        ("fx_n", "fy_n", "fz_n", "mx_nm", "my_nm", "mz_nm")
        if kind == "six_axis"
        else ("cell0_n", "cell1_n", "cell2_n", "cell3_n")
    )
    return PlateFrame(
        seq=int(row["seq"]),
        device_time_s=float(row["device_time_s"]) if row["device_time_s"] else None,
        received_time_s=float(row["received_time_s"]) if row["received_time_s"] else None,
        channels=tuple(float(row[n]) for n in names),
        kind=kind,
    )


def head_pose_from_row(row: Mapping[str, str]) -> HeadPose:
    """Rebuild a :class:`HeadPose` from a ``head.csv`` row (exact floats)."""
    return HeadPose(
        device_time_s=float(row["device_time_s"]) if row["device_time_s"] else None,
        received_time_s=float(row["received_time_s"]) if row["received_time_s"] else None,
        position_m=(float(row["x_m"]), float(row["y_m"]), float(row["z_m"])),
        orientation_xyzw=(float(row["qx"]), float(row["qy"]), float(row["qz"]), float(row["qw"])),
        tracked=row["tracked"] == "1",
    )
