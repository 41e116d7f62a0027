"""Run tasks on a Dask cluster (``pip install 'charlab[dask]'``): the same tasks as the local pool,
scheduled by ``dask.distributed`` on the workers of the scheduler at ``address``.

Each task runs ``tasks.run_task`` on a worker: a ``python -m charlab ...`` child process with the
worker's own interpreter. The workers must have charlab installed and see the same filesystem at
the same paths as this machine (the runs are written there and read back here). Start workers with
one thread each (``dask worker ADDRESS --nthreads 1``) for one run per core.

Ctrl-C cancels the tasks not yet started; a task already running on a worker finishes there (its
run is complete, or resumable, on the next invocation).
"""

from __future__ import annotations

import signal
import uuid
from typing import Callable

from charlab.errors import CharlabError
from charlab.experiments.tasks import REASON_MAX_CHARS, Interrupted, Task, TaskResult, run_task

CONNECT_TIMEOUT = "30s"  # how long to wait for the scheduler before saying it cannot be reached


def client(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise CharlabError("--executor dask needs dask.distributed; install it with "
                           "pip install 'charlab[dask]'") from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as err:
        raise CharlabError(f"cannot reach the Dask scheduler at {address} ({str(err).splitlines()[0][:120]}); "
                           "start one (dask scheduler) or pass its --address") from None


class DaskExecutor:
    """Tasks on the workers of a Dask scheduler, as many at once as the workers have threads."""

    def __init__(self, address: str):
        self.address = address

    def describe(self) -> str:
        return f"the Dask cluster at {self.address}"

    def run(self, tasks: list[Task], on_done: Callable[[TaskResult, int], None]) -> dict[str, TaskResult]:
        from distributed import as_completed

        results = {}
        with client(self.address) as dask:
            batch = uuid.uuid4().hex  # task keys unique on the cluster, whatever ran there before
            futures = {dask.submit(run_task, task, key=f"charlab-{batch}-{task.name}", pure=False): task
                       for task in tasks}
            try:
                for future in as_completed(futures):
                    task = futures[future]
                    try:
                        results[task.name] = future.result()
                    except Exception as err:  # the worker died or the task raised: that task fails, not the sweep
                        results[task.name] = TaskResult(task.name, -1, f"worker failed: {err!r}"[:REASON_MAX_CHARS], 0.0)
                    on_done(results[task.name], sum(not f.done() for f in futures))
            except KeyboardInterrupt:
                dask.cancel(list(futures))
                raise Interrupted(signal.SIGINT, [t.name for f, t in futures.items() if not f.done()]) from None
        return results
