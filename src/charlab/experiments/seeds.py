"""Which seeds a command trains with, and which split each of them uses.

``--seeds N`` means N consecutive seeds from ``--seed`` (default 42, so ``--seeds 1`` is today's one
run and every longer list starts with it); ``--seeds 1,2,3`` lists them. By default every seed
shares one train/dev/test split (shuffled by ``--seed``): only the initial draws and the batch
order vary, which is the noise a comparison of variants has to beat. ``--vary-split`` lets each
seed shuffle the split too (``TrainConfig.split_seed`` unset: it follows the run's seed).

An experiment module trains through ``runner.train_variant``; ``fixed_split(k)`` makes every
``train_variant`` call inside it use split seed ``k``, so no experiment needs code of its own for
seeds. The value lives in a context variable, set only for the ``with`` block and reset after it.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from charlab.errors import CharlabError

SEED_LIST_SEPARATOR = ","

_split_seed: ContextVar[int | None] = ContextVar("charlab_split_seed", default=None)


@dataclass(frozen=True)
class SeedPlan:
    """The seeds to train with and the split seed they share (None: each seed its own split)."""

    seeds: tuple[int, ...]
    split_seed: int | None

    def split_of(self, seed: int) -> int:
        return seed if self.split_seed is None else self.split_seed

    def describe(self) -> str:
        split = "each seed's own split" if self.split_seed is None else f"one split (seed {self.split_seed})"
        return f"{len(self.seeds)} seeds ({', '.join(map(str, self.seeds))}), {split}"


def parse_seeds(text: str | None, base: int) -> tuple[int, ...]:
    """``None`` -> (base,); ``"3"`` -> (base, base+1, base+2); ``"1,2,3"`` -> (1, 2, 3)."""
    if text is None:
        return (base,)
    parts = [p.strip() for p in str(text).split(SEED_LIST_SEPARATOR)]
    try:
        numbers = [int(p) for p in parts if p]
    except ValueError:
        raise CharlabError(f"--seeds takes a count (--seeds 3) or a list (--seeds 1,2,3), got {text!r}") from None
    if not numbers:
        raise CharlabError(f"--seeds takes a count (--seeds 3) or a list (--seeds 1,2,3), got {text!r}")
    if SEED_LIST_SEPARATOR not in str(text):
        if numbers[0] < 1:
            raise CharlabError(f"--seeds must be at least 1, got {numbers[0]}")
        return tuple(range(base, base + numbers[0]))
    repeated = sorted({s for s in numbers if numbers.count(s) > 1})
    if repeated:
        raise CharlabError(f"--seeds lists {', '.join(map(str, repeated))} more than once; list each seed once")
    return tuple(numbers)


def seed_plan(seeds: str | None, seed: int, vary_split: bool) -> SeedPlan:
    """The plan of ``--seeds``, ``--seed`` (the first seed and the shared split's) and ``--vary-split``."""
    return SeedPlan(parse_seeds(seeds, seed), None if vary_split else seed)


@contextmanager
def fixed_split(split_seed: int | None):
    """Within the block, ``train_variant`` splits the data with ``split_seed`` (None: with each run's seed)."""
    token = _split_seed.set(split_seed)
    try:
        yield
    finally:
        _split_seed.reset(token)


def current_split_seed() -> int | None:
    return _split_seed.get()
