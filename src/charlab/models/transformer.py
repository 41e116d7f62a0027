"""A decoder-only transformer (GPT) over whole items: pre-norm residual blocks of causal attention.

token + position embedding -> dropout -> n_layers x [x + attn(LN(x)); x + MLP(LN(x))] -> LN ->
Linear to logits at every position. The MLP is Linear(C, 4C) -> GELU -> Linear(4C, C) -> dropout.
All layers are hand-written (``nn/layers.py``, ``nn/attention.py``); the initialisation is
``apply_init``'s (output layer x0.01, so the loss at init is -ln(1/V)). Each block's output passes a
tap (``nn/tap.py``, ``resid``) so the diagnostics see the residual stream block by block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from charlab.errors import CharlabError
from charlab.nn.init import apply_init
from charlab.nn.layers import Embedding, Linear, Sequential
from charlab.models.base import SequenceModel
from charlab.models.registry import register
from charlab.nn.layers import GELU, LayerNorm
from charlab.nn.tap import Tap
from charlab.nn.attention import CausalSelfAttention
from charlab.nn.dropout import Dropout, dropout_generator
from charlab.nn import attention_fast as fast
from charlab.nn.fast import default_path, use_fast
from charlab.nn.transformer_fast import trunk_applies, trunk_forward

MLP_EXPANSION = 4  # GPT's feed-forward width, 4 x n_embd


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float, generator):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size, dropout, generator)
        self.ln_2 = LayerNorm(n_embd)
        self.mlp = Sequential(Linear(n_embd, MLP_EXPANSION * n_embd), GELU(),
                              Linear(MLP_EXPANSION * n_embd, n_embd), Dropout(dropout, generator))
        self.resid = Tap("residual")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # (B, T, C)
        return self.resid(x + self.mlp(self.ln_2(x)))  # (B, T, C)

    def forward_fast(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` with fused kernels over the same parameters (``nn/attention_fast.py``)."""
        x = x + fast.causal_self_attention(self.attn, fast.layer_norm(self.ln_1, x))  # (B, T, C)
        fc, _, proj, drop = self.mlp  # Linear, GELU, Linear, Dropout
        h = F.gelu(fast.linear(fc, fast.layer_norm(self.ln_2, x)))  # (B, T, 4C) exact (erf) GELU
        return x + drop(fast.linear(proj, h))  # (B, T, C)


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
        self.sequence_path = default_path()  # "fast": fused kernels, the same math (nn/fast.py)
        self.lm_head = Linear(n_embd, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        if targets is not None and trunk_applies(self):  # the trunk and its loss as one operation
            return trunk_forward(self, idx, targets)  # (B, T, V), ()
        return super().forward(idx, targets)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        if trunk_applies(self):  # the whole trunk as one operation with its backward written out
            return trunk_forward(self, idx)  # (B, T, V) (nn/transformer_fast.py)
        fast_path = use_fast(self)
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))  # (B, T, C)
        if fast_path:  # with dropout: fused kernels, charlab's dropout masks in the reference's order
            x = self.drop(x)  # (B, T, C)
            for block in self.blocks:
                x = block.forward_fast(x)  # (B, T, C)
            return fast.linear(self.lm_head, fast.layer_norm(self.ln_f, x))  # (B, T, V)
        x = self.blocks(self.drop(x))  # (B, T, C)
        return self.lm_head(self.ln_f(x))  # (B, T, V)

    @property
    def output_layer(self) -> Linear:
        return self.lm_head


@register("transformer")
def build_transformer(cfg, generator=None) -> Transformer:
    model = Transformer(cfg.vocab_size, cfg.block_size, cfg.n_embd, cfg.n_head, cfg.n_layers, cfg.dropout,
                        dropout_generator(generator))
    return apply_init(model, cfg.init, cfg.gain, generator, output=model.output_layer)
