"""Sampling by lookup for windowed models.

A window model sees only the last ``block_size`` ids, so its context space is finite:
``vocab_size ** block_size`` windows (27**3 = 19,683 for names). One forward pass over every window
gives a table of next-character logits, and each sampling step becomes an index into that table
instead of a forward pass. The draws are the direct sampler's (same logits, same generator calls),
so a seed gives the same samples either way.
"""

from __future__ import annotations

import torch

from charlab.data import BOUNDARY_ID
from charlab.devices import model_device
from charlab.evaluate import eval_mode

TABLE_MAX_ROWS = 1 << 18  # windows; 262,144 x 27 float32 logits is 28 MB, built in well under a second
TABLE_CHUNK = 2048  # windows per forward pass: a (2048, 200) activation stays in the CPU's L2 cache
ROWS_PER_SAMPLE = 8  # a name costs the direct sampler ~8 forward rows (7 characters and the end)


def table_rows(model) -> int | None:
    """How many windows the model's context space has, or None for a sequence model."""
    if getattr(model, "example_kind", None) != "window":
        return None
    return model.vocab_size ** model.block_size


def worth_a_table(model, n: int) -> bool:
    """A table pays off when it has fewer rows than the direct sampler would evaluate."""
    rows = table_rows(model)
    return rows is not None and rows <= TABLE_MAX_ROWS and rows <= n * ROWS_PER_SAMPLE


def all_windows(vocab_size: int, block_size: int) -> torch.Tensor:
    """Every window, row r holding the base-``vocab_size`` digits of r (oldest id first). (R, T)"""
    powers = vocab_size ** torch.arange(block_size - 1, -1, -1)  # (T,)
    rows = torch.arange(vocab_size ** block_size).unsqueeze(1)  # (R, 1)
    return rows // powers % vocab_size  # (R, T)


class LogitTable:
    """``table(context) -> logits`` with the signature of ``model.next_token_logits``, on the CPU."""

    def __init__(self, model):
        self.vocab_size, self.block_size = model.vocab_size, model.block_size
        self.powers = self.vocab_size ** torch.arange(self.block_size - 1, -1, -1)  # (T,)
        windows = all_windows(self.vocab_size, self.block_size)  # (R, T)
        device = model_device(model)
        parts = []
        with eval_mode(model):
            for start in range(0, windows.shape[0], TABLE_CHUNK):
                chunk = windows[start:start + TABLE_CHUNK].to(device)  # (r, T)
                parts.append(model.logits(chunk).float().cpu())  # (r, V)
        self.logits = torch.cat(parts)  # (R, V)
        self.cdf: torch.Tensor | None = None  # set by the sampler: transformed(...) for its settings

    def rows(self, context: torch.Tensor) -> torch.Tensor:
        """The table row of each context's last window. (n,)"""
        batch = context.shape[0]
        pad = torch.full((batch, self.block_size), BOUNDARY_ID, dtype=torch.long)  # (n, T)
        window = torch.cat([pad, context], dim=1)[:, -self.block_size:]  # (n, T)
        return (window * self.powers).sum(1)  # (n,)

    def advance(self, rows: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """The row of each window after appending ``nxt``: drop the oldest id, shift, add. (n,)"""
        return (rows * self.vocab_size + nxt) % self.vocab_size ** self.block_size  # (n,)

    def __call__(self, context: torch.Tensor) -> torch.Tensor:
        return self.logits[self.rows(context)]  # (n, V)

    def transformed(self, transform) -> torch.Tensor:
        """``transform(logits)`` of every window at once (the sampler's temperature, top-k, softmax
        and cumulative sum act row by row, so the rows come out as they would one batch at a time)."""
        return transform(self.logits)  # (R, V)
