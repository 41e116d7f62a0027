"""A decoder-only transformer (GPT) over whole items: pre-norm residual blocks of causal attention.

token + position embedding -> dropout -> n_layers x [x + attn(LN(x)); x + MLP(LN(x))] -> LN ->
Linear to logits at every position. The MLP is Linear(C, 4C) -> GELU -> Linear(4C, C) -> dropout.
All layers are hand-written (``layers.py``, ``transformer_layers.py``); the initialisation is
``apply_init``'s (output layer x0.01, so the loss at init is -ln(1/V)).
"""

from __future__ import annotations

import torch
from torch import nn

from charlab.errors import CharlabError
from charlab.nn.init import apply_init
from charlab.nn.layers import Embedding, Linear, Sequential
from charlab.models.base import SequenceModel
from charlab.models.registry import register
from charlab.nn.layers import GELU, LayerNorm
from charlab.nn.attention import CausalSelfAttention
from charlab.nn.dropout import Dropout, dropout_generator

MLP_EXPANSION = 4  # GPT's feed-forward width, 4 x n_embd


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float, generator):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size, dropout, generator)
        self.ln_2 = LayerNorm(n_embd)
        self.mlp = Sequential(Linear(n_embd, MLP_EXPANSION * n_embd), GELU(),
                              Linear(MLP_EXPANSION * n_embd, n_embd), Dropout(dropout, generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # (B, T, C)
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


class Transformer(SequenceModel):
    def __init__(self, vocab_size: int, block_size: int, n_embd: int, n_head: int, n_layers: int,
                 dropout: float = 0.0, generator: torch.Generator | None = None):
        super().__init__(vocab_size, block_size)
        if n_embd % n_head:
            raise CharlabError(f"--n-embd ({n_embd}) must be divisible by --n-head ({n_head})")
        self.wte = Embedding(vocab_size, n_embd)
        self.wpe = Embedding(block_size, n_embd)
        self.drop = Dropout(dropout, generator)
        self.blocks = Sequential(*[Block(n_embd, n_head, block_size, dropout, generator)
                                   for _ in range(n_layers)])
        self.ln_f = LayerNorm(n_embd)
        self.lm_head = Linear(n_embd, vocab_size)  # registered last: the output layer for apply_init

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))  # (B, T, C)
        x = self.blocks(self.drop(x))  # (B, T, C)
        return self.lm_head(self.ln_f(x))  # (B, T, V)


@register("transformer")
def build_transformer(cfg, generator=None) -> Transformer:
    model = Transformer(cfg.vocab_size, cfg.block_size, cfg.n_embd, cfg.n_head, cfg.n_layers, cfg.dropout,
                        dropout_generator(generator))
    return apply_init(model, cfg.init, cfg.gain, generator)
