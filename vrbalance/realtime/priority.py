"""Optional operating-system tuning of the thread that runs the balance loop.

Two Linux knobs help a Python thread keep a 1 kHz schedule, and both are
per-thread, so they touch neither the renderer nor other programs:

* **Timer slack** (``prctl(PR_SET_TIMERSLACK)``): Linux lets a sleeping
  thread wake up to 50 µs late by default so that timers can be merged. Setting
  it to 1 µs makes ``time.sleep`` wake closer to the asked time, so a shorter
  spin window suffices. Unprivileged and harmless.
* **Real-time policy** (``SCHED_FIFO``): the thread pre-empts every normal
  thread on its core when it wakes. It needs ``CAP_SYS_NICE`` or an
  ``RLIMIT_RTPRIO`` grant (``/etc/security/limits.conf``: ``@audio - rtprio 20``
  style); without them the request is refused and logged, never fatal. Linux
  throttles real-time threads to 95 % of a core by default, so a runaway loop
  cannot lock the machine up. It does not help against the GIL: a Python
  thread that waits for the GIL still waits for the holder's switch interval.

Neither is on by default; ``benchmarks/bench_loop.py`` measures both. On
other systems :func:`tune_current_thread` does nothing and says so.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from dataclasses import dataclass

logger = logging.getLogger(__name__)

_PR_SET_TIMERSLACK = 29
_PR_GET_TIMERSLACK = 30


@dataclass(frozen=True, slots=True)
class ThreadTuning:
    """What :func:`tune_current_thread` changed, and how to undo it.

    Attributes
    ----------
    timer_slack_ns : int or None
        Timer slack now in force, ns (``None``: unchanged or unknown).
    previous_timer_slack_ns : int or None
        Timer slack before, ns, for :func:`restore_current_thread`.
    fifo_priority : int or None
        ``SCHED_FIFO`` priority now in force (``None``: not real-time).
    previous_policy : tuple of (int, int) or None
        ``(policy, priority)`` before, for :func:`restore_current_thread`.
    notes : tuple of str
        What was refused or unavailable, for the log.
    """

    timer_slack_ns: int | None = None
    previous_timer_slack_ns: int | None = None
    fifo_priority: int | None = None
    previous_policy: tuple[int, int] | None = None
    notes: tuple[str, ...] = ()


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - a Linux without a loadable libc
        return None


def check_tuning(timer_slack_ns: int | None, fifo_priority: int | None) -> None:
    """Raise ``ValueError`` naming the value if a tuning request is out of range."""
    if timer_slack_ns is not None and (
        isinstance(timer_slack_ns, bool)
        or not isinstance(timer_slack_ns, int)
        or timer_slack_ns < 1
    ):
        raise ValueError(f"timer_slack_ns must be an int >= 1 or None, got {timer_slack_ns!r}")
    if fifo_priority is not None and (
        isinstance(fifo_priority, bool)
        or not isinstance(fifo_priority, int)
        or not 1 <= fifo_priority <= 99
    ):
        raise ValueError(
            f"fifo_priority must be an int within [1, 99] or None, got {fifo_priority!r}"
        )


def tune_current_thread(
    *, timer_slack_ns: int | None = None, fifo_priority: int | None = None
) -> ThreadTuning:
    """Apply the requested tuning to the calling thread, as far as allowed.

    Parameters
    ----------
    timer_slack_ns : int, optional
        New timer slack in ns (>= 1); ``None`` leaves it.
    fifo_priority : int, optional
        ``SCHED_FIFO`` priority (1-99; 10 is plenty: above every normal
        thread, below the kernel's own real-time threads); ``None`` leaves
        the policy.

    Returns
    -------
    ThreadTuning
        What was applied; refusals are in ``notes`` (also logged), not raised.

    Raises
    ------
    ValueError
        If a requested value is out of range.
    """
    check_tuning(timer_slack_ns, fifo_priority)
    notes: list[str] = []
    slack = previous_slack = None
    if timer_slack_ns is not None:
        libc = _libc()
        if libc is None:
            notes.append(f"timer slack not available on {sys.platform}")
        else:
            old = libc.prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0)
            if libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(timer_slack_ns), 0, 0, 0) == 0:
                slack, previous_slack = timer_slack_ns, (old if old >= 0 else None)
            else:
                notes.append(f"timer slack refused: {os.strerror(ctypes.get_errno())}")
    fifo = previous_policy = None
    if fifo_priority is not None:
        setter = getattr(os, "sched_setscheduler", None)
        if setter is None:
            notes.append(f"SCHED_FIFO not available on {sys.platform}")
        else:
            try:
                before = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
                setter(0, os.SCHED_FIFO, os.sched_param(fifo_priority))
                fifo, previous_policy = fifo_priority, before
            except OSError as exc:
                notes.append(
                    f"SCHED_FIFO {fifo_priority} refused ({exc.strerror}): needs CAP_SYS_NICE "
                    "or an rtprio limit"
                )
    for note in notes:
        logger.info("loop thread tuning: %s", note)
    return ThreadTuning(slack, previous_slack, fifo, previous_policy, tuple(notes))


def restore_current_thread(tuning: ThreadTuning) -> None:
    """Undo :func:`tune_current_thread` on the calling thread (best effort, logged)."""
    if tuning.previous_timer_slack_ns is not None:
        libc = _libc()
        if libc is not None:
            libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(tuning.previous_timer_slack_ns), 0, 0, 0)
    if tuning.previous_policy is not None:
        policy, priority = tuning.previous_policy
        try:
            os.sched_setscheduler(0, policy, os.sched_param(priority))
        except OSError as exc:
            logger.warning("could not restore the thread's scheduling policy: %s", exc)
