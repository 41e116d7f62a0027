"""The transformer's whole trunk, embeddings to logits, as one operation with its backward written out:
the fast path of ``models/transformer.py`` when no dropout is drawn (the layers there are the reference;
the tests compare the two in float64, forward and gradients).

At makemore's sizes (4 blocks, n_embd 64, T <= 16, batch 32) the kernels of a step (matmuls at one
core's peak, LayerNorm, GELU, the attention core of ``attention_fast.py``, the optimizer) add up to ~60%
of what the same kernels cost when autograd records ~90 nodes per step and replays them: the graph, the
views and transposes it records, the gradient accumulation, the allocations. Here the forward runs the
kernels directly (``native_layer_norm``, one ``addmm`` per Linear with the residual added in place, exact
GELU, the attention core) and keeps what the backward needs; the backward is written out block by block
(``native_layer_norm_backward``, ``gelu_backward``, the attention core's backward), each weight's
gradient one matmul over all B*T rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from charlab.nn.attention_fast import attention_backward, attention_forward
from charlab.nn.fast import live_rows

PER_BLOCK = 12  # ln_1 (w, b), c_attn (w, b), c_proj (w, b), ln_2 (w, b), mlp fc (w, b), mlp proj (w, b)


def trunk_parameters(model) -> list[torch.Tensor]:
    """The trunk's parameters in the order ``TransformerTrunk`` takes them."""
    params = [model.wte.weight, model.wpe.weight]
    for block in model.blocks:
        fc, _, proj, _ = block.mlp
        for layer in (block.ln_1, block.attn.c_attn, block.attn.c_proj, block.ln_2, fc, proj):
            params += [layer.weight, layer.bias]
    return params + [model.ln_f.weight, model.ln_f.bias, model.lm_head.weight, model.lm_head.bias]


def _norm(x, w, b, eps):
    return torch.native_layer_norm(x, (x.shape[-1],), w, b, eps)  # out, mean, rstd


def _norm_backward(grad, x, mean, rstd, w, b):
    return torch.ops.aten.native_layer_norm_backward(grad, x, (x.shape[-1],), mean, rstd, w, b,
                                                     [True, True, True])  # dx, dw, db


class TransformerTrunk(torch.autograd.Function):
    """logits (B, T, V) from ids (B, T): token + position embedding, pre-norm blocks of causal attention
    and GELU MLP, final LayerNorm, lm_head. ``eps`` is every LayerNorm's eps (one value: they share it)."""

    @staticmethod
    def forward(ctx, idx, n_head: int, eps: float, *params):
        batch, t = idx.shape
        wte, wpe = params[0], params[1]
        channels = wte.shape[1]
        rows = batch * t
        x = wte.index_select(0, idx.reshape(-1)).view(batch, t, channels)  # (B, T, C)
        x = x.add_(wpe[:t]).view(rows, channels)  # (B*T, C)
        saved = []
        for i in range(2, len(params) - 4, PER_BLOCK):
            ln1_w, ln1_b, attn_w, attn_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, mp_w, mp_b = params[i:i + PER_BLOCK]
            a, mean1, rstd1 = _norm(x, ln1_w, ln1_b, eps)  # (B*T, C)
            qkv = torch.addmm(attn_b, a, attn_w.t())  # (B*T, 3C)
            y, heads, weights = attention_forward(qkv.view(batch, t, -1), n_head)  # (B, T, C)
            y = y.view(rows, channels)
            x1 = torch.addmm(proj_b, y, proj_w.t()).add_(x)  # (B*T, C) x + attn
            a2, mean2, rstd2 = _norm(x1, ln2_w, ln2_b, eps)  # (B*T, C)
            f = torch.addmm(fc_b, a2, fc_w.t())  # (B*T, 4C)
            g = F.gelu(f)  # (B*T, 4C) exact (erf) GELU
            x2 = torch.addmm(mp_b, g, mp_w.t()).add_(x1)  # (B*T, C) x1 + mlp
            saved.append((x, a, mean1, rstd1, heads, weights, y, x1, a2, mean2, rstd2, f, g))
            x = x2
        lnf_w, lnf_b, head_w, head_b = params[-4:]
        out, mean_f, rstd_f = _norm(x, lnf_w, lnf_b, eps)  # (B*T, C)
        logits = torch.addmm(head_b, out, head_w.t())  # (B*T, V)
        ctx.save_for_backward(idx, *params)  # the weights: autograd checks they are not changed in place
        ctx.saved, ctx.final = saved, (x, out, mean_f, rstd_f)
        ctx.n_head = n_head
        return logits.view(batch, t, -1)  # (B, T, V)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_logits):
        idx, *params = ctx.saved_tensors
        batch, t = idx.shape
        x, out, mean_f, rstd_f = ctx.final
        lnf_w, lnf_b, head_w, head_b = params[-4:]
        grads = [None] * len(params)
        d = grad_logits.reshape(batch * t, -1)  # (B*T, V)
        rows = live_rows(d)  # the rows with a gradient, or None for all of them
        take = (lambda a: a) if rows is None else (lambda a: a.index_select(0, rows))  # (R, ...) -> (R', ...)
        d = take(d)
        grads[-2], grads[-1] = d.t() @ take(out), d.sum(0)
        dx, grads[-4], grads[-3] = _norm_backward(d @ head_w, take(x), take(mean_f), take(rstd_f), lnf_w, lnf_b)
        for n in range(len(ctx.saved) - 1, -1, -1):
            i = 2 + n * PER_BLOCK
            ln1_w, ln1_b, attn_w, attn_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, mp_w, mp_b = params[i:i + PER_BLOCK]
            x, a, mean1, rstd1, heads, weights, y, x1, a2, mean2, rstd2, f, g = ctx.saved[n]
            # x2 = x1 + mlp(ln_2(x1)); dx is dL/dx2 (R', C)
            grads[i + 10], grads[i + 11] = dx.t() @ take(g), dx.sum(0)
            df = torch.ops.aten.gelu_backward(dx @ mp_w, take(f))  # (R', 4C)
            grads[i + 8], grads[i + 9] = df.t() @ take(a2), df.sum(0)
            dx1, grads[i + 6], grads[i + 7] = _norm_backward(df @ fc_w, take(x1), take(mean2), take(rstd2), ln2_w, ln2_b)
            dx1.add_(dx)  # (R', C) dL/dx1: the MLP's path and the residual
            # x1 = x + c_proj(attention(c_attn(ln_1(x))))
            grads[i + 4], grads[i + 5] = dx1.t() @ take(y), dx1.sum(0)
            dy = dx1 @ proj_w  # (R', C)
            if rows is not None:  # the attention mixes positions: back to all B*T rows (zeros elsewhere)
                dy = dy.new_zeros(batch * t, dy.shape[1]).index_copy_(0, rows, dy)
            dqkv = take(attention_backward(dy, heads, weights, ctx.n_head).view(batch * t, -1))  # (R', 3C)
            grads[i + 2], grads[i + 3] = dqkv.t() @ take(a), dqkv.sum(0)
            dx, grads[i], grads[i + 1] = _norm_backward(dqkv @ attn_w, take(x), take(mean1), take(rstd1), ln1_w, ln1_b)
            dx.add_(dx1)  # (R', C) dL/dx
        wte, wpe = params[0], params[1]
        ids = idx.reshape(-1)
        if rows is None:
            grads[1] = torch.zeros_like(wpe)
            torch.sum(dx.view(batch, t, -1), 0, out=grads[1][:t])  # (T, C)
        else:
            ids = ids.index_select(0, rows)
            grads[1] = torch.zeros_like(wpe).index_add_(0, rows % t, dx)  # (block, C)
        grads[0] = torch.zeros_like(wte).index_add_(0, ids, dx)  # (V, C)
        ctx.saved = ctx.final = None
        return (None, None, None, *grads)

