"""``fit_safely``: ``Trainer.fit`` with the safety net of a real run.

The observer list is composed here, once: the non-finite guard first (it checks a step before
anyone else sees it, and is given the trainer, since finding the bad step means restoring and
replaying), the caller's observers, then the checkpointer (it saves what the others have seen).
SIGINT/SIGTERM stop training gracefully while checkpoints are written. A stop raises its
``TrainingStopped``, naming the step and the checkpoint kept.
"""

from __future__ import annotations

from pathlib import Path

from charlab.training.checkpoint import LAST, Checkpointer
from charlab.training.nonfinite import NonFiniteGuard
from charlab.training.signals import graceful_stop
from charlab.training.state import TrainState


def fit_safely(trainer, run: Path | None) -> TrainState:
    """``trainer.fit()`` with the non-finite guard, checkpoints in ``run`` (none when None) and
    graceful SIGINT/SIGTERM; a stop raises its ``TrainingStopped`` naming the checkpoint kept."""
    saver = Checkpointer(run) if run is not None else None
    with graceful_stop(trainer.view, enabled=saver is not None):
        state = trainer.fit(first=(NonFiniteGuard(trainer),), last=(saver,) if saver is not None else ())
    reason = trainer.stop_reason
    if reason is None:
        return state
    if saver is None or saver.saved_step is None:
        raise reason.with_context("no checkpoint was written")
    kept = f"checkpoint at step {saver.saved_step} in {saver.folder / LAST}"
    if reason.keep_state:
        raise reason.with_context(f"{kept}; continue with `charlab train --resume {run}`")
    raise reason.with_context(f"the last good {kept} is kept; lower --lr or set --grad-clip and train again")
