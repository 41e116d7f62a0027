"""SIGINT/SIGTERM during training: finish the current step, save a checkpoint, exit 130/143.

``graceful_stop(view)`` installs handlers for the duration of ``fit``: the first signal asks the
trainer to stop through its ``TrainView`` (the loop finishes its step, the checkpointer saves
``last``), and the caller raises the stop reason, whose exit status is 128 + the signal number, the shell's
convention. A second signal while stopping raises ``KeyboardInterrupt`` at once. The previous
handlers are restored on exit. Outside the main thread (where Python allows no handlers) it does
nothing. SIGKILL cannot be caught: checkpoints are atomic, so the previous one stays loadable.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from charlab.training.stopping import TrainingStopped

SIGNAL_EXIT_BASE = 128  # shell convention: a process ended by signal N exits with 128 + N
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(TrainingStopped):
    def __init__(self, signum: int):
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name}", SIGNAL_EXIT_BASE + signum, keep_state=True)
        self.signum = signum


@contextmanager
def graceful_stop(view, enabled: bool = True):
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame):
        if view.stop_requested:
            raise KeyboardInterrupt
        view.request_stop(Interrupted(signum))

    previous = {s: signal.signal(s, handle) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
