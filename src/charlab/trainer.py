"""One training loop for every model. It emits events to observers and knows nothing of printing,
diagnostics or files: those are observers (``progress.py``, ``diagnostics/``, ``checkpoint.py``).

The loop is the lecture's: sample a batch of example indices with the seeded generator, forward,
backward, optimizer step, with the learning rate from ``schedule.py``. The loss of every step is kept
on the device in a preallocated tensor (no ``.item()`` per step); the dev split is evaluated every
``eval_interval`` steps and at the end, and the weights with the best dev loss are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from charlab.config import TrainConfig
from charlab.data import Examples
from charlab.evaluate import split_loss
from charlab.schedule import Schedule

BATCH_STREAM = 1  # the batch generator is seeded with seed + 1, so init changes never shift batches


class Observer:
    """Callbacks of the training loop; override the ones you need."""

    def on_train_start(self, trainer: "Trainer") -> None: ...

    def on_step_start(self, trainer: "Trainer", step: int) -> None: ...

    def on_after_backward(self, trainer: "Trainer", step: int) -> None: ...

    def on_step_end(self, trainer: "Trainer", step: int, loss: torch.Tensor) -> None: ...

    def on_eval(self, trainer: "Trainer", step: int, losses: dict[str, float]) -> None: ...

    def on_train_end(self, trainer: "Trainer") -> None: ...


@dataclass
class EvalRecord:
    step: int
    dev: float
    lr: float


@dataclass
class TrainState:
    """Everything that changes while training; saved by checkpoints for an exact resume."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    evals: list[EvalRecord] = field(default_factory=list)
    best_dev: float = math.inf
    best_step: int = -1


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    return torch.optim.SGD(params, lr=cfg.lr, foreach=True)


def batch_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed + BATCH_STREAM)


class Trainer:
    def __init__(self, model: torch.nn.Module, train: Examples, dev: Examples, cfg: TrainConfig,
                 observers: list[Observer] | tuple = ()):
        self.model = model
        self.train_examples = train
        self.dev_examples = dev
        self.cfg = cfg
        self.observers = list(observers)
        self.schedule = Schedule(cfg)
        self.optimizer = make_optimizer(model, cfg) if model.trained_by_gradient else None
        self.generator = batch_generator(cfg.seed)
        self.state = TrainState()
        self.best_weights = self._snapshot()
        self.stop_requested = False  # an observer may set it (signals, non-finite guard)

    def _snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _emit(self, event: str, *args) -> None:
        for observer in self.observers:
            getattr(observer, event)(self, *args)

    def evaluate_dev(self, step: int) -> float:
        dev = split_loss(self.model, self.dev_examples)
        lr = self.schedule.lr(max(step - 1, 0))
        self.state.evals.append(EvalRecord(step=step, dev=dev, lr=lr))
        self.schedule.observe_dev(dev)
        if math.isnan(dev) or dev < self.state.best_dev or self.state.best_step < 0:
            if not math.isnan(dev):
                self.state.best_dev = dev
            self.state.best_step = step
            self.best_weights = self._snapshot()
        self._emit("on_eval", step, {"dev": dev})
        return dev

    def train_step(self, step: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.lr(step)
        self._emit("on_step_start", step)
        _, loss = self.model(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._emit("on_after_backward", step)
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip, foreach=True)
        self.optimizer.step()
        return loss.detach()

    def fit(self) -> TrainState:
        """Train from ``state.step`` to ``cfg.steps``; returns the state, best weights loaded."""
        cfg = self.cfg
        self.model.train()
        self._emit("on_train_start")
        if not self.model.trained_by_gradient:
            self.model.fit_counts(self.train_examples)
            self.state.step = cfg.steps
        n_examples = len(self.train_examples)
        recent = torch.zeros(cfg.steps, dtype=torch.float32)  # per-step losses, kept on the device
        first = self.state.step
        while self.state.step < cfg.steps and not self.stop_requested:
            step = self.state.step
            ix = torch.randint(0, n_examples, (cfg.batch_size,), generator=self.generator)  # (B,)
            loss = self.train_step(step, self.train_examples.x[ix], self.train_examples.y[ix])
            recent[step] = loss
            self.state.step = step + 1
            self._emit("on_step_end", step, loss)
            if self.state.step % cfg.eval_interval == 0 and self.state.step < cfg.steps:
                self.evaluate_dev(self.state.step)
        self.state.losses.extend(recent[first:self.state.step].tolist())
        if not self.stop_requested:
            self.evaluate_dev(self.state.step)
            self.model.load_state_dict(self.best_weights)
        self._emit("on_train_end")
        return self.state
