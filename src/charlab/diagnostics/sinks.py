"""Where the recorder's records go: a ``Sink`` is handed every record; the JSON-lines file is one.

A sink never hooks the model: the recorder (``recorder.py``) is the one collector, and a sink only
converts its records (plain dicts, see there) to its medium. The recorder passes on to its sinks the
loop's events that need no hook (``on_train_start``, ``on_step_end``, ``on_eval``, ``on_train_end``),
so a sink can open and close its file and show what changes between sampled steps (TensorBoard's
loss curve, ``tensorboard.py``); it is never sent ``on_step_start`` or ``on_after_backward``.
"""

from __future__ import annotations

import json
from pathlib import Path

from charlab.errors import CharlabError
from charlab.rundir.atomic import atomic_write_bytes
from charlab.training.events import Observer, TrainView


class Sink(Observer):
    """A consumer of records. ``every_histogram``: the recorder adds histograms of every layer's
    output and gradient and of every parameter's gradient and value after the step (TensorBoard
    shows them all; the figures need only some, so the JSON lines stay small without it)."""

    every_histogram = False

    def write(self, record: dict) -> None:
        raise NotImplementedError


class JsonLinesSink(Sink):
    """Each record as one JSON line, appended to ``path`` (emptied when training starts)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_train_start(self, view: TrainView) -> None:
        self.path.write_text("", encoding="utf-8")

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def read_records(path: str | Path) -> list[dict]:
    """Records from a JSON-lines file written by ``JsonLinesSink`` (or ``charlab diagnose``)."""
    path = Path(path)
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise CharlabError(f"{path} line {n} is not JSON; the diagnostics file is corrupted: "
                               "re-create it with `charlab diagnose`") from None
    return records


def write_records(path: str | Path, records: list[dict]) -> None:
    """All records as JSON lines, written atomically."""
    atomic_write_bytes(Path(path), "".join(json.dumps(r) + "\n" for r in records).encode("utf-8"))
