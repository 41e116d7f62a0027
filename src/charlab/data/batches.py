"""How the trainer draws its batches: uniformly (the lecture's), or by length for sequence models.

Uniform: ``batch_size`` example indices drawn with replacement from the seeded generator.

Length buckets (``--length-buckets Q``, sequence models): the items are sorted by length and cut
into Q groups of equal size (to one item); a step picks one group uniformly, then ``batch_size``
items uniformly inside it. Every item is still drawn with probability 1/N at every position of the
batch, but the items of a batch have similar lengths, so the batch, cut after its longest item
(``Examples.rows``), holds little padding: on names a uniform batch of 64 is 11.2 positions wide for
7.1 predicted characters per item; a bucketed one is close to its items' own length. The mean loss of
a batch of short items covers fewer characters than one of long items, so its gradient is scaled by
(characters in the batch) / (batch size x mean characters per item): in expectation every predicted
character weighs the same as with uniform batches, the quantity the test loss measures.
"""

from __future__ import annotations

import torch

from charlab.data import IGNORE_INDEX, Examples
from charlab.errors import CharlabError


def check_length_buckets(example_kind: str, length_buckets: int) -> None:
    """Length buckets group whole items: refuse them for window models, naming the fix."""
    if length_buckets > 0 and example_kind != "sequence":
        raise CharlabError("--length-buckets groups whole items by length, for sequence models (rnn, gru, "
                           "lstm, bow, transformer); drop it for window models")


class BatchSampler:
    def __init__(self, examples: Examples, batch_size: int, generator: torch.Generator, length_buckets: int = 0):
        self.n = len(examples)
        self.batch_size = batch_size
        self.generator = generator
        self.buckets: list[torch.Tensor] | None = None
        if length_buckets <= 0 or self.n == 0:
            return
        check_length_buckets("sequence" if examples.y.dim() == 2 else "window", length_buckets)
        targets = (examples.y != IGNORE_INDEX).sum(1).cpu()  # (N,) predicted characters per item
        order = torch.argsort(targets, stable=True)  # (N,) shortest first
        self.buckets = list(order.tensor_split(min(length_buckets, self.n)))  # Q x (~N/Q,)
        self.mean_targets = float(targets.float().mean())

    def draw(self) -> torch.Tensor:
        """The next batch's example indices. (B,)"""
        if self.buckets is None:
            return torch.randint(0, self.n, (self.batch_size,), generator=self.generator)  # (B,)
        bucket = self.buckets[int(torch.randint(len(self.buckets), (), generator=self.generator))]
        return bucket[torch.randint(0, len(bucket), (self.batch_size,), generator=self.generator)]  # (B,)

    def loss_weight(self, y: torch.Tensor) -> float:
        """The factor on a batch's mean loss that makes every character weigh the same in expectation."""
        if self.buckets is None:
            return 1.0
        return float((y != IGNORE_INDEX).sum()) / (y.shape[0] * self.mean_targets)
