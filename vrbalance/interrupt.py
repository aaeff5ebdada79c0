"""SIGTERM and SIGHUP end a command the way Ctrl-C does.

Python turns SIGINT (Ctrl-C) into :class:`KeyboardInterrupt`, which unwinds the
stack through every ``finally``: the session runner ends the trial and the
session as ``operator_abort``, closes the recording and files it, and the
simulated plate removes its pseudo-terminal folder. SIGTERM (``kill``, a
service manager stopping the station, a shutdown) and SIGHUP (the terminal
closed) would otherwise end the process on the spot: a session left
"recording" and unfiled, a temporary folder left behind.

:func:`signals_as_interrupt` makes those two signals raise :class:`Interrupted`,
a :class:`KeyboardInterrupt`, so the one well-tested Ctrl-C path handles every
way out. Only the first signal raises: a second one while the command is
already closing is logged and ignored, so it cannot cut the cleanup short
(SIGKILL still ends a hung process).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

__all__ = ["HANDLED_SIGNALS", "Interrupted", "interrupt_reason", "signals_as_interrupt"]

#: The signals handled like Ctrl-C (SIGINT keeps Python's own handler).
HANDLED_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A termination signal, delivered like Ctrl-C.

    Parameters
    ----------
    signum : int
        The signal number (``signal.SIGTERM``...).
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.signal_name = signal.Signals(signum).name
        super().__init__(self.signal_name)


def interrupt_reason(exc: BaseException) -> str:
    """How an interrupt reads in the recording: ``"Ctrl-C"`` or ``"SIGTERM"``..."""
    # Interrupted (a signal) and the console channel's ConsoleGone name themselves.
    return str(getattr(exc, "signal_name", "Ctrl-C"))


@contextmanager
def signals_as_interrupt(
    signals: tuple[signal.Signals, ...] = HANDLED_SIGNALS,
) -> Iterator[None]:
    """While inside, ``signals`` raise :class:`Interrupted` in the main thread.

    Outside the main thread (a command run from a test's worker thread)
    handlers cannot be installed, and this does nothing. The previous
    handlers come back on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if fired:
            log.warning("%s while closing: already closing", signal.Signals(signum).name)
            return
        fired.append(signum)
        log.warning("%s received: closing as for Ctrl-C", signal.Signals(signum).name)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
