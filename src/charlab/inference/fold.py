"""Fold every BatchNorm into the Linear before it (the lecture's second exercise).

In eval mode a BatchNorm is an affine map per channel with fixed numbers: with
``s = gamma / sqrt(running_var + eps)`` it computes ``(x - mu) * s + beta``. After ``x = W h + b`` the
two compose into one Linear::

    W' = W * s          (row i of W scaled by s_i)
    b' = (b - mu) * s + beta

A Linear without bias uses ``b = 0``; a BatchNorm without affine uses ``gamma = 1, beta = 0``. The
folded model computes the same function as the original in eval mode with one matrix multiply per
layer instead of a multiply and a normalisation. It is never used for training: the batch statistics
that BatchNorm uses in training mode are gone.

``fold_batchnorm`` is pure: it returns a new model and leaves its argument untouched. Layers are
found in ordered containers (``Sequential``), where "directly after" has a meaning.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from charlab.nn.batchnorm import BatchNorm1d
from charlab.errors import CharlabError
from charlab.nn.layers import Linear, Sequential

LINEARS = (Linear, nn.Linear)
BATCHNORMS = (BatchNorm1d, nn.BatchNorm1d)  # the layers folded: charlab's and torch's
ORDERED = (Sequential, nn.Sequential)  # containers whose child order is the order of execution


def folded_parameters(linear: nn.Module, norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W', b')`` of the Linear that equals ``norm(linear(x))`` in eval mode, computed in float64."""
    weight = linear.weight.detach().double()  # (out, in)
    out_features = weight.shape[0]
    bias = linear.bias.detach().double() if linear.bias is not None else torch.zeros_like(weight[:, 0])  # (out,)
    gamma = norm.weight.detach().double() if norm.affine else torch.ones_like(bias)  # (out,)
    beta = norm.bias.detach().double() if norm.affine else torch.zeros_like(bias)  # (out,)
    if norm.num_features != out_features:
        raise CharlabError(f"BatchNorm over {norm.num_features} features follows a Linear with "
                           f"{out_features} outputs; the model is inconsistent and cannot be folded")
    scale = gamma * torch.rsqrt(norm.running_var.double() + norm.eps)  # (out,)
    return weight * scale[:, None], (bias - norm.running_mean.double()) * scale + beta  # (out, in), (out,)


def _folded_linear(linear: nn.Module, norm: nn.Module) -> nn.Module:
    weight, bias = folded_parameters(linear, norm)
    dtype = linear.weight.dtype
    folded = copy.deepcopy(linear)  # same class and settings; building anew would draw from the global RNG
    folded.weight = nn.Parameter(weight.to(dtype))
    folded.bias = nn.Parameter(bias.to(dtype))
    return folded


def _check_foldable(name: str, norm: nn.Module, previous: nn.Module | None, previous_name: str | None) -> None:
    if not norm.track_running_stats:
        raise CharlabError(f"BatchNorm {name!r} keeps no running statistics (track_running_stats=False), "
                           "so it normalises with each batch's own statistics and cannot be folded")
    if not isinstance(previous, LINEARS):
        what = f"{type(previous).__name__} {previous_name!r}" if previous is not None else "nothing"
        raise CharlabError(f"BatchNorm {name!r} follows {what}, not a Linear; only a BatchNorm directly "
                           "after a Linear can be folded into it")


def _fold_sequence(container: nn.Module, prefix: str) -> tuple[list[nn.Module], int]:
    """The children of an ordered container with each Linear->BatchNorm pair replaced by one Linear."""
    children = list(container.named_children())
    layers: list[nn.Module] = []
    folds = 0
    for i, (child_name, child) in enumerate(children):
        if isinstance(child, BATCHNORMS):
            previous_name, previous = children[i - 1] if i else (None, None)
            _check_foldable(prefix + child_name, child, previous,
                            None if previous_name is None else prefix + previous_name)
            layers[-1] = _folded_linear(previous, child)
            folds += 1
        else:
            layers.append(child)
    return layers, folds


def _fold_in_place(module: nn.Module, prefix: str = "") -> int:
    """Fold inside ``module`` (already a copy), depth first; returns the number of folds."""
    folds = 0
    for child_name, child in module.named_children():
        folds += _fold_in_place(child, f"{prefix}{child_name}.")
    if isinstance(module, ORDERED):
        layers, here = _fold_sequence(module, prefix)
        if here:
            for name in list(module._modules):
                del module._modules[name]
            for i, layer in enumerate(layers):
                module.add_module(str(i), layer)  # renumbered 0, 1, 2... like a model built without norms
        folds += here
    else:
        stray = [n for n, c in module.named_children() if isinstance(c, BATCHNORMS)]
        if stray:
            raise CharlabError(f"BatchNorm {prefix + stray[0]!r} is not inside a Sequential, so the layer "
                               "before it is unknown; only a BatchNorm directly after a Linear can be folded")
    return folds


def count_batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, BATCHNORMS) for m in model.modules())


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A new model, in eval mode, with every Linear->BatchNorm pair replaced by one folded Linear."""
    folded = copy.deepcopy(model)
    if isinstance(folded, BATCHNORMS):
        raise CharlabError("the model is a lone BatchNorm with no Linear before it; nothing to fold it into")
    _fold_in_place(folded)
    return folded.eval()
