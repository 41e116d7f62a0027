"""charlab bench: speed measured side by side against the lecture's code (see charlab/experiments/bench.py)."""

from __future__ import annotations

from pathlib import Path

from charlab.experiments.bench import format_table, run_all
from charlab.cli.args import add_json_flag, print_json
from charlab.errors import CharlabError
from charlab.rundir import atomic_write_json

NAME = "bench"
ORDER = 90
HELP = "time training, the fast preset, sampling, folded inference and data building against the lecture's code"
DESCRIPTION = ("Run the lecture's reference (charlab/experiments/reference.py, shipped with charlab) and charlab on the same jobs, interleaved, "
               "and print a table of medians and ratios. Takes a few minutes; a busy machine slows both sides.")
JOBS = ("train", "fast_preset", "sampling", "fold", "data")
DEFAULT_REPEATS = 3  # interleaved repeats per row; the table quotes medians
DEFAULT_STEPS = 4000  # mlp-bn steps per timed run: long enough to time (the reference's rate: README "Speed")


def add_arguments(parser) -> None:
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="interleaved repeats per row")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="training steps per timed run")
    parser.add_argument("--only", nargs="+", choices=JOBS, default=list(JOBS), metavar="JOB",
                        help=f"run only these rows: {', '.join(JOBS)}")
    parser.add_argument("--reference", metavar="FILE", help="a lecture reference file to measure against (default: the one shipped in the package)")
    parser.add_argument("--out", metavar="FILE", help="also write the results as JSON here")
    add_json_flag(parser)


def run(args) -> int:
    if args.repeats < 1 or args.steps < 2:
        raise CharlabError("--repeats must be at least 1 and --steps at least 2")
    results = run_all(args.repeats, args.steps, args.reference, tuple(args.only))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(args.out), results)
    if args.json:
        print_json(results)
    else:
        print(format_table(results))
    return 0
