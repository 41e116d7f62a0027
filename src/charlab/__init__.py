"""charlab: character-level language models with the inside of training made visible."""

from charlab.api import TrainedRun, train
from charlab.rundir import load_run

__all__ = ["train", "TrainedRun", "load_run"]
__version__ = "0.1.0"
