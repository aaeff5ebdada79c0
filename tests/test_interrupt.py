"""SIGTERM and SIGHUP raise like Ctrl-C, once, and the old handlers come back."""

from __future__ import annotations

import os
import signal
import time

import pytest

from vrbalance.interrupt import Interrupted, interrupt_reason, signals_as_interrupt


def _wait_for_signal() -> None:
    """Let the interpreter run the pending handler (it runs between bytecodes)."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        time.sleep(0.001)
    raise AssertionError("the signal handler never ran")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_termination_signal_raises_interrupted_once(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    closing_finished = False
    with pytest.raises(Interrupted) as info, signals_as_interrupt():
        try:
            os.kill(os.getpid(), sig)
            _wait_for_signal()
        finally:
            # A second signal while closing is ignored: the cleanup runs to its end.
            os.kill(os.getpid(), sig)
            time.sleep(0.01)
            closing_finished = True
    assert closing_finished
    assert isinstance(info.value, KeyboardInterrupt)  # every Ctrl-C path handles it
    assert info.value.signal_name == sig.name and info.value.signum == sig
    assert interrupt_reason(info.value) == sig.name
    assert interrupt_reason(KeyboardInterrupt()) == "Ctrl-C"
    assert signal.getsignal(sig) == before
