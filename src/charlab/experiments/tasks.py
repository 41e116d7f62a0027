"""One unit of parallel work: a ``python -m charlab ...`` command line, run in its own process.

A task is a charlab command line (``train --out RUN ...`` or ``experiment NAME --seed S ...``) whose
results land on disk (a run directory, an experiment's JSON), so a task is the same on this machine
and on a cluster worker that sees the same paths. Its stdout and stderr go to log files; a task that
exits non-zero has failed, and the reason is the last line it wrote on stderr (charlab's one-line
error) or the signal that killed it.

The process runs one thread (``WORKER_THREADS``): parallelism comes from running several tasks at
once, and one thread per process keeps every run's float sums, so its numbers, independent of how
many run beside it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

WORKER_THREADS = 1  # one per process: the lecture's small matrices gain nothing from more, the cores go to runs
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
REASON_MAX_CHARS = 300  # a failure reason is one line of the results table
TAIL_BYTES = 4096  # enough of a log's end to hold its last lines
SIGNAL_EXIT_BASE = 128  # shell convention: a process ended by signal N exits with 128 + N


@dataclass(frozen=True)
class Task:
    """``python -m charlab ARGS`` with stdout to ``LOG.out`` and stderr to ``LOG.err``."""

    name: str
    args: tuple[str, ...]
    log: str


@dataclass(frozen=True)
class TaskResult:
    name: str
    returncode: int
    reason: str | None  # None: it succeeded
    wall_s: float

    @property
    def ok(self) -> bool:
        return self.reason is None


class Interrupted(Exception):
    """A pool was stopped by a signal; its running tasks were stopped (and checkpointed) first."""

    def __init__(self, signum: int, stopped: list[str]):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum, self.stopped = signum, stopped

    @property
    def exit_code(self) -> int:
        return SIGNAL_EXIT_BASE + self.signum


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({name: str(WORKER_THREADS) for name in THREAD_VARIABLES})
    env.update(PYTHONIOENCODING="utf-8", NO_COLOR="1")
    return env


def command(task: Task) -> list[str]:
    """The interpreter of the process that runs it (a cluster worker's own), then charlab's module."""
    return [sys.executable, "-m", "charlab", *task.args]


def start(task: Task, **popen) -> subprocess.Popen:
    """Launch ``task`` with its logs; ``popen`` adds options (a new session, a pre-exec hook)."""
    log = Path(task.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log.with_suffix(".out"), "wb") as out, open(log.with_suffix(".err"), "wb") as err:
        return subprocess.Popen(command(task), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=child_env(),
                                **popen)


def last_line(path: Path) -> str | None:
    if not path.is_file():
        return None
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - TAIL_BYTES))
        lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1] if lines else None


def failure_reason(task: Task, returncode: int) -> str | None:
    """None for success; else the signal that killed it or its last line on stderr (exit status if none)."""
    if returncode == 0:
        return None
    signum = -returncode if returncode < 0 else returncode - SIGNAL_EXIT_BASE
    if returncode < 0 or signum in (signal.SIGKILL, signal.SIGSEGV):
        return f"killed by {signal.Signals(signum).name}"
    line = last_line(Path(task.log).with_suffix(".err"))
    return (line or f"exit status {returncode}")[:REASON_MAX_CHARS]


def finish(task: Task, returncode: int, started: float) -> TaskResult:
    return TaskResult(task.name, returncode, failure_reason(task, returncode), time.monotonic() - started)


def run_task(task: Task) -> TaskResult:
    """Run ``task`` to the end where this is called (a cluster worker runs tasks through this)."""
    started = time.monotonic()
    return finish(task, start(task).wait(), started)
