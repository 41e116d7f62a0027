"""makemore's causal bag of words: each position averages the embeddings of itself and all before it.

token + position embedding -> x + CausalBoW(x) (a uniform average over positions <= t) -> x + MLP(x)
(Linear -> tanh -> Linear) -> Linear to logits at every position. It is the transformer with the
attention weights fixed to "all equal", the step before learned attention. The residual stream passes
a tap (``nn/tap.py``) after each of its two additions, so the diagnostics see its std grow or not.
"""

from __future__ import annotations

import torch
from torch import nn

from charlab.nn.init import apply_init
from charlab.nn.layers import Embedding, Linear, Tanh
from charlab.models.base import SequenceModel
from charlab.models.registry import register
from charlab.nn.bow_fast import trunk_forward
from charlab.nn.fast import default_path, use_fast
from charlab.nn.tap import Tap


class CausalBoW(nn.Module):
    """y_t = mean(x_0..x_t), as a lower-triangular averaging matrix."""

    def __init__(self, block_size: int):
        super().__init__()
        tril = torch.tril(torch.ones(block_size, block_size))  # (T, T)
        self.register_buffer("weights", tril / tril.sum(1, keepdim=True), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        return self.weights[:t, :t] @ x  # (T, T) @ (B, T, C) -> (B, T, C)


class BoW(SequenceModel):
    def __init__(self, vocab_size: int, block_size: int, n_embd: int, n_hidden: int):
        super().__init__(vocab_size, block_size)
        self.wte = Embedding(vocab_size, n_embd)
        self.wpe = Embedding(block_size, n_embd)
        self.cbow = CausalBoW(block_size)
        self.fc = Linear(n_embd, n_hidden)
        self.act = Tanh()
        self.proj = Linear(n_hidden, n_embd)
        self.after_bow, self.after_mlp = Tap("residual"), Tap("residual")
        self.sequence_path = default_path()  # "fast": the trunk as one operation (nn/bow_fast.py)
        self.lm_head = Linear(n_embd, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        if targets is not None and use_fast(self):  # the trunk and its loss as one operation
            logits, loss = trunk_forward(self, idx, targets)  # (T, B, V), ()
            return logits.transpose(0, 1), loss  # (B, T, V)
        return super().forward(idx, targets)

    def time_major_logits(self, idx: torch.Tensor) -> torch.Tensor | None:
        """The fast path: the whole trunk as one operation, time-major (``nn/bow_fast.py``). (T, B, V)"""
        if not use_fast(self):
            return None
        return trunk_forward(self, idx)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        fast = self.time_major_logits(idx)  # (T, B, V) or None
        if fast is not None:
            return fast.transpose(0, 1)  # (B, T, V)
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))  # (B, T, C)
        x = self.after_bow(x + self.cbow(x))  # (B, T, C)
        x = self.after_mlp(x + self.proj(self.act(self.fc(x))))  # (B, T, C)
        return self.lm_head(x)  # (B, T, V)

    @property
    def output_layer(self) -> Linear:
        return self.lm_head


@register("bow")
def build_bow(cfg, generator=None) -> BoW:
    model = BoW(cfg.vocab_size, cfg.block_size, cfg.n_embd, cfg.n_hidden)
    return apply_init(model, cfg.init, cfg.gain, generator, output=model.output_layer)
