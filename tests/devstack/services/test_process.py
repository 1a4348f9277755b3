"""Holding the stop signals while a process is started and recorded (devstack/services/process.py)."""

from __future__ import annotations

import os
import signal
import time
from types import FrameType

import pytest

from devstack.services.process import stop_signals_held


class Stopped(BaseException):
    """What a stop handler raises here (as the demo's does while it starts)."""


def _raise_stopped(_signum: int, _frame: FrameType | None) -> None:
    raise Stopped


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_inside_the_block_reaches_the_handler_after_it(signum: int) -> None:
    previous = signal.signal(signum, _raise_stopped)
    done: list[str] = []
    try:
        with pytest.raises(Stopped), stop_signals_held():
            os.kill(os.getpid(), signum)
            time.sleep(0.2)  # delivered meanwhile: a handler in place would have raised here
            done.append("recorded")
        assert done == ["recorded"]
        assert signal.getsignal(signum) is _raise_stopped  # the handler is back in place
    finally:
        signal.signal(signum, previous)


def test_an_ignored_signal_stays_ignored() -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_signals_held():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.2)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
