"""Everything that changes while training, captured and restored in one place.

``capture(trainer)`` copies the weights, the optimizer, the schedule, every random stream (the
batch generator, torch's global one, CUDA's, the model's dropout generators), the ``TrainState``
and the best weights; ``restore(trainer, snapshot)`` puts them back. The same pair serves the
checkpoints (``checkpoint.py`` encodes a snapshot without pickle), ``--resume`` and the non-finite
guard's replay (``nonfinite.py``): a restored trainer draws the very batches and dropout masks, and
takes the very steps, it would have taken from the captured point.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field

import torch

BATCH_STREAM = 1  # the batch generator is seeded with seed + 1, so init changes never shift batches


@dataclass
class EvalRecord:
    step: int
    dev: float
    lr: float


@dataclass
class TrainState:
    """The progress of training. ``losses`` holds the steps before the running fit (it is replaced,
    never appended to); the running fit's losses are on the device in ``Trainer.step_losses``."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    evals: list[EvalRecord] = field(default_factory=list)
    best_dev: float = math.inf
    best_step: int = -1

    def record_eval(self, step: int, dev: float, lr: float, has_dev: bool) -> bool:
        """Add an evaluation; True when its weights become the best: a lower dev loss (never nan:
        diverged weights do not replace the best) or, with no dev split to select by, always."""
        self.evals.append(EvalRecord(step=step, dev=dev, lr=lr))
        improved = dev < self.best_dev
        if improved:
            self.best_dev = dev
        if improved or not has_dev:
            self.best_step = step
        return improved or not has_dev

    @classmethod
    def from_dict(cls, ts: dict) -> "TrainState":
        return cls(step=int(ts["step"]), losses=[float(x) for x in ts["losses"]],
                   evals=[EvalRecord(**e) for e in ts["evals"]], best_dev=float(ts["best_dev"]),
                   best_step=int(ts["best_step"]))


def batch_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed + BATCH_STREAM)


def model_generators(model: torch.nn.Module) -> list[torch.Generator]:
    """The generators a model draws from while training (dropout masks), each once, in module order."""
    found: dict[int, torch.Generator] = {}
    for module in model.modules():
        generator = getattr(module, "generator", None)
        if isinstance(generator, torch.Generator):
            found.setdefault(id(generator), generator)
    return list(found.values())


def model_rng_states(model: torch.nn.Module) -> list[torch.Tensor]:
    return [g.get_state() for g in model_generators(model)]  # each (n,) uint8


def set_model_rng_states(model: torch.nn.Module, states: list[torch.Tensor]) -> None:
    for generator, state in zip(model_generators(model), states):
        generator.set_state(state)


def cuda_rng_state() -> torch.Tensor | None:
    return torch.cuda.get_rng_state() if torch.cuda.is_available() else None  # (n,) uint8


def set_cuda_rng_state(state: torch.Tensor | None) -> None:
    """Restore CUDA's stream when the snapshot has one and this machine has CUDA (a CPU resume of a
    GPU run skips it: nothing draws from CUDA here)."""
    if state is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state)


def weights_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def capture(trainer, with_losses: bool) -> dict:
    """A copy of the trainer's state (the layout ``checkpoint.encode`` stores). ``with_losses``:
    ``train_state.losses`` holds every step's loss so far (one host read, what a checkpoint keeps);
    otherwise only those before the running fit (free, what the guard's frequent snapshots keep)."""
    optimizer = trainer.optimizer.state_dict() if trainer.optimizer is not None else None
    state = trainer.state
    train_state = {"step": state.step, "losses": trainer.losses_so_far() if with_losses else state.losses,
                   "evals": [asdict(e) for e in state.evals], "best_dev": state.best_dev,
                   "best_step": state.best_step}
    return {"model": weights_copy(trainer.model),
            "optimizer": copy.deepcopy(optimizer),
            "schedule": trainer.schedule.state_dict(),
            "batch_rng": trainer.generator.get_state(),  # (n,) uint8
            "torch_rng": torch.get_rng_state(),  # (n,) uint8: the global stream (dropout)
            "cuda_rng": cuda_rng_state(),
            "model_rng": model_rng_states(trainer.model),
            "train_state": train_state,
            "best_weights": {k: v.clone() for k, v in trainer.best_weights.items()}}


def restore(trainer, snapshot: dict) -> None:
    """Put ``snapshot`` (made by ``capture`` or read from a checkpoint) back into ``trainer``."""
    trainer.model.load_state_dict(snapshot["model"])
    if trainer.optimizer is not None:  # a copy: the optimizer updates its state in place
        trainer.optimizer.load_state_dict(copy.deepcopy(snapshot["optimizer"]))
    trainer.schedule.load_state_dict(snapshot["schedule"])
    trainer.generator.set_state(snapshot["batch_rng"])
    torch.set_rng_state(snapshot["torch_rng"])
    set_cuda_rng_state(snapshot.get("cuda_rng"))
    set_model_rng_states(trainer.model, snapshot.get("model_rng", []))
    trainer.state = TrainState.from_dict(snapshot["train_state"])
    trainer.best_weights = {k: v.clone() for k, v in snapshot["best_weights"].items()}
