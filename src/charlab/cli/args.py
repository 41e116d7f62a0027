"""Flags generated from the config dataclasses, and small helpers shared by the commands."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys

from charlab.config import DEFAULT_SEED, ModelConfig, TrainConfig
from charlab.rundir import Run, load_run


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per config field; the default ``None`` means "the preset's value"."""
    for cls, title in ((ModelConfig, "model (override the preset)"), (TrainConfig, "training (override the preset)")):
        group = parser.add_argument_group(title)
        for f in dataclasses.fields(cls):
            meta = f.metadata or {}
            if meta.get("help") is None:
                continue
            kind = meta.get("type", type(f.default))  # a setting whose default is None names its type
            group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind, default=None,
                               choices=meta.get("choices"), metavar=None if meta.get("choices") else f.name.upper(),
                               help=f"{meta['help']} (default: preset's; built-in {f.default!r})")


def config_overrides(args: argparse.Namespace) -> dict:
    names = [f.name for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)]
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def finite_or_null(doc):
    """``doc`` with NaN and infinities as ``None``: they are not JSON (an empty split's loss is NaN)."""
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: finite_or_null(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [finite_or_null(v) for v in doc]
    return doc


def print_json(doc) -> None:
    """The one JSON document a ``--json`` command prints on stdout (strict JSON: no NaN)."""
    json.dump(finite_or_null(doc), sys.stdout, indent=1, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else there")


def load_run_noted(run) -> Run:
    """``rundir.load_run``, saying on stderr (one line) when the run has no final weights and its
    checkpoint's are used instead (a run killed mid-training)."""
    loaded = load_run(run)
    if loaded.weights is not None:
        print(f"charlab: {run} has no final weights (training did not finish); using "
              f"{loaded.weights['source']} from step {loaded.weights['step']}", file=sys.stderr)
    return loaded


def with_weights(doc, loaded: Run):
    """``doc`` with ``"weights": {"source", "step"}`` when ``loaded`` came from a checkpoint: a key of a
    dict, or of every row of a list; unchanged for a run with final weights."""
    if loaded.weights is None:
        return doc
    if isinstance(doc, dict):
        return {**doc, "weights": loaded.weights}
    return [{**row, "weights": loaded.weights} if isinstance(row, dict) else row for row in doc]


def add_seed_flags(parser: argparse.ArgumentParser) -> None:
    """--seed, --seeds and --vary-split: the seeds a comparison trains with and the split they share."""
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="the seed (with --seeds, the first one and the seed of the shared split)")
    parser.add_argument("--seeds", metavar="N|S1,S2,...", default=None,
                        help="train every variant with N seeds (--seed, --seed+1, ...) or with the seeds listed, "
                             "all on one split; tables show mean ± std and a 95 %% Student-t interval, and "
                             "adjacent variants are compared paired by seed")
    parser.add_argument("--vary-split", action="store_true",
                        help="with --seeds: let each seed shuffle its own train/dev/test split too "
                             "(default: every seed trains on --seed's split)")


def add_executor_flags(parser: argparse.ArgumentParser, what: str) -> None:
    """--workers, --executor and --address: where the parallel runs go."""
    from charlab.experiments.executors import EXECUTORS, default_workers  # only the commands that run in parallel

    group = parser.add_argument_group("parallel runs")
    group.add_argument("--workers", type=int, default=None, metavar="N",
                       help=f"{what} at once, each a process with one thread "
                            f"(default: the cores, {default_workers()} here)")
    group.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="local: worker processes on this machine; dask: the workers of a Dask cluster "
                            "(pip install 'charlab[dask]'; every worker must have charlab installed and see "
                            "--out and --data at the same paths as this machine)")
    group.add_argument("--address", metavar="tcp://HOST:PORT", default=None,
                       help="the Dask scheduler's address (--executor dask)")
