"""Serve a simulated plate on a pseudo-terminal, so the real driver reads it.

:class:`SimulatedPlateServer` opens a pty pair (``os.openpty``), puts it in
raw mode (``tty.setraw``: no echo, no CR/LF translation, no ^C, so binary
frames pass unchanged), and writes frames of the chosen protocol from a
background thread, paced in real time at the plate's rate on absolute
deadlines. The path it exposes, :attr:`SimulatedPlateServer.port_path`, is a
stable symbolic link to the current pty's slave, like a udev name for a USB
plate: "unplugging" closes the pty (the reader gets an I/O error and the
device node vanishes) and removes the link; "replugging" opens a new pty and
points the same link at it.

Used by the desktop demo, the session runner and the tests::

    from vrbalance.devices.pty_server import SimulatedPlateServer
    from vrbalance.devices.driver import ForcePlate

    with SimulatedPlateServer("wii-balance-board", script="lean@10s,fall@25s", seed=0) as sim:
        with ForcePlate(sim.port_path, sim.plate, sim.calibration) as plate:
            frames = plate.drain()   # each tick of the balance loop

``vrbalance simulate-plate`` is the same thing on the command line.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import tempfile
import threading
import tty
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from vrbalance.clock import Clock, MonotonicClock
from vrbalance.devices.calibration import Calibration, load_calibration
from vrbalance.devices.protocols import PROTOCOLS, AsciiLineProtocol, encode_frame
from vrbalance.devices.simulator import (
    SERVER_EVENTS,
    PersonParams,
    PlateSignal,
    ScriptEvent,
    StaticLoad,
    parse_script,
)

log = logging.getLogger(__name__)

DEFAULT_PLATE = "wii-balance-board"

DEFAULT_RATE_HZ = {"ascii": 100.0, "binary": 1000.0}
"""Rates when neither the caller nor the plate file says: a DIY HX711 board
streams ~80-100 Hz; binary plates are the 1 kHz ones."""

BANNER = b"# vrbalance simulated plate\r\n# tare ok\r\n"
"""What the simulated ASCII board prints at boot (the parser must skip it)."""

BACKLOG_BYTES = 64 * 1024
"""Bytes queued when the pty is full (1.7 s of 1 kHz six-channel frames)."""

WriteHook = Callable[[int, int, float], None]
"""``hook(first_seq, n_frames, t_s)`` after every write; ``t_s`` is the clock just
before the write began (benchmarks measure latency from it)."""


def _remove_folder(path: Path) -> None:
    """Remove the pty folder and the port link in it (nothing else is ever put there)."""
    for child in (path / "ttySIM0", path / "ttySIM0.new"):
        with contextlib.suppress(FileNotFoundError):
            child.unlink()
    with contextlib.suppress(OSError):
        path.rmdir()


def _resolve_plate(plate: Any) -> Any:
    if isinstance(plate, str | Path):
        from vrbalance.config.plates import load_plate

        return load_plate(plate)
    return plate


class SimulatedPlateServer:
    """A simulated plate streaming on a pseudo-terminal, as a context manager.

    Parameters
    ----------
    plate : str, Path or PlateSpec, optional
        Plate id (``"wii-balance-board"``, ``"generic-six-axis"``), a plate
        TOML path, or a loaded spec; default ``"wii-balance-board"``.
    plate_id : str, optional
        The same as a keyword (``plate_id="generic-six-axis"``).
    protocol : {"ascii", "binary"}, optional
        Wire protocol; default: the plate's.
    rate_hz : float, optional
        Frames per second; default the plate's ``serial.rate_hz`` if it has
        one, else 100 (ascii) or 1000 (binary).
    script : str or sequence of ScriptEvent
        Events, e.g. ``"lean@10s,fall@25s,unplug@40s,replug@42s"`` (see
        :func:`vrbalance.devices.simulator.parse_script`).
    loads : sequence of StaticLoad, optional
        Calibration mode: an empty plate with known masses instead of a person.
    calibration : Calibration, optional
        Counts are made through its inverse; default the plate's shipped one.
    person : PersonParams, optional
    seed : int
        Keyword-only seed of the simulation.
    clock : Clock, optional
        Paces the frames (default the monotonic clock).
    banner : bool
        Print a boot banner first (ASCII only), as DIY boards do.
    ascii_checksum : bool
        ASCII lines end with their ``*HH`` checksum (the default, what the
        driver requires); False sends the old checksum-less lines of firmware
        that predates it (for a plate file with ``ascii_checksum = "optional"``).
    on_write : callable, optional
        ``on_write(first_seq, n_frames, t_s)`` after each successful write,
        ``t_s`` being the clock just before the write began.
    """

    def __init__(
        self,
        plate: Any = None,
        *,
        plate_id: str | None = None,
        protocol: str | None = None,
        rate_hz: float | None = None,
        script: str | Sequence[ScriptEvent] = (),
        loads: Sequence[StaticLoad] | None = None,
        calibration: Calibration | None = None,
        person: PersonParams | None = None,
        seed: int = 0,
        clock: Clock | None = None,
        banner: bool = True,
        on_write: WriteHook | None = None,
        ascii_checksum: bool = True,
    ) -> None:
        if plate is not None and plate_id is not None:
            raise ValueError(f"give plate or plate_id, not both (got {plate!r} and {plate_id!r})")
        self.plate = _resolve_plate(plate if plate is not None else plate_id or DEFAULT_PLATE)
        self.protocol = protocol or self.plate.serial.protocol
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
        plate_rate = getattr(self.plate.serial, "rate_hz", None)
        self.rate_hz = float(rate_hz or plate_rate or DEFAULT_RATE_HZ[self.protocol])
        if not 1.0 <= self.rate_hz <= 5000.0:
            raise ValueError(f"rate_hz must be in [1, 5000], got {self.rate_hz!r}")
        self.script = parse_script(script) if isinstance(script, str) else list(script)
        self.calibration = calibration or load_calibration(self.plate.id)
        self.signal = PlateSignal(
            self.plate,
            self.calibration,
            rate_hz=self.rate_hz,
            script=self.script,
            loads=loads,
            person=person,
            seed=seed,
        )
        self._clock = clock or MonotonicClock()
        self._banner = banner and self.protocol == "ascii"
        self._legacy_ascii = self.protocol == "ascii" and not ascii_checksum
        self._on_write = on_write
        self._server_events = [e for e in self.script if e.kind in SERVER_EVENTS]
        self._dir = Path(tempfile.mkdtemp(prefix="vrbalance-plate-"))
        # stop() removes the folder; this finalizer is only the net for a server never
        # started or stopped (an error between construction and start): it runs at
        # garbage collection or interpreter exit, which SIGTERM/SIGHUP now reach too
        # (vrbalance.interrupt).
        self._remove_dir = weakref.finalize(self, _remove_folder, self._dir)
        self.port_path = str(self._dir / "ttySIM0")
        self._master: int | None = None
        self._slave: int | None = None
        self._lock = threading.Lock()
        self._backlog = bytearray()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stalled_until_s: float | None = None
        self.frames_sent = 0
        self.frames_unsent = 0
        self.seq = 0
        self.error: BaseException | None = None

    # -- pty plumbing -------------------------------------------------------
    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        flags = fcntl.fcntl(master, fcntl.F_GETFL)
        fcntl.fcntl(master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        tmp = self.port_path + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.port_path)
        with self._lock:
            self._master, self._slave = master, slave
        if self._banner:
            self._write(BANNER)
        log.info("simulated plate on %s -> %s", self.port_path, os.ttyname(slave))

    def unplug(self) -> None:
        """Pull the cable: close the pty (readers get EIO) and remove the link."""
        with self._lock:
            fds = (self._master, self._slave)
            self._master = self._slave = None
            self._backlog.clear()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.port_path)
        for fd in fds:
            if fd is not None:
                os.close(fd)
        log.info("simulated plate %s unplugged", self.port_path)

    def replug(self) -> None:
        """Plug back in: a fresh pty behind the same :attr:`port_path`."""
        if self._master is None:
            self._plug()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def stall(self, duration_s: float) -> None:
        """Stop sending for ``duration_s`` (frames made meanwhile are not sent)."""
        self._stalled_until_s = self._clock.now_s() + duration_s

    def _write(self, data: bytes) -> bool:
        """Queue ``data`` and write as much of the queue as the pty takes now.

        Returns False if the plate is unplugged or the queue is full, in which
        case ``data`` is dropped whole (never part of a frame). The pty holds
        only about 4 KiB (about 110 binary frames); the queue stands for the
        kernel and USB-adapter buffers of a real plate, so a reader starved of
        CPU for a moment receives its frames late rather than not at all.
        """
        with self._lock:
            fd = self._master
            if fd is None:
                return False
            accepted = len(self._backlog) + len(data) <= BACKLOG_BYTES
            if accepted:
                self._backlog += data
            while self._backlog:
                try:
                    written = os.write(fd, self._backlog)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.EIO:
                        break
                    raise
                del self._backlog[:written]
            return accepted

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> Self:
        """Open the pty and start streaming; idempotent."""
        if self._thread is not None:
            return self
        self._plug()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sim-plate", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop streaming and close the pty; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self.unplug()
        self._remove_dir()

    close = stop

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            self._serve()
        except Exception as exc:  # report from the thread, never vanish silently
            log.exception("simulated plate server failed")
            self.error = exc

    def _serve(self) -> None:
        clock = self._clock
        period_s = 1.0 / self.rate_hz
        t0_s = clock.now_s()
        pending = list(self._server_events)
        k = 0
        while not self._stop.is_set():
            now_s = clock.now_s()
            elapsed = now_s - t0_s
            while pending and pending[0].t_s <= elapsed:
                event = pending.pop(0)
                if event.kind == "unplug":
                    self.unplug()
                elif event.kind == "replug":
                    self.replug()
                else:
                    self.stall(event.get("duration", 1.0))
            due = int(elapsed / period_s) + 1
            if due > k:
                chunk = []
                first = self.seq
                for _ in range(min(due - k, 100)):
                    counts = self.signal.next_counts()
                    t_us = round(self.seq * period_s * 1e6)
                    if self._legacy_ascii:
                        chunk.append(
                            AsciiLineProtocol.encode(self.seq, t_us, counts, checksum=False)
                        )
                    else:
                        chunk.append(encode_frame(self.protocol, self.seq, t_us, counts))
                    self.seq += 1
                k += len(chunk)
                stalled = self._stalled_until_s is not None and now_s < self._stalled_until_s
                t_write_s = clock.now_s()
                if not stalled and self._write(b"".join(chunk)):
                    self.frames_sent += len(chunk)
                    if self._on_write is not None:
                        self._on_write(first, len(chunk), t_write_s)
                else:
                    self.frames_unsent += len(chunk)
            # Short sleeps so stop() and scripted events are honoured promptly at any rate.
            clock.sleep_s(min(t0_s + k * period_s - clock.now_s(), 0.05))
