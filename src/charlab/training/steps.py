"""How the loop advances: one strategy per trainer, chosen once (``choose_step``) before the loop.

- ``AutogradStep``: forward, ``backward()``, clipping, ``optimizer.step()``: every model, every
  optimizer; the default (``--fast-path off``).
- ``HandDerivedStep``: the same step with the gradients of the hand-derived backward pass
  (``hand_backward.py``; ``--fast-path eager``): the MLP family, any optimizer.
- ``CompiledChunk``: up to ``unroll`` SGD steps in one ``torch.compile`` graph (``--fast-path compile``).
- ``CountFit``: a model fit by counting (``trained_by_gradient`` False) is fit once, before the loop,
  and takes no steps.

``advance(trainer, start, stop)`` takes steps from ``start`` toward ``stop`` (the next evaluation or
the end) and returns their losses; the trainer records them and emits ``on_step_end`` once, with the
model holding the weights after the last of them. ``take_step`` is one single step on a given batch,
emitting its events through ``emit``: the non-finite guard replays steps with it.
"""

from __future__ import annotations

from typing import Callable

import torch

from charlab.errors import CharlabError
from charlab.training import hand_backward
from charlab.training.events import Observer, watches

NO_POINT_FOR = ("on_step_start", "on_after_backward")  # events the hand-derived steps cannot emit truly


class Step:
    """A strategy: ``begin`` once per fit, then ``advance`` until the last step."""

    def begin(self, trainer) -> None:
        """Before the first step (after ``on_train_start``); nothing for gradient steps."""

    def advance(self, trainer, start: int, stop: int) -> torch.Tensor:
        raise NotImplementedError


class AutogradStep(Step):
    def __init__(self, model: torch.nn.Module):
        self.params = [p for p in model.parameters() if p.requires_grad]

    def gradients(self, trainer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Set ``.grad`` of every parameter for the batch; returns the loss."""
        _, loss = trainer.model(x, y)
        for p in self.params:
            p.grad = None
        weight = trainer.sampler.loss_weight(y)  # 1 unless batches are drawn by length (batches.py)
        (loss * weight if weight != 1.0 else loss).backward()
        return loss

    def take_step(self, trainer, step: int, x: torch.Tensor, y: torch.Tensor, emit: Callable) -> torch.Tensor:
        """One optimizer step on the batch ``x``, ``y`` at the learning rate of ``step``; its loss."""
        lr = trainer.schedule.lr(step)
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr
        emit("on_step_start", step)
        loss = self.gradients(trainer, x, y)
        emit("on_after_backward", step)
        if trainer.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), trainer.cfg.grad_clip, foreach=True)
        trainer.optimizer.step()
        return loss.detach()

    def advance(self, trainer, start: int, stop: int) -> torch.Tensor:
        x, y = trainer.train_examples.rows(trainer.sampler.draw())  # (B, ...), (B, ...)
        return self.take_step(trainer, start, x, y, trainer.emit).reshape(1)  # (1,)


class HandDerivedStep(AutogradStep):
    def __init__(self, model: torch.nn.Module, compile: bool = False):
        super().__init__(model)
        self.hand = hand_backward.HandBackward(model, compile=compile)

    def gradients(self, trainer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.hand.gradients(x, y)  # sets every .grad, no autograd graph


class CompiledChunk(HandDerivedStep):
    """Up to ``unroll`` SGD steps in one compiled graph, ending at a multiple of ``unroll``, at
    ``stop`` or before. One ``randint`` of k*B draws exactly the k batches of B the plain loop draws."""

    def __init__(self, model: torch.nn.Module):
        super().__init__(model, compile=True)

    def advance(self, trainer, start: int, stop: int) -> torch.Tensor:
        b, examples, unroll = trainer.cfg.batch_size, trainer.train_examples, self.hand.unroll
        k = min(unroll - start % unroll, stop - start)
        ix = torch.randint(0, len(examples), (k * b,), generator=trainer.generator)  # (k*B,)
        x = examples.x[ix].view(k, b, -1)  # (k, B, T)
        y = examples.y[ix].view(k, b)  # (k, B)
        lrs = torch.tensor([trainer.schedule.lr(s) for s in range(start, start + k)])  # (k,)
        return self.hand.steps(x, y, lrs)  # (k,)


class CountFit(Step):
    def begin(self, trainer) -> None:
        trainer.model.fit_counts(trainer.train_examples)
        trainer.skip_to(trainer.cfg.steps)


STRATEGIES = {"off": AutogradStep, "eager": HandDerivedStep, "compile": CompiledChunk}


def check_hand_step_supported(model: torch.nn.Module, cfg, observers: list[Observer]) -> None:
    """Refuse what the hand-derived steps do not implement, naming the setting to change."""
    if cfg.fast_path == "compile" and (cfg.optimizer != "sgd" or cfg.grad_clip > 0):
        raise CharlabError("--fast-path compile runs SGD without clipping inside the graph; use --optimizer sgd "
                           "--grad-clip 0, or --fast-path eager")
    for observer in observers:
        for event in NO_POINT_FOR:
            if watches(observer, event):
                raise CharlabError(f"{type(observer).__name__} watches {event}, which --fast-path has no point "
                                   "for (it computes gradients without autograd); use --fast-path off")
    reason = hand_backward.unsupported_reason(model)
    if reason is not None:
        raise CharlabError(reason)


def choose_step(model: torch.nn.Module, cfg, observers: list[Observer]) -> Step:
    """The strategy for this model and ``cfg.fast_path``; CharlabError for an unsupported mix."""
    if not model.trained_by_gradient:
        return CountFit()
    mode = getattr(cfg, "fast_path", "off")
    if mode != "off":
        check_hand_step_supported(model, cfg, observers)
    return STRATEGIES[mode](model)
