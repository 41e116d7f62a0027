"""charlab train: train a model on a word list, save the run directory, print losses and samples."""

from __future__ import annotations

import sys

import torch

from charlab import api
from charlab.cli_args import add_config_flags, add_json_flag, config_overrides, print_json
from charlab.config import DEFAULT_PRESET, preset_names
from charlab.rundir import default_run_dir

NAME = "train"
ORDER = 10
HELP = "train a model (default: the lecture's MLP with BatchNorm on the embedded names list)"
DESCRIPTION = ("Train a character-level model on a UTF-8 word list (one item per line), save everything in a "
               "run directory, and print the train/dev/test losses and new samples.")


def add_arguments(parser) -> None:
    parser.add_argument("--data", metavar="FILE", help="UTF-8 word list, one item per line (default: embedded names)")
    parser.add_argument("--out", metavar="DIR", help="run directory to create (default: runs/PRESET, numbered if taken)")
    parser.add_argument("--preset", default=DEFAULT_PRESET, metavar="NAME",
                        help=f"starting configuration: {', '.join(preset_names())}")
    parser.add_argument("--overwrite", action="store_true", help="allow --out to be a non-empty directory")
    parser.add_argument("--samples", type=int, default=api.DEFAULT_SAMPLES, metavar="N",
                        help="samples to draw at the end")
    add_json_flag(parser)
    add_config_flags(parser)


def print_summary(summary: dict) -> None:
    losses = summary["losses"]
    print(f"run: {summary['run']}")
    if summary["loss_step0"] is not None:
        print(f"loss at step 0: {summary['loss_step0']:.4f} (expected -ln(1/{summary['vocab_size']}) = "
              f"{summary['expected_init_loss']:.4f})")
    print("loss: " + "  ".join(f"{k} {v:.4f}" for k, v in losses.items()))
    print(f"{summary['steps']} steps in {summary['wall_time_s']:.1f} s; best dev at step {summary['best_step']}")
    for s in summary["samples"]:
        print(f"  {s['text']}" + ("" if s["novelty"] == "new" else f"  ({s['novelty']})"))


def run(args) -> int:
    overrides = config_overrides(args)
    threads = overrides.get("threads")
    api.resolve_config(args.preset, **overrides)  # validate flags before touching the disk
    out = args.out or default_run_dir(args.preset)
    if threads:
        torch.set_num_threads(threads)
    result = api.train(data=args.data, preset=args.preset, out=out, progress=not args.json,
                       n_samples=args.samples, overwrite=args.overwrite, **overrides)
    if not threads:
        torch.set_num_threads(result.train_cfg.threads)
    summary = result.summary()
    if args.json:
        print_json(summary)
    else:
        print_summary(summary)
    sys.stdout.flush()
    return 0
