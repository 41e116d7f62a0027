"""The loss inside a whole-trunk operation (``bow_fast.py``, ``transformer_fast.py``): the mean cross-entropy
as ``F.cross_entropy`` computes it (the same kernels, so a trunk's loss replaces autograd's log-softmax and
NLL nodes and the logits' reshapes around them), and, for the transformer, its rows with a target first.

The loss ignores the padded positions after each item's end, so their logits get exactly zero gradient,
and (causal attention: a padded position is read only by later padded ones) so does every row-wise
activation at those positions. The transformer keeps its rows in ``TargetRows.order``, the positions with
a target first, so that its backward's matmuls, LayerNorm and GELU work on a prefix of every saved
activation (a view, no copy) and leave out the zero terms: with cut batches of names about a third of the
rows are padding (a step ~5% faster than the backward over every row).
"""

from __future__ import annotations

import torch

from charlab.data import IGNORE_INDEX

MEAN = 1  # aten's reduction code for a mean (torch.nn._reduction: none 0, mean 1, sum 2)


class TargetRows:
    """The B*T rows of a batch, ``targets`` (B, T), in the order a trunk keeps them: the rows with a target
    first (in their natural order), then the ignored ones.

    ``order`` (R,): the natural row at each place; ``inverse`` (R,): the place of each natural row;
    ``live``: how many rows have a target; ``targets`` (live,): theirs, in order; ``kept``: how many rows
    (from the first) the backward keeps: when every ignored position comes after its item's last target
    (``build_sequences``' padding: no target reads it), ``live`` rounded up to a multiple of ``quantum``
    (the extra rows are padding: zero gradients), else all of them."""

    def __init__(self, targets: torch.Tensor, quantum: int = 1):
        flat = targets.reshape(-1)  # (R,)
        ignored = flat.eq(IGNORE_INDEX)  # (R,)
        self.order = torch.argsort(ignored, stable=True)  # (R,) rows with a target first
        self.inverse = torch.argsort(self.order)  # (R,)
        self.live = flat.shape[0] - int(ignored.sum())
        self.targets = flat.index_select(0, self.order[:self.live])  # (live,)
        steps = ignored.view(targets.shape)  # (B, T)
        trailing = not bool(torch.gt(steps[:, :-1], steps[:, 1:]).any())  # no target after an ignored position
        self.kept = min(-(-self.live // quantum) * quantum, flat.shape[0]) if trailing else flat.shape[0]

    def to_natural(self, grad: torch.Tensor) -> torch.Tensor:
        """``grad`` (n, .), the first n rows in this order, at their natural rows, zeros elsewhere. (R, .)"""
        if grad.shape[0] < self.order.shape[0]:
            full = grad.new_zeros(self.order.shape[0], grad.shape[1])  # (R, .)
            full[:grad.shape[0]] = grad  # (an index_select of the whole is ~3x faster than an index_copy_)
            grad = full
        return grad.index_select(0, self.inverse)  # (R, .)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor):
    """The mean cross-entropy of ``logits`` (N, V) against ``targets`` (N,) over those not ignored, as
    ``F.cross_entropy`` computes it (log-softmax, then the mean negative log-likelihood): the loss and
    what ``cross_entropy_backward`` needs (the log-probabilities and the count)."""
    log_probs = torch.log_softmax(logits, 1)  # (N, V)
    loss, count = torch.ops.aten.nll_loss_forward(log_probs, targets, None, MEAN, IGNORE_INDEX)
    return loss, log_probs, count


def cross_entropy_backward(grad_loss: torch.Tensor, log_probs: torch.Tensor, targets: torch.Tensor,
                           count: torch.Tensor) -> torch.Tensor:
    """d loss / d logits (N, V) for ``cross_entropy``, as autograd computes it."""
    grad = torch.ops.aten.nll_loss_backward(grad_loss, log_probs, targets, None, MEAN, IGNORE_INDEX, count)  # (N, V)
    return torch._log_softmax_backward_data(grad, log_probs, 1, log_probs.dtype)  # (N, V)


def logits_grad(rows: TargetRows | None, loss: tuple | None, grad_logits: torch.Tensor | None,
                grad_loss: torch.Tensor | None) -> torch.Tensor:
    """A trunk's dL/dlogits (n, V) for its first n rows in ``rows`` order (natural without targets), the
    rest zero: the loss's (``loss`` = ``cross_entropy``'s log-probabilities and count; the first
    ``rows.kept`` rows) plus the logits' own gradient ``grad_logits`` (natural rows) where one comes
    (then every row)."""
    d = None
    if grad_loss is not None:
        log_probs, count = loss
        d = cross_entropy_backward(grad_loss, log_probs, rows.targets, count)  # (live, V)
        if rows.kept > rows.live:
            d = torch.cat([d, d.new_zeros(rows.kept - rows.live, d.shape[1])])  # (kept, V)
    if grad_logits is None:
        return d
    g = grad_logits.reshape(-1, grad_logits.shape[-1])  # (R, V) natural rows
    if rows is None:
        return g
    g = g.index_select(0, rows.order)  # (R, V) in the trunk's order
    if d is not None:
        g[:d.shape[0]] += d
    return g
