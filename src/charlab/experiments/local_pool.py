"""Run tasks on this machine: up to ``workers`` child processes at once, one thread each.

The pool is a loop in the calling (main) thread: start tasks while fewer than ``workers`` run, look
at the children every ``POLL_S``, record each one that ends. A child that crashes fails its task,
not the pool.

Stopping leaves no orphans. Children run in their own session, so a Ctrl-C at the terminal reaches
only the pool; the pool then sends each child one SIGTERM (a ``charlab train`` finishes its step,
saves its checkpoint and exits 143, so a rerun resumes it), waits up to ``STOP_GRACE_S``, kills
what is left and raises ``Interrupted``. SIGTERM to the pool does the same. Should the pool itself
be killed outright (SIGKILL), Linux sends each child SIGTERM (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from subprocess import Popen
from typing import Callable

from charlab.experiments.tasks import SIGNAL_EXIT_BASE, Interrupted, Task, TaskResult, finish, start

POLL_S = 0.1  # how often the pool looks at its children: nothing next to a run's seconds
STOP_GRACE_S = 60.0  # after SIGTERM a run finishes its step and saves a checkpoint: seconds at most
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): a signal for the child when its parent dies


class _Signalled(Exception):
    def __init__(self, signum: int):
        self.signum = signum


def parent_death_hook() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when the pool dies; None elsewhere. ``prctl``
    is looked up here, before any fork, so the hook itself only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the pool died before the hook ran
            os._exit(SIGNAL_EXIT_BASE + signal.SIGTERM)

    return hook


@contextmanager
def sigterm_raises():
    """SIGTERM raises ``_Signalled`` in the main thread (SIGINT raises KeyboardInterrupt already)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame):
        raise _Signalled(signum)

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class LocalExecutor:
    """Tasks in child processes on this machine, ``workers`` at a time."""

    def __init__(self, workers: int):
        self.workers = workers

    def describe(self) -> str:
        return f"{self.workers} local worker process{'es' if self.workers != 1 else ''}"

    def run(self, tasks: list[Task], on_done: Callable[[TaskResult, int], None]) -> dict[str, TaskResult]:
        """Run every task; ``on_done(result, running)`` after each. Raises ``Interrupted`` on a signal."""
        pending, running, results = list(reversed(tasks)), {}, {}
        hook = parent_death_hook()
        with sigterm_raises():
            try:
                while pending or running:
                    ended = [name for name, (_, proc, _) in running.items() if proc.poll() is not None]
                    for name in ended:
                        task, proc, started = running.pop(name)
                        results[name] = finish(task, proc.returncode, started)
                    while pending and len(running) < self.workers:
                        task = pending.pop()
                        running[task.name] = (task, start(task, start_new_session=True, preexec_fn=hook),
                                              time.monotonic())
                    for name in ended:
                        on_done(results[name], len(running))
                    time.sleep(POLL_S)
            except KeyboardInterrupt:
                raise Interrupted(signal.SIGINT, stop_all(running)) from None
            except _Signalled as sig:
                raise Interrupted(sig.signum, stop_all(running)) from None
        return results


def stop_all(running: dict[str, tuple[Task, Popen, float]]) -> list[str]:
    """One SIGTERM to each running child, then wait (a second signal to the pool kills them at once)."""
    procs = [proc for _, proc, _ in running.values()]
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    try:
        for proc in procs:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except BaseException:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for proc in procs:
            proc.wait()
    return list(running)
