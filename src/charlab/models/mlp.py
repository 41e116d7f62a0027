"""The MLP of Bengio et al. 2003, as in makemore part 3.

Embedding -> flatten the window -> n_layers x [Linear -> BatchNorm1d? -> Tanh?] -> Linear to logits.
A Linear that feeds a BatchNorm has no bias: BatchNorm subtracts the mean, so a bias there would be
a wasted parameter that never receives a useful gradient.
"""

from __future__ import annotations

import torch

from charlab.nn.batchnorm import BatchNorm1d
from charlab.nn.init import apply_init
from charlab.nn.layers import Embedding, FlattenConsecutive, Linear, Sequential, Tanh
from charlab.models.base import WindowModel
from charlab.models.registry import register

NORMS = {"none": None, "batchnorm": BatchNorm1d}
ACTIVATIONS = {"none": None, "tanh": Tanh}


class MLP(WindowModel):
    def __init__(self, vocab_size: int, block_size: int, n_embd: int, n_hidden: int, n_layers: int,
                 norm: str = "batchnorm", activation: str = "tanh", bn_momentum: float = 0.1,
                 bn_eps: float = 1e-5):
        super().__init__(vocab_size, block_size)
        norm_layer, act_layer = NORMS[norm], ACTIVATIONS[activation]
        layers = [Embedding(vocab_size, n_embd), FlattenConsecutive(block_size)]
        fan_in = n_embd * block_size
        for _ in range(n_layers):
            layers.append(Linear(fan_in, n_hidden, bias=norm_layer is None))
            if norm_layer is not None:
                layers.append(norm_layer(n_hidden, eps=bn_eps, momentum=bn_momentum))
            if act_layer is not None:
                layers.append(act_layer())
            fan_in = n_hidden
        layers.append(Linear(fan_in, vocab_size))
        self.layers = Sequential(*layers)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.layers(idx)  # (B, block_size) -> (B, V)

    @property
    def output_layer(self) -> Linear:
        return self.layers[-1]  # the Linear to logits, appended last


@register("mlp")
def build_mlp(cfg, generator=None) -> MLP:
    model = MLP(cfg.vocab_size, cfg.block_size, cfg.n_embd, cfg.n_hidden, cfg.n_layers, cfg.norm,
                cfg.activation, cfg.bn_momentum, cfg.bn_eps)
    return apply_init(model, cfg.init, cfg.gain, generator, output=model.output_layer)
