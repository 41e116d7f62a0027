"""charlab sweep: train a grid of settings × seeds in parallel, each run an ordinary run directory."""

from __future__ import annotations

import sys
from pathlib import Path

from charlab.cli.args import add_executor_flags, add_json_flag, add_seed_flags, print_json
from charlab.config import preset_names
from charlab.errors import CharlabError
from charlab.experiments.executors import make_executor
from charlab.experiments.grid import parse_grid
from charlab.experiments.runner import terminal_text, write_outputs
from charlab.experiments.seeds import seed_plan
from charlab.experiments.sweep import LOGS_DIR, PLAN_FILE, RUNS_DIR, SweepSpec, run_sweep
from charlab.experiments.tasks import Interrupted

NAME = "sweep"
ORDER = 75
DEFAULT_OUT = "runs/sweep"
HELP = "train a grid of settings x seeds in parallel; mean ± std and 95 %% intervals per setting"
DESCRIPTION = (
    "Train every combination of --grid values with every seed, in parallel worker processes (one thread "
    f"each), each run an ordinary run directory: OUT/{RUNS_DIR}/SETTING/seed-S (logs in OUT/{LOGS_DIR}/). "
    "Writes sweep.md and sweep.json (train/dev/test loss and training time per setting as mean ± std with a "
    "95 % Student-t interval; failed runs with their reason; adjacent settings compared paired by seed) and "
    "sweep-dev.png. Rerunning the same command resumes it: finished runs are read, not retrained; runs "
    f"stopped mid-training continue from their checkpoints. OUT/{PLAN_FILE} records what the runs share. "
    "Example: charlab sweep --grid lr=0.03,0.1 n_hidden=100,200 --seeds 3 --steps 20000 --out runs/sweep")


def add_arguments(parser) -> None:
    parser.add_argument("--grid", nargs="+", metavar="KEY=V1,V2", default=None,
                        help="settings to cross: any `charlab train` setting (lr, n_hidden or n-hidden, optimizer, "
                             "preset, ...) with its values; a key with one value applies to every run")
    parser.add_argument("--steps", type=int, default=None, metavar="N", help="steps per run (default: the preset's)")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help=f"starting configuration of every run: {', '.join(preset_names())} "
                             "(default: charlab train's)")
    parser.add_argument("--data", metavar="FILE", help="UTF-8 word list, one item per line (default: embedded names)")
    add_seed_flags(parser)
    parser.add_argument("--out", metavar="DIR", default=DEFAULT_OUT, help="the sweep's folder")
    add_json_flag(parser)
    add_executor_flags(parser, "runs")


def run(args) -> int:
    if args.steps is not None and args.steps < 0:
        raise CharlabError(f"--steps must not be negative, got {args.steps}")
    if args.data is not None and not Path(args.data).is_file():
        raise CharlabError(f"--data {args.data} is not a file; pass a UTF-8 word list")
    spec = SweepSpec(parse_grid(args.grid or []), seed_plan(args.seeds, args.seed, args.vary_split), args.steps,
                     args.preset, args.data, Path(args.out))
    executor = make_executor(args.executor, args.workers, args.address)
    try:
        result = run_sweep(spec, executor, progress=not args.json)
    except Interrupted as stop:
        print(f"charlab sweep: {stop}; the runs in progress ({', '.join(stop.stopped) or 'none'}) saved their "
              f"checkpoints; rerun the same command to resume", file=sys.stderr)
        return stop.exit_code
    write_outputs(result, spec.out)
    if args.json:
        print_json(result.to_json())
    else:
        print(terminal_text(result))
    return 0
