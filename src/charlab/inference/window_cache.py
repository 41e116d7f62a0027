"""A cache of next-character distributions for window models, so sampling is a lookup.

A window model sees only the last ``block_size`` ids, so its context space is finite:
``vocab_size ** block_size`` windows (27**3 = 19,683 for names). ``NextCharCache`` holds the
next-character distribution of each window, computed the first time a sample reaches that window,
so each sampling step indexes the cache instead of running a forward pass over every live sample.
The draws are the direct sampler's (same logits, same generator calls), so a seed gives the same
samples either way.
"""

from __future__ import annotations

import torch

from charlab.data import BOUNDARY_ID
from charlab.models.base import model_device
from charlab.inference.evaluate import eval_mode

CACHE_MAX_WINDOWS = 1 << 18  # 262,144 windows x 27 float32 values is 28 MB
FILL_CHUNK = 2048  # windows per forward pass: a (2048, 200) activation stays in the CPU's L2 cache
ROWS_PER_SAMPLE = 8  # a name costs the direct sampler ~8 forward rows (7 characters and the end)


def window_count(model) -> int | None:
    """How many windows the model's context space has, or None for a sequence model."""
    if getattr(model, "example_kind", None) != "window":
        return None
    return model.vocab_size ** model.block_size


def worth_caching(model, n: int) -> bool:
    """A cache pays off when it has fewer windows than the forward rows the direct sampler would run."""
    windows = window_count(model)
    return windows is not None and windows <= CACHE_MAX_WINDOWS and windows <= n * ROWS_PER_SAMPLE


def all_windows(vocab_size: int, block_size: int) -> torch.Tensor:
    """Every window, row r holding the base-``vocab_size`` digits of r (oldest id first). (R, T)"""
    return window_digits(torch.arange(vocab_size ** block_size), vocab_size, block_size)  # (R, T)


def window_digits(index: torch.Tensor, vocab_size: int, block_size: int) -> torch.Tensor:
    """The windows numbered ``index`` (n,): base-``vocab_size`` digits, oldest id first. (n, T)"""
    powers = vocab_size ** torch.arange(block_size - 1, -1, -1)  # (T,)
    return index.unsqueeze(1) // powers % vocab_size  # (n, T)


class NextCharCache:
    """The next-character distribution (``transform(logits)``) of every window, filled lazily, on the CPU.

    Windows are numbered by their base-``vocab_size`` digits. A window's entry is computed the first
    time a sample reaches it (all new windows of a step in one forward pass) and reused after: 10,000
    names visit only a part of the 27**3 windows. ``cache(context)`` has the signature of
    ``model.next_token_logits`` (``transform`` of it).
    """

    def __init__(self, model, transform=None):
        self.model = model
        self.transform = transform if transform is not None else (lambda logits: logits)
        self.vocab_size, self.block_size = model.vocab_size, model.block_size
        self.powers = self.vocab_size ** torch.arange(self.block_size - 1, -1, -1)  # (T,)
        n_windows = self.vocab_size ** self.block_size
        self.values = torch.empty(n_windows, self.vocab_size)  # (R, V), valid where ``known``
        self.known = torch.zeros(n_windows, dtype=torch.bool)  # (R,)

    def index(self, context: torch.Tensor) -> torch.Tensor:
        """The number of each context's last window. (n,)"""
        batch = context.shape[0]
        pad = torch.full((batch, self.block_size), BOUNDARY_ID, dtype=torch.long)  # (n, T)
        window = torch.cat([pad, context], dim=1)[:, -self.block_size:]  # (n, T)
        return (window * self.powers).sum(1)  # (n,)

    def advance(self, index: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """The number of each window after appending ``nxt``: drop the oldest id, shift, add. (n,)"""
        return (index * self.vocab_size + nxt) % self.vocab_size ** self.block_size  # (n,)

    def lookup(self, index: torch.Tensor) -> torch.Tensor:
        """The distributions of windows ``index`` (n,), computing the missing ones first. (n, V)"""
        unknown = ~self.known[index]  # (n,)
        if bool(unknown.any()):
            missing = torch.unique(index[unknown])  # (m,)
            windows = window_digits(missing, self.vocab_size, self.block_size)  # (m, T)
            device = model_device(self.model)
            with eval_mode(self.model) if self.model.training else torch.no_grad():  # sampler: eval already
                logits = torch.cat([self.model.logits(windows[i:i + FILL_CHUNK].to(device)).float().cpu()
                                    for i in range(0, windows.shape[0], FILL_CHUNK)])  # (m, V)
            self.values[missing] = self.transform(logits)
            self.known[missing] = True
        return self.values[index]  # (n, V)

    def __call__(self, context: torch.Tensor) -> torch.Tensor:
        return self.lookup(self.index(context))  # (n, V)
