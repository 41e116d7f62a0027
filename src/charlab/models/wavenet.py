"""The hierarchical model of makemore part 5 (the lecture's "WaveNet").

Instead of flattening the whole window at once, pairs of consecutive positions are fused level by
level: (B, 8, C) -> (B, 4, 2C) -> Linear -> (B, 4, H) -> (B, 2, 2H) -> ... -> (B, H). Each level is
FlattenConsecutive(2) -> Linear (no bias: BatchNorm follows) -> BatchNorm1d over (N, L, C) -> Tanh,
so ``block_size`` must be a power of two and the number of levels is log2(block_size). The
lecture's settings (block_size 8, n_embd 24, n_hidden 128) give 76,579 parameters and dev 1.993.
"""

from __future__ import annotations

import torch

from charlab.nn.batchnorm import BatchNorm1d
from charlab.errors import CharlabError
from charlab.nn.init import apply_init
from charlab.nn.layers import Embedding, FlattenConsecutive, Linear, Sequential, Tanh
from charlab.models.base import WindowModel
from charlab.models.registry import register

FUSE = 2  # positions fused per level: the lecture's pairs (a dilated causal convolution of width 2)


def levels_for(block_size: int) -> int:
    """log2(block_size) levels; a block_size that is not a power of two cannot be fused in pairs."""
    levels = block_size.bit_length() - 1
    if block_size < FUSE or FUSE ** levels != block_size:
        raise CharlabError(f"wavenet fuses positions in pairs, so --block-size must be a power of two "
                           f"(2, 4, 8, 16, ...), got {block_size}")
    return levels


class WaveNet(WindowModel):
    def __init__(self, vocab_size: int, block_size: int, n_embd: int, n_hidden: int,
                 bn_momentum: float = 0.1, bn_eps: float = 1e-5):
        super().__init__(vocab_size, block_size)
        layers = [Embedding(vocab_size, n_embd)]
        width = n_embd
        for _ in range(levels_for(block_size)):
            layers += [FlattenConsecutive(FUSE), Linear(width * FUSE, n_hidden, bias=False),
                       BatchNorm1d(n_hidden, eps=bn_eps, momentum=bn_momentum), Tanh()]
            width = n_hidden
        layers.append(Linear(width, vocab_size))
        self.layers = Sequential(*layers)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.layers(idx)  # (B, block_size) -> (B, V)

    @property
    def output_layer(self) -> Linear:
        return self.layers[-1]  # the Linear to logits, appended last


@register("wavenet")
def build_wavenet(cfg, generator=None) -> WaveNet:
    model = WaveNet(cfg.vocab_size, cfg.block_size, cfg.n_embd, cfg.n_hidden, cfg.bn_momentum, cfg.bn_eps)
    return apply_init(model, cfg.init, cfg.gain, generator, output=model.output_layer)
