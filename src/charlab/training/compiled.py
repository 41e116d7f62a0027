"""Compiling the hand-derived SGD steps (``hand_backward.sgd_steps``): the on-disk cache, a
background worker that hides the cold compile, and the fallback to the eager step.

A cold ``torch.compile`` of ``UNROLL_STEPS`` steps takes tens of seconds (inductor writes and builds
C++); loading it from the on-disk cache takes a few. ``Compiler`` gives the strategy
(``steps.HandDerivedStep``) the compiled chunk when it is ready:

- ``background=True`` (``--fast-path auto``): a worker subprocess (``python -m
  charlab.training.compile_worker``) compiles the very graph (same shapes, dtypes, structure and thread
  count, so the same cache key) while the trainer takes eager hand-derived steps on this core; when
  the worker exits, this process compiles from the warm cache (a few seconds) and switches. A
  worker still compiling when training ends is left to finish (at a low priority): a cold compile
  can take longer than a whole run, and the cache it fills makes the next run fast. Once the graph has
  been compiled into a cache folder, a marker there (named by a hash of the shapes, the source of
  ``hand_backward.py`` and the torch version) says so, and the next run compiles in this process at
  once, from the warm cache, instead of waiting for a worker.
- ``background=False`` (``--fast-path compile``): compiled in this process at the first chunk.

Either way a failure (no C++ compiler, an inductor error) prints ONE line on stderr and training
goes on with the eager hand-derived step. The cache is ``TORCHINDUCTOR_CACHE_DIR`` when set, else
``~/.cache/charlab/inductor`` (torch's default lives in /tmp, emptied on reboot).

The eager and compiled steps compute the same SGD step and differ by float rounding (fused
kernels), so a switch at a time-dependent step changes later losses only at that level.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from charlab.training import hand_backward
from charlab.training.graph_call import Capture, DirectCall, shared_capture, signature

CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
DEFAULT_CACHE = Path("~/.cache/charlab/inductor")
POLL_EVERY = 200  # steps between checks of the worker (a syscall; ~0.1 s of eager steps)


def use_cache_dir() -> Path:
    """Point torch's inductor caches at a persistent folder (``TORCHINDUCTOR_CACHE_DIR`` if set)."""
    path = os.environ.get(CACHE_ENV) or str(DEFAULT_CACHE.expanduser())
    os.environ[CACHE_ENV] = path
    return Path(path)


def cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def marker(spec: dict) -> Path:
    """The file that says this graph is in the cache: a hash of what the cache key depends on."""
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    key.update(Path(hand_backward.__file__).read_bytes())
    key.update(f"{torch.__version__} {sys.version} {json.dumps(INDUCTOR_OPTIONS, sort_keys=True)}".encode())
    return use_cache_dir() / f"charlab-sgd-steps-{key.hexdigest()[:24]}.done"


# Inductor options of the compiled steps. ``cpp_wrapper``: the code that calls the kernels and the
# matrix multiplies is C++ instead of Python; at mlp-bn's ~70 us steps, the Python wrapper's per-call
# allocations and views cost ~35 us a step (measured: 4-step graphs ran ~9,000 steps/s with the Python
# wrapper, ~13,500 with the C++ one, one thread, 2-core machine, after a cold compile of ~20 s).
# ``cpp.vec_isa_ok``: trust the vector instructions the CPU reports instead of building and loading a
# probe library for each in a subprocess, in every process that loads the graph (1.6 s of a 3.3 s
# warm load here); a compiler that cannot build them fails the compile, which falls back as any failure.
INDUCTOR_OPTIONS = {"cpp_wrapper": True, "cpp.vec_isa_ok": True}


def capture() -> Capture:
    """The process's inductor backend with ``INDUCTOR_OPTIONS`` (``graph_call.shared_capture``)."""
    return shared_capture(json.dumps(INDUCTOR_OPTIONS, sort_keys=True))


def compile_steps(backend: Capture | None = None):
    """``sgd_steps`` under ``torch.compile`` with inductor and ``INDUCTOR_OPTIONS``; the backend keeps
    the compiled graphs for ``graph_call.DirectCall``."""
    return torch.compile(hand_backward.sgd_steps, fullgraph=True, dynamic=False, backend=backend or capture())


def say_fallback(why: str) -> None:
    line = why.strip().splitlines()[-1] if why.strip() else "unknown error"
    print(f"charlab: compiling the SGD steps failed ({line[:200]}); training goes on with the eager "
          "hand-derived step", file=sys.stderr, flush=True)


class Compiler:
    """The compiled ``sgd_steps`` for a ``HandBackward``, once it is ready (``ready``)."""

    def __init__(self, hand: hand_backward.HandBackward, background: bool, min_remaining: int = 0):
        self.hand = hand
        self.background = background
        self.min_remaining = min_remaining  # switch only with at least this many steps to go
        self.compiled = None  # the compiled function once it works
        self.failed = False
        self.worker: subprocess.Popen | None = None
        self.log = None
        self.next_poll = 0
        self.marker: Path | None = None
        self.compile_s: float | None = None  # in-process compile time (seconds), once compiled
        self.direct: DirectCall | None = None  # the graph called straight, after the first chunk

    def begin(self, trainer) -> None:
        if self.compiled is not None or self.failed or self.worker is not None:
            return
        spec = self.hand.example_inputs(trainer.cfg.batch_size, trainer.train_examples.x.shape[1])
        spec["threads"] = torch.get_num_threads()
        self.marker = marker(spec)
        if not self.background or self.marker.exists():
            self.compiled = compile_steps()  # compiles at its first call (``run``), from the cache when warm
            return
        self.log = tempfile.TemporaryFile()
        env = dict(os.environ, TORCHINDUCTOR_COMPILE_THREADS="1")  # leave the trainer its core; not in the cache key
        try:
            self.worker = subprocess.Popen([sys.executable, "-m", "charlab.training.compile_worker"],
                                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.log, env=env)
            self.worker.stdin.write(json.dumps(spec).encode())
            self.worker.stdin.close()
        except OSError as err:
            self.fail(str(err))

    def fail(self, why: str) -> None:
        self.failed, self.compiled = True, None
        say_fallback(why)

    def ready(self, step: int, total: int):
        """The compiled function, or None while it is not (yet) worth using."""
        if self.compiled is not None or self.failed:
            return self.compiled
        if self.worker is None or step < self.next_poll:
            return None
        self.next_poll = step + POLL_EVERY
        code = self.worker.poll()
        if code is None:
            return None
        self.worker = None
        if code != 0:
            self.log.seek(0)
            self.fail(self.log.read().decode(errors="replace") or f"worker exit status {code}")
            return None
        if total - step < self.min_remaining:
            self.failed = True  # too late to pay for the in-process compile: stay eager, quietly
            return None
        self.compiled = compile_steps()
        return self.compiled

    def run(self, x: torch.Tensor, y: torch.Tensor, lrs: torch.Tensor) -> torch.Tensor | None:
        """A compiled chunk, or None when compiling fails (then never again)."""
        if self.compile_s is None:
            start, compiled_before = time.perf_counter(), len(capture().graphs)
            try:
                losses = self.hand.chunk(self.compiled, x, y, lrs)
            except Exception as err:  # noqa: BLE001  no compiler, inductor error: fall back, say so
                self.fail(f"{type(err).__name__}: {err}")
                return None
            self.compile_s = time.perf_counter() - start
            self.marker.touch()
            args = self.arguments(self.hand.params, self.hand.buffers, x, y, lrs)
            self.direct = DirectCall.build(capture(), signature(self.hand.plan, args), args, compiled_before)
            return losses
        return self.hand.chunk(self.compiled if self.direct is None else self.direct_steps, x, y, lrs)

    @staticmethod
    def arguments(params, buffers, x, y, lrs) -> list[torch.Tensor]:
        """The tensors of a call of ``sgd_steps``, in the order ``DirectCall`` takes them."""
        return [*params, *buffers, x, y, lrs]

    def direct_steps(self, params, buffers, plan, x, y, lrs) -> torch.Tensor:
        """``sgd_steps``'s signature, run by the compiled graph called straight (``graph_call.py``)."""
        return self.direct(self.arguments(params, buffers, x, y, lrs))  # (unroll,)

    def end(self) -> None:
        """Training is over: a worker still compiling is left to finish filling the cache."""
        self.worker = None
