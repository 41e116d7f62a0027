"""charlab bench: speed measured side by side against the lecture's code (see charlab/experiments/bench.py)."""

from __future__ import annotations

from pathlib import Path

from charlab.experiments.bench import PROCESS_STEPS, RATE_STEPS, format_table, run_all
from charlab.cli.args import add_json_flag, print_json
from charlab.errors import CharlabError
from charlab.rundir import atomic_write_json

NAME = "bench"
ORDER = 90
HELP = ("time `charlab train` (whole process, cold and warm compile cache), every window preset's paths, the fast preset, "
        "sequence models, sampling, folded inference and data building against the lecture's code")
DESCRIPTION = ("Run the lecture's reference (charlab/experiments/reference.py, shipped with charlab) and charlab on the same jobs, interleaved, "
               "and print a table of medians and ratios. Takes a few minutes; a busy machine slows both sides.")
JOBS = ("default", "train", "presets", "fast_preset", "sequence", "sampling", "fold", "data")
DEFAULT_REPEATS = 3  # interleaved repeats per row; the table quotes medians


def add_arguments(parser) -> None:
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="interleaved repeats per row")
    parser.add_argument("--steps", type=int, default=PROCESS_STEPS,
                        help=f"steps of the whole-process runs (default {PROCESS_STEPS:,}, half the lecture's 200,000; "
                             "the default path compiles from 40,000)")
    parser.add_argument("--rate-steps", type=int, default=RATE_STEPS, help="steps per in-process timing")
    parser.add_argument("--peer", metavar="PATH", help="makemore.py, for the sequence row (skipped with a note without)")
    parser.add_argument("--best-steps", type=int, default=0, metavar="N",
                        help="with --peer: also time `charlab train --preset best --steps N`, whole process, on the "
                             "hand-written cells and on the fast path (default 0: skipped; the README uses 200)")
    parser.add_argument("--only", nargs="+", choices=JOBS, default=list(JOBS), metavar="JOB",
                        help=f"run only these rows: {', '.join(JOBS)}")
    parser.add_argument("--reference", metavar="FILE", help="a lecture reference file to measure against (default: the one shipped in the package)")
    parser.add_argument("--out", metavar="FILE", help="also write the results as JSON here")
    add_json_flag(parser)


def run(args) -> int:
    if args.repeats < 1 or args.steps < 2 or args.rate_steps < 2 or args.best_steps < 0:
        raise CharlabError("--repeats must be at least 1, --steps and --rate-steps at least 2, --best-steps at least 0")
    results = run_all(args.repeats, args.steps, args.reference, tuple(args.only), args.rate_steps, args.peer,
                      args.best_steps)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(args.out), results)
    if args.json:
        print_json(results)
    else:
        print(format_table(results))
    return 0
