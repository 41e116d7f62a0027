"""The transformer's whole trunk, embeddings to logits (and the loss, given targets), as one operation
with its backward written out: the fast path of ``models/transformer.py`` when no dropout is drawn (the
layers there are the reference; the tests compare the two in float64, forward and gradients).

At makemore's sizes (4 blocks, n_embd 64, T <= 16, batch 32) the kernels of a step are small (a matmul of
~350 rows, LayerNorm, GELU, the attention core of ``attention_fast.py``), and what autograd adds per
kernel (the graph, the views and transposes it records, gradient accumulation, allocations) costs nearly
as much as the kernels. Here the forward runs the kernels directly (``native_layer_norm``, one matmul per
Linear with the residual added in place, exact GELU, the attention core) and keeps what the backward needs;
the backward is written out block by block (``native_layer_norm_backward``, ``gelu_backward``, the
attention core's backward), each weight's gradient one matmul over the rows. In float32 on the CPU the
matmuls are oneDNN's (``onednn.linear``: ~0.55x MKL's time for these shapes on an AVX-512 AMD CPU, a step
~8% faster), except the backward's 64 x 64 and 27 x 64 ones (torch's ``mm``: there MKL is as fast).

Given targets, the rows (positions) are kept in ``trunk_loss.TargetRows`` order, those with a target
first: every row-wise step (LayerNorm, the Linears, GELU) is the same in any row order, and only the
attention core reads positions, in the natural (B, T) layout it gets from one ``index_select`` on the way
in and out. The loss is the mean cross-entropy over the rows with a target (``trunk_loss.cross_entropy``),
and the backward works on the first ``TargetRows.kept`` rows of each saved activation, a view: the padding
after each item's end gets no gradient, and causal attention reads it only from later padding. The
logits are returned in the natural layout, all rows, as the reference computes them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from charlab.nn.attention_fast import attention_backward, attention_forward, causal_mask, join_heads, split_heads
from charlab.nn.dropout import Dropout
from charlab.nn.fast import any_hook, modules_of
from charlab.nn.onednn import linear
from charlab.nn.trunk_loss import TargetRows, cross_entropy, logits_grad
from charlab.nn.layers import LayerNorm

PER_BLOCK = 12  # ln_1 (w, b), c_attn (w, b), c_proj (w, b), ln_2 (w, b), mlp fc (w, b), mlp proj (w, b)
# the backward keeps a multiple of this many rows (more padding, whose gradients are zero, fills it): oneDNN
# builds a kernel per shape on first use (~0.8 ms, ``onednn.py``) and the count of rows with a target
# changes every batch; rounded up, it takes at most 16 values (names: B*T <= 512)
ROW_QUANTUM = 32


def trunk_applies(model) -> bool:
    """Whether ``TransformerTrunk`` computes ``model``'s forward: the fast path asked for, no hook on any
    module, no dropout mask drawn, one LayerNorm eps (one walk over the modules)."""
    modules = modules_of(model)
    if model.sequence_path != "fast" or any_hook(modules):
        return False
    if any(isinstance(m, Dropout) and m.training and m.p > 0 for m in modules):
        return False
    return len({m.eps for m in modules if isinstance(m, LayerNorm)}) == 1


def trunk_parameters(model) -> list[torch.Tensor]:
    """The trunk's parameters in the order ``TransformerTrunk`` takes them. (Read from ``_modules`` and
    ``_parameters``: attribute access through ``nn.Module.__getattr__`` costs ~50 us a step here.)"""
    params = [model.wte.weight, model.wpe.weight]
    for block in model.blocks._modules.values():
        parts, attn = block._modules, block._modules["attn"]._modules
        fc, _, proj, _ = parts["mlp"]._modules.values()
        for layer in (parts["ln_1"], attn["c_attn"], attn["c_proj"], parts["ln_2"], fc, proj):
            params += [layer._parameters["weight"], layer._parameters["bias"]]
    return params + [model.ln_f.weight, model.ln_f.bias, model.lm_head.weight, model.lm_head.bias]


def trunk_forward(model, idx: torch.Tensor, targets: torch.Tensor | None = None):
    """``model``'s logits (B, T, V) for ``idx`` (B, T), and with ``targets`` (B, T) the loss: (logits, loss)."""
    return TransformerTrunk.apply(idx, targets, model.blocks[0].attn.n_head, model.ln_f.eps,
                                  *trunk_parameters(model))


def _norm(x, w, b, eps):
    return torch.native_layer_norm(x, (x.shape[-1],), w, b, eps)  # out, mean, rstd


def _norm_backward(grad, x, mean, rstd, w, b):
    return torch.ops.aten.native_layer_norm_backward(grad, x, (x.shape[-1],), mean, rstd, w, b,
                                                     [True, True, True])  # dx, dw, db


def _block_forward(x, weights, rows, shape, n_head, eps, mask):
    """One block on the rows ``x`` (R, C) in the trunk's order: its output (R, C) and what its backward
    keeps. ``rows``: the trunk's ``TargetRows`` (None: natural order); ``shape``: (B, T)."""
    ln1_w, ln1_b, attn_w, attn_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, mp_w, mp_b = weights
    batch, t = shape
    a, mean1, rstd1 = _norm(x, ln1_w, ln1_b, eps)  # (R, C)
    qkv = linear(a, attn_w, attn_b)  # (R, 3C)
    if rows is not None:
        qkv = qkv.index_select(0, rows.inverse)  # (B*T, 3C) natural rows
    heads = split_heads(qkv.view(batch, t, -1), n_head, 3)  # (3, B*nh, T, hs)
    y, attn = attention_forward(heads, mask)  # (B*nh, T, hs), the attention weights (Tk, B*nh, Tq)
    y = join_heads(y.unsqueeze(0), batch)  # (B*T, C)
    if rows is not None:
        y = y.index_select(0, rows.order)  # (R, C)
    x1 = linear(y, proj_w, proj_b).add_(x)  # (R, C) x + attn
    a2, mean2, rstd2 = _norm(x1, ln2_w, ln2_b, eps)  # (R, C)
    f = linear(a2, fc_w, fc_b)  # (R, 4C)
    g = F.gelu(f)  # (R, 4C) exact (erf) GELU
    x2 = linear(g, mp_w, mp_b).add_(x1)  # (R, C) x1 + mlp
    return x2, (x, a, mean1, rstd1, heads, attn, y, x1, a2, mean2, rstd2, f, g)


def _block_backward(dx, saved, weights, rows, shape, n_head):
    """dL/dx (n, C) from dL/d(block output) ``dx`` (n, C), the first n rows in the trunk's order, and the
    block's 12 weight gradients (in ``weights``' order). ``linear(a, b.t())`` is ``a @ b``: the MLP's and
    c_attn's matmuls on oneDNN where it applies (``onednn.py``; the 64 x 64 c_proj's are faster on MKL)."""
    ln1_w, ln1_b, attn_w, attn_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, mp_w, mp_b = weights
    x, a, mean1, rstd1, heads, attn, y, x1, a2, mean2, rstd2, f, g = saved
    n, (batch, t) = dx.shape[0], shape
    grads = [None] * PER_BLOCK
    # x2 = x1 + mlp(ln_2(x1))
    grads[10], grads[11] = linear(dx.t(), g[:n].t(), None), dx.sum(0)
    df = torch.ops.aten.gelu_backward(linear(dx, mp_w.t(), None), f[:n])  # (n, 4C)
    grads[8], grads[9] = linear(df.t(), a2[:n].t(), None), df.sum(0)
    da2 = linear(df, fc_w.t(), None)  # (n, C)
    dx1, grads[6], grads[7] = _norm_backward(da2, x1[:n], mean2[:n], rstd2[:n], ln2_w, ln2_b)
    dx1.add_(dx)  # (n, C) dL/dx1: the MLP's path and the residual
    # x1 = x + c_proj(attention(c_attn(ln_1(x))))
    grads[4], grads[5] = torch.mm(dx1.t(), y[:n]), dx1.sum(0)
    dy = torch.mm(dx1, proj_w)  # (n, C)
    if rows is not None:  # the attention reads positions: its natural layout, zeros where not kept
        dy = rows.to_natural(dy)  # (B*T, C)
    dy = split_heads(dy.view(batch, t, -1), n_head, 1)[0]  # (B*nh, T, hs)
    dqkv = join_heads(attention_backward(dy, heads, attn), batch)  # (B*T, 3C)
    if rows is not None:
        dqkv = dqkv.index_select(0, rows.order[:n])  # (n, 3C)
    grads[2], grads[3] = torch.mm(dqkv.t(), a[:n]), dqkv.sum(0)
    da = linear(dqkv, attn_w.t(), None)  # (n, C)
    dx, grads[0], grads[1] = _norm_backward(da, x[:n], mean1[:n], rstd1[:n], ln1_w, ln1_b)
    return dx.add_(dx1), grads  # (n, C) dL/dx


class TransformerTrunk(torch.autograd.Function):
    """logits (B, T, V) from ids (B, T): token + position embedding, pre-norm blocks of causal attention
    and GELU MLP, final LayerNorm, lm_head; with targets (B, T) also the mean cross-entropy. ``eps`` is
    every LayerNorm's eps (one value: they share it)."""

    @staticmethod
    def forward(ctx, idx, targets, n_head: int, eps: float, *params):
        ctx.set_materialize_grads(False)
        batch, t = idx.shape
        rows = TargetRows(targets, ROW_QUANTUM) if targets is not None else None
        order = rows.order if rows is not None else torch.arange(batch * t, device=idx.device)  # (R,)
        ids, pos = idx.reshape(-1).index_select(0, order), order.remainder(t)  # (R,) ids and positions
        x = params[0].index_select(0, ids).add_(params[1].index_select(0, pos))  # (R, C)
        mask = causal_mask(t, x)  # (Tk, Tq)
        saved = []
        for i in range(2, len(params) - 4, PER_BLOCK):
            x, kept = _block_forward(x, params[i:i + PER_BLOCK], rows, (batch, t), n_head, eps, mask)  # (R, C)
            saved.append(kept)
        lnf_w, lnf_b, head_w, head_b = params[-4:]
        out, mean_f, rstd_f = _norm(x, lnf_w, lnf_b, eps)  # (R, C)
        logits = linear(out, head_w, head_b)  # (R, V)
        ctx.save_for_backward(*params)  # the weights: autograd checks they are not changed in place
        ctx.saved, ctx.final, ctx.rows, ctx.ids, ctx.pos = saved, (x, out, mean_f, rstd_f), rows, ids, pos
        ctx.shape, ctx.n_head, ctx.loss = (batch, t), n_head, None
        if rows is None:
            return logits.view(batch, t, -1)  # (B, T, V)
        loss, log_probs, count = cross_entropy(logits[:rows.live], rows.targets)
        ctx.loss = (log_probs, count)
        return logits.index_select(0, rows.inverse).view(batch, t, -1), loss  # (B, T, V), ()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_logits, grad_loss=None):
        params = ctx.saved_tensors
        d = logits_grad(ctx.rows, ctx.loss, grad_logits, grad_loss)  # (n, V), the first n rows
        n = d.shape[0]
        grads = [None] * len(params)
        x, out, mean_f, rstd_f = ctx.final
        lnf_w, lnf_b, head_w, head_b = params[-4:]
        grads[-2], grads[-1] = torch.mm(d.t(), out[:n]), d.sum(0)
        dout = torch.mm(d, head_w)  # (n, C)
        dx, grads[-4], grads[-3] = _norm_backward(dout, x[:n], mean_f[:n], rstd_f[:n], lnf_w, lnf_b)
        for b in range(len(ctx.saved) - 1, -1, -1):
            i = 2 + b * PER_BLOCK
            dx, grads[i:i + PER_BLOCK] = _block_backward(dx, ctx.saved[b], params[i:i + PER_BLOCK], ctx.rows,
                                                         ctx.shape, ctx.n_head)  # (n, C)
        grads[0] = torch.zeros_like(params[0]).index_add_(0, ctx.ids[:n], dx)  # (V, C)
        grads[1] = torch.zeros_like(params[1]).index_add_(0, ctx.pos[:n], dx)  # (block, C)
        ctx.saved = ctx.final = ctx.loss = None
        return (None, None, None, None, *grads)
