"""Print the speed table and write benchmarks/results/speed.json (the same as `charlab bench`).

    nice -n 10 python benchmarks/run.py --steps 200000 --peer ../shared/peers/makemore.py  # the README table
    python benchmarks/run.py                       # half the lecture's steps, ~20 minutes on 2 cores
    python benchmarks/run.py --only sampling fold  # some rows
"""

from __future__ import annotations

import sys
from pathlib import Path

from charlab.cli.main import main

RESULTS = Path(__file__).resolve().parent / "results" / "speed.json"

if __name__ == "__main__":
    sys.exit(main(["bench", "--out", str(RESULTS), *sys.argv[1:]]))
