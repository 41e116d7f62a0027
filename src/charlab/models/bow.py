"""makemore's causal bag of words: each position averages the embeddings of itself and all before it.

token + position embedding -> x + CausalBoW(x) (a uniform average over positions <= t) -> x + MLP(x)
(Linear -> tanh -> Linear) -> Linear to logits at every position. It is the transformer with the
attention weights fixed to "all equal", the step before learned attention.
"""

from __future__ import annotations

import torch
from torch import nn

from charlab.nn.init import apply_init
from charlab.nn.layers import Embedding, Linear, Tanh
from charlab.models.base import SequenceModel
from charlab.models.registry import register
from charlab.nn.attention_fast import linear
from charlab.nn.fast import default_path, use_fast


class CausalBoW(nn.Module):
    """y_t = mean(x_0..x_t), as a lower-triangular averaging matrix."""

    def __init__(self, block_size: int):
        super().__init__()
        tril = torch.tril(torch.ones(block_size, block_size))  # (T, T)
        self.register_buffer("weights", tril / tril.sum(1, keepdim=True), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        return self.weights[:t, :t] @ x  # (T, T) @ (B, T, C) -> (B, T, C)

    def forward_fast(self, x: torch.Tensor) -> torch.Tensor:
        """The same average as a running sum: cumsum over positions / (t + 1). (B, T, C)"""
        t = x.shape[1]
        return x.cumsum(1) * self.weights[:t, :1]  # (B, T, C) * (T, 1); weights[t, 0] = 1/(t+1)


class BoW(SequenceModel):
    def __init__(self, vocab_size: int, block_size: int, n_embd: int, n_hidden: int):
        super().__init__(vocab_size, block_size)
        self.wte = Embedding(vocab_size, n_embd)
        self.wpe = Embedding(block_size, n_embd)
        self.cbow = CausalBoW(block_size)
        self.fc = Linear(n_embd, n_hidden)
        self.act = Tanh()
        self.proj = Linear(n_hidden, n_embd)
        self.sequence_path = default_path()  # "fast": running-sum average, fused kernels (nn/fast.py)
        self.lm_head = Linear(n_embd, vocab_size)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))  # (B, T, C)
        if use_fast(self):
            x = x + self.cbow.forward_fast(x)  # (B, T, C)
            x = x + linear(self.proj, torch.tanh(linear(self.fc, x)))  # (B, T, C)
            return linear(self.lm_head, x)  # (B, T, V)
        x = x + self.cbow(x)  # (B, T, C)
        x = x + self.proj(self.act(self.fc(x)))  # (B, T, C)
        return self.lm_head(x)  # (B, T, V)

    @property
    def output_layer(self) -> Linear:
        return self.lm_head


@register("bow")
def build_bow(cfg, generator=None) -> BoW:
    model = BoW(cfg.vocab_size, cfg.block_size, cfg.n_embd, cfg.n_hidden)
    return apply_init(model, cfg.init, cfg.gain, generator, output=model.output_layer)
