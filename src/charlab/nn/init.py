"""Weight initialisation, in one named place: the lecture's steps from naive to kaiming.

Each scheme re-draws every parameter from one ``torch.Generator`` in module order, so a seed gives
the same weights every time. The output layer (the Linear that makes the logits) is named by the model
(``apply_init(..., output=model.output_layer)``); every other Linear is "hidden".

- ``naive``: every Embedding, Linear weight and bias ~ N(0, 1) (the lecture's first cell);
- ``fix-softmax``: as naive, output weight x0.01 and bias 0 (logits near 0: loss at init ~ -ln(1/V));
- ``fix-tanh``: also hidden weights x0.2 and hidden biases x0.01 (tanh out of saturation);
- ``kaiming``: hidden weights N(0, 1) * gain / sqrt(fan_in), hidden biases x0.01, output as fix-softmax;
- ``zero``: every Linear weight and bias 0 (the lecture's first exercise); embeddings still N(0, 1).

BatchNorm starts at weight 1, bias 0 and running statistics (0, 1) in every scheme.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from charlab.nn.batchnorm import BatchNorm1d
from charlab.nn.layers import Embedding, Linear

OUTPUT_WEIGHT_SCALE = 0.01  # lecture: W2 * 0.01 makes the initial logits ~0, so softmax ~ uniform
OUTPUT_BIAS_SCALE = 0.0  # lecture: b2 * 0
HIDDEN_WEIGHT_SCALE_FIX_TANH = 0.2  # lecture: W1 * 0.2 before it derived the kaiming scale
HIDDEN_BIAS_SCALE = 0.01  # lecture: b1 * 0.01, small but non-zero for some entropy
TANH_GAIN = 5 / 3  # torch.nn.init.calculate_gain("tanh")

SCHEMES = ("naive", "fix-softmax", "fix-tanh", "kaiming", "zero")


def _scales(scheme: str, is_output: bool, fan_in: int, gain: float) -> tuple[float, float]:
    """(weight scale, bias scale) multiplying N(0, 1) draws for one Linear."""
    if scheme == "zero":
        return 0.0, 0.0
    if scheme == "naive":
        return 1.0, 1.0
    if is_output:
        return OUTPUT_WEIGHT_SCALE, OUTPUT_BIAS_SCALE
    if scheme == "fix-softmax":
        return 1.0, 1.0
    if scheme == "fix-tanh":
        return HIDDEN_WEIGHT_SCALE_FIX_TANH, HIDDEN_BIAS_SCALE
    return gain / math.sqrt(fan_in), HIDDEN_BIAS_SCALE  # kaiming


@torch.no_grad()
def apply_init(model: nn.Module, scheme: str, gain: float = TANH_GAIN,
               generator: torch.Generator | None = None, *, output: Linear) -> nn.Module:
    """Re-initialise ``model`` in place with ``scheme``; ``output`` is its output layer, a Linear inside
    ``model``. Returns the model."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose one of {SCHEMES}")
    if not isinstance(output, Linear) or not any(m is output for m in model.modules()):
        raise ValueError("output must be the model's own output Linear")
    for module in model.modules():
        if isinstance(module, Embedding):
            module.weight.normal_(0.0, 1.0, generator=generator)
        elif isinstance(module, BatchNorm1d):
            module.reset_parameters()
        elif isinstance(module, Linear):
            w_scale, b_scale = _scales(scheme, module is output, module.in_features, gain)
            module.weight.normal_(0.0, 1.0, generator=generator).mul_(w_scale)
            if module.bias is not None:
                module.bias.normal_(0.0, 1.0, generator=generator).mul_(b_scale)
    return model
