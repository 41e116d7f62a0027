"""One training loop for every model. It emits events to observers and knows nothing of printing,
diagnostics or files: those are observers (``progress.py``, ``diagnostics/``, ``checkpoint.py``).

The loop is the lecture's: sample a batch of example indices with the seeded generator (``batches.py``), forward,
backward, optimizer step, with the learning rate from ``schedule.py``. The loss of every step is kept
on the device in a preallocated tensor (no ``.item()`` per step); the dev split is evaluated every
``eval_interval`` steps and at the end, and the weights with the best dev loss are kept.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field

import torch

from charlab.data.batches import BatchSampler
from charlab.config import TrainConfig
from charlab.data import Examples
from charlab.inference.evaluate import split_loss
from charlab.training.hand_backward import FastPath, check_supported
from charlab.training.lr_schedule import Schedule

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


@torch.no_grad()
def sgd_update(params: list[torch.Tensor], lr: float) -> None:
    """``p -= lr * p.grad`` for every parameter with a gradient, in one foreach kernel: exactly what
    ``torch.optim.SGD(foreach=True)`` without momentum computes, minus ~0.1 ms of per-step
    bookkeeping that dominates a step of the lecture's small MLP."""
    live = [p for p in params if p.grad is not None]
    torch._foreach_add_(live, [p.grad for p in live], alpha=-lr)


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
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.generator = batch_generator(cfg.seed)
        self.sampler = BatchSampler(train, cfg.batch_size, self.generator, getattr(cfg, "length_buckets", 0))
        self.state = TrainState()
        self.step_losses = torch.zeros(0)  # per-step losses of the running fit, kept on the device
        self.fit_start = 0  # the step that fit started at: step_losses holds steps fit_start..state.step
        self.best_weights = self._snapshot()
        self.stop_requested = False  # an observer may set it (signals, non-finite guard)
        self.stop_reason = None  # with stop_requested: a stopping.TrainingStopped saying why
        self.fast = None  # cfg.fast_path: hand-derived backward pass (fastpath.py)
        if getattr(cfg, "fast_path", "off") != "off":
            check_supported(model, cfg, self.observers)
            self.fast = FastPath(model, cfg.fast_path)

    def _snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def state_dict(self) -> dict:
        """A copy of everything an exact resume needs: weights, optimizer, schedule, the RNG states
        (batches, global, the model's dropout generators), the ``TrainState`` and the best weights
        (``checkpoint.py`` stores it without pickle)."""
        optimizer = self.optimizer.state_dict() if self.optimizer is not None else None
        return {"model": self._snapshot(),
                "optimizer": copy.deepcopy(optimizer),
                "schedule": self.schedule.state_dict(),
                "batch_rng": self.generator.get_state(),  # (n,) uint8
                "torch_rng": torch.get_rng_state(),  # (n,) uint8: the global stream (dropout)
                "cuda_rng": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
                "model_rng": model_rng_states(self.model),
                "train_state": asdict(self.state),
                "best_weights": {k: v.clone() for k, v in self.best_weights.items()}}

    def load_state_dict(self, sd: dict) -> None:
        """Continue from ``sd`` (made by ``state_dict``): ``fit`` then resumes at its step."""
        self.model.load_state_dict(sd["model"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(sd["optimizer"])
        self.schedule.load_state_dict(sd["schedule"])
        self.generator.set_state(sd["batch_rng"])
        torch.set_rng_state(sd["torch_rng"])
        if sd.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(sd["cuda_rng"])
        set_model_rng_states(self.model, sd.get("model_rng", []))
        ts = sd["train_state"]
        self.state = TrainState(step=int(ts["step"]), losses=[float(x) for x in ts["losses"]],
                                evals=[EvalRecord(**e) for e in ts["evals"]], best_dev=float(ts["best_dev"]),
                                best_step=int(ts["best_step"]))
        self.best_weights = {k: v.clone() for k, v in sd["best_weights"].items()}

    def losses_so_far(self) -> list[float]:
        """Every step's loss up to ``state.step``: the saved ones, then this fit's (one host read)."""
        return self.state.losses + self.step_losses[self.fit_start:self.state.step].tolist()

    def _emit(self, event: str, *args) -> None:
        for observer in self.observers:
            getattr(observer, event)(self, *args)

    def evaluate_dev(self, step: int) -> float:
        dev = split_loss(self.model, self.dev_examples)
        lr = self.schedule.lr(max(step - 1, 0))
        self.state.evals.append(EvalRecord(step=step, dev=dev, lr=lr))
        self.schedule.observe_dev(dev)
        improved = dev < self.state.best_dev  # False for nan: diverged weights never replace the best
        if improved or len(self.dev_examples) == 0:  # no dev split: nothing to select by, keep the latest
            if improved:
                self.state.best_dev = dev
            self.state.best_step = step
            self.best_weights = self._snapshot()
        self._emit("on_eval", step, {"dev": dev})
        return dev

    def train_step(self, step: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        lr = self.schedule.lr(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._emit("on_step_start", step)
        if self.fast is not None:
            loss = self.fast.gradients(x, y)  # sets every .grad, no autograd graph
        else:
            _, loss = self.model(x, y)
            for p in self.params:
                p.grad = None
            weight = self.sampler.loss_weight(y)  # 1 unless batches are drawn by length (batches.py)
            (loss * weight if weight != 1.0 else loss).backward()
        self._emit("on_after_backward", step)
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip, foreach=True)
        if self.cfg.optimizer == "sgd":
            sgd_update(self.params, lr)
        else:
            self.optimizer.step()
        return loss.detach()

    def _compiled_chunk(self) -> None:
        """``--fast-path compile``: up to ``fast.unroll`` SGD steps in one compiled graph, ending at a
        multiple of ``fast.unroll``, the next evaluation or the end. One ``randint`` of k*B draws
        exactly the k batches of B the plain loop draws. ``on_step_end`` follows for each step, with
        the chunk's last weights in the model."""
        cfg, step, unroll = self.cfg, self.state.step, self.fast.unroll
        k = min(unroll - step % unroll, cfg.eval_interval - step % cfg.eval_interval, cfg.steps - step)
        ix = torch.randint(0, len(self.train_examples), (k * cfg.batch_size,), generator=self.generator)  # (k*B,)
        x = self.train_examples.x[ix].view(k, cfg.batch_size, -1)  # (k, B, T)
        y = self.train_examples.y[ix].view(k, cfg.batch_size)  # (k, B)
        lrs = torch.tensor([self.schedule.lr(s) for s in range(step, step + k)])  # (k,)
        losses = self.fast.steps(x, y, lrs)  # (k,)
        self.step_losses[step:step + k] = losses
        for i in range(k):
            self.state.step = step + i + 1
            self._emit("on_step_end", step + i, losses[i])

    def fit(self) -> TrainState:
        """Train from ``state.step`` to ``cfg.steps``; returns the state, best weights loaded."""
        cfg = self.cfg
        self.model.train()
        self.step_losses = torch.zeros(cfg.steps, dtype=torch.float32)  # (steps,) indexed by step
        self.fit_start = self.state.step
        self._emit("on_train_start")
        if not self.model.trained_by_gradient:
            self.model.fit_counts(self.train_examples)
            self.state.step = self.fit_start = cfg.steps
        while self.state.step < cfg.steps and not self.stop_requested:
            if self.fast is not None and self.fast.compiled is not None:
                self._compiled_chunk()
            else:
                step = self.state.step
                loss = self.train_step(step, *self.train_examples.rows(self.sampler.draw()))
                self.step_losses[step] = loss
                self.state.step = step + 1
                self._emit("on_step_end", step, loss)
            if self.state.step % cfg.eval_interval == 0 and self.state.step < cfg.steps:
                self.evaluate_dev(self.state.step)
        self.state.losses = self.losses_so_far()
        self.fit_start = self.state.step
        if not self.stop_requested:
            self.evaluate_dev(self.state.step)
            self.model.load_state_dict(self.best_weights)
        self._emit("on_train_end")
        return self.state
