"""Ctrl-C while training: the first asks the loop to stop after its step (so
a checkpoint is written); a second stops at once (every file is written
atomically, so the folder stays whole)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable


@contextlib.contextmanager
def ctrl_c_stops(request_stop: Callable[[], None], stopping: Callable[[], bool], where: str):
    """Inside the block, SIGINT calls ``request_stop()`` and says the checkpoint goes to
    ``where``; while ``stopping()``, a second SIGINT raises KeyboardInterrupt. Outside the main
    thread (which alone receives signals) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if stopping():  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        request_stop()
        print(f"\nstopping after this step; the checkpoint goes to {where} (Ctrl-C again to abort at once)",
              file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
