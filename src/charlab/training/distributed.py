"""Data-parallel training on PyTorch's own engine: ``torchrun --nproc_per_node=K -m charlab train``.

Every process builds the same split, model and batch stream from the one seed. Each step all of
them draw the same global batch of ``batch_size`` examples and process ``i`` takes its slice
``i * b : (i + 1) * b`` with ``b = batch_size / K``. ``DistributedDataParallel`` averages the
gradients, which for equal slices is the gradient of the mean loss over the global batch, so K
processes take the very steps one process would take on the same batch.

BatchNorm is the catch: each process sees only ``b`` examples, and normalising by their statistics
would silently change the model. ``SyncStats`` gives every ``BatchNorm1d`` the global batch's mean
and variance by all-reducing the per-channel sum, sum of squares and count (what
``torch.nn.SyncBatchNorm`` does on GPUs; it has no CPU support). The all-reduce is differentiable,
so the gradient through the statistics is the global batch's too.

Only rank 0 writes the run directory and prints; ``is_main()`` says which process that is.
"""

from __future__ import annotations

import copy
import gc
import os
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from charlab.nn.batchnorm import BatchNorm1d
from charlab.errors import CharlabError

BACKENDS = {"cpu": "gloo", "cuda": "nccl"}  # gloo runs on CPUs; NCCL is the fast path between GPUs


def launched_by_torchrun() -> bool:
    """True inside a process started by ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0, or the only process)."""
    return rank() == 0


def local_device(device: str) -> torch.device:
    """The device of this process: with several GPUs per machine, ``cuda:LOCAL_RANK``."""
    if device == "cuda" and launched_by_torchrun():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(device)


@contextmanager
def process_group(device: str):
    """Join the torchrun job for the duration (a no-op in a single process), then leave it cleanly."""
    if not launched_by_torchrun() or dist.is_initialized():
        yield
        return
    backend = BACKENDS.get(device)
    if backend is None:
        raise CharlabError(f"multi-process training runs on cpu (gloo) or cuda (nccl), not {device}; "
                           "pass --device cpu or --device cuda")
    if device == "cuda":
        torch.cuda.set_device(local_device(device))
    dist.init_process_group(backend)
    try:
        yield
    finally:
        gc.collect()  # free DDP wrappers first: gloo can hang tearing down a group still referenced
        dist.destroy_process_group()


class AllReduceSum(torch.autograd.Function):
    """Sum over processes, differentiable: the gradient of a sum is the sum of every process's gradient."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        total = tensor.clone()
        dist.all_reduce(total, group=group)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        total = grad.clone()
        dist.all_reduce(total, group=ctx.group)
        return total, None


class SyncStats:
    """A ``BatchNorm1d.stats_reducer``: batch mean and biased variance over all processes' batches."""

    def __init__(self, group=None):
        self.group = group

    def __call__(self, x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, int]:
        channels = x.shape[-1]
        count = torch.full((1,), x.numel() // channels, dtype=x.dtype, device=x.device)  # (1,)
        local = torch.cat([x.sum(dims), (x * x).sum(dims), count])  # (2C + 1,)
        total = AllReduceSum.apply(local, self.group)  # (2C + 1,) summed over processes
        n = total[-1].detach()
        mean = total[:channels] / n  # (C,)
        var = (total[channels:2 * channels] / n - mean * mean).clamp(min=0)  # (C,) biased, as in training
        return mean, var, int(n)

    def __deepcopy__(self, memo):
        return None  # a copy of a synced model is a single-process model (``stats_reducer`` None)


class RankSlice(nn.Module):
    """The model as the trainer sees it under DDP: training calls take this process's slice of the
    global batch and return the global mean loss; evaluation calls go to the model unchanged."""

    def __init__(self, model: nn.Module, device_ids=None):
        super().__init__()
        self.ddp = DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)

    @property
    def inner(self) -> nn.Module:
        return self.ddp.module

    def __getattr__(self, name: str):
        """The model contract's attributes (``vocab_size``, ``example_kind``, ...) come from the model."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "ddp":
                raise
            return getattr(self.ddp.module, name)

    def __deepcopy__(self, memo):
        return copy.deepcopy(self.inner, memo)  # a copy (e.g. a diagnostics probe) is the plain model

    def state_dict(self, *args, **kwargs):
        """The plain model's keys, so snapshots and checkpoints load into a single process too."""
        return self.inner.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.inner.load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        if not self.training or targets is None:
            return self.inner(idx, targets)
        share = idx.shape[0] // world_size()
        mine = slice(rank() * share, (rank() + 1) * share)
        logits, loss = self.ddp(idx[mine], targets[mine])  # (b, ...), local mean loss
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        mean /= world_size()
        return logits, loss + (mean - loss.detach())  # value: the global mean; gradient: the local loss's


def wrap(model: nn.Module, batch_size: int) -> nn.Module:
    """The model itself in a single process; under torchrun, BatchNorm synced and DDP-wrapped."""
    if not active() or not model.trained_by_gradient:
        return model
    if batch_size % world_size():
        raise CharlabError(f"--batch-size {batch_size} does not split evenly over {world_size()} processes; "
                           f"use a multiple of {world_size()}")
    sync = SyncStats(dist.new_group())  # its own communicator: never interleaves with DDP's gradient all-reduce
    for module in model.modules():
        if isinstance(module, BatchNorm1d):
            module.stats_reducer = sync
    device = next(model.parameters()).device
    return RankSlice(model, device_ids=[device] if device.type == "cuda" else None)


def unwrap_view(model: nn.Module) -> nn.Module:
    """The model inside the DDP wrapper (the model itself when not wrapped); changes nothing."""
    return model.inner if isinstance(model, RankSlice) else model


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model again: BatchNorm back to per-process statistics, the DDP wrapper dropped."""
    inner = unwrap_view(model)
    for module in inner.modules():
        if isinstance(module, BatchNorm1d):
            module.stats_reducer = None
    return inner
