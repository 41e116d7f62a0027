"""Where parallel tasks run, by name: ``local`` (child processes here) or ``dask`` (a Dask cluster).

Both take the same ``tasks.Task`` list and return ``{name: TaskResult}``; a sweep or an experiment
over seeds does not know which one ran it. The scheduler is Dask's; charlab adds none of its own.
"""

from __future__ import annotations

import os
from typing import Protocol

from charlab.errors import CharlabError
from charlab.experiments.dask_pool import DaskExecutor
from charlab.experiments.local_pool import LocalExecutor

EXECUTORS = ("local", "dask")


class Executor(Protocol):
    def describe(self) -> str: ...

    def run(self, tasks, on_done) -> dict: ...


def default_workers() -> int:
    """The cores this process may use (its CPU affinity, where the platform tells)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else (os.cpu_count() or 1)


def make_executor(kind: str = "local", workers: int | None = None, address: str | None = None) -> Executor:
    """The executor ``--executor KIND`` names, checked: ``--workers`` for local, ``--address`` for dask."""
    if kind not in EXECUTORS:
        raise CharlabError(f"--executor must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    if kind == "dask":
        if not address:
            raise CharlabError("--executor dask needs --address tcp://HOST:PORT (the Dask scheduler's)")
        return DaskExecutor(address)
    if address:
        raise CharlabError("--address is for --executor dask; the local executor runs on this machine")
    if workers is not None and workers < 1:
        raise CharlabError(f"--workers must be at least 1, got {workers}")
    return LocalExecutor(workers or default_workers())
