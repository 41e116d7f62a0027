"""The bag-of-words model's whole trunk, embeddings to logits (and the loss, given targets), as one
operation with its backward written out: the fast path of ``models/bow.py`` (the layers there are the
reference; the tests compare the two in float64, forward and gradients).

At makemore's sizes a BoW step is a few small matmuls; what costs is the number of operations and of
autograd nodes (~25 of each with the loss, a few microseconds apiece) and the layout of the causal
average (``weights @ x`` as a batched (T, T) matmul; torch's ``cumsum`` backward flips twice). Here
everything is time-major, (T, B, C), so that

- the token embedding is one ``index_select`` of the ids in time-major order and the position embedding
  one broadcast add of ``wpe[:T]`` (no index, no arange);
- the residual and the causal average, ``x + weights @ x``, is one ``addmm`` of the (T, T) averaging matrix
  with the (T, B*C) time-major activations (~10 us; the batched matmul or a ``cumsum`` cost 2-3x), and its
  backward one ``addmm`` with the transposed matrix;
- tanh is computed as ``2 * sigmoid(2a) - 1`` (the same function; this torch build's CPU tanh is ~7x slower
  than its sigmoid, and the rounding differs by ~1 ulp of 1, which the float64 tests allow);
- every Linear is one ``addmm`` over the T*B rows;
- given targets, the loss is ``F.cross_entropy``'s computation on the time-major logits
  (``trunk_loss.cross_entropy``), inside the operation: no autograd nodes of its own, no reshapes.

The backward works on every row: leaving out the padded positions' rows (whose gradient is zero) as the
transformer does (``trunk_loss.TargetRows``) saves less here than the reordering costs (a step ~10% slower).
The logits are returned time-major (T, B, V), all rows, as the reference computes them.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from charlab.nn.trunk_loss import cross_entropy, cross_entropy_backward

PARAMETERS = (("wte", "weight"), ("wpe", "weight"), ("fc", "weight"), ("fc", "bias"), ("proj", "weight"),
              ("proj", "bias"), ("lm_head", "weight"), ("lm_head", "bias"))  # in the order BoWTrunk takes them


def trunk_forward(model, idx: torch.Tensor, targets: torch.Tensor | None = None):
    """``model``'s logits, time-major (T, B, V), for ``idx`` (B, T), and with ``targets`` (B, T) the loss:
    (logits, loss)."""
    t = idx.shape[1]
    layers = model._modules  # (not ``nn.Module.__getattr__``: ~0.4 us a lookup, a few us a step)
    weights = [layers[layer]._parameters[name] for layer, name in PARAMETERS]
    return BoWTrunk.apply(idx.t(), None if targets is None else targets.t(), layers["cbow"].weights[:t, :t], *weights)


class BoWTrunk(torch.autograd.Function):
    """logits (T, B, V) = head(x1 + proj(tanh(fc(x1)))), x1 = x0 + causal mean of x0, x0 = wte[ids] + wpe[t];
    with targets (T, B) also the mean cross-entropy. Only the weights get gradients (the ids, the targets
    and the averaging matrix are constants)."""

    @staticmethod
    def forward(ctx, ids, targets, average, wte, wpe, fc_w, fc_b, proj_w, proj_b, head_w, head_b):
        ctx.set_materialize_grads(False)
        steps, batch = ids.shape  # ids (T, B) time-major; average (T, T), row t = 1/(t+1) on positions <= t
        channels = wte.shape[1]
        ids = ids.reshape(-1)  # (T*B,) time-major
        x0 = wte.index_select(0, ids).view(steps, batch * channels)  # (T, B*C)
        x0.view(steps, batch, channels).add_(wpe[:steps].unsqueeze(1))  # + position embedding
        x1 = torch.addmm(x0, average, x0).view(steps * batch, channels)  # (T*B, C) x + causal mean of x
        h = torch.addmm(fc_b, x1, fc_w.t(), beta=2, alpha=2).sigmoid_().mul_(2).sub_(1)  # (T*B, H) tanh
        x2 = torch.addmm(x1, h, proj_w.t()).add_(proj_b)  # (T*B, C)
        logits = torch.addmm(head_b, x2, head_w.t())  # (T*B, V)
        ctx.save_for_backward(ids, average, wte, wpe, fc_w, proj_w, head_w, x1, h, x2)
        ctx.shape, ctx.loss = (steps, batch), None
        if targets is None:
            return logits.view(steps, batch, -1)  # (T, B, V)
        targets = targets.reshape(-1)  # (T*B,) time-major
        loss, log_probs, count = cross_entropy(logits, targets)
        ctx.loss = (log_probs, targets, count)
        return logits.view(steps, batch, -1), loss  # (T, B, V), ()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_logits, grad_loss=None):
        ids, average, wte, wpe, fc_w, proj_w, head_w, x1, h, x2 = ctx.saved_tensors
        steps, batch = ctx.shape
        g = None if grad_loss is None else cross_entropy_backward(grad_loss, *ctx.loss)  # (T*B, V)
        if grad_logits is not None:
            g = grad_logits.reshape(steps * batch, -1) if g is None else g.add_(grad_logits.reshape(g.shape))
        d_head_w, d_head_b = torch.mm(g.t(), x2), g.sum(0)
        dx2 = torch.mm(g, head_w)  # (T*B, C)
        d_proj_w, d_proj_b = torch.mm(dx2.t(), h), dx2.sum(0)
        da = torch.ops.aten.tanh_backward(torch.mm(dx2, proj_w), h)  # (T*B, H) dL/d(fc output): tanh' = 1 - h^2
        d_fc_w, d_fc_b = torch.mm(da.t(), x1), da.sum(0)
        dx1 = torch.addmm(dx2, da, fc_w).view(steps, -1)  # (T, B*C) residual + MLP path
        dx0 = torch.addmm(dx1, average.t(), dx1)  # (T, B*C) residual + causal mean
        d_wpe = torch.zeros_like(wpe)
        torch.sum(dx0.view(steps, batch, -1), 1, out=d_wpe[:steps])  # (T, C)
        d_wte = torch.zeros_like(wte).index_add_(0, ids, dx0.view(steps * batch, -1))  # (V, C)
        ctx.loss = None
        return None, None, None, d_wte, d_wpe, d_fc_w, d_fc_b, d_proj_w, d_proj_b, d_head_w, d_head_b
