"""The lecture's experiments as controlled comparisons, one module each, by name.

Each module defines ``NAME``, ``DEFAULT_STEPS`` and ``run(steps, seed, progress) -> ExperimentResult``
(``runner.py``); ``charlab experiment NAME`` runs one and writes its table and figures.
"""

from charlab.experiments import gain, init_ladder, lr, memory, zero_init

EXPERIMENTS = {module.NAME: module for module in (init_ladder, gain, lr, zero_init, memory)}

__all__ = ["EXPERIMENTS"]
