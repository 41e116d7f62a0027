"""The lecture's code, the peer every speed figure is measured against: it lives in the package
(``charlab/experiments/reference.py``, so that ``charlab bench`` works from an installed charlab);
this file re-exports it for scripts and tests that load ``benchmarks/reference.py`` by path.

    python benchmarks/reference.py --steps 2000    # = python -m charlab.experiments.reference
"""

from __future__ import annotations

from charlab.experiments.reference import *  # noqa: F401,F403  BLOCK_SIZE, load_data, train, ...
from charlab.experiments.reference import main

if __name__ == "__main__":
    main()
