"""rundir: the run directory: its layout (every file name), atomic writes, integrity checks, saving and loading."""

from charlab.rundir.layout import *  # noqa: F401,F403  the file names
from charlab.rundir.atomic import atomic_save_tensors, atomic_write_bytes, atomic_write_json
from charlab.rundir.store import (Run, check_run_dir, checkpoint_weights, create_run_dir, default_run_dir,
                                  load_run, load_weights, append_metrics, read_metrics, read_run_meta, save_run, save_run_meta)

__all__ = ["atomic_save_tensors", "atomic_write_bytes", "atomic_write_json", "Run", "check_run_dir",
           "checkpoint_weights", "create_run_dir", "default_run_dir", "load_run", "load_weights", "append_metrics", "read_metrics", "read_run_meta",
           "save_run", "save_run_meta"]
