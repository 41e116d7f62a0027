"""The optimizers: ``--optimizer sgd`` (the lecture's plain update) and ``--optimizer adamw``.

``PlainSGD`` is ``p -= lr * p.grad`` for every parameter with a gradient, in one foreach kernel:
what ``torch.optim.SGD(foreach=True)`` computes without momentum, minus its per-step bookkeeping
(momentum buffers, nesterov, maximize, weight decay), which costs about as much as a whole step of
the lecture's small MLP. It is a ``torch.optim.Optimizer``, so the loop calls ``step()`` on either
and checkpoints keep either's ``state_dict`` (PlainSGD keeps no per-parameter state).
"""

from __future__ import annotations

import torch

from charlab.config import TrainConfig


class PlainSGD(torch.optim.Optimizer):
    """SGD without momentum or weight decay; the learning rate is each group's ``lr``."""

    def __init__(self, params, lr: float):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None) -> None:
        for group in self.param_groups:
            live = [p for p in group["params"] if p.grad is not None]
            if live:
                torch._foreach_add_(live, [p.grad for p in live], alpha=-group["lr"])


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer | None:
    """The optimizer ``cfg.optimizer`` names over the trainable parameters; None for a model with
    none (fit by counting)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return None
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    return PlainSGD(params, lr=cfg.lr)
