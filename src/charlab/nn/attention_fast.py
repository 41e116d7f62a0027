"""Fast variants of the transformer's hand-written layers, reading the same parameters (the fast path).

``attention.py``'s ``CausalSelfAttention``, ``layers.py``'s ``Linear``, ``LayerNorm`` and ``GELU`` are the
lesson and the reference; here the same math is one fused torch kernel each: ``F.linear`` (one addmm),
``F.layer_norm``, ``F.gelu`` (the exact, erf form, as ``GELU``) and
``F.scaled_dot_product_attention(is_causal=True)``. Dropout stays charlab's (masks drawn from its own
CPU generator, in the reference's order): when the attention weights themselves are dropped (training
with p > 0) the attention core is the reference's, written out, so the draws are the same; otherwise
SDPA runs without dropout. The tests compare these with the reference in float64, forward and gradients.
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


def causal_self_attention(attn, x: torch.Tensor) -> torch.Tensor:
    """``CausalSelfAttention.forward`` with fused kernels: (B, T, C) -> (B, T, C)."""
    batch, t, channels = x.shape
    head = channels // attn.n_head
    qkv = linear(attn.c_attn, x).view(batch, t, 3, attn.n_head, head)  # (B, T, 3, nh, hs)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, nh, T, hs)
    drop = attn.attn_drop
    if drop.training and drop.p > 0:  # dropped attention weights: the reference's core, the same draws
        att = (q @ k.transpose(-2, -1)) / math.sqrt(head)  # (B, nh, T, T)
        att = att.masked_fill(~attn.mask[:t, :t], float("-inf")).softmax(dim=-1)
        y = drop(att) @ v  # (B, nh, T, hs)
    else:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
    y = y.transpose(1, 2).reshape(batch, t, channels)  # (B, T, C)
    return attn.resid_drop(linear(attn.c_proj, y))  # (B, T, C)
