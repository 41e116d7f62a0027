"""Inference speed of a folded model against the unfolded one, on the dev set.

For each preset (``deep-bn``: 5 BatchNorms, ``mlp-bn``: 1), a short training run gives non-trivial
running statistics; the BatchNorms are folded (``charlab.inference.fold.fold_batchnorm``) and both models run
the whole dev set in eval mode, interleaved, ``--repeats`` times each. The speedup is the ratio of
the medians (unfolded / folded). The max |logits difference| is reported next to it.

    nice -n 10 python benchmarks/fold_speed.py                 # 2,000 training steps, 30 repeats
    python benchmarks/fold_speed.py --steps 500 --repeats 10   # a quicker check

Writes ``benchmarks/results/fold_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import charlab
from charlab.data import build_examples
from charlab.inference.evaluate import eval_mode
from charlab.inference.fold import fold_batchnorm

PRESETS = ("deep-bn", "mlp-bn")
THREADS = 1  # TrainConfig.threads default: the lecture's small matrices are fastest on one thread
RESULTS = Path(__file__).parent / "results" / "fold_speed.json"


def timed_pass(model: torch.nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    model(x)
    return time.perf_counter() - start


def measure(preset: str, steps: int, repeats: int) -> dict:
    run = charlab.train(preset=preset, steps=steps, eval_interval=steps, n_samples=0, device="cpu")
    model = run.model.eval()
    folded = fold_batchnorm(model)
    dev = build_examples(run.splits["dev"], run.vocab, model.example_kind, run.model_cfg.block_size)
    times = {"unfolded": [], "folded": []}
    with eval_mode(model), eval_mode(folded):
        diff = float((model(dev.x)[0] - folded(dev.x)[0]).abs().max())  # also the warm-up pass
        for _ in range(repeats):
            times["unfolded"].append(timed_pass(model, dev.x))
            times["folded"].append(timed_pass(folded, dev.x))
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {"preset": preset, "dev_examples": len(dev), "max_abs_diff": diff,
            "median_s": medians, "speedup": medians["unfolded"] / medians["folded"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps before folding")
    parser.add_argument("--repeats", type=int, default=30, help="timed dev-set passes per model")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    rows = [measure(p, args.steps, args.repeats) for p in PRESETS]
    for r in rows:
        print(f"{r['preset']:8s} unfolded {1e3 * r['median_s']['unfolded']:.2f} ms, folded "
              f"{1e3 * r['median_s']['folded']:.2f} ms over {r['dev_examples']} dev examples: "
              f"speedup x{r['speedup']:.2f}; max |diff| {r['max_abs_diff']:.2e}")
    RESULTS.parent.mkdir(exist_ok=True)
    doc = {"steps": args.steps, "repeats": args.repeats, "threads": THREADS, "torch": torch.__version__,
           "machine": platform.processor() or platform.machine(), "results": rows}
    RESULTS.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
