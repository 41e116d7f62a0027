"""The background compile worker of ``compiled.Compiler``: ``python -m charlab.training.compile_worker``
reads a spec (shapes, dtypes, the plan, the thread count) on stdin, compiles ``sgd_steps`` for inputs
of those shapes into the on-disk cache (``TORCHINDUCTOR_CACHE_DIR``, set by the trainer) and exits 0;
an error exits non-zero with its message on stderr. It runs at a low priority (the trainer comes
first) and outlives a trainer that finishes before it: the cache it fills makes the next run fast
(``compiled.py``); it gives up after ``WORKER_TIMEOUT_S``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import torch

from charlab.training import hand_backward
from charlab.training.compiled import compile_steps, marker

WORKER_TIMEOUT_S = 900  # a compile that takes longer than this is stuck: give up
NICE = 10  # below the trainer: on a busy machine its eager steps come first


def example_tensors(spec: dict):
    """Inputs shaped like the trainer's (values do not matter to the compiled code)."""
    gen = torch.Generator().manual_seed(0)

    def tensor(shape, dtype):
        return torch.rand(shape, generator=gen, dtype=getattr(torch, dtype.removeprefix("torch."))) + 0.5

    params = [tensor(shape, dtype) for shape, dtype in spec["params"]]
    buffers = [tensor(shape, dtype) for shape, dtype in spec["buffers"]]
    plan = hand_backward.Plan(tuple(hand_backward.Hidden(**b) for b in spec["plan"]["blocks"]),
                              spec["plan"]["out_flatten"])
    k, b = spec["unroll"], spec["batch_size"]
    x = torch.randint(0, spec["vocab"], (k, b, spec["block_size"]), generator=gen)  # (K, B, T)
    y = torch.randint(0, params[-1].shape[0], (k, b), generator=gen)  # (K, B)
    lrs = torch.full((k,), 0.01)  # (K,) float32, as the trainer's torch.tensor of floats
    return params, buffers, plan, x, y, lrs


def give_up_after(seconds: float) -> None:
    time.sleep(seconds)
    os._exit(1)


def worker_main() -> int:
    spec = json.loads(sys.stdin.read())
    threading.Thread(target=give_up_after, args=(WORKER_TIMEOUT_S,), daemon=True).start()
    if hasattr(os, "nice"):
        os.nice(NICE)
    torch.set_num_threads(spec["threads"])
    params, buffers, plan, x, y, lrs = example_tensors(spec)
    with torch.no_grad():
        compile_steps()(params, buffers, plan, x, y, lrs)
    marker(spec).touch()
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
