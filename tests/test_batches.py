"""Batch drawing (batches.py): uniform as in the lecture, or by length for sequence models. The
oracle is the definition: every item drawn with probability 1/N, every character weighted alike in
expectation."""

from __future__ import annotations

import pytest
import torch

from charlab.data.batches import BatchSampler
from charlab.data import IGNORE_INDEX, Vocab, build_sequences, build_windows
from charlab.errors import CharlabError

ITEMS = [("a" * n) + "b" for n in range(1, 13)] * 2  # 24 items, 2..13 characters
BUCKETS = 4
BATCH = 3
DRAWS = 20_000
TOLERANCE = 0.05  # relative: ~4,500 draws per item give a standard error of ~1.5%


@pytest.fixture(scope="module")
def sequences():
    return build_sequences(ITEMS, Vocab.from_items(ITEMS), 16)


def test_every_item_is_drawn_with_probability_one_over_n(sequences):
    sampler = BatchSampler(sequences, BATCH, torch.Generator().manual_seed(0), BUCKETS)
    counts = torch.bincount(torch.cat([sampler.draw() for _ in range(DRAWS)]), minlength=len(ITEMS))
    expected = DRAWS * BATCH / len(ITEMS)
    assert ((counts - expected).abs() / expected).max() < TOLERANCE


def test_a_batch_comes_from_one_length_group_and_is_narrow(sequences):
    sampler = BatchSampler(sequences, BATCH, torch.Generator().manual_seed(1), BUCKETS)
    lengths = (sequences.y != IGNORE_INDEX).sum(1)  # (N,)
    group_span = (len(ITEMS) // BUCKETS) // 2  # each group holds 3 lengths (every length twice)
    uniform = BatchSampler(sequences, BATCH, torch.Generator().manual_seed(1))
    widths = {"bucketed": [], "uniform": []}
    for _ in range(500):
        ix = sampler.draw()
        assert int(lengths[ix].max() - lengths[ix].min()) < group_span
        widths["bucketed"].append(sequences.rows(ix)[0].shape[1])
        widths["uniform"].append(sequences.rows(uniform.draw())[0].shape[1])
    assert sum(widths["bucketed"]) < 0.8 * sum(widths["uniform"])


def test_loss_weight_makes_every_character_count_alike_in_expectation(sequences):
    sampler = BatchSampler(sequences, BATCH, torch.Generator().manual_seed(2), BUCKETS)
    weights = torch.tensor([sampler.loss_weight(sequences.rows(sampler.draw())[1]) for _ in range(DRAWS)])
    assert abs(float(weights.mean()) - 1.0) < TOLERANCE / 2
    assert float(weights.min()) < 0.5 < 1.5 < float(weights.max())  # short and long batches differ
    uniform = BatchSampler(sequences, BATCH, torch.Generator().manual_seed(2))
    assert uniform.loss_weight(sequences.y[:BATCH]) == 1.0


def test_uniform_draws_are_the_lectures_randint(sequences):
    generator = torch.Generator().manual_seed(3)
    sampler = BatchSampler(sequences, BATCH, generator)
    first = sampler.draw()
    assert torch.equal(first, torch.randint(0, len(ITEMS), (BATCH,), generator=torch.Generator().manual_seed(3)))


def test_length_buckets_refused_for_window_models():
    windows = build_windows(ITEMS, Vocab.from_items(ITEMS), 3)
    with pytest.raises(CharlabError, match="sequence models"):
        BatchSampler(windows, BATCH, torch.Generator(), BUCKETS)
