"""The lecture's layers, written out by hand as ``torch.nn.Module`` subclasses.

Constructor arguments and parameter/buffer names match ``torch.nn`` so that a state dict moves
between the two and the tests can compare them one to one (see ``tests/test_layers.py``).
``BatchNorm1d`` lives in its own file, ``batchnorm.py``: it is the lesson.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Embedding(nn.Module):
    """A lookup table ``weight[idx]``; initialised from N(0, 1) like ``torch.nn.Embedding``."""

    def __init__(self, num_embeddings: int, embedding_dim: int, device=None, dtype=None):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            self.weight.normal_(0.0, 1.0, generator=generator)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.weight[idx]  # (*idx.shape, embedding_dim)


class Linear(nn.Module):
    """``x @ W.T + b`` with ``weight`` of shape (out, in) as in ``torch.nn.Linear``.

    Initialisation differs from torch on purpose: the lecture's fan-in scheme,
    ``W ~ N(0, 1) * gain / sqrt(in_features)`` and a zero bias (torch uses a uniform
    distribution with bound ``1/sqrt(in_features)``). ``gain`` is 5/3 for a layer feeding tanh.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None,
                 gain: float = 1.0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.gain = gain
        self.weight = nn.Parameter(torch.empty(out_features, in_features, device=device, dtype=dtype))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            self.weight.normal_(0.0, 1.0, generator=generator)
            self.weight.mul_(self.gain / math.sqrt(self.in_features))
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x @ self.weight.T  # (..., out_features)
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Tanh(nn.Module):
    """``tanh(x)``; bounded in (-1, 1), so its outputs can saturate (diagnostics look for this)."""

    bounded = True  # tells diagnostics that saturation is meaningful for this layer's output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


class FlattenConsecutive(nn.Module):
    """(B, T, C) -> (B, T/n, C*n): concatenate ``n`` consecutive positions (the lecture's part 5).

    A middle dimension of 1 is squeezed away, giving (B, C*n), as in the lecture. torch has no
    counterpart; ``nn.Unflatten``/``view`` is the oracle in the tests.
    """

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, channels = x.shape
        if length % self.n:
            raise ValueError(f"FlattenConsecutive({self.n}) needs a length divisible by {self.n}, got {length}")
        x = x.reshape(batch, length // self.n, channels * self.n)  # (B, T/n, C*n)
        if x.shape[1] == 1:
            x = x.squeeze(1)  # (B, C*n)
        return x

    def extra_repr(self) -> str:
        return f"n={self.n}"


class Sequential(nn.Module):
    """Apply layers in order; children are named ``0, 1, 2, ...`` as in ``torch.nn.Sequential``."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, i: int) -> nn.Module:
        return list(self._modules.values())[i]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self._modules.values():
            x = layer(x)
        return x


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
