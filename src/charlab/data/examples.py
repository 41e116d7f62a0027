"""Items in, tensors out: the examples every model learns from.

Every model in charlab learns from one of two kinds of examples (see `models/base.py`):

- ``window``: the lecture's ``(context window -> next character)`` pairs, one row per predicted
  character, so a BatchNorm sees a batch of independent examples;
- ``sequence``: one row per item, the boundary token then the item, with a target at every position.

Both are built with vectorised tensor ops (no Python loop per example), so building scales linearly
with the items (measured at 100k-1M items: the data rows of ``charlab bench``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from charlab.data.vocab import BOUNDARY_ID, Vocab
from charlab.errors import CharlabError

IGNORE_INDEX = -1  # target value of padding positions in sequence examples


def encode_items(items: list[str], vocab: Vocab) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenated ids of all items with a boundary after each, and each item's length.

    Returns ``flat`` (sum(len+1),) and ``lengths`` (n_items,), both int64.
    """
    text = "".join(items)
    codepoints = torch.from_numpy(
        np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    )  # (sum len,)
    known = torch.tensor([ord(ch) for ch in vocab.chars], dtype=torch.long)  # (V-1,) sorted
    slot = torch.searchsorted(known, codepoints).clamp(max=max(len(known) - 1, 0))  # (sum len,)
    bad = known[slot] != codepoints if len(known) else torch.ones_like(codepoints, dtype=torch.bool)
    if bool(bad.any()):
        unknown = sorted({chr(int(c)) for c in codepoints[bad][:1000]})
        raise CharlabError(
            f"the data has characters outside the run's vocabulary: {''.join(unknown)[:20]!r}; "
            "use data written with the training characters"
        )
    codes = slot + 1  # (sum len,) ids; 0 is the boundary
    lengths = torch.tensor([len(item) for item in items], dtype=torch.long)  # (n,)
    total = int(lengths.sum()) + len(items)
    ends = torch.cumsum(lengths + 1, 0) - 1  # (n,) position of each item's end boundary
    flat = torch.full((total,), BOUNDARY_ID, dtype=torch.long)  # (sum len+1,)
    is_char = torch.ones(total, dtype=torch.bool)
    is_char[ends] = False
    flat[is_char] = codes
    return flat, lengths


@dataclass
class Examples:
    """Inputs, targets and the item each row belongs to (for per-item scores)."""

    x: torch.Tensor  # (N, block_size) for windows, (N, T) for sequences
    y: torch.Tensor  # (N,) for windows, (N, T) for sequences, IGNORE_INDEX where padded
    owner: torch.Tensor  # (N,) index of the item a row comes from

    def __len__(self) -> int:
        return self.x.shape[0]

    def rows(self, ix: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of rows ``ix``. Sequences are cut after the last position any of these
        rows predicts: a causal model's predictions never depend on later positions, so the padding
        past it would only cost time (names fill ~7 of 16 positions)."""
        x, y = self.x[ix], self.y[ix]  # (B, ...), (B,) or (B, T)
        if y.dim() == 1 or y.shape[0] == 0:
            return x, y
        width = int((y != IGNORE_INDEX).sum(1).max())  # targets fill positions 0..len from the left
        return x[:, :width], y[:, :width]  # (B, width), (B, width)


def build_windows(items: list[str], vocab: Vocab, block_size: int) -> Examples:
    """One row per predicted character: the previous ``block_size`` ids (boundary-padded) -> next id."""
    flat, lengths = encode_items(items, vocab)  # (M,), (n,)
    n_items = len(items)
    owner = torch.repeat_interleave(torch.arange(n_items), lengths + 1)  # (M,)
    starts = torch.cumsum(lengths + 1, 0) - (lengths + 1)  # (n,) first position of each item
    pos = torch.arange(flat.shape[0]) - starts[owner]  # (M,) position within its item
    offsets = torch.arange(-block_size, 0)  # (block_size,)
    src = torch.arange(flat.shape[0]).unsqueeze(1) + offsets  # (M, block_size) indices into flat
    inside = offsets.unsqueeze(0) + pos.unsqueeze(1) >= 0  # (M, block_size) False before item start
    x = torch.where(inside, flat[src.clamp(min=0)], BOUNDARY_ID)  # (M, block_size)
    return Examples(x=x, y=flat, owner=owner)


def build_sequences(items: list[str], vocab: Vocab, block_size: int) -> Examples:
    """One row per item: ``[boundary, c1..cn]`` -> ``[c1..cn, boundary]``, padded to ``block_size``."""
    flat, lengths = encode_items(items, vocab)  # (M,), (n,)
    longest = int(lengths.max()) + 1
    if longest > block_size:
        raise CharlabError(
            f"an item needs {longest} positions but block_size is {block_size}; "
            f"raise --block-size to at least {longest}"
        )
    n_items = len(items)
    owner = torch.repeat_interleave(torch.arange(n_items), lengths + 1)  # (M,)
    starts = torch.cumsum(lengths + 1, 0) - (lengths + 1)  # (n,)
    pos = torch.arange(flat.shape[0]) - starts[owner]  # (M,)
    y = torch.full((n_items, block_size), IGNORE_INDEX, dtype=torch.long)  # (n, T)
    y[owner, pos] = flat
    x = torch.full((n_items, block_size), BOUNDARY_ID, dtype=torch.long)  # (n, T)
    x[:, 1:] = y[:, :-1].clamp(min=BOUNDARY_ID)
    return Examples(x=x, y=y, owner=torch.arange(n_items))


EXAMPLE_BUILDERS = {"window": build_windows, "sequence": build_sequences}


def build_examples(items: list[str], vocab: Vocab, kind: str, block_size: int) -> Examples:
    """Examples of the kind a model declares (``model.example_kind``)."""
    return EXAMPLE_BUILDERS[kind](items, vocab, block_size)
