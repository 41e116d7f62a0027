"""The initialisation ladder at the lecture's 200,000 steps over 5 seeds: do the dev losses land within
±0.02 of the lecture's (original 2.168, fix-softmax 2.13, fix-tanh 2.103, kaiming 2.107, batchnorm
2.105), and which of the lecture's steps are beyond seed noise?

Runs ``charlab experiment init-ladder --seeds 5`` (seeds 42..46 on seed 42's split, each seed in a
worker process: 25 trainings of 200k steps, ~20-30 minutes on 2 cores) and writes the table, the
paired comparisons and the figures to ``benchmarks/results/init-ladder/`` (each seed's own result
in ``init-ladder/seeds/``), and the check to ``benchmarks/results/init_ladder_200k.json``. A run
that is stopped resumes: the seeds already finished are read back, not retrained.

    nice -n 10 python benchmarks/init_ladder_200k.py
    python benchmarks/init_ladder_200k.py --steps 2000 --results /tmp/ladder   # a short look (no lecture comparison)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from charlab.config import DEFAULT_SEED
from charlab.experiments import init_ladder
from charlab.experiments.executors import make_executor
from charlab.experiments.runner import write_outputs
from charlab.experiments.seeded import run_seeds
from charlab.experiments.seeds import seed_plan

SEEDS = 5  # enough for a t interval of useful width (t = 2.78 at 4 degrees of freedom, against 4.30 at 2)
RESULTS = Path(__file__).parent / "results"


def check(rows: list[dict], steps: int) -> list[dict]:
    """Per rung: the dev loss over seeds against the lecture's, when the steps are the lecture's."""
    compared = steps == init_ladder.LECTURE_STEPS
    checked = []
    for r in rows:
        dev, lecture = r["dev"], r["lecture_dev"]
        checked.append({"rung": r["rung"], "dev": {k: dev[k] for k in ("mean", "std", "ci_low", "ci_high", "n",
                                                                        "values")},
                        "lecture_dev": lecture,
                        "mean_within_tolerance": abs(dev["mean"] - lecture) <= init_ladder.LECTURE_TOLERANCE
                        if compared else None,
                        "lecture_in_ci": dev["ci_low"] <= lecture <= dev["ci_high"] if compared and dev["n"] > 1
                        else None})
    return checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=init_ladder.LECTURE_STEPS, help="steps per rung")
    parser.add_argument("--seeds", default=str(SEEDS), help="a count or a list, as charlab experiment --seeds")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: the cores)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for init-ladder/ and the JSON")
    args = parser.parse_args()
    plan = seed_plan(args.seeds, DEFAULT_SEED, vary_split=False)
    started = time.monotonic()
    result = run_seeds(init_ladder, plan, args.steps, None, args.results / "init-ladder",
                       make_executor("local", args.workers))
    write_outputs(result, args.results / "init-ladder")
    rows = check(result.rows, args.steps)
    for r in rows:
        d = r["dev"]
        spread = "" if d["std"] is None else f" ± {d['std']:.4f} [{d['ci_low']:.4f}, {d['ci_high']:.4f}]"
        print(f"{r['rung']:12s} dev {d['mean']:.4f}{spread}  lecture {r['lecture_dev']:.3f}")
    for c in result.comparisons:
        print(f"{c['b']} vs {c['a']}: {c['diff_mean']:+.4f}  {c['verdict']}")
    doc = {"steps": args.steps, "seeds": list(plan.seeds), "split_seed": plan.split_seed,
           "tolerance": init_ladder.LECTURE_TOLERANCE, "compared": args.steps == init_ladder.LECTURE_STEPS,
           "rows": rows, "comparisons": result.comparisons, "wall_time_s": time.monotonic() - started}
    (args.results / "init_ladder_200k.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
