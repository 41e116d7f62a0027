"""The initialisation ladder at the lecture's 200,000 steps: do the dev losses land within ±0.02 of
the lecture's (original 2.168, fix-softmax 2.13, fix-tanh 2.103, kaiming 2.107, batchnorm 2.105)?

Runs ``charlab experiment init-ladder`` (five trainings of 200k steps, ~15 minutes of one CPU core)
and writes its table and figures to ``benchmarks/results/init-ladder/``, and the check to
``benchmarks/results/init_ladder_200k.json``.

    nice -n 10 python benchmarks/init_ladder_200k.py
    python benchmarks/init_ladder_200k.py --steps 20000    # a shorter look (no lecture comparison)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from charlab.experiments import init_ladder
from charlab.experiments.runner import write_outputs

THREADS = 1  # TrainConfig.threads default: the lecture's small matrices are fastest on one thread
RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=init_ladder.LECTURE_STEPS, help="steps per rung")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    result = init_ladder.run(steps=args.steps, progress=True)
    write_outputs(result, RESULTS / "init-ladder")
    rows = [{"rung": r["rung"], "dev": r["dev"], "lecture_dev": r["lecture_dev"],
             "within_tolerance": abs(r["dev"] - r["lecture_dev"]) <= init_ladder.LECTURE_TOLERANCE,
             "wall_time_s": r["wall_time_s"]} for r in result.rows]
    for r in rows:
        print(f"{r['rung']:12s} dev {r['dev']:.4f}  lecture {r['lecture_dev']:.3f}  "
              f"{'ok' if r['within_tolerance'] else 'OFF'}  ({r['wall_time_s']:.0f} s)")
    doc = {"steps": args.steps, "tolerance": init_ladder.LECTURE_TOLERANCE, "rows": rows,
           "compared": args.steps == init_ladder.LECTURE_STEPS}
    (RESULTS / "init_ladder_200k.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
