"""The bag-of-words model's whole trunk, embeddings to logits, as one operation with its backward written
out: the fast path of ``models/bow.py`` (the layers there are the reference; the tests compare the two in
float64, forward and gradients).

At makemore's sizes a BoW step is a few small matmuls; what costs is the number of operations and of
autograd nodes (~20 of each, a few microseconds apiece) and the layout of the causal average
(``weights @ x`` as a batched (T, T) matmul; torch's ``cumsum`` backward flips twice). Here everything
is time-major, (T, B, C), so that

- the token embedding is one ``index_select`` of the ids in time-major order and the position embedding
  one broadcast add of ``wpe[:T]`` (no index, no arange);
- the residual and the causal average, ``x + weights @ x``, is one ``addmm`` of the (T, T) averaging matrix
  with the (T, B*C) time-major activations (~10 us; the batched matmul or a ``cumsum`` cost 2-3x), and its
  backward one ``addmm`` with the transposed matrix;
- tanh is computed as ``2 * sigmoid(2a) - 1`` (the same function; this torch build's CPU tanh is ~7x slower
  than its sigmoid, and the rounding differs by ~1 ulp of 1, which the float64 tests allow);
- every Linear is one ``addmm`` over the T*B rows, and the logits come out (T, B, V) contiguous for the
  loss (``models/base.py`` computes the cross-entropy time-major);
- the backward's matmuls leave out the rows whose logits have no gradient (the padded positions the loss
  ignores; ``fast.live_rows``) up to the causal average, which needs every position.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from charlab.nn.fast import live_rows


class BoWTrunk(torch.autograd.Function):
    """logits (T, B, V) = head(x1 + proj(tanh(fc(x1)))), x1 = x0 + causal mean of x0, x0 = wte[ids] + wpe[t].
    Only the weights get gradients (the ids and the averaging matrix are constants)."""

    @staticmethod
    def forward(ctx, ids, average, wte, wpe, fc_w, fc_b, proj_w, proj_b, head_w, head_b):
        steps, batch = ids.shape  # ids (T, B) time-major; average (T, T), row t = 1/(t+1) on positions <= t
        channels = wte.shape[1]
        x0 = wte.index_select(0, ids.reshape(-1)).view(steps, batch * channels)  # (T, B*C)
        x0.view(steps, batch, channels).add_(wpe[:steps].unsqueeze(1))  # + position embedding
        x1 = torch.addmm(x0, average, x0).view(steps * batch, channels)  # (T*B, C) x + causal mean of x
        h = torch.addmm(fc_b, x1, fc_w.t(), beta=2, alpha=2).sigmoid_().mul_(2).sub_(1)  # (T*B, H) tanh
        x2 = torch.addmm(x1, h, proj_w.t()).add_(proj_b)  # (T*B, C)
        logits = torch.addmm(head_b, x2, head_w.t())  # (T*B, V)
        ctx.save_for_backward(ids, average, wte, wpe, fc_w, proj_w, head_w, x1, h, x2)
        return logits.view(steps, batch, -1)  # (T, B, V)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_logits):
        ids, average, wte, wpe, fc_w, proj_w, head_w, x1, h, x2 = ctx.saved_tensors
        steps, batch = ids.shape
        g = grad_logits.reshape(steps * batch, -1)  # (T*B, V)
        rows = live_rows(g)  # the rows with a gradient (the loss ignores padded positions), or None: all
        take = (lambda a: a) if rows is None else (lambda a: a.index_select(0, rows))  # (T*B, .) -> (R', .)
        g, x1, h, x2 = take(g), take(x1), take(h), take(x2)
        d_head_w, d_head_b = g.t() @ x2, g.sum(0)
        dx2 = g @ head_w  # (R', C)
        d_proj_w, d_proj_b = dx2.t() @ h, dx2.sum(0)
        da = dx2 @ proj_w  # (R', H) dL/dh
        da.mul_(1 - h * h)  # dL/d(fc output): tanh' = 1 - h^2
        d_fc_w, d_fc_b = da.t() @ x1, da.sum(0)
        dx1 = torch.addmm(dx2, da, fc_w)  # (R', C) residual + MLP path
        if rows is not None:  # the average mixes positions: back to all T*B rows (zeros elsewhere)
            dx1 = dx1.new_zeros(steps * batch, dx1.shape[1]).index_copy_(0, rows, dx1)
        dx1 = dx1.view(steps, -1)  # (T, B*C)
        dx0 = torch.addmm(dx1, average.t(), dx1)  # (T, B*C) residual + causal mean
        d_wpe = torch.zeros_like(wpe)
        torch.sum(dx0.view(steps, batch, -1), 1, out=d_wpe[:steps])  # (T, C)
        d_wte = torch.zeros_like(wte).index_add_(0, ids.reshape(-1), dx0.view(steps * batch, -1))  # (V, C)
        return None, None, d_wte, d_wpe, d_fc_w, d_fc_b, d_proj_w, d_proj_b, d_head_w, d_head_b
