"""charlab compare: two runs' diagnostic statistics and verdicts side by side."""

from __future__ import annotations

from charlab.cli.args import add_json_flag, print_json
from charlab.diagnostics.runfiles import load_diagnostics
from charlab.diagnostics.sidebyside import side_by_side
from charlab.report.table import text_table
from charlab.rundir import DIAGNOSE_RECORDS, DIAGNOSTICS

NAME = "compare"
ORDER = 45
HELP = "two runs' diagnostics side by side (e.g. gain 5/3 against 1, with and without BatchNorm)"
DESCRIPTION = (f"Read the diagnostics of two runs ({DIAGNOSE_RECORDS} from `charlab diagnose`, else {DIAGNOSTICS} "
               "from `charlab train --diagnose`) and print their key statistics and rule verdicts side by side.")


def add_arguments(parser) -> None:
    parser.add_argument("run_a", metavar="RUN_A", help="first run directory")
    parser.add_argument("run_b", metavar="RUN_B", help="second run directory")
    add_json_flag(parser)


def run(args) -> int:
    path_a, records_a = load_diagnostics(args.run_a)
    path_b, records_b = load_diagnostics(args.run_b)
    doc = {"a": str(path_a), "b": str(path_b), **side_by_side(records_a, records_b)}
    if args.json:
        print_json(doc)
        return 0
    print(f"A: {path_a}\nB: {path_b}\n")
    print(text_table(("quantity", "A", "B"), [(n["quantity"], n["a"], n["b"]) for n in doc["numbers"]]))
    print()
    rows = [(f"{v['rule']} ({v['layer']})" if v["layer"] else v["rule"], (v["a"] or "-").upper(),
             (v["b"] or "-").upper()) for v in doc["verdicts"]]
    print(text_table(("rule", "A", "B"), rows))
    return 0
