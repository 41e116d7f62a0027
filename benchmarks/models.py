"""Every preset trained on names, one table: parameters, wall time, train/dev/test on charlab's split
and test on makemore's split (makemore's own 1,000 test names, so the figure compares with makemore).

Each preset is trained twice, once per split, through ``charlab.train`` (the same code as
``charlab train --preset NAME [--split makemore]``). ``--scale`` shortens every preset's schedule by
the same factor (steps, warmup, eval interval; the step-decay point is a fraction, so it moves with
them); ``--scale 1`` is the presets as shipped.

    python benchmarks/models.py --scale 0.05              # a short version, a few minutes
    python benchmarks/models.py --presets wavenet best    # the full schedules of two presets
    python benchmarks/models.py --presets best --json > a.json   # rows saved, then one table:
    python benchmarks/models.py --table a.json b.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import charlab
from charlab.config import load_preset, preset_names
from charlab.report.table import markdown_table

SPLITS = ("charlab", "makemore")
ORDER = ("bigram-counts", "bigram", "mlp", "mlp-bn", "deep-bn", "fast", "wavenet", "rnn", "gru", "lstm", "bow",
         "transformer", "best")  # simplest first; presets not named here follow
TARGETS = {  # issue 5's targets, printed next to the figures
    "bigram-counts": "test ~2.45",
    "mlp-bn": "dev ~2.10",
    "wavenet": "dev <= 1.99",
    "best": "makemore test <= 1.85",
}


def scaled_overrides(preset: str, scale: float) -> dict:
    """The preset's schedule shortened by ``scale`` (at least one step where it had any)."""
    _, train = load_preset(preset)
    steps = max(round(train.steps * scale), 1) if train.steps else 0
    return {"steps": steps, "warmup_steps": round(train.warmup_steps * scale),
            "eval_interval": max(round(train.eval_interval * scale), 1)}


def run_preset(preset: str, scale: float, threads: int | None, splits: tuple[str, ...] = SPLITS) -> dict:
    row = {"preset": preset}
    overrides = scaled_overrides(preset, scale)
    torch.set_num_threads(threads or load_preset(preset)[1].threads)  # as `charlab train` would
    for split in splits:
        result = charlab.train(preset=preset, split=split, n_samples=0, **overrides)
        summary = result.summary()
        members = f" x{summary['members']}" if summary["members"] > 1 else ""
        row.update(model=summary["model"] + members, parameters=summary["parameters"], steps=summary["steps"])
        row[split] = {"wall_s": result.wall_time_s, **result.losses}
        print(f"{preset} [{split}]: {result.losses} in {result.wall_time_s:.0f} s", file=sys.stderr,
              flush=True)
    print("row " + json.dumps(row), file=sys.stderr, flush=True)  # kept even if a later preset is cut off
    return row


TABLE_HEADER = ("preset", "model", "params", "steps", "wall s (charlab + makemore)", "train", "dev", "test",
                "makemore test", "target")


def table(rows: list[dict]) -> str:
    cells = [[f"`{r['preset']}`", r["model"], f"{r['parameters']:,}", f"{r['steps']:,}",
              f"{r['charlab']['wall_s']:.0f} + {r['makemore']['wall_s']:.0f}", r["charlab"]["train"],
              r["charlab"]["dev"], r["charlab"]["test"], r["makemore"]["test"], TARGETS.get(r["preset"], "")]
             for r in rows]
    return markdown_table(TABLE_HEADER, cells, specs=[None] * 5 + ["{:.4f}"] * 4 + [None])


def table_order() -> list[str]:
    names = preset_names()
    return [n for n in ORDER if n in names] + [n for n in names if n not in ORDER]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=None, help="presets to train (default: all)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each preset's steps")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: each preset's own, as `charlab train` uses)")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS),
                        help="train on these splits only (a row's splits can come from several --json files)")
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON document")
    parser.add_argument("--table", nargs="+", metavar="JSON", default=None,
                        help="train nothing: print one table of the rows in these saved --json outputs "
                             "(runs split over several processes), in preset order")
    args = parser.parse_args(argv)
    if not args.scale > 0:
        parser.error("--scale must be positive")
    if args.table:
        merged: dict[str, dict] = {}  # a preset's splits may come from different files
        for path in args.table:
            for row in json.loads(Path(path).read_text())["rows"]:
                merged.setdefault(row["preset"], {}).update(row)
        print(table(sorted(merged.values(), key=lambda r: table_order().index(r["preset"]))))
        return 0
    presets = args.presets or table_order()
    start = time.perf_counter()
    rows = [run_preset(p, args.scale, args.threads, tuple(args.splits)) for p in presets]
    if args.json:
        json.dump({"scale": args.scale, "rows": rows}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(f"scale {args.scale}: every preset's schedule x{args.scale}; "
              f"{time.perf_counter() - start:.0f} s in all")
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
