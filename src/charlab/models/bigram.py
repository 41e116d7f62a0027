"""The neural bigram of makemore part 1: one (V, V) matrix of logits, row = the previous character.

The lecture writes it as ``one_hot(prev) @ W``; indexing the row is the same product without the
one-hot. Trained by gradient it converges to the count bigram's log-probabilities (loss ~2.45 on
names). The table starts at zero (makemore's choice), so the first prediction is uniform and the
loss at init is exactly -ln(1/V); ``--init naive`` draws it from N(0, 1) as the lecture's
``W = torch.randn((27, 27))`` does.
"""

from __future__ import annotations

import torch

from charlab.nn.layers import Embedding
from charlab.models.base import WindowModel
from charlab.models.registry import register


class Bigram(WindowModel):
    def __init__(self, vocab_size: int):
        super().__init__(vocab_size, block_size=1)
        self.table = Embedding(vocab_size, vocab_size)  # (V, V): logits of next given previous

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table(idx[:, -1])  # (B, V)


@register("bigram")
def build_bigram(cfg, generator=None) -> Bigram:
    model = Bigram(cfg.vocab_size)
    model.table.reset_parameters(generator)
    if cfg.init != "naive":
        with torch.no_grad():
            model.table.weight.zero_()
    return model
