"""An ensemble: ``--members K`` copies of one model, each with its own init and dropout masks, whose
predicted probabilities are averaged.

In training (train mode, with targets) member k learns from the k-th of K equal slices of the batch,
so ``--batch-size`` is the total and each member sees its own examples, as separately trained models
would: on names, two members sharing every batch averaged to a test loss 0.005 worse than two trained
apart. The loss is the mean of the members' own losses, and the logits returned are, row by row,
those of the member that learns from the row. Otherwise the ensemble's prediction is
``log(mean_k softmax(logits_k))``, returned as its logits with its cross-entropy as the loss, so
evaluation, scoring and sampling measure the averaged distribution without knowing it is one.
Averaging the distributions of models that overfit differently lowers the test loss below any
member's (the members' errors are partly independent; the mean log-probability is concave).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from charlab.models.base import CharModel


def average_probabilities(member_logits: list[torch.Tensor]) -> torch.Tensor:
    """``log(mean_k softmax(l_k))`` over the last axis: (..., V) each -> (..., V)."""
    log_probs = torch.stack([F.log_softmax(lg, dim=-1) for lg in member_logits])  # (K, ..., V)
    return torch.logsumexp(log_probs, dim=0) - math.log(len(member_logits))  # (..., V)


class Ensemble(CharModel):
    def __init__(self, members: list[CharModel]):
        first = members[0]
        super().__init__(first.vocab_size, first.block_size)
        self.example_kind = first.example_kind
        self.trained_by_gradient = first.trained_by_gradient
        self.members = nn.ModuleList(members)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return average_probabilities([member(idx)[0] for member in self.members])  # (B, V) or (B, T, V)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        if not (self.training and targets is not None):
            return super().forward(idx, targets)  # the averaged distribution and its cross-entropy
        slices = zip(self.members, idx.tensor_split(len(self.members)), targets.tensor_split(len(self.members)))
        outputs = [member(x, y) for member, x, y in slices]  # K x (logits of B/K rows, loss)
        logits = torch.cat([lg for lg, _ in outputs])  # (B, V) or (B, T, V)
        return logits, torch.stack([loss for _, loss in outputs]).mean()

    def next_token_logits(self, context: torch.Tensor) -> torch.Tensor:
        return average_probabilities([m.next_token_logits(context) for m in self.members])  # (B, V)

    def fit_counts(self, examples) -> None:
        for member in self.members:
            member.fit_counts(examples)
