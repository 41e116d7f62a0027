"""One training loop for every model: advance, record the losses, evaluate, keep the best weights.

The loop is the lecture's: sample a batch with the seeded generator (``data/batches.py``), forward,
backward, optimizer step, at the learning rate of ``lr_schedule.py``. How a step is taken (autograd,
the hand-derived pass, a compiled chunk of steps, or a count fit that takes none) is a strategy of
``steps.py``, chosen once. The loss of every step is kept on the device in a preallocated tensor (no
``.item()`` per step); the dev split is evaluated every ``eval_interval`` steps and at the end, and
the weights with the best dev loss are kept. Everything else (progress, diagnostics, checkpoints,
the non-finite guard, signals) is an observer of the events in ``events.py``.
"""

from __future__ import annotations

import torch

from charlab.config import TrainConfig
from charlab.data import Examples
from charlab.data.batches import BatchSampler
from charlab.inference.evaluate import split_loss
from charlab.training.distributed import unwrap_view
from charlab.training.events import Observer, TrainView
from charlab.training.lr_schedule import Schedule
from charlab.training.optim import make_optimizer
from charlab.training.state import TrainState, batch_generator, weights_copy
from charlab.training.steps import choose_step


class Trainer:
    def __init__(self, model: torch.nn.Module, train: Examples, dev: Examples, cfg: TrainConfig,
                 observers: list[Observer] | tuple = ()):
        self.model = model
        self.train_examples = train
        self.dev_examples = dev
        self.cfg = cfg
        self.observers = tuple(observers)
        self.listeners = self.observers  # this fit's: the observers with fit's ``first`` and ``last``
        self.schedule = Schedule(cfg)
        self.optimizer = make_optimizer(model, cfg)
        self.generator = batch_generator(cfg.seed)
        self.sampler = BatchSampler(train, cfg.batch_size, self.generator, getattr(cfg, "length_buckets", 0))
        self.state = TrainState()
        self.step_losses = torch.zeros(0)  # per-step losses of the running fit, kept on the device
        self.fit_start = 0  # the step that fit started at: step_losses holds steps fit_start..state.step
        self.chunk_start = 0  # the first step of the latest on_step_end (TrainView.chunk_start)
        self.best_weights = weights_copy(model)
        self.stop_requested = False  # set through request_stop (signals, the non-finite guard)
        self.stop_reason = None  # with stop_requested: a stopping.TrainingStopped saying why
        self.stepper = choose_step(model, cfg, self.observers)
        self.view = TrainView(self, unwrap_view(model))

    def request_stop(self, reason) -> None:
        self.stop_requested, self.stop_reason = True, reason

    def losses_so_far(self) -> list[float]:
        """Every step's loss up to ``state.step``: the saved ones, then this fit's (one host read)."""
        return self.state.losses + self.step_losses[self.fit_start:self.state.step].tolist()

    def skip_to(self, step: int) -> None:
        """Mark the steps up to ``step`` done without per-step losses (a model fit all at once)."""
        self.state.step = self.fit_start = step

    def emit(self, event: str, *args) -> None:
        for observer in self.listeners:
            getattr(observer, event)(self.view, *args)

    def train_step(self, step: int, x: torch.Tensor, y: torch.Tensor, emit=None) -> torch.Tensor:
        """One step of the chosen strategy on a given batch (the guard replays with it); its loss."""
        return self.stepper.take_step(self, step, x, y, emit or self.emit)

    def evaluate_dev(self, step: int) -> float:
        dev = split_loss(self.model, self.dev_examples)
        lr = self.schedule.lr(max(step - 1, 0))
        self.schedule.observe_dev(dev)
        if self.state.record_eval(step, dev, lr, has_dev=len(self.dev_examples) > 0):
            self.best_weights = weights_copy(self.model)
        self.emit("on_eval", step, {"dev": dev})
        return dev

    def next_stop(self, step: int) -> int:
        """The step at which the next evaluation (or the end) comes."""
        return min((step // self.cfg.eval_interval + 1) * self.cfg.eval_interval, self.cfg.steps)

    def fit(self, first: tuple[Observer, ...] = (), last: tuple[Observer, ...] = ()) -> TrainState:
        """Train from ``state.step`` to ``cfg.steps``; returns the state, best weights loaded.
        ``first`` see each event before the observers (the guard), ``last`` after them (checkpoints)."""
        cfg = self.cfg
        self.listeners = (*first, *self.observers, *last)
        self.model.train()
        self.step_losses = torch.zeros(cfg.steps, dtype=torch.float32)  # (steps,) indexed by step
        self.fit_start = self.state.step
        self.emit("on_train_start")
        self.stepper.begin(self)
        while self.state.step < cfg.steps and not self.stop_requested:
            start = self.state.step
            losses = self.stepper.advance(self, start, self.next_stop(start))  # (k,) for k steps
            self.step_losses[start:start + losses.shape[0]] = losses
            self.chunk_start, self.state.step = start, start + losses.shape[0]
            self.emit("on_step_end", self.state.step - 1, losses[-1])
            if self.state.step % cfg.eval_interval == 0 and self.state.step < cfg.steps:
                self.evaluate_dev(self.state.step)
        self.stepper.end(self)
        self.state.losses = self.losses_so_far()
        self.fit_start = self.state.step
        if not self.stop_requested:
            self.evaluate_dev(self.state.step)
            self.model.load_state_dict(self.best_weights)
        self.emit("on_train_end")
        return self.state
