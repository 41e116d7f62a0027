"""Learning-rate schedules: a function of the step, plus dev losses for the plateau schedule."""

from __future__ import annotations

import math

from charlab.config import TrainConfig


class Schedule:
    """``lr(step)`` for every schedule; ``observe_dev(loss)`` feeds the plateau rule."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.plateau_scale = 1.0
        self.best_dev = math.inf
        self.bad_evals = 0

    def lr(self, step: int) -> float:
        cfg = self.cfg
        if cfg.schedule == "step":
            decayed = step >= int(cfg.decay_at * cfg.steps)
            return cfg.lr * (cfg.decay_factor if decayed else 1.0)
        if cfg.schedule == "plateau":
            return cfg.lr * self.plateau_scale
        if cfg.schedule == "cosine":
            return self._cosine(step)
        return cfg.lr

    def _cosine(self, step: int) -> float:
        cfg = self.cfg
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        span = max(cfg.steps - cfg.warmup_steps, 1)
        progress = min((step - cfg.warmup_steps) / span, 1.0)
        floor = cfg.lr * cfg.min_lr_frac
        return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def observe_dev(self, loss: float) -> None:
        """Plateau rule: x decay_factor after ``patience`` evaluations without a new best dev loss."""
        if loss < self.best_dev:
            self.best_dev, self.bad_evals = loss, 0
            return
        self.bad_evals += 1
        if self.cfg.schedule == "plateau" and self.bad_evals >= self.cfg.patience:
            self.plateau_scale *= self.cfg.decay_factor
            self.bad_evals = 0

    def state_dict(self) -> dict:
        return {"plateau_scale": self.plateau_scale, "best_dev": self.best_dev, "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.best_dev = float(state["best_dev"])
        self.bad_evals = int(state["bad_evals"])
