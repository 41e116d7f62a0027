"""The count bigram of makemore part 1: a table of pair counts, add-k smoothed, fit by counting.

``P(next | prev) = (N[prev, next] + k) / sum_j (N[prev, j] + k)`` with ``k = smoothing`` (the lecture
adds 1, so that no pair has probability 0 and no dev/test loss is infinite). A row never seen with
``k = 0`` predicts the uniform distribution. No gradient is involved: the trainer calls
``fit_counts`` once with the training examples (``trained_by_gradient = False``).
"""

from __future__ import annotations

import torch

from charlab.data import Examples
from charlab.models.base import WindowModel
from charlab.models.registry import register


class BigramCounts(WindowModel):
    trained_by_gradient = False

    def __init__(self, vocab_size: int, smoothing: float):
        super().__init__(vocab_size, block_size=1)
        self.smoothing = smoothing
        self.register_buffer("counts", torch.zeros(vocab_size, vocab_size))  # (V, V) N[prev, next]
        self.register_buffer("log_probs", torch.empty(vocab_size, vocab_size))  # (V, V)
        self._update_log_probs()

    def _update_log_probs(self) -> None:
        smoothed = self.counts + self.smoothing  # (V, V)
        totals = smoothed.sum(1, keepdim=True)  # (V, 1)
        uniform = torch.full_like(smoothed, 1.0 / self.vocab_size)  # (V, V)
        probs = torch.where(totals > 0, smoothed / totals, uniform)  # (V, V); 0/0 rows take uniform
        self.log_probs.copy_(probs.log())

    @torch.no_grad()
    def fit_counts(self, examples: Examples) -> None:
        """Count every (previous id, next id) pair of the training examples (window kind)."""
        prev, nxt = examples.x[:, -1], examples.y  # (N,), (N,)
        pairs = torch.bincount(prev * self.vocab_size + nxt, minlength=self.vocab_size ** 2)  # (V*V,)
        self.counts.copy_(pairs.view(self.vocab_size, self.vocab_size).float())
        self._update_log_probs()

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.log_probs[idx[:, -1]]  # (B, V): log-probabilities are valid logits


@register("bigram-counts")
def build_bigram_counts(cfg, generator=None) -> BigramCounts:
    return BigramCounts(cfg.vocab_size, cfg.smoothing)
