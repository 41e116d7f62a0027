"""Causal self-attention written out by hand; ``F.scaled_dot_product_attention`` with
``is_causal=True`` is the oracle in the tests. Taps (``nn/tap.py``, identities without parameters)
name for the diagnostics' hooks the scaled logits before the mask (``scores``), the probabilities
(``probs``) and each head's output before the heads are joined (``heads``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from charlab.nn.dropout import Dropout
from charlab.nn.layers import Linear
from charlab.nn.tap import Tap


class CausalSelfAttention(nn.Module):
    """Multi-head attention where position t attends to positions <= t only."""

    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float = 0.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.n_head = n_head
        self.c_attn = Linear(n_embd, 3 * n_embd)  # query, key, value for all heads at once
        self.c_proj = Linear(n_embd, n_embd)
        self.attn_drop = Dropout(dropout, generator)
        self.resid_drop = Dropout(dropout, generator)
        self.scores, self.probs, self.heads = Tap("scores"), Tap("attention"), Tap("heads")
        mask = torch.tril(torch.ones(block_size, block_size, dtype=torch.bool))  # (T, T)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, t, channels = x.shape
        head = channels // self.n_head
        q, k, v = self.c_attn(x).split(channels, dim=2)  # each (B, T, C)
        q = q.view(batch, t, self.n_head, head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(batch, t, self.n_head, head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(batch, t, self.n_head, head).transpose(1, 2)  # (B, nh, T, hs)
        att = self.scores((q @ k.transpose(-2, -1)) / math.sqrt(head))  # (B, nh, T, T)
        att = att.masked_fill(~self.mask[:t, :t], float("-inf")).softmax(dim=-1)  # (B, nh, T, T)
        y = self.heads(self.attn_drop(self.probs(att)) @ v)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(batch, t, channels)  # (B, T, C) heads side by side
        return self.resid_drop(self.c_proj(y))  # (B, T, C)
