"""Cost of the safety net: steps/s of ``Trainer.fit`` alone vs ``safe_fit.fit_safely`` (non-finite
guard + checkpoints at each evaluation + signal handlers), same config, runs interleaved.

    OMP_NUM_THREADS=1 python benchmarks/checkpoint_overhead.py [--steps 5000] [--repeats 3]

Prints one JSON line: steps/s of each run and the ratio of the medians (safe / plain).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from charlab import api
from charlab.data import SPLITS, build_examples
from charlab.models import build_model
from charlab.training.loop import Trainer
from charlab.training.safe_fit import fit_safely

EVAL_INTERVAL = 1000  # a checkpoint per evaluation, as in a real run (default 10,000: fewer still)


def make_trainer(steps: int) -> Trainer:
    model_cfg, train_cfg = api.resolve_config("mlp-bn", steps=steps, eval_interval=EVAL_INTERVAL)
    vocab, splits = api.prepare_data(None, train_cfg.seed)
    model_cfg.vocab_size = vocab.size
    model = build_model(model_cfg, torch.Generator().manual_seed(train_cfg.seed))
    examples = {k: build_examples(splits[k], vocab, model.example_kind, model_cfg.block_size) for k in SPLITS}
    return Trainer(model, examples["train"], examples["dev"], train_cfg)


def timed(steps: int, safe: bool) -> float:
    trainer = make_trainer(steps)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        fit_safely(trainer, Path(tmp)) if safe else trainer.fit()
        return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = {"plain": [], "safe": []}
    for _ in range(args.repeats):
        for name in runs:
            runs[name].append(timed(args.steps, name == "safe"))
    print(json.dumps({"steps_per_s": runs,
                      "ratio_safe_over_plain": statistics.median(runs["safe"]) / statistics.median(runs["plain"])}))


if __name__ == "__main__":
    main()
