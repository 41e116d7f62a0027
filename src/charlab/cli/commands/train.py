"""charlab train: train a model on a word list, save the run directory, print losses and samples."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from charlab import api
from charlab.training import devices, distributed
from charlab.cli.args import add_config_flags, add_json_flag, config_overrides, print_json
from charlab.config import DEFAULT_PRESET, preset_names
from charlab.errors import CharlabError
from charlab.report.escape import terminal
from charlab.rundir import DIAGNOSTICS, TENSORBOARD_DIR, default_run_dir
from charlab.training.stopping import TrainingStopped

NAME = "train"
ORDER = 10
RESUME_SETTINGS = {"steps", "threads"}  # the only settings --resume takes; the rest come from the run
HELP = "train a model (default: the lecture's MLP with BatchNorm on the embedded names list)"
DESCRIPTION = ("Train a character-level model on a UTF-8 word list (one item per line), save everything in a "
               "run directory, and print the train/dev/test losses and new samples.")


def add_arguments(parser) -> None:
    parser.add_argument("--data", metavar="FILE", help="UTF-8 word list, one item per line (default: embedded names)")
    parser.add_argument("--out", metavar="DIR", help="run directory to create (default: runs/PRESET, numbered if taken)")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help=f"starting configuration: {', '.join(preset_names())} (default: with --model, the "
                             f"model's own preset; else {DEFAULT_PRESET}; see `charlab models`)")
    parser.add_argument("--overwrite", action="store_true", help="allow --out to be a non-empty directory")
    parser.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint with its saved config "
                        "to --steps total (default: its own); losses equal an uninterrupted run's")
    parser.add_argument("--samples", type=int, default=api.DEFAULT_SAMPLES, metavar="N",
                        help="samples to draw at the end")
    parser.add_argument("--tensorboard", action="store_true",
                        help=f"also write TensorBoard scalars and histograms to RUN/{TENSORBOARD_DIR} "
                             "(view with `tensorboard --logdir RUN`)")
    parser.add_argument("--diagnose", action="store_true",
                        help="record activation, gradient and update statistics on sampled steps into "
                             f"RUN/{DIAGNOSTICS} (then `charlab diagnose RUN` draws and judges them)")
    add_json_flag(parser)
    add_config_flags(parser)


def tensorboard_sinks(args, out) -> list:
    """With --tensorboard, the sink that writes the diagnostics recorder's records as TensorBoard events
    (the recorder writes RUN/diagnostics.jsonl too when --diagnose is also given)."""
    if not args.tensorboard:
        return []
    from charlab.diagnostics.tensorboard import TensorBoardSink  # imports tensorboard only when asked for
    return [TensorBoardSink(Path(out) / TENSORBOARD_DIR)]


def print_summary(summary: dict) -> None:
    losses = summary["losses"]
    print(f"run: {summary['run']}")
    if summary["loss_step0"] is not None:
        print(f"loss at step 0: {summary['loss_step0']:.4f} (expected -ln(1/{summary['vocab_size']}) = "
              f"{summary['expected_init_loss']:.4f})")
    print("loss: " + "  ".join(f"{k} {v:.4f}" for k, v in losses.items()))
    print(f"{summary['steps']} steps in {summary['wall_time_s']:.1f} s; best dev at step {summary['best_step']}")
    for s in summary["samples"]:
        print(f"  {terminal(s['text'])}" + ("" if s["novelty"] == "new" else f"  ({s['novelty']})"))


def run(args) -> int:
    try:
        return resume_run(args) if args.resume else train_run(args)
    except TrainingStopped as stop:  # a signal or a non-finite loss: one line, its own exit status
        print(f"charlab train: {stop}", file=sys.stderr)
        return stop.exit_code


def resume_run(args) -> int:
    given = sorted(set(config_overrides(args)) - RESUME_SETTINGS)
    given += [flag for flag, value in (("--data", args.data), ("--out", args.out), ("--overwrite", args.overwrite),
                                       ("--tensorboard", args.tensorboard), ("--diagnose", args.diagnose))
              if value]
    if given:
        raise CharlabError(f"--resume continues with the run's saved config; only --steps and --threads may be "
                           f"given, not {', '.join(given)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    result = api.resume(args.resume, steps=args.steps, progress=not args.json, n_samples=args.samples)
    if args.json:
        print_json(result.summary())
    else:
        print_summary(result.summary())
    return 0


def run_name(preset: str | None, model: str | None) -> str:
    """The default run directory's name: the preset, the model, or both when both are given."""
    names = [n for n in dict.fromkeys((preset, model)) if n]
    return "-".join(names) or DEFAULT_PRESET


def train_run(args) -> int:
    overrides = config_overrides(args)
    _, train_cfg = api.resolve_config(args.preset, **overrides)  # validate flags before touching the disk
    out = args.out or default_run_dir(run_name(args.preset, args.model))
    torch.set_num_threads(train_cfg.threads)  # before training: the preset's/flag's count (default 1)
    with distributed.process_group(devices.resolve(train_cfg.device)):  # under torchrun: one of K processes
        main = distributed.is_main()
        result = api.train(data=args.data, preset=args.preset, out=out, progress=not args.json,
                           n_samples=args.samples, overwrite=args.overwrite, diagnose=args.diagnose,
                           sinks=tensorboard_sinks(args, out) if main else [], **overrides)
    if not main:
        return 0  # rank 0 prints and writes
    summary = result.summary()
    if args.json:
        print_json(summary)
    else:
        print_summary(summary)
    sys.stdout.flush()
    return 0
