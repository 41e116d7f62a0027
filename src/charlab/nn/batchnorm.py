"""Batch normalisation written out by hand (Ioffe & Szegedy 2015), as in the lecture.

Semantics follow ``torch.nn.BatchNorm1d`` exactly, so the two are interchangeable:

- training mode normalises with the batch mean and the *biased* batch variance (divide by n),
  and updates ``running_var`` with the *unbiased* one (divide by n - 1);
- ``running = (1 - momentum) * running + momentum * batch``; ``momentum=None`` means a cumulative
  average over ``num_batches_tracked`` batches;
- eval mode normalises with the running buffers; ``eps`` is added to the variance in both modes.

Where the lecture differs: its notebook normalises with the *unbiased* batch standard deviation,
keeps a running *std* (``bnstd_running``) rather than a running variance, and adds no ``eps`` in
eval mode. Those are small differences at batch 32; charlab matches torch so that
``torch.nn.BatchNorm1d`` is the test oracle and a state dict moves between the two.

One more difference from torch: inputs of shape (N, L, C) are normalised per channel over N and L
(the lecture's part 5 layout); torch's BatchNorm1d expects (N, C, L) for the same thing.
"""

from __future__ import annotations

import torch
from torch import nn


class BatchNorm1d(nn.Module):
    # Opt-in hook: ``stats_reducer(x, dims) -> (mean, var, count)`` replaces the local batch statistics
    # (``distributed.SyncStats`` takes them over all processes); None keeps the single-process math.
    stats_reducer = None

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        factory = {"device": device, "dtype": dtype}
        if affine:
            self.weight = nn.Parameter(torch.empty(num_features, **factory))
            self.bias = nn.Parameter(torch.empty(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        self.reset_running_stats()
        if self.affine:
            with torch.no_grad():
                self.weight.fill_(1.0)
                self.bias.zero_()

    def _reduce_dims(self, x: torch.Tensor) -> tuple[int, ...]:
        if x.dim() == 2:
            return (0,)  # (N, C)
        if x.dim() == 3:
            return (0, 1)  # (N, L, C)
        raise ValueError(f"BatchNorm1d expects (N, C) or (N, L, C) input, got shape {tuple(x.shape)}")

    def batch_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Per-channel batch mean and biased variance, and the count they were taken over."""
        dims = self._reduce_dims(x)
        if self.stats_reducer is not None:
            return self.stats_reducer(x, dims)
        count = x.numel() // x.shape[-1]
        mean = x.mean(dims)  # (C,)
        var = (x - mean).square().mean(dims)  # (C,) biased: what the batch is normalised with
        # (two passes, written out: faster than Tensor.var on small CPU batches, same math; the training
        # step it is part of is timed by `charlab bench` / benchmarks/train_mlp_bn.py)
        return mean, var, count

    def update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        """Blend batch statistics into the running buffers (unbiased variance stored, as torch does)."""
        self.num_batches_tracked.add_(1)
        momentum = self.momentum
        if momentum is None:
            momentum = 1.0 / float(self.num_batches_tracked)
        unbiased = var * (count / max(count - 1, 1))  # (C,)
        with torch.no_grad():
            self.running_mean.lerp_(mean.detach(), momentum)
            self.running_var.lerp_(unbiased.detach(), momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            mean, var, count = self.batch_stats(x)
            if count < 2 and self.training:
                raise ValueError("BatchNorm1d in training mode needs more than one value per channel")
            if self.training and self.track_running_stats:
                self.update_running_stats(mean, var, count)
        else:
            mean, var = self.running_mean, self.running_var
        xhat = (x - mean) * torch.rsqrt(var + self.eps)  # same shape as x
        if self.affine:
            xhat = xhat * self.weight + self.bias
        return xhat

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
