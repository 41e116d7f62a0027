"""charlab: character-level language models with the inside of training made visible."""

__all__ = ["train", "TrainedRun", "load_run"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``charlab.train`` and friends, imported on first use: ``import charlab.anything`` (the CLI's
    ``--help``, the background compile worker) does not pay for the whole package."""
    if name in ("train", "TrainedRun"):
        from charlab import api

        return getattr(api, name)
    if name == "load_run":
        from charlab.rundir import load_run

        return load_run
    raise AttributeError(f"module 'charlab' has no attribute {name!r}")
