"""charlab experiment: run one of the lecture's experiments as a controlled comparison."""

from __future__ import annotations

import sys

import torch

from charlab.cli.args import add_executor_flags, add_json_flag, add_seed_flags, print_json
from charlab.errors import CharlabError
from charlab.experiments import EXPERIMENTS
from charlab.experiments.executors import make_executor
from charlab.experiments.runner import output_dir, terminal_text, write_outputs
from charlab.experiments.seeded import SEEDS_DIR, run_seeds
from charlab.experiments.seeds import fixed_split, seed_plan
from charlab.experiments.tasks import Interrupted

NAME = "experiment"
ORDER = 70
HELP = "run a lecture experiment (" + ", ".join(EXPERIMENTS) + "): table, findings and figures"
DESCRIPTION = (
    "Run one of the lecture's experiments: every variant trains on the same data with the same seed, batches "
    "and steps, with one thing changed. init-ladder: naive -> fix-softmax -> fix-tanh -> kaiming -> batchnorm. "
    "gain: the 5-layer net at gains 0.5, 1, 5/3, 3 with/without tanh and BatchNorm. lr: update:data per "
    "layer over learning rates, recommending the one near 1e-3. zero-init: all Linear weights and biases zero. "
    "memory: rnn, gru and lstm side by side, the loss and the gradient through time of each. "
    "Writes NAME.md, NAME.json and figures (PNG and SVG) into --out. With --seeds, each seed runs in a worker "
    f"process and writes its own result into --out/{SEEDS_DIR}/; NAME.md and NAME.json then give every number "
    "as mean ± std with its 95 % interval and compare adjacent variants paired by seed.")
THREADS = 1  # the lecture's small matrices run fastest on one thread


def add_arguments(parser) -> None:
    parser.add_argument("name", metavar="NAME", choices=list(EXPERIMENTS), help=f"one of: {', '.join(EXPERIMENTS)}")
    parser.add_argument("--steps", type=int, default=None, metavar="N",
                        help="training steps per variant (default: the experiment's own; init-ladder: 200,000 "
                             "as in the lecture, gain/lr: 1,000, zero-init and memory: 2,000)")
    parser.add_argument("--data", metavar="FILE", help="UTF-8 word list, one item per line (default: embedded names)")
    add_seed_flags(parser)
    parser.add_argument("--split-seed", type=int, default=None, metavar="K",
                        help="one seed: shuffle the train/dev/test split with K instead of --seed")
    parser.add_argument("--out", metavar="DIR", default=None, help="output folder (default: runs/experiment-NAME)")
    add_json_flag(parser)
    add_executor_flags(parser, "seeds")


def run(args) -> int:
    if args.steps is not None and args.steps < 1:
        raise CharlabError(f"--steps must be at least 1, got {args.steps}")
    plan = seed_plan(args.seeds, args.seed, args.vary_split)
    if args.split_seed is not None and (args.seeds is not None or args.vary_split):
        raise CharlabError("--split-seed is for one seed; with --seeds the split is --seed's (or each seed's with "
                           "--vary-split)")
    executor = make_executor(args.executor, args.workers, args.address)
    out = output_dir(args.out or f"runs/experiment-{args.name}")  # fails before hours of training, not after
    module = EXPERIMENTS[args.name]
    if len(plan.seeds) == 1:
        torch.set_num_threads(THREADS)
        with fixed_split(args.split_seed if args.seeds is None else plan.split_seed):
            result = module.run(steps=args.steps, seed=plan.seeds[0], progress=not args.json, data=args.data)
    else:
        try:
            result = run_seeds(module, plan, args.steps, args.data, out, executor, progress=not args.json)
        except Interrupted as stop:
            print(f"charlab experiment: {stop}; rerun the same command to finish the seeds "
                  f"({', '.join(stop.stopped) or 'none'} were running)", file=sys.stderr)
            return stop.exit_code
    write_outputs(result, out)
    if args.json:
        print_json(result.to_json())
        return 0
    print(terminal_text(result))
    sys.stdout.flush()
    return 0
