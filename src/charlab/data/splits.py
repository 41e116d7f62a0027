"""The named ways of splitting items into train/dev/test (``--split``).

- ``charlab``: the lecture's 80/10/10 after ``random.Random(seed).shuffle`` (``split_items``);
- ``makemore``: makemore's own split, so that test figures compare directly with makemore's.
  makemore (``create_datasets`` in karpathy/makemore's makemore.py) seeds torch's global generator
  with 3407, draws ``torch.randperm(len(words))``, and takes the *last* ``min(1000, 10% of words)``
  items of that permutation as its test set and the rest as train. A fresh
  ``torch.Generator().manual_seed(3407)`` draws the same permutation (checked in the tests).
  makemore has no dev set (it keeps the checkpoint with the best *test* loss); charlab picks its best
  weights on dev, so dev here is the ``n_test`` items just before the test block, taken out of
  makemore's train. The test set is exactly makemore's; train is makemore's minus those dev items.

The makemore split is fixed: it ignores ``--seed`` (seed 3407 is part of its definition).
"""

from __future__ import annotations

import random

import torch

from charlab.errors import CharlabError

SPLITS = ("train", "dev", "test")
SPLIT_FRACTIONS = (0.8, 0.9)  # the lecture's 80/10/10: train up to 80%, dev up to 90%, test the rest
MAKEMORE_SEED = 3407  # makemore's default --seed, which drives its randperm
MAKEMORE_TEST_MAX = 1000  # makemore: "10% of the training set, or up to 1000 examples"
MAKEMORE_TEST_FRACTION = 0.1
MAKEMORE_MIN_ITEMS = 3  # one item each for train, dev and test


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


def makemore_split(items: list[str]) -> dict[str, list[str]]:
    """makemore's test set exactly; dev = the same number of items before it; train = the rest."""
    if len(items) < MAKEMORE_MIN_ITEMS:
        raise CharlabError(f"the makemore split needs at least {MAKEMORE_MIN_ITEMS} items, the data has "
                           f"{len(items)}; use --split charlab or more data")
    n_test = max(min(MAKEMORE_TEST_MAX, int(len(items) * MAKEMORE_TEST_FRACTION)), 1)
    n_dev = min(n_test, len(items) - n_test - 1)
    generator = torch.Generator().manual_seed(MAKEMORE_SEED)
    order = torch.randperm(len(items), generator=generator).tolist()
    n_train = len(items) - n_test - n_dev
    return {"train": [items[i] for i in order[:n_train]],
            "dev": [items[i] for i in order[n_train:n_train + n_dev]],
            "test": [items[i] for i in order[len(items) - n_test:]]}


def _charlab_split(items: list[str], seed: int) -> dict[str, list[str]]:
    return split_items(items, seed)


def _makemore_split(items: list[str], seed: int) -> dict[str, list[str]]:
    return makemore_split(items)


SPLITTERS = {"charlab": _charlab_split, "makemore": _makemore_split}


def make_splits(items: list[str], split: str, seed: int) -> dict[str, list[str]]:
    """Train/dev/test items by the named split (``TrainConfig.split``)."""
    if split not in SPLITTERS:
        raise CharlabError(f"unknown split {split!r}; choose one of: {', '.join(SPLITTERS)}")
    return SPLITTERS[split](items, seed)
