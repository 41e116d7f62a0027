"""Words in, tensors out: reading a word list, the vocabulary, the split and the examples.

Every model in charlab learns from one of two kinds of examples (see `models/base.py`):

- ``window``: the lecture's ``(context window -> next character)`` pairs, one row per predicted
  character, so a BatchNorm sees a batch of independent examples;
- ``sequence``: one row per item, the boundary token then the item, with a target at every position.

Both are built with vectorised tensor ops (no Python loop per example), so a million items build in
seconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from charlab.errors import CharlabError

BOUNDARY_ID = 0  # the start/end token; it is an id, not a character, so it never collides with data
BOUNDARY_DISPLAY = "."  # how the boundary is shown when a vocabulary is printed
IGNORE_INDEX = -1  # target value of padding positions in sequence examples
SPLIT_FRACTIONS = (0.8, 0.9)  # the lecture's 80/10/10: train up to 80%, dev up to 90%, test the rest
SPLITS = ("train", "dev", "test")
DEFAULT_DATA = "names.txt"  # packaged with charlab: 32,033 US baby names (MIT, from makemore)


def default_data_path() -> Path:
    """The embedded names list shipped inside the package."""
    return Path(str(resources.files("charlab") / "data" / DEFAULT_DATA))


def read_items(path: str | Path | None) -> list[str]:
    """Read one item per line from a UTF-8 file; strip whitespace and CRLF, skip blank lines."""
    path = default_data_path() if path is None else Path(path)
    if not path.exists():
        raise CharlabError(f"data file {path} does not exist; pass an existing file with --data")
    if path.is_dir():
        raise CharlabError(f"data path {path} is a directory; pass a text file with --data")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise CharlabError(
            f"data file {path} is not valid UTF-8 (byte {err.start}); re-encode it as UTF-8"
        ) from None
    except OSError as err:
        raise CharlabError(f"data file {path} cannot be read ({err.strerror}); check its permissions") from None
    text = text.removeprefix("\ufeff")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # not splitlines(): U+2028 is a char
    items = [line.strip() for line in lines]
    items = [item for item in items if item]
    if not items:
        raise CharlabError(f"data file {path} has no items (it is empty or only blank lines)")
    return items


@dataclass(frozen=True)
class Vocab:
    """Sorted characters of the data at ids 1..V-1; id 0 is the reserved boundary token."""

    chars: tuple[str, ...]

    @classmethod
    def from_items(cls, items: list[str]) -> "Vocab":
        return cls(tuple(sorted(set("".join(items)))))

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    @property
    def stoi(self) -> dict[str, int]:
        return {ch: i + 1 for i, ch in enumerate(self.chars)}

    def encode(self, item: str) -> list[int]:
        stoi = self.stoi
        unknown = sorted({ch for ch in item if ch not in stoi})
        if unknown:
            raise CharlabError(
                f"{item!r} has characters outside the vocabulary: {''.join(unknown)!r}; "
                "use items written with the training data's characters"
            )
        return [stoi[ch] for ch in item]

    def decode(self, ids: list[int]) -> str:
        """Characters for ids, stopping at the first boundary."""
        out = []
        for i in ids:
            if i == BOUNDARY_ID:
                break
            out.append(self.chars[i - 1])
        return "".join(out)

    def to_json(self) -> dict:
        return {"boundary_id": BOUNDARY_ID, "boundary_display": BOUNDARY_DISPLAY, "chars": list(self.chars)}

    @classmethod
    def from_json(cls, doc: dict) -> "Vocab":
        chars = doc.get("chars") if isinstance(doc, dict) else None
        if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise CharlabError("vocab.json is malformed: expected {'chars': [single characters]}")
        if list(chars) != sorted(set(chars)):
            raise CharlabError("vocab.json is malformed: characters must be sorted and unique")
        return cls(tuple(chars))


def split_items(items: list[str], seed: int) -> dict[str, list[str]]:
    """Shuffle with ``random.Random(seed)`` (seed 42 gives the lecture's split) and cut 80/10/10."""
    if len(items) < 2:
        raise CharlabError(
            f"the data has {len(items)} item; training needs at least 2 (one to train, one to check)"
        )
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    n1 = int(SPLIT_FRACTIONS[0] * len(shuffled))
    n2 = int(SPLIT_FRACTIONS[1] * len(shuffled))
    n1 = max(n1, 1)  # a tiny list still trains on something
    return {"train": shuffled[:n1], "dev": shuffled[n1:n2], "test": shuffled[n2:]}


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
