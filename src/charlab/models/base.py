"""The model contract: one interface for every model, so train, evaluate and sample never branch.

A model is a ``CharModel`` (a ``torch.nn.Module``) with:

- ``vocab_size`` and ``block_size`` (the longest context it reads);
- ``example_kind``: ``"window"`` or ``"sequence"`` - which examples it learns from (``charlab.data.examples``):

  ============  =====================  ===================  ======================
  kind          ``idx``                ``targets``          ``logits``
  ============  =====================  ===================  ======================
  window        (B, block_size)        (B,)                 (B, V)
  sequence      (B, T), T<=block_size  (B, T), -1 = pad     (B, T, V)
  ============  =====================  ===================  ======================

- ``forward(idx, targets=None) -> (logits, loss)``; ``loss`` is the mean cross-entropy over the
  targets that are not ``IGNORE_INDEX``, or ``None`` without targets;
- ``next_token_logits(context) -> (B, V)``: logits of the next character given the ids generated so
  far after the start boundary, ``context`` (B, t) with t >= 0. Sampling uses only this.
- ``trained_by_gradient``: False for models fit by counting (they define ``fit_counts``).
- ``output_layer``: the Linear that makes the logits, where the model has one: ``apply_init``
  scales it as the output layer (x0.01, bias 0) and every other Linear as a hidden one.

Layers are hand-written modules (``charlab.nn``); diagnostics observe them through
hooks, so a model stores nothing for them.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from charlab.data import BOUNDARY_ID, IGNORE_INDEX


class CharModel(nn.Module):
    example_kind: ClassVar[str]
    trained_by_gradient: ClassVar[bool] = True

    def __init__(self, vocab_size: int, block_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.block_size = block_size

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits = self.logits(idx)  # (B, V) or (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1),
                               ignore_index=IGNORE_INDEX)
        return logits, loss


class WindowModel(CharModel):
    """Reads a fixed window of the last ``block_size`` ids, boundary-padded on the left."""

    example_kind = "window"

    def next_token_logits(self, context: torch.Tensor) -> torch.Tensor:
        batch, t = context.shape
        pad = torch.full((batch, self.block_size), BOUNDARY_ID, dtype=context.dtype,
                         device=context.device)  # (B, block_size)
        window = torch.cat([pad, context], dim=1)[:, -self.block_size:]  # (B, block_size)
        return self.logits(window)  # (B, V)


class SequenceModel(CharModel):
    """Reads the whole item so far, starting with one boundary token, up to ``block_size`` positions.

    A model with a fast path (``nn/fast.py``) may compute its logits time-major, (T, B, V), where that
    saves copies: ``time_major_logits`` returns them (None on the reference path), ``logits`` returns
    their (B, T, V) view and ``forward`` takes the cross-entropy on the time-major rows, with the
    targets transposed to match (the same mean over the same non-ignored targets)."""

    example_kind = "sequence"

    def time_major_logits(self, idx: torch.Tensor) -> torch.Tensor | None:
        """Logits (T, B, V) from the fast path, or None where this model computes (B, T, V) directly."""
        return None

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits_tbv = self.time_major_logits(idx)  # (T, B, V) or None
        if logits_tbv is None:
            return super().forward(idx, targets)
        logits = logits_tbv.transpose(0, 1)  # (B, T, V) view
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits_tbv.flatten(0, 1), targets.t().flatten(), ignore_index=IGNORE_INDEX)
        return logits, loss

    def next_token_logits(self, context: torch.Tensor) -> torch.Tensor:
        start = torch.full((context.shape[0], 1), BOUNDARY_ID, dtype=context.dtype,
                           device=context.device)  # (B, 1)
        seq = torch.cat([start, context], dim=1)[:, -self.block_size:]  # (B, t+1)
        return self.logits(seq)[:, -1, :]  # (B, V)


def expected_init_loss(vocab_size: int) -> float:
    """Cross-entropy of a uniform prediction over the vocabulary: -ln(1/V)."""
    return -math.log(1.0 / vocab_size)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (the CPU for an empty model)."""
    tensor = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")
