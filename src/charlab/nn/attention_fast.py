"""Fast variants of the transformer's hand-written layers, reading the same parameters (the fast path).

``attention.py``'s ``CausalSelfAttention``, ``layers.py``'s ``Linear``, ``LayerNorm`` and ``GELU`` are the
lesson and the reference; here the same math is one fused torch kernel each: ``F.linear`` (one addmm),
``F.layer_norm``, ``F.gelu`` (the exact, erf form, as ``GELU``) and, for the attention core,
``attention_forward`` / ``attention_backward`` (written out; ``transformer_fast.TransformerTrunk`` calls
them, with ``split_heads`` / ``join_heads`` around them) or ``F.scaled_dot_product_attention(is_causal=True)``.

Why a written-out core rather than SDPA on the CPU: at charlab's sizes (T <= 16 positions, heads of 16
channels) every attention op is tiny and the cost is in layout and per-call overhead. torch's softmax over
a last dimension of 12-16 runs ~15x slower than over a leading one, and SDPA's CPU flash kernel pays per
(batch, head) block. ``attention_forward`` keeps the scores key-major, (T_k, B*nh, T_q), so the softmax
and its backward (``_softmax_backward_data``, one kernel) reduce over the leading dimension (vectorised
over B*nh*T_q); the scale and the causal mask are folded into the matmul that makes the scores
(``baddbmm``: alpha = 1/sqrt(hs), and ``causal_mask`` added, -inf after the query: ``masked_fill``'s
result without its pass). Forward + backward, B 32, T 11, 4 heads of 16: ~0.3x the reference's
time with autograd, ~0.5x SDPA's.

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


def causal_mask(t: int, like: torch.Tensor) -> torch.Tensor:
    """The causal mask as a term added to key-major scores (Tk, Tq): 0 where the key is at or before the
    query, -inf after it (adding it is ``masked_fill`` with -inf, in the matmul that makes the scores)."""
    return torch.full((t, t), float("-inf"), dtype=like.dtype, device=like.device).triu_(1).t_()  # (Tk, Tq)


def split_heads(x: torch.Tensor, n_head: int, parts: int) -> torch.Tensor:
    """(B, T, parts*C) -> (parts, B*nh, T, hs), contiguous (a copy, or a view where that is the same
    layout): parts 3 for the fused c_attn output (q, k, v), 1 for the gradient of the heads' output."""
    batch, t, width = x.shape
    head = width // parts // n_head
    return x.reshape(batch, t, parts, n_head, head).permute(2, 0, 3, 1, 4).reshape(parts, batch * n_head, t, head)


def join_heads(h: torch.Tensor, batch: int) -> torch.Tensor:
    """(parts, B*nh, T, hs) -> (B*T, parts*C), the heads side by side: ``split_heads`` undone, rows flat."""
    parts, n, t, head = h.shape
    n_head = n // batch
    return h.view(parts, batch, n_head, t, head).permute(1, 3, 0, 2, 4).reshape(batch * t, parts * n_head * head)


def attention_forward(heads: torch.Tensor, mask: torch.Tensor):
    """softmax(q k^T / sqrt(hs) + causal mask) v for every head: ``heads`` (3, B*nh, T, hs) holds q, k, v,
    ``mask`` is ``causal_mask``. Returns the heads' output (B*nh, T, hs) and the attention weights
    (Tk, B*nh, Tq), key-major: the softmax over keys is over dim 0."""
    q, k, v = heads.unbind(0)  # each (B*nh, T, hs)
    scale = 1.0 / math.sqrt(heads.shape[-1])
    s = torch.baddbmm(mask, k, q.transpose(1, 2), alpha=scale)  # (B*nh, Tk, Tq) masked, scaled scores
    p = s.permute(1, 0, 2).softmax(0)  # (Tk, B*nh, Tq) attention weights, contiguous
    return torch.bmm(p.permute(1, 2, 0), v), p  # (B*nh, Tq, hs), (Tk, B*nh, Tq)


def attention_backward(grad_y: torch.Tensor, heads: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """d heads (3, B*nh, T, hs): dq, dk, dv from d y (B*nh, Tq, hs), the heads and the weights (Tk, B*nh, Tq)."""
    q, k, v = heads.unbind(0)  # each (B*nh, T, hs)
    scale = 1.0 / math.sqrt(heads.shape[-1])
    grads = torch.empty_like(heads)  # (3, B*nh, T, hs)
    dq, dk, dv = grads.unbind(0)
    torch.bmm(p.permute(1, 0, 2), grad_y, out=dv)  # dv = p^T dy
    dp = torch.bmm(v, grad_y.transpose(1, 2)).permute(1, 0, 2)  # (Tk, B*nh, Tq) view: dL/dp
    ds = torch._softmax_backward_data(dp, p, 0, p.dtype).permute(1, 0, 2)  # (B*nh, Tk, Tq)
    torch.baddbmm(dq, ds.transpose(1, 2), k, beta=0, alpha=scale, out=dq)  # dq = ds^T k / sqrt(hs)
    torch.baddbmm(dk, ds, q, beta=0, alpha=scale, out=dk)  # dk = ds q / sqrt(hs)
    return grads


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
