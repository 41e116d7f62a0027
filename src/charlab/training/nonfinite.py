"""The non-finite guard: stop when the loss or a parameter becomes NaN/Inf, and say where.

Cheap while all is well: each step's loss tensor is only kept in a list (no kernel, no host sync);
every ``CHECK_EVERY`` steps, and before every evaluation, one fused check reads back a single flag
(``isfinite`` of the kept losses and of every parameter) and, when all is finite, snapshots the
state in memory (weights, optimizer, batch generator, schedule, global RNG).

When the check fails, the guard restores that snapshot and replays the steps since it, with the
observers muted, to find the first step whose loss is not finite; it then runs that step's forward
pass with forward hooks and names the first module whose output is not finite. Every replayed loss
must equal the recorded one bit for bit, otherwise the replay is reported as unfaithful instead of
naming a wrong module. Training then stops (the checkpointer never writes non-finite weights, so
the last good checkpoint stays) and the CLI exits with ``NONFINITE_EXIT``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from charlab.training.stopping import TrainingStopped
from charlab.training.loop import Observer, model_rng_states, set_model_rng_states

CHECK_EVERY = 100  # steps between checks: one host read per 100 steps, at most 100 steps replayed
NONFINITE_EXIT = 3  # exit status of a run stopped by a non-finite loss (2 is bad input)


def weights_are_current(trainer) -> bool:
    """True when the model holds the weights after ``state.step`` steps. The compiled fast path
    (``trainer.fast``, ``--fast-path compile``) runs a chunk of steps, then emits ``on_step_end``
    for each with the chunk's last weights: only the chunk's last step is current. A chunk ends at a
    multiple of ``fast.unroll``, at an evaluation or at the end (``Trainer._compiled_chunk``)."""
    fast = getattr(trainer, "fast", None)
    if fast is None or getattr(fast, "compiled", None) is None:
        return True
    done, cfg = trainer.state.step, trainer.cfg
    return done % fast.unroll == 0 or done % cfg.eval_interval == 0 or done >= cfg.steps


def all_finite(tensors) -> bool:
    """True when every floating-point tensor is free of NaN and Inf (one host read)."""
    flags = [torch.isfinite(t).all() for t in tensors if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


@dataclass
class GoodState:
    step: int
    model: dict
    optimizer: dict | None
    batch_rng: torch.Tensor
    torch_rng: torch.Tensor
    schedule: dict
    model_rng: list[torch.Tensor]  # the model's dropout generators


def snapshot(trainer) -> GoodState:
    optimizer = copy.deepcopy(trainer.optimizer.state_dict()) if trainer.optimizer is not None else None
    return GoodState(trainer.state.step, {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
                     optimizer, trainer.generator.get_state(), torch.get_rng_state(), trainer.schedule.state_dict(),
                     model_rng_states(trainer.model))


def restore(trainer, good: GoodState) -> None:
    trainer.model.load_state_dict(good.model)
    if trainer.optimizer is not None:
        trainer.optimizer.load_state_dict(copy.deepcopy(good.optimizer))
    trainer.generator.set_state(good.batch_rng)
    torch.set_rng_state(good.torch_rng)
    trainer.schedule.load_state_dict(good.schedule)
    set_model_rng_states(trainer.model, good.model_rng)


def draw_batch(trainer) -> tuple[torch.Tensor, torch.Tensor]:
    """The next training batch, drawn exactly as ``Trainer.fit`` draws it."""
    return trainer.train_examples.rows(trainer.sampler.draw())


def _tensors(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _tensors(item)]
    return []


def first_nonfinite_module(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> str:
    """Run one forward pass with hooks; name the first module (in execution order) whose output
    holds a NaN or Inf, or say that only the loss did."""
    found: list[str] = []

    def hook(name, module, inputs, output):
        if not found and not all_finite(t.detach() for t in _tensors(output)):
            found.append(f"{name} ({type(module).__name__})")

    handles = [m.register_forward_hook(lambda mod, i, o, name=name: hook(name, mod, i, o))
               for name, m in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(x, y)
    finally:
        for handle in handles:
            handle.remove()
    return found[0] if found else "none: every module output is finite, the loss itself overflowed"


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


class NonFiniteGuard(Observer):
    """Stops training at the first non-finite loss or parameter; see the module doc."""

    def __init__(self, check_every: int = CHECK_EVERY):
        self.check_every = check_every
        self.good: GoodState | None = None
        self.due = False  # a check is due at the next step whose weights are current

    def on_train_start(self, trainer) -> None:
        self.good = snapshot(trainer)

    def on_step_end(self, trainer, step: int, loss: torch.Tensor) -> None:
        done, cfg = trainer.state.step, trainer.cfg
        self.due = self.due or done % self.check_every == 0 or done % cfg.eval_interval == 0 or done >= cfg.steps
        if self.due and weights_are_current(trainer):
            self.due = False
            self.check(trainer)

    def on_train_end(self, trainer) -> None:
        if trainer.state.step > self.good.step and not isinstance(trainer.stop_reason, NonFinite):
            self.check(trainer)

    def check(self, trainer) -> None:
        losses = trainer.step_losses[self.good.step:trainer.state.step]  # (n,) since the last good state
        if all_finite([losses, *trainer.model.parameters()]):
            self.good = snapshot(trainer)
            return
        trainer.stop_requested = True
        trainer.stop_reason = NonFinite(*self.locate(trainer, losses.tolist()))

    def locate(self, trainer, recorded: list[float]) -> tuple[int, str]:
        """Replay from the last good snapshot; the first bad step and module."""
        restore(trainer, self.good)
        observers, trainer.observers = trainer.observers, []
        try:
            for offset, step in enumerate(range(self.good.step, trainer.state.step + 1)):
                x, y = draw_batch(trainer)
                if offset == len(recorded) or not math.isfinite(recorded[offset]):
                    return step, first_nonfinite_module(trainer.model, x, y)
                replayed = float(trainer.train_step(step, x, y))
                if not _same(replayed, recorded[offset]):
                    return step, "unknown (the replay did not reproduce the recorded losses)"
        finally:
            trainer.observers = observers
        return trainer.state.step, "unknown"


class NonFinite(TrainingStopped):
    def __init__(self, step: int, module: str):
        super().__init__(f"non-finite loss at step {step} (first non-finite output: {module})",
                         NONFINITE_EXIT, keep_state=False)
        self.step = step
