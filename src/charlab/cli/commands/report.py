"""charlab report: one self-contained report.html for a run (or a folder of experiment results)."""

from __future__ import annotations

import sys

from charlab.cli.args import add_json_flag, print_json
from charlab.report.page import unfinished_weights, write_report
from charlab.rundir import REPORT

NAME = "report"
ORDER = 80
HELP = f"write RUN/{REPORT}: config, losses, diagnostics, samples, fold and experiment results, offline"
DESCRIPTION = ("Write one self-contained HTML page for a run directory: the configuration, loss curves, the "
               "diagnostics figures and verdicts, samples with novelty, BatchNorm folding and experiment results "
               "when the run has them, and an interactive BatchNorm explainer. Figures are embedded; the page "
               "makes no network request.")


def add_arguments(parser) -> None:
    parser.add_argument("run", metavar="RUN", help="run directory (or experiment output folder)")
    parser.add_argument("--out", metavar="FILE", help=f"where to write the page (default: RUN/{REPORT})")
    add_json_flag(parser)


def run(args) -> int:
    path = write_report(args.run, args.out)
    weights = unfinished_weights(args.run)
    if weights is not None:
        print(f"charlab: {args.run} has no final weights (training did not finish); its report names "
              f"{weights['source']} from step {weights['step']}", file=sys.stderr)
    if args.json:
        print_json({"report": str(path), "bytes": path.stat().st_size, **({"weights": weights} if weights else {})})
    else:
        print(f"report: {path}")
    return 0
