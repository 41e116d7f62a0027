"""Dropout written out: masks drawn from a CPU ``torch.Generator`` handed in by the model builder,
so one seed makes a run repeatable on any device (``torch.nn.Dropout`` is the oracle in the tests)."""

from __future__ import annotations

import torch
from torch import nn

SEED_RANGE = 2 ** 62  # dropout seeds are drawn in [0, 2^62) from the init generator


def dropout_generator(init_generator: torch.Generator | None) -> torch.Generator:
    """A generator for dropout masks, seeded by one draw from the init generator (one seed: one run)."""
    seed = int(torch.randint(SEED_RANGE, (), generator=init_generator))
    return torch.Generator().manual_seed(seed)


def dropout_mask(p: float, shape: tuple[int, ...], generator: torch.Generator | None,
                 device: torch.device) -> torch.Tensor:
    """A fresh keep-mask of ``shape``: 0 with probability ``p``, else 1/(1-p)."""
    draws = torch.rand(shape, generator=generator)  # on the CPU, as every charlab generator
    return (draws >= p).to(device) / (1.0 - p)  # (shape)


class Dropout(nn.Module):
    """Zero each element with probability ``p`` in training mode and scale the rest by 1/(1-p)."""

    def __init__(self, p: float, generator: torch.Generator | None = None):
        super().__init__()
        self.p = p
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * dropout_mask(self.p, x.shape, self.generator, x.device)

    def extra_repr(self) -> str:
        return f"p={self.p}"
