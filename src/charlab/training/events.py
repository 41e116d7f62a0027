"""What an observer of training sees: the six events of the loop and a read-only ``TrainView``.

Observers (progress, diagnostics, checkpoints, experiments) are handed a ``TrainView``, never the
``Trainer``: they read the plain model (unwrapped from DDP), the config, the steps done, the learning
rate of any step and the per-step losses kept on the device, and they may ask training to stop.
They change nothing else. The non-finite guard, which must restore and replay, is given the trainer
itself by ``safe_fit.fit_safely``.

``on_step_end(view, step, loss)`` follows the last step of what the loop just ran: one step (autograd),
or a span of up to ``steps.SPAN_STEPS`` (the hand-derived and compiled steps), so the model always holds the weights after
``view.step`` steps. ``view.chunk_start`` is the first step it covers; the losses of all of them are
``view.losses(view.chunk_start, view.step)``. Count "every N steps" with ``view.crossed(N)``, which
holds when the steps since the previous event crossed a multiple of N, whatever the chunk size.
"""

from __future__ import annotations

from typing import Any

import torch

from charlab.training.state import capture

class Observer:
    """Callbacks of the training loop; override the ones you need. Each gets the ``TrainView``."""

    def on_train_start(self, view: "TrainView") -> None: ...

    def on_step_start(self, view: "TrainView", step: int) -> None: ...

    def on_after_backward(self, view: "TrainView", step: int) -> None: ...

    def on_step_end(self, view: "TrainView", step: int, loss: torch.Tensor) -> None: ...

    def on_eval(self, view: "TrainView", step: int, losses: dict[str, float]) -> None: ...

    def on_train_end(self, view: "TrainView") -> None: ...


def watches(observer: Observer, event: str) -> bool:
    """Whether ``observer`` overrides ``event`` (the hand-derived steps have no point for some)."""
    return getattr(type(observer), event, None) is not getattr(Observer, event)


def unheard(event: str, *args: Any) -> None:
    """An ``emit`` that tells nobody: the guard replays steps without observers."""


class TrainView:
    """Read-only access to a running ``Trainer``, plus ``request_stop``."""

    def __init__(self, trainer, model: torch.nn.Module):  # trainer: a loop.Trainer (which imports this module)
        self._trainer = trainer
        self.model = model  # the plain model: the trainer's may be wrapped for data parallelism
        self.cfg = trainer.cfg
        self.train_examples = trainer.train_examples

    @property
    def step(self) -> int:
        """Steps done: the model holds the weights after this many steps."""
        return self._trainer.state.step

    @property
    def chunk_start(self) -> int:
        """The first step the latest ``on_step_end`` covers (``step - 1`` after a single step)."""
        return self._trainer.chunk_start

    def crossed(self, every: int) -> bool:
        """True when the steps up to ``step`` crossed a multiple of ``every`` since the previous event."""
        return self.step // every > self.chunk_start // every

    def lr(self, step: int) -> float:
        return self._trainer.schedule.lr(step)

    def losses(self, start: int, stop: int) -> torch.Tensor:
        """The losses of steps ``start..stop-1`` of the running fit, on the device (no host read)."""
        return self._trainer.step_losses[start:stop]  # (stop - start,)

    def losses_so_far(self) -> list[float]:
        return self._trainer.losses_so_far()

    @property
    def best_step(self) -> int:
        return self._trainer.state.best_step

    @property
    def stop_requested(self) -> bool:
        return self._trainer.stop_requested

    @property
    def stop_reason(self):
        """With ``stop_requested``: a ``stopping.TrainingStopped`` saying why (None when not told)."""
        return self._trainer.stop_reason

    def request_stop(self, reason) -> None:
        """Stop after the current step; the caller of ``fit`` raises ``reason``."""
        self._trainer.request_stop(reason)

    def capture(self) -> dict:
        """A copy of the whole training state with every loss so far (``state.capture``): a checkpoint."""
        return capture(self._trainer, with_losses=True)
