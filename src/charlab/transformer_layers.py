"""The transformer's layers written out by hand: LayerNorm, GELU, Dropout, causal self-attention.

Semantics follow torch (``nn.LayerNorm``, ``nn.GELU``, ``F.scaled_dot_product_attention`` with
``is_causal=True``), which the tests use as oracles. ``Dropout`` draws its masks from a CPU
``torch.Generator`` handed in by the model builder, so one seed makes a run repeatable on any device.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from charlab.layers import Linear

SEED_RANGE = 2 ** 62  # dropout seeds are drawn in [0, 2^62) from the init generator


def dropout_generator(init_generator: torch.Generator | None) -> torch.Generator:
    """A generator for dropout masks, seeded by one draw from the init generator (one seed: one run)."""
    seed = int(torch.randint(SEED_RANGE, (), generator=init_generator))
    return torch.Generator().manual_seed(seed)


def dropout_mask(p: float, shape: tuple[int, ...], generator: torch.Generator | None,
                 device: torch.device) -> torch.Tensor:
    """A fresh keep-mask of ``shape``: 0 with probability ``p``, else 1/(1-p)."""
    draws = torch.rand(shape, generator=generator)  # on the CPU, as every charlab generator
    return (draws >= p).to(device) / (1.0 - p)  # (shape)


class LayerNorm(nn.Module):
    """Normalise each position over its channels (biased variance, ``eps`` inside the root)."""

    def __init__(self, n: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)  # (..., 1)
        var = x.var(-1, keepdim=True, correction=0)  # (..., 1)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias  # (..., C)


class GELU(nn.Module):
    """``x * Phi(x)`` with the exact normal CDF (torch's default ``nn.GELU``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


class Dropout(nn.Module):
    """Zero each element with probability ``p`` in training mode and scale the rest by 1/(1-p)."""

    def __init__(self, p: float, generator: torch.Generator | None = None):
        super().__init__()
        self.p = p
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * dropout_mask(self.p, x.shape, self.generator, x.device)

    def extra_repr(self) -> str:
        return f"p={self.p}"


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
        mask = torch.tril(torch.ones(block_size, block_size, dtype=torch.bool))  # (T, T)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, t, channels = x.shape
        head = channels // self.n_head
        q, k, v = self.c_attn(x).split(channels, dim=2)  # each (B, T, C)
        q = q.view(batch, t, self.n_head, head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(batch, t, self.n_head, head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(batch, t, self.n_head, head).transpose(1, 2)  # (B, nh, T, hs)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(head)  # (B, nh, T, T)
        att = att.masked_fill(~self.mask[:t, :t], float("-inf")).softmax(dim=-1)  # (B, nh, T, T)
        y = self.attn_drop(att) @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(batch, t, channels)  # (B, T, C) heads side by side
        return self.resid_drop(self.c_proj(y))  # (B, T, C)
