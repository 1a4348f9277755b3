"""Commands whose standard output feeds a pipeline (``| head``, ``| jq``, a pager) stop as a pipeline's
writer does when the reader goes away."""

from __future__ import annotations

import os
import sys


def silence_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's last flush meets no closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no file (a test runner's buffer): nothing to silence
        pass
