"""Losses and per-item scores, in eval mode with the training mode restored afterwards."""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from charlab.data import IGNORE_INDEX, Examples

# rows per forward pass: bounds memory on large splits; at 4,096 rows each intermediate (rows x width
# floats, ~5 MB at width 300) is reused by the allocator, while 65,536-row chunks spent half their time
# faulting in fresh 80 MB tensors (names' train split: 0.49 s against 1.06 s, one thread, same loss)
EVAL_CHUNK = 4_096


@contextmanager
def eval_mode(model: torch.nn.Module):
    """Eval mode and no autograd inside; the previous mode restored on exit."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def target_nll(model, examples: Examples) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed negative log-likelihood and target count per row: (N,), (N,)."""
    nll_rows, count_rows = [], []
    with eval_mode(model):
        for start in range(0, len(examples), EVAL_CHUNK):
            x, y = examples.rows(slice(start, start + EVAL_CHUNK))  # (n, ...), (n,) or (n, T)
            logits, _ = model(x)  # (n, V) or (n, T, V)
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                                  ignore_index=IGNORE_INDEX, reduction="none")  # (n*T,)
            nll_rows.append(nll.view(y.shape[0], -1).sum(1))  # (n,)
            count_rows.append((y != IGNORE_INDEX).view(y.shape[0], -1).sum(1))  # (n,)
    if not nll_rows:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    return torch.cat(nll_rows), torch.cat(count_rows)


def split_loss(model, examples: Examples) -> float:
    """Mean cross-entropy per predicted character over a whole split (nan for an empty split)."""
    nll, count = target_nll(model, examples)
    total = int(count.sum())
    return float(nll.sum()) / total if total else float("nan")


def item_scores(model, examples: Examples, n_items: int) -> torch.Tensor:
    """Per item: mean NLL per character, the end boundary included. (n_items,)"""
    nll, count = target_nll(model, examples)  # (N,), (N,)
    per_item = torch.zeros(n_items).index_add_(0, examples.owner, nll)  # (n_items,)
    chars = torch.zeros(n_items).index_add_(0, examples.owner, count.float())  # (n_items,)
    return per_item / chars
