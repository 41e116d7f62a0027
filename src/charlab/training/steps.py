"""How the loop advances: one strategy per trainer, chosen once (``choose_step``) before the loop.

- ``AutogradStep``: forward, ``backward()``, clipping, ``optimizer.step()``: every model, every
  optimizer (``--fast-path off``).
- ``HandDerivedStep``: the same step with the gradients of the hand-derived backward pass
  (``hand_backward.py``): the window models (MLP family, WaveNet), any optimizer; with SGD without
  clipping the whole step is one function (``hand_backward.sgd_step``), and with a ``Compiler``
  (``compiled.py``) chunks of ``unroll`` SGD steps run in one compiled graph once it is ready.
  Steps that an observer needs autograd for (``needs_autograd``: the diagnostics' sampled steps) run
  on ``AutogradStep``; the others stay fast.
- ``CountFit``: a model fit by counting (``trained_by_gradient`` False) is fit once, before the loop,
  and takes no steps.

``--fast-path`` picks: ``off`` autograd; ``eager`` the hand-derived step; ``compile`` that with
chunks compiled in this process; ``auto`` (the default, ``choose_step``) the fastest of these that
computes the same math for the configuration at hand, and autograd where the hand-derived pass does
not apply (sequence models, synchronised BatchNorm, an observer that needs autograd on every step).

``advance(trainer, start, stop)`` takes steps from ``start`` toward ``stop`` (the next evaluation or
the end) and returns their losses; the trainer records them and emits ``on_step_end`` once, with the
model holding the weights after the last of them. Autograd takes one step per ``advance``; the
hand-derived path a span of up to ``SPAN_STEPS`` (its batches drawn at once, exactly the batches of
single steps; compiled chunks of ``unroll`` steps where they fit, eager steps for the rest).
``take_step`` is one single step on a given batch, emitting its events through ``emit``: the
non-finite guard replays steps with it. ``end`` follows the last step (a background compile still
running is left to finish).
"""

from __future__ import annotations

from typing import Callable

import torch

from charlab.errors import CharlabError
from charlab.training import hand_backward
from charlab.training.compiled import Compiler, cpus
from charlab.training.events import Observer, watches

NO_POINT_FOR = ("on_step_start", "on_after_backward")  # events the hand-derived steps cannot emit truly
# ``--fast-path auto`` compiles only runs of at least this many steps: from a warm cache the
# in-process load (~3 s) is repaid after ~30k steps (N/5,500 = 3 + N/13,000: eager and compiled
# steps/s, one thread, 2-core machine), so 40k with a margin. A cold compile (~20-30 s) runs in a
# background worker on the other core; one still running when training ends is left to finish, so
# that the next run is fast.
AUTO_COMPILE_MIN_STEPS = 40_000
# Switch to the compiled chunks only with this many steps left, for the same reason: the ~3 s load
# is repaid after ~30k compiled steps.
SWITCH_MIN_REMAINING = 40_000
# Steps per ``advance`` of the hand-derived path (fewer at an evaluation, a checkpoint or a step that
# needs autograd): one batch draw, one learning-rate tensor and one ``on_step_end`` for all of them.
# Per step, these cost ~40 us of Python against ~100 us for a compiled mlp-bn step; spans of 100 make
# them ~0.4 us, keep Ctrl-C and the progress bar prompt (~10 ms), hold a whole number of compiled
# chunks, and end on the round steps that observers count in (every 100, 1,000, 10,000 steps).
SPAN_STEPS = 100


class Step:
    """A strategy: ``begin`` once per fit, then ``advance`` until the last step, then ``end``."""

    def begin(self, trainer) -> None:
        """Before the first step (after ``on_train_start``); nothing for gradient steps."""

    def advance(self, trainer, start: int, stop: int) -> torch.Tensor:
        raise NotImplementedError

    def end(self, trainer) -> None:
        """After the last step of a fit."""


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


def never(step: int) -> bool:
    return False


def autograd_needed(observers) -> Callable[[int], bool] | None:
    """Which steps need autograd for ``observers``: each that watches an event the hand-derived steps
    have no point for says so through ``needs_autograd(step)``; None when one of them cannot say
    (then every step needs it)."""
    asks = []
    for observer in observers:
        if any(watches(observer, event) for event in NO_POINT_FOR):
            ask = getattr(observer, "needs_autograd", None)
            if ask is None:
                return None
            asks.append(ask)
    if not asks:
        return never
    return asks[0] if len(asks) == 1 else (lambda step: any(ask(step) for ask in asks))


def plain_sgd(cfg) -> bool:
    """Whether the step is ``p -= lr * grad`` (what ``hand_backward.sgd_step`` and the compiled chunk do)."""
    return cfg.optimizer == "sgd" and cfg.grad_clip == 0


class HandDerivedStep(Step):
    """The hand-derived pass; chunks of ``unroll`` SGD steps compiled when ``compiler`` has them
    ready; autograd on the steps an observer needs it for (``autograd_needed``)."""

    def __init__(self, model: torch.nn.Module, cfg, compiler: bool | str = False):
        self.autograd = AutogradStep(model)
        self.hand = hand_backward.HandBackward(model)
        self.whole_sgd = plain_sgd(cfg)
        self.compiler = None
        if compiler and self.whole_sgd:
            self.compiler = Compiler(self.hand, background=compiler == "background",
                                     min_remaining=SWITCH_MIN_REMAINING if compiler == "background" else 0)
        self.needs_autograd = never

    def begin(self, trainer) -> None:
        self.needs_autograd = autograd_needed(trainer.listeners) or (lambda step: True)
        if self.compiler is not None:
            self.compiler.begin(trainer)

    def end(self, trainer) -> None:
        if self.compiler is not None:
            self.compiler.end()

    def take_step(self, trainer, step: int, x: torch.Tensor, y: torch.Tensor, emit: Callable) -> torch.Tensor:
        """One step on ``x``, ``y`` at the learning rate of ``step``; its loss."""
        if self.needs_autograd(step):
            return self.autograd.take_step(trainer, step, x, y, emit)
        lr = trainer.schedule.lr(step)
        if self.whole_sgd:
            return self.hand.sgd(x, y, lr)
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr
        loss = self.hand.gradients(x, y)  # sets every .grad, no autograd graph
        if trainer.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.hand.leaves, trainer.cfg.grad_clip, foreach=True)
        trainer.optimizer.step()
        return loss

    def advance(self, trainer, start: int, stop: int) -> torch.Tensor:
        k = self.span(start, stop, trainer.cfg.checkpoint_interval)
        if k == 0:  # this step needs autograd (a sampled step of the diagnostics)
            x, y = trainer.train_examples.rows(trainer.sampler.draw())  # (B, T), (B,)
            return self.autograd.take_step(trainer, start, x, y, trainer.emit).reshape(1)  # (1,)
        x, y = self.draw_chunk(trainer, k)  # (k, B, T), (k, B)
        if not self.whole_sgd:  # each step sets its optimizer's learning rate itself
            return torch.stack([self.take_step(trainer, start + i, x[i], y[i], trainer.emit)
                                for i in range(k)])  # (k,)
        lrs = [trainer.schedule.lr(s) for s in range(start, start + k)]
        done, losses = 0, []
        if self.compiler is not None and self.compiler.ready(start, trainer.cfg.steps) is not None:
            done, losses = self.compiled_steps(x, y, lrs)
        if done < k:
            losses.append(self.eager_steps(x[done:], y[done:], lrs[done:]))
        return torch.cat(losses)  # (k,)

    def span(self, start: int, stop: int, checkpoint_every: int = 0) -> int:
        """Steps from ``start`` to the next multiple of ``SPAN_STEPS`` (or of ``checkpoint_every``, or
        ``stop``), whichever comes first, and before the first step that needs autograd (0 if ``start``
        does). Spans on a fixed grid make a resumed run take the same spans as an unbroken one."""
        end = min((start // SPAN_STEPS + 1) * SPAN_STEPS, stop)
        if checkpoint_every:
            end = min(end, (start // checkpoint_every + 1) * checkpoint_every)
        for s in range(start, end):
            if self.needs_autograd(s):
                return s - start
        return end - start

    def draw_chunk(self, trainer, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batches of the next ``k`` steps: one ``randint`` of k*B draws exactly the k batches of B
        the plain loop draws."""
        b, examples = trainer.cfg.batch_size, trainer.train_examples
        ix = torch.randint(0, len(examples), (k * b,), generator=trainer.generator)  # (k*B,)
        return examples.x[ix].view(k, b, -1), examples.y[ix].view(k, b)  # (k, B, T), (k, B)

    def eager_steps(self, x: torch.Tensor, y: torch.Tensor, lrs: list[float]) -> torch.Tensor:
        """Hand-derived SGD steps on the batches ``x`` (k, B, T), ``y`` (k, B); their losses (k,)."""
        return torch.stack([self.hand.sgd(x[i], y[i], lr) for i, lr in enumerate(lrs)])  # (k,)

    def compiled_steps(self, x: torch.Tensor, y: torch.Tensor, lrs: list[float]) -> tuple[int, list[torch.Tensor]]:
        """As many whole chunks of ``unroll`` steps of the batches ``x`` (k, B, T), ``y`` (k, B) as fit, each
        one compiled graph; how many steps ran and their losses. Stops early if compiling fails (said
        once on stderr): the caller takes the rest eagerly."""
        unroll, rates = self.hand.unroll, torch.tensor(lrs)  # (k,)
        losses = []
        for i in range(0, x.shape[0] - unroll + 1, unroll):
            chunk = self.compiler.run(x[i:i + unroll], y[i:i + unroll], rates[i:i + unroll])  # (unroll,)
            if chunk is None:
                return i, losses
            losses.append(chunk)
        return len(losses) * unroll, losses


class CountFit(Step):
    def begin(self, trainer) -> None:
        trainer.model.fit_counts(trainer.train_examples)
        trainer.skip_to(trainer.cfg.steps)


def check_hand_step_supported(model: torch.nn.Module, cfg, observers: list[Observer]) -> None:
    """Refuse what the hand-derived steps do not implement, naming the setting to change."""
    if cfg.fast_path == "compile" and not plain_sgd(cfg):
        raise CharlabError("--fast-path compile runs SGD without clipping inside the graph; use --optimizer sgd "
                           "--grad-clip 0, or --fast-path eager")
    if autograd_needed(observers) is None:
        for observer in observers:
            for event in NO_POINT_FOR:
                if watches(observer, event) and not hasattr(observer, "needs_autograd"):
                    raise CharlabError(f"{type(observer).__name__} watches {event}, which --fast-path has no "
                                       "point for (it computes gradients without autograd); use --fast-path off")
    reason = hand_backward.unsupported_reason(model)
    if reason is not None:
        raise CharlabError(reason)


def auto_compiles(model: torch.nn.Module, cfg) -> bool:
    """Whether ``auto`` compiles: SGD without clipping, a run long enough to pay
    (``AUTO_COMPILE_MIN_STEPS``), on the CPU (where it is measured) with a second CPU for the worker."""
    device = next(model.parameters()).device
    return (plain_sgd(cfg) and cfg.steps >= AUTO_COMPILE_MIN_STEPS and device.type == "cpu" and cpus() >= 2)


def choose_step(model: torch.nn.Module, cfg, observers: list[Observer]) -> Step:
    """The strategy for this model and ``cfg.fast_path``; CharlabError for an unsupported mix
    (``auto`` never refuses: it takes autograd where the hand-derived pass does not apply)."""
    if not model.trained_by_gradient:
        return CountFit()
    mode = getattr(cfg, "fast_path", "off")
    if mode == "off":
        return AutogradStep(model)
    if mode == "auto":
        try:
            check_hand_step_supported(model, cfg, observers)
        except CharlabError:
            return AutogradStep(model)
        return HandDerivedStep(model, cfg, compiler="background" if auto_compiles(model, cfg) else False)
    check_hand_step_supported(model, cfg, observers)
    return HandDerivedStep(model, cfg, compiler=mode == "compile")
