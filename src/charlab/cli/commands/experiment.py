"""charlab experiment: run one of the lecture's experiments as a controlled comparison."""

from __future__ import annotations

import sys

import torch

from charlab.cli.args import add_json_flag, print_json
from charlab.config import DEFAULT_SEED
from charlab.errors import CharlabError
from charlab.experiments import EXPERIMENTS
from charlab.experiments.runner import output_dir, result_table, write_outputs

NAME = "experiment"
ORDER = 70
HELP = "run a lecture experiment (" + ", ".join(EXPERIMENTS) + "): table, findings and figures"
DESCRIPTION = (
    "Run one of the lecture's experiments: every variant trains on the same data with the same seed, batches "
    "and steps, with one thing changed. init-ladder: naive -> fix-softmax -> fix-tanh -> kaiming -> batchnorm. "
    "gain: the 5-layer net at gains 0.5, 1, 5/3, 3 with/without tanh and BatchNorm. lr: update:data per "
    "layer over learning rates, recommending the one near 1e-3. zero-init: all Linear weights and biases zero. "
    "Writes NAME.md, NAME.json and figures (PNG and SVG) into --out.")
THREADS = 1  # the lecture's small matrices run fastest on one thread


def add_arguments(parser) -> None:
    parser.add_argument("name", metavar="NAME", choices=list(EXPERIMENTS), help=f"one of: {', '.join(EXPERIMENTS)}")
    parser.add_argument("--steps", type=int, default=None, metavar="N",
                        help="training steps per variant (default: the experiment's own; init-ladder: 200,000 "
                             "as in the lecture, gain/lr: 1,000, zero-init: 2,000)")
    parser.add_argument("--data", metavar="FILE", help="UTF-8 word list, one item per line (default: embedded names)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="one seed for split, init and batches")
    parser.add_argument("--out", metavar="DIR", default=None, help="output folder (default: runs/experiment-NAME)")
    add_json_flag(parser)


def run(args) -> int:
    if args.steps is not None and args.steps < 1:
        raise CharlabError(f"--steps must be at least 1, got {args.steps}")
    out = output_dir(args.out or f"runs/experiment-{args.name}")  # fails before hours of training, not after
    torch.set_num_threads(THREADS)
    result = EXPERIMENTS[args.name].run(steps=args.steps, seed=args.seed, progress=not args.json, data=args.data)
    write_outputs(result, out)
    if args.json:
        print_json(result.to_json())
        return 0
    print(f"{result.title} ({', '.join(f'{k} {v}' for k, v in result.settings.items())})\n")
    print(result_table(result) + "\n")
    for line in result.findings:
        print(f"- {line}")
    print(f"\nwritten: {', '.join(result.written)}")
    sys.stdout.flush()
    return 0
