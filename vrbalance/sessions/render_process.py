"""The session's world rendered in its own process, so the renderer never holds the loop's GIL.

Why (docs/integration.md, "Where the time went"): in one process the balance
loop thread waits for Python's GIL whenever the render thread runs Python
(scene animation, the crowd's steering at level 10, the overlay) or the
collector sweeps the world's heap; a real-time priority on the loop thread
does not help while a normal-priority thread, pre-empted on a busy machine,
holds the GIL. Measured with the crowd at level 10 in software GL, the loop
skipped 0.4-3 % of its deadlines beside the renderer and none without it.

:class:`RenderProcess` is a :class:`~vrbalance.sessions.runner.World` (the
runner cannot tell it from :class:`~vrbalance.sessions.world.SessionWorld`):
it starts a child process that opens the real ``SessionWorld`` (offscreen or a
desktop window; not the headset, whose head pose the loop locates at its own
rate in the rendering process) and forwards every call over a pipe:

* ``frame(state, calm, pitch)`` sends the newest snapshot and returns at once;
  the child draws the newest one it has (older ones queued behind it are
  skipped, so a slow frame never builds a backlog);
* ``begin_trial``, ``screenshot`` and ``close`` wait for the child's answer
  (the scene is built before the trial's loop starts, as in one process);
* ``set_level`` and ``recenter`` (the console's level controls and
  Recenter) are sent and return at once, applied before the next frame;
* the window's operator keys (pause, resume, emergency stop) come back as
  commands and reach the session's :class:`OperatorControls` on the next frame.

A renderer that fails or dies raises :class:`RenderProcessError` in the
session's main thread at the next call, as an in-process render error would.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from vrbalance.errors import VrBalanceError

log = logging.getLogger(__name__)

#: Niceness added to the render process (lower CPU priority than the session's).
RENDER_NICE = 10
#: How long the session waits for the renderer to open, build a scene or close, s.
RENDER_REPLY_TIMEOUT_S = 120.0


class RenderProcessError(VrBalanceError):
    """The render process failed or went away."""


class _ForwardControls:
    """The child's stand-in for the session's controls: keys go back to the parent."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def send(self, command: Any, **_kw: Any) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(("command", command.value))


def _render_main(conn: Connection, offscreen: bool, size_px: tuple[int, int] | None = None) -> None:
    """The render process: open the world, then serve the session's calls."""
    from vrbalance.clock import MonotonicClock
    from vrbalance.devices.plate_process import ignore_terminal_signals
    from vrbalance.sessions.world import open_world

    ignore_terminal_signals()  # the session ends the trial, then closes this process

    # The picture yields the CPU to the safety path: software GL's threads
    # (created by Mesa in this process, inheriting it) would otherwise take
    # both cores from the tty layer's kernel worker that delivers the plate's
    # bytes and from the session's threads that hold the loop's GIL.
    with contextlib.suppress(OSError):
        os.nice(RENDER_NICE)
    try:
        options = {"size_px": size_px} if size_px is not None else {}
        world = open_world(offscreen=offscreen, clock=MonotonicClock(), **options)
    except Exception as exc:  # reported to the session, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    world.connect(_ForwardControls(conn))
    conn.send(("ok", None))
    try:
        while True:
            try:
                messages = [conn.recv()]
                while conn.poll(0):
                    messages.append(conn.recv())
            except (EOFError, OSError):
                return  # the session is gone
            newest_frame = None
            for kind, args in messages:
                if kind == "frame":
                    newest_frame = args
                    continue
                if newest_frame is not None:  # keep the order around other calls
                    world.frame(*newest_frame)
                    newest_frame = None
                try:
                    if kind == "begin":
                        world.begin_trial(*args)
                        conn.send(("ok", None))
                    elif kind == "end":
                        world.end_trial()
                    elif kind == "level":
                        world.set_level(args)
                    elif kind == "recenter":
                        world.recenter()
                    elif kind == "screenshot":
                        conn.send(("ok", str(world.screenshot(Path(args)))))
                    elif kind == "close":
                        world.close()
                        conn.send(("ok", None))
                        return
                except Exception as exc:
                    log.debug("render process: %s failed", kind, exc_info=True)
                    conn.send(("error", f"{type(exc).__name__}: {exc}"))
            if newest_frame is not None:
                world.frame(*newest_frame)
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        with contextlib.suppress(Exception):
            world.close()


class RenderProcess:
    """The session's world in a child process (offscreen or a desktop window).

    Parameters
    ----------
    offscreen : bool
        Offscreen buffer instead of a window.
    size_px : (int, int), optional
        Frame size (default: the session world's).

    Raises
    ------
    RenderProcessError
        If the world cannot be opened in the child (the child's error is named).
    """

    paced = False
    head_source = None
    headset_ready = None

    def __init__(self, *, offscreen: bool, size_px: tuple[int, int] | None = None) -> None:
        ctx = multiprocessing.get_context("forkserver")
        from vrbalance.devices.plate_process import FORKSERVER_PRELOAD

        ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
        self._conn, child = ctx.Pipe(duplex=True)
        self._process = ctx.Process(
            target=_render_main,
            args=(child, bool(offscreen), size_px),
            name="vrbalance-render",
            daemon=True,
        )
        self._process.start()
        child.close()
        self._controls: Any = None
        self._closed = False
        self.frames = 0
        try:
            self._reply("open the world")
        except BaseException:
            self._kill()
            raise

    @property
    def pid(self) -> int | None:
        """The render process's id."""
        return self._process.pid

    # -- plumbing ------------------------------------------------------------------

    def _send(self, message: tuple[str, Any]) -> None:
        try:
            self._conn.send(message)
        except OSError as exc:
            raise RenderProcessError(
                f"render process exited (code {self._process.exitcode}): {exc}"
            ) from exc

    def _pump(self) -> tuple[str, Any] | None:
        """Forward pending key commands; return the first reply waiting, if any."""
        try:
            while self._conn.poll(0):
                kind, value = self._conn.recv()
                if kind == "command":
                    self._forward(value)
                    continue
                return kind, value
        except (EOFError, OSError) as exc:
            raise RenderProcessError(
                f"render process exited (code {self._process.exitcode}): {exc}"
            ) from exc
        return None

    def _reply(self, what: str) -> Any:
        import time

        deadline = time.monotonic() + RENDER_REPLY_TIMEOUT_S
        while True:
            reply = self._pump()
            if reply is not None:
                kind, value = reply
                if kind == "error":
                    raise RenderProcessError(f"render process: {what} failed: {value}")
                return value
            if not self._process.is_alive() and not self._conn.poll(0):
                raise RenderProcessError(
                    f"render process exited (code {self._process.exitcode}) before it could {what}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise RenderProcessError(
                    f"render process: no answer within {RENDER_REPLY_TIMEOUT_S:g} s to {what}"
                )
            self._conn.poll(min(left, 0.1))

    def _forward(self, value: str) -> None:
        if self._controls is None:
            return
        from vrbalance.sessions.runner import Command

        self._controls.send(Command(value))

    # -- World -----------------------------------------------------------------------

    def connect(self, controls: Any) -> None:
        """Send the window's operator keys to ``controls`` (the runner's command queue)."""
        self._controls = controls

    def begin_trial(self, trial: Any, level: int) -> None:
        self._send(("begin", (trial, level)))
        self._reply(f"show {trial.scene} at level {level}")

    def frame(self, state: Any, calm: bool, surround_pitch_rad: float) -> None:
        reply = self._pump()
        if reply is not None and reply[0] == "error":
            raise RenderProcessError(f"render process: drawing failed: {reply[1]}")
        if not self._process.is_alive():
            raise RenderProcessError(
                f"render process exited (code {self._process.exitcode}) during the trial"
            )
        self._send(("frame", (state, bool(calm), float(surround_pitch_rad))))
        self.frames += 1

    def end_trial(self) -> None:
        self._send(("end", None))

    def set_level(self, level: int) -> None:
        """Show ``level`` of the current scene from the next frame (the console's level keys)."""
        self._send(("level", int(level)))

    def recenter(self) -> None:
        """Recentre the view on the head from the next frame (the view only; see
        :meth:`~vrbalance.sessions.world.SessionWorld.recenter`)."""
        self._send(("recenter", None))

    def screenshot(self, path: Any) -> Path:
        self._send(("screenshot", str(path)))
        return Path(self._reply(f"save a screenshot to {path}"))

    def close(self) -> None:
        """Close the world and end the child (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._process.is_alive():
                self._send(("close", None))
                self._reply("close the world")
        except RenderProcessError as exc:
            log.warning("%s", exc)
        finally:
            self._process.join(timeout=10.0)
            self._kill()

    def _kill(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5.0)
        self._conn.close()
