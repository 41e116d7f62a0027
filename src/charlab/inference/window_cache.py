"""Sampling by lookup for windowed models.

A window model sees only the last ``block_size`` ids, so its context space is finite:
``vocab_size ** block_size`` windows (27**3 = 19,683 for names). A table of next-character
distributions per window, filled the first time a window is reached, turns each sampling step into
an index into that table instead of a forward pass over every live sample. The draws are the direct sampler's (same logits, same generator calls),
so a seed gives the same samples either way.
"""

from __future__ import annotations

import torch

from charlab.data import BOUNDARY_ID
from charlab.models.base import model_device
from charlab.inference.evaluate import eval_mode

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
    return window_digits(torch.arange(vocab_size ** block_size), vocab_size, block_size)  # (R, T)


def window_digits(rows: torch.Tensor, vocab_size: int, block_size: int) -> torch.Tensor:
    """The windows with table rows ``rows`` (n,): base-``vocab_size`` digits, oldest id first. (n, T)"""
    powers = vocab_size ** torch.arange(block_size - 1, -1, -1)  # (T,)
    return rows.unsqueeze(1) // powers % vocab_size  # (n, T)


class LogitTable:
    """A lazily filled table of ``transform(logits)`` for every window, on the CPU.

    A row is computed the first time a sample reaches its window (all new windows of a step in one
    forward pass) and reused after: 10,000 names visit only a part of the 27**3 windows.
    ``table(context)`` has the signature of ``model.next_token_logits`` (``transform`` of it).
    """

    def __init__(self, model, transform=None):
        self.model = model
        self.transform = transform if transform is not None else (lambda logits: logits)
        self.vocab_size, self.block_size = model.vocab_size, model.block_size
        self.powers = self.vocab_size ** torch.arange(self.block_size - 1, -1, -1)  # (T,)
        n_rows = self.vocab_size ** self.block_size
        self.values = torch.empty(n_rows, self.vocab_size)  # (R, V), valid where ``known``
        self.known = torch.zeros(n_rows, dtype=torch.bool)  # (R,)

    def rows(self, context: torch.Tensor) -> torch.Tensor:
        """The table row of each context's last window. (n,)"""
        batch = context.shape[0]
        pad = torch.full((batch, self.block_size), BOUNDARY_ID, dtype=torch.long)  # (n, T)
        window = torch.cat([pad, context], dim=1)[:, -self.block_size:]  # (n, T)
        return (window * self.powers).sum(1)  # (n,)

    def advance(self, rows: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """The row of each window after appending ``nxt``: drop the oldest id, shift, add. (n,)"""
        return (rows * self.vocab_size + nxt) % self.vocab_size ** self.block_size  # (n,)

    def lookup(self, rows: torch.Tensor) -> torch.Tensor:
        """Table values at ``rows`` (n,), computing the missing ones first. (n, V)"""
        unknown = ~self.known[rows]  # (n,)
        if bool(unknown.any()):
            missing = torch.unique(rows[unknown])  # (m,)
            windows = window_digits(missing, self.vocab_size, self.block_size)  # (m, T)
            device = model_device(self.model)
            with eval_mode(self.model) if self.model.training else torch.no_grad():  # sampler: eval already
                logits = torch.cat([self.model.logits(windows[i:i + TABLE_CHUNK].to(device)).float().cpu()
                                    for i in range(0, windows.shape[0], TABLE_CHUNK)])  # (m, V)
            self.values[missing] = self.transform(logits)
            self.known[missing] = True
        return self.values[rows]  # (n, V)

    def __call__(self, context: torch.Tensor) -> torch.Tensor:
        return self.lookup(self.rows(context))  # (n, V)
