"""The non-finite guard: stop when the loss or a parameter becomes NaN/Inf, and say where.

Cheap while all is well: each step's loss stays in the trainer's on-device buffer (no kernel, no
host sync); every ``CHECK_EVERY`` steps, and before every evaluation, one fused check reads back a
single flag (``isfinite`` of the losses since the last check and of every parameter) and, when all
is finite, snapshots the training state in memory (``state.capture``).

When the check fails, the guard restores that snapshot (``state.restore``) and replays the steps
since it, telling no observer, to find the first step whose loss is not finite; it then runs that
step's forward pass with forward hooks and names the first module whose output is not finite. Every
replayed loss must equal the recorded one bit for bit, otherwise the replay is reported as
unfaithful instead of naming a wrong module. The trainer is left holding the state before the first
bad step and training stops (the checkpointer never writes non-finite weights, so the last good
checkpoint stays); the CLI exits with ``NONFINITE_EXIT``.
"""

from __future__ import annotations

import math

import torch

from charlab.training.events import Observer, TrainView, unheard
from charlab.training.state import capture, restore
from charlab.training.stopping import TrainingStopped

CHECK_EVERY = 100  # steps between checks: one host read per 100 steps, at most 100 steps replayed
NONFINITE_EXIT = 3  # exit status of a run stopped by a non-finite loss (2 is bad input)


def all_finite(tensors) -> bool:
    """True when every floating-point tensor is free of NaN and Inf (one host read)."""
    flags = [torch.isfinite(t).all() for t in tensors if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


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
    """Stops training at the first non-finite loss or parameter; see the module doc. It is given the
    trainer itself (by ``safe_fit.fit_safely``): finding the step means restoring and replaying."""

    def __init__(self, trainer, check_every: int = CHECK_EVERY):
        self.trainer = trainer
        self.check_every = check_every
        self.good: dict | None = None  # the last snapshot whose losses and weights were finite
        self.good_step = 0

    def on_train_start(self, view: TrainView) -> None:
        self.keep_good()

    def keep_good(self) -> None:
        self.good, self.good_step = capture(self.trainer, with_losses=False), self.trainer.state.step

    def on_step_end(self, view: TrainView, step: int, loss: torch.Tensor) -> None:
        cfg = view.cfg
        if view.crossed(self.check_every) or view.crossed(cfg.eval_interval) or view.step >= cfg.steps:
            self.check(view)

    def on_train_end(self, view: TrainView) -> None:
        if view.step > self.good_step and not isinstance(view.stop_reason, NonFinite):
            self.check(view)

    def check(self, view: TrainView) -> None:
        losses = view.losses(self.good_step, view.step)  # (n,) since the last good state
        if all_finite([losses, *view.model.parameters()]):
            self.keep_good()
            return
        view.request_stop(NonFinite(*self.locate(losses.tolist())))

    def locate(self, recorded: list[float]) -> tuple[int, str]:
        """Replay from the last good snapshot; the first bad step and module. The trainer is left at
        the first bad step (or where the replay stopped matching the record)."""
        trainer, end = self.trainer, self.trainer.state.step
        restore(trainer, self.good)
        for offset, step in enumerate(range(self.good_step, end + 1)):
            x, y = draw_batch(trainer)
            if offset == len(recorded) or not math.isfinite(recorded[offset]):
                return step, first_nonfinite_module(trainer.model, x, y)
            replayed = float(trainer.train_step(step, x, y, emit=unheard))
            if not _same(replayed, recorded[offset]):
                return step, "unknown (the replay did not reproduce the recorded losses)"
            trainer.state.step = step + 1
        return end, "unknown"


class NonFinite(TrainingStopped):
    def __init__(self, step: int, module: str):
        super().__init__(f"non-finite loss at step {step} (first non-finite output: {module})",
                         NONFINITE_EXIT, keep_state=False)
        self.step = step
