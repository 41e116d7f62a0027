"""Fast variants of the transformer's hand-written layers, reading the same parameters (the fast path).

``attention.py``'s ``CausalSelfAttention``, ``layers.py``'s ``Linear``, ``LayerNorm`` and ``GELU`` are the
lesson and the reference; here the same math is one fused torch kernel each: ``F.linear`` (one addmm),
``F.layer_norm``, ``F.gelu`` (the exact, erf form, as ``GELU``) and, for the attention core,
``attention_forward`` / ``attention_backward`` (written out; ``transformer_fast.TransformerTrunk`` calls
them) or ``F.scaled_dot_product_attention(is_causal=True)``.

Why a written-out core rather than SDPA on the CPU: at charlab's sizes (T <= 16 positions, heads of 16
channels) every attention op is tiny and the cost is in layout and per-call overhead. torch's softmax over
a last dimension of 12-16 runs ~15x slower than over a leading one, and SDPA's CPU flash kernel pays per
(batch, head) block. ``attention_forward`` keeps the scores key-major, (T_k, B*nh, T_q), so the softmax
and its backward reduce over the leading dimension (vectorised over B*nh*T_q), and copies q, k, v out of
the fused c_attn output once: ~0.75x SDPA's forward + backward time, ~0.5x the reference's.

``causal_self_attention`` (the per-layer fast path, taken when dropout is drawn: the trunk takes the rest)
keeps charlab's dropout (masks drawn from its own CPU generator, in the reference's order): when the
attention weights themselves are dropped the core is the reference's, written out, so the draws are the
same; otherwise SDPA. The tests compare all of these with the reference in float64, forward and gradients.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def linear(layer, x: torch.Tensor) -> torch.Tensor:
    """``layers.Linear`` as one kernel: ``x @ W.T + b``."""
    return F.linear(x, layer.weight, layer.bias)


def layer_norm(layer, x: torch.Tensor) -> torch.Tensor:
    """``layers.LayerNorm`` (biased variance, eps inside the root) as one kernel."""
    return F.layer_norm(x, (x.shape[-1],), layer.weight, layer.bias, layer.eps)


def attention_forward(qkv: torch.Tensor, n_head: int):
    """softmax(q k^T / sqrt(hs), causal) v for every head, from the fused c_attn output ``qkv`` (B, T, 3C):
    the heads side by side (B, T, C), and what the backward needs (the heads q, k, v and the weights).

    Scores are kept key-major, ``s[k, bh, q]`` (T, B*nh, T), so the softmax over keys is over dim 0."""
    batch, t, width = qkv.shape
    head = width // 3 // n_head
    heads = qkv.view(batch, t, 3, n_head, head).permute(2, 0, 3, 1, 4).reshape(3, batch * n_head, t, head)
    if heads.data_ptr() == qkv.data_ptr():  # reshape made a view (one position, one item): q is scaled in place
        heads = heads.clone()
    q, k, v = heads.unbind(0)  # each (B*nh, T, hs), contiguous
    q.mul_(1.0 / math.sqrt(head))  # the scale folded into q (kept scaled for the backward)
    future = torch.ones(t, t, dtype=torch.bool, device=qkv.device).triu_(1).t_()  # (Tk, Tq) key after query
    s = torch.bmm(k, q.transpose(1, 2)).masked_fill_(future, float("-inf"))  # (B*nh, Tk, Tq)
    p = s.permute(1, 0, 2).softmax(0)  # (Tk, B*nh, Tq) attention weights, key-major, contiguous
    y = torch.bmm(p.permute(1, 2, 0), v)  # (B*nh, Tq, hs)
    y = y.view(batch, n_head, t, head).transpose(1, 2).reshape(batch, t, n_head * head)  # (B, T, C)
    return y, heads, p


def attention_backward(grad_y: torch.Tensor, heads: torch.Tensor, p: torch.Tensor, n_head: int) -> torch.Tensor:
    """d qkv (B, T, 3C) from d y (B, T, C), the heads (3, B*nh, T, hs; q scaled by 1/sqrt(hs)) and the
    weights (Tk, B*nh, Tq)."""
    q, k, v = heads.unbind(0)  # each (B*nh, T, hs)
    _, bh, t, head = heads.shape
    batch = bh // n_head
    scale = 1.0 / math.sqrt(head)
    dy = grad_y.reshape(batch, t, n_head, head).transpose(1, 2).reshape(bh, t, head)  # (B*nh, Tq, hs)
    grads = torch.empty_like(heads)  # (3, B*nh, T, hs) dq, dk, dv
    dq, dk, dv = grads.unbind(0)
    pb = p.permute(1, 0, 2)  # (B*nh, Tk, Tq) view
    torch.bmm(pb, dy, out=dv)  # dv = p^T dy
    dp = torch.bmm(v, dy.transpose(1, 2)).permute(1, 0, 2)  # (Tk, B*nh, Tq) view: dL/dp
    ds = dp * p  # (Tk, B*nh, Tq)
    ds = torch.addcmul(ds, p, ds.sum(0), value=-1)  # softmax backward: p * (dp - sum_k p dp)
    dsb = ds.permute(1, 0, 2)  # (B*nh, Tk, Tq)
    torch.baddbmm(dq, dsb.transpose(1, 2), k, beta=0, alpha=scale, out=dq)  # dq = ds^T k / sqrt(hs)
    torch.bmm(dsb, q, out=dk)  # dk = ds q / sqrt(hs), q saved scaled
    return grads.view(3, batch, n_head, t, head).permute(1, 3, 0, 2, 4).reshape(batch, t, 3 * n_head * head)


def causal_self_attention(attn, x: torch.Tensor) -> torch.Tensor:
    """``CausalSelfAttention.forward`` with fused kernels: (B, T, C) -> (B, T, C)."""
    batch, t, channels = x.shape
    head = channels // attn.n_head
    qkv = linear(attn.c_attn, x)  # (B, T, 3C)
    drop = attn.attn_drop
    if drop.training and drop.p > 0:  # dropped attention weights: the reference's core, the same draws
        q, k, v = qkv.view(batch, t, 3, attn.n_head, head).permute(2, 0, 3, 1, 4).unbind(0)  # (B, nh, T, hs)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(head)  # (B, nh, T, T)
        att = att.masked_fill(~attn.mask[:t, :t], float("-inf")).softmax(dim=-1)
        y = (drop(att) @ v).transpose(1, 2).reshape(batch, t, channels)  # (B, T, C)
    else:
        q, k, v = qkv.view(batch, t, 3, attn.n_head, head).permute(2, 0, 3, 1, 4).unbind(0)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(batch, t, channels)  # (B, T, C)
    return attn.resid_drop(linear(attn.c_proj, y))  # (B, T, C)
